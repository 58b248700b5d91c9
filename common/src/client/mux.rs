//! The registry client's multiplexed transport: every call of a
//! keep-alive client ([`super::Pooling::KeepAlive`]) is a stream of one
//! shared HTTP/2 connection, spoken with the `h2` crate (hyperium's, the
//! HTTP/2 of hyper and reqwest) straight over TCP, or over rustls with
//! ALPN.
//!
//! Why not reqwest here: twostep-radiusd holds one call per pending login,
//! thousands at once (a slow registry, push long-polls), and each
//! reqwest call over HTTP/2 costs some 10 KB of heap besides its stream:
//! reqwest's boxed request future and retry layer, hyper-util's pooled
//! `Client::call` future, a copy of the request kept for retries, and a
//! task hyper spawns per HTTP/2 request (`ClientTask::poll_pipe`). hyper's
//! own `client::conn::http2` would still spawn that task for every
//! request. Here a call is its own future (awaited by the caller) plus the
//! stream's entry in h2's table. The wire is the same as reqwest's was: HTTP/2 by prior
//! knowledge on plain HTTP to a loopback registry, by ALPN over TLS (a
//! registry that picks HTTP/1.1 is then served by reqwest, [`Mux::call`]
//! answers `None`), with the same headers, timeouts, trusted CAs and
//! error classes.

use super::{tls_cause, ClientError};
use crate::error_chain;
use bytes::Bytes;
use h2::client::SendRequest;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Receive window of one stream: 1 MiB, so that a large admin answer
/// (user lists) is not read 64 KiB at a time.
const STREAM_WINDOW: u32 = 1024 * 1024;
/// Receive window of the connection: 4 MiB.
const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// Largest header block taken from the registry: 64 KiB.
const MAX_HEADER_LIST: u32 = 64 * 1024;

/// How a connection is made.
enum Plan {
    /// Plain HTTP to a loopback registry: HTTP/2 by prior knowledge
    /// (RFC 9113 §3.3).
    PriorKnowledge,
    /// TLS with this configuration (trusted CAs, ALPN `h2`, `http/1.1`)
    /// and server name.
    Tls(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    ),
}

/// A failed connection attempt, kept for the calls that waited on it.
#[derive(Debug, Clone)]
enum Failure {
    Unreachable(String),
    Tls(String),
    Transport(String),
}

impl From<Failure> for ClientError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Unreachable(m) => Self::Unreachable(m),
            Failure::Tls(m) => Self::Tls(m),
            Failure::Transport(m) => Self::Transport(m),
        }
    }
}

/// A connection no call took for this long is not taken again (its open
/// streams finish on it, then it closes): 90 s, reqwest's pool idle
/// timeout. A connection silently dropped on the way (a NAT, a firewall)
/// then costs no call its deadline.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The connection in use (numbered, so that a call forgets only the one
/// that failed it) and when a call last took it, and the last attempt's
/// failure.
#[derive(Default)]
struct Slot {
    conn: Option<(u64, SendRequest<Bytes>)>,
    taken: Option<Instant>,
    failed: Option<Failure>,
    opened: u64,
}

/// One shared HTTP/2 connection to the registry, opened on first use and
/// again after it closed or broke.
pub(super) struct Mux {
    /// The registry URL without a trailing `/`, for messages.
    base: String,
    host: url::Host<String>,
    port: u16,
    plan: Plan,
    connect_timeout: Duration,
    user_agent: HeaderValue,
    slot: tokio::sync::Mutex<Slot>,
    /// Connection attempts finished: a call that waited for the slot
    /// while one failed shares its failure instead of trying again
    /// (thousands of waiting calls would each wait out a connect timeout).
    attempts: AtomicU64,
    /// The TLS registry chose HTTP/1.1: calls go through reqwest.
    http1: AtomicBool,
}

impl std::fmt::Debug for Mux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mux")
            .field("base", &self.base)
            .field("tls", &matches!(self.plan, Plan::Tls(..)))
            .field("http1", &self.http1.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Why a request failed: before the registry could have seen it (safe
/// to send again on a new connection), or after.
enum Sent {
    Not(h2::Error),
    Maybe(h2::Error),
}

impl Mux {
    /// A transport to `url` (`https`, or `http` to a loopback host);
    /// `tls` the rustls configuration for `https` (its ALPN list is set
    /// here). `None` for a URL without a usable host.
    pub(super) fn new(
        url: &url::Url,
        base: &str,
        tls: Option<rustls::ClientConfig>,
        connect_timeout: Duration,
        user_agent: &'static str,
    ) -> Result<Self, ClientError> {
        let host = url
            .host()
            .ok_or_else(|| ClientError::Setup(format!("registry url {base}: no host")))?
            .to_owned();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| ClientError::Setup(format!("registry url {base}: no port")))?;
        let plan = match tls {
            None => Plan::PriorKnowledge,
            Some(mut config) => {
                config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                let name = match &host {
                    url::Host::Ipv4(a) => {
                        rustls::pki_types::ServerName::from(std::net::IpAddr::V4(*a))
                    }
                    url::Host::Ipv6(a) => {
                        rustls::pki_types::ServerName::from(std::net::IpAddr::V6(*a))
                    }
                    url::Host::Domain(d) => rustls::pki_types::ServerName::try_from(d.clone())
                        .map_err(|e| ClientError::Setup(format!("registry url {base}: {e}")))?,
                };
                Plan::Tls(tokio_rustls::TlsConnector::from(Arc::new(config)), name)
            }
        };
        Ok(Self {
            base: base.to_owned(),
            host,
            port,
            plan,
            connect_timeout,
            user_agent: HeaderValue::from_static(user_agent),
            slot: tokio::sync::Mutex::default(),
            attempts: AtomicU64::new(0),
            http1: AtomicBool::new(false),
        })
    }

    /// Whether calls go through HTTP/1.1 (reqwest): the TLS registry did
    /// not take HTTP/2.
    pub(super) fn is_http1(&self) -> bool {
        self.http1.load(Ordering::Relaxed)
    }

    /// One call: `method` on `url` (the base URL and path) with `token`
    /// as bearer credential (none when empty), `body` as JSON when given;
    /// the status and body of the answer, a body over `cap` bytes refused
    /// as [`ClientError::Protocol`] (`path` names it). `Ok(None)` when the
    /// registry speaks HTTP/1.1 only (TLS without `h2`): the caller sends
    /// it another way. No deadline of its own but the connect timeout: the
    /// caller bounds the whole call.
    pub(super) async fn call(
        &self,
        method: Method,
        url: &str,
        token: &str,
        body: Option<Bytes>,
        path: &str,
        cap: usize,
    ) -> Result<Option<(StatusCode, Vec<u8>)>, ClientError> {
        // Once again on a new connection if the first could not have
        // reached the registry (closed while idle, shutting down).
        let mut again = false;
        loop {
            let Some((id, send)) = self.connection().await? else {
                return Ok(None);
            };
            // Made for each attempt, not kept: h2 lets go of the head
            // once it is sent, and a waiting call holds no copy.
            let req = self.request(method.clone(), url, token, body.as_ref().map(Bytes::len))?;
            match send_request(send, req, body.clone()).await {
                Ok(resp) => return self.read(resp, path, cap).await.map(Some),
                Err(Sent::Not(_)) if !again => {
                    self.forget(id).await;
                    again = true;
                }
                Err(Sent::Not(e) | Sent::Maybe(e)) => {
                    self.forget(id).await;
                    return Err(self.transport_error(&e));
                }
            }
        }
    }

    /// The head of a call: what reqwest sent (`User-Agent`, `Accept`,
    /// the bearer credential unless `token` is empty, the JSON type and
    /// length of a body of `body_len` bytes) and the results header.
    fn request(
        &self,
        method: Method,
        url: &str,
        token: &str,
        body_len: Option<usize>,
    ) -> Result<Request<()>, ClientError> {
        let mut req = Request::new(());
        *req.method_mut() = method;
        *req.uri_mut() = url
            .parse()
            .map_err(|e| ClientError::Setup(format!("{url}: {e}")))?;
        let headers = req.headers_mut();
        headers.insert(http::header::USER_AGENT, self.user_agent.clone());
        headers.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
        headers.insert(
            HeaderName::from_static(crate::api::RESULTS_HEADER),
            HeaderValue::from_static("replay"),
        );
        if !token.is_empty() {
            let mut v = HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|_| ClientError::Setup("credential is not a valid header value".into()))?;
            v.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, v);
        }
        if let Some(len) = body_len {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        Ok(req)
    }

    /// The shared connection, opened if there is none.
    async fn connection(&self) -> Result<Option<(u64, SendRequest<Bytes>)>, ClientError> {
        let seen = self.attempts.load(Ordering::Acquire);
        let mut slot = self.slot.lock().await;
        let now = Instant::now();
        if slot
            .taken
            .is_some_and(|t| now.saturating_duration_since(t) > IDLE_TIMEOUT)
        {
            slot.conn = None;
        }
        slot.taken = Some(now);
        if let Some((id, send)) = &slot.conn {
            return Ok(Some((*id, send.clone())));
        }
        if self.is_http1() {
            return Ok(None);
        }
        if self.attempts.load(Ordering::Acquire) != seen {
            if let Some(f) = &slot.failed {
                return Err(f.clone().into());
            }
        }
        // Boxed: a call's future keeps no room for a connection attempt's
        // state (TLS, the HTTP/2 handshake), which only the first needs.
        let result = Box::pin(self.connect()).await;
        self.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(Some(send)) => {
                slot.opened += 1;
                slot.conn = Some((slot.opened, send.clone()));
                slot.failed = None;
                Ok(Some((slot.opened, send)))
            }
            Ok(None) => {
                self.http1.store(true, Ordering::Relaxed);
                Ok(None)
            }
            Err(f) => {
                slot.failed = Some(f.clone());
                Err(f.into())
            }
        }
    }

    /// Drops connection `id` if it is still the shared one: the next call
    /// opens a new one.
    async fn forget(&self, id: u64) {
        let mut slot = self.slot.lock().await;
        if slot.conn.as_ref().is_some_and(|(i, _)| *i == id) {
            slot.conn = None;
        }
    }

    /// Connects, within the connect timeout: TCP, TLS when `https`, the
    /// HTTP/2 preface. `Ok(None)` when TLS chose HTTP/1.1.
    async fn connect(&self) -> Result<Option<SendRequest<Bytes>>, Failure> {
        let attempt = async {
            let tcp = match &self.host {
                url::Host::Ipv4(a) => TcpStream::connect((*a, self.port)).await,
                url::Host::Ipv6(a) => TcpStream::connect((*a, self.port)).await,
                url::Host::Domain(d) => TcpStream::connect((d.as_str(), self.port)).await,
            }
            .map_err(|e| {
                Failure::Unreachable(format!("{}: connect: {}", self.base, error_chain(&e)))
            })?;
            let _ = tcp.set_nodelay(true);
            match &self.plan {
                Plan::PriorKnowledge => self.handshake(tcp).await.map(Some),
                Plan::Tls(connector, name) => {
                    let tls = connector.connect(name.clone(), tcp).await.map_err(|e| {
                        let why = format!("{}: TLS handshake: {}", self.base, error_chain(&e));
                        // A refused certificate or an alert is TLS; a
                        // connection that broke during the handshake is
                        // unreachable, as for reqwest (a connect error).
                        if tls_cause(&e).is_some() {
                            Failure::Tls(why)
                        } else {
                            Failure::Unreachable(why)
                        }
                    })?;
                    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                        return Ok(None);
                    }
                    self.handshake(tls).await.map(Some)
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Unreachable(format!(
                "{}: connect timed out after {} s",
                self.base,
                self.connect_timeout.as_secs()
            ))),
        }
    }

    async fn handshake<T>(&self, io: T) -> Result<SendRequest<Bytes>, Failure>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (send, connection) = h2::client::Builder::new()
            .enable_push(false)
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| self.failure(&e))?;
        // The connection's reads and writes; it ends when the connection
        // closes or every handle (the slot's, each call's) is dropped.
        // Its error reaches the calls on it (and the next call opens a
        // new connection).
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(send)
    }

    fn failure(&self, e: &h2::Error) -> Failure {
        match self.transport_error(e) {
            ClientError::Tls(m) => Failure::Tls(m),
            ClientError::Unreachable(m) => Failure::Unreachable(m),
            other => Failure::Transport(other.to_string()),
        }
    }

    /// The body of `resp`, refused as soon as it passes `cap` bytes.
    async fn read(
        &self,
        resp: http::Response<h2::RecvStream>,
        path: &str,
        cap: usize,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let too_large = || {
            ClientError::Protocol(format!(
                "{path}: the answer is larger than {cap} bytes; refused"
            ))
        };
        let (parts, mut body) = resp.into_parts();
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > u64::try_from(cap).unwrap_or(u64::MAX)) {
            return Err(too_large());
        }
        let mut out = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| self.transport_error(&e))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            if out.len() + chunk.len() > cap {
                // Dropping the stream resets it (CANCEL).
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok((parts.status, out))
    }

    /// Sorts an HTTP/2 failure after the connection was made: a TLS
    /// failure among its causes, else a broken connection. The registry
    /// may have acted on the request, so never unreachable.
    fn transport_error(&self, e: &h2::Error) -> ClientError {
        let why = format!("{}: {}", self.base, error_chain(e));
        if tls_cause(e).is_some() {
            ClientError::Tls(why)
        } else if matches!(self.plan, Plan::PriorKnowledge) {
            // A TLS listener answers the HTTP/2 preface with a TLS alert,
            // which reads as a malformed frame: say the likely cause.
            ClientError::Transport(format!(
                "{why} (if the registry serves TLS, its URL starts with https://)"
            ))
        } else {
            ClientError::Transport(why)
        }
    }
}

/// Sends `req` (and `body`, ending the stream) on a handle of the shared
/// connection and waits for the answer's head.
async fn send_request(
    send: SendRequest<Bytes>,
    req: Request<()>,
    body: Option<Bytes>,
) -> Result<http::Response<h2::RecvStream>, Sent> {
    let mut send = send.ready().await.map_err(Sent::Not)?;
    let (response, mut stream) = send.send_request(req, body.is_none()).map_err(Sent::Not)?;
    if let Some(b) = body {
        // Buffered by h2 and sent as the stream's window allows.
        stream.send_data(b, true).map_err(Sent::Maybe)?;
    }
    response.await.map_err(|e| {
        // A graceful GOAWAY for a stream above its last id, or a stream
        // refused (RFC 9113 §8.7): the registry did not process it.
        let unprocessed = e.is_remote()
            && ((e.is_go_away() && e.reason() == Some(h2::Reason::NO_ERROR))
                || (e.is_reset() && e.reason() == Some(h2::Reason::REFUSED_STREAM)));
        if unprocessed {
            Sent::Not(e)
        } else {
            Sent::Maybe(e)
        }
    })
}
