//! The UDP loop and the RadSec connections: receive, classify, absorb or replay duplicates, bound the
//! work in flight (`max_in_flight`; a request that becomes a pending push
//! lets go of its place, bounded by `max_pending_pushes` instead), answer.
//! A RadSec connection (RFC 6614) is accepted from a client's address with
//! a client certificate signed by the configured CA; its packets, framed by
//! [`crate::radsec::read_packet`], take the same path with the secret
//! `radsec`. Everything it decides comes from the sans-I/O modules; this
//! file only moves bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use twostep_common::client::RegistryClient;

use crate::auth::Authenticator;
use crate::cache::{Lookup, ReplyCache, RequestKey};
use crate::flow::Reply;
use crate::inbound::{classify, DropKind, Inbound};
use crate::metrics::{DropReason, Metrics, Retransmission};
use crate::pending::{Keyer, PendingPushes};
use crate::ratelimit::LogLimiter;
use crate::settings::{Client, Settings};
use crate::wire::{self, code, RawPacket};
use crate::Error;

/// How long an answer stays in the reply cache: longer than a NAS keeps
/// retransmitting (RFC 5080 §2.2.2).
pub const REPLY_CACHE_AGE: Duration = Duration::from_secs(60);
/// Window of the rate-limited log lines.
pub const LOG_WINDOW: Duration = Duration::from_secs(10);

struct Shared {
    clients: Vec<Client>,
    /// The clients with the secret `radsec`, for RadSec connections.
    radsec_clients: Vec<Client>,
    auth: Authenticator,
    cache: Mutex<ReplyCache>,
    in_flight: Arc<Semaphore>,
    socket: UdpSocket,
}

/// Counters for rate-limited logging, owned by the receive loop.
struct Limiters {
    unknown: LogLimiter,
    /// Per client (index) and kind of fault: one misconfigured NAS does
    /// not hide another's problem.
    dropped: HashMap<(usize, DropKind), LogLimiter>,
    shed: LogLimiter,
}

/// Where a reply goes: a datagram to the source, or the RadSec
/// connection's writer.
#[derive(Clone)]
enum To {
    Udp(SocketAddr),
    Tcp(mpsc::Sender<Vec<u8>>),
}

/// A bound socket (and RadSec listener) and everything needed to serve it.
pub struct Server {
    shared: Arc<Shared>,
    radsec: Option<(TcpListener, TlsAcceptor)>,
}

impl Server {
    /// Binds the listen address and prepares the registry client; the
    /// server counts into `metrics`.
    ///
    /// # Errors
    /// [`Error::Io`] when the address cannot be bound, [`Error::Config`]
    /// when the registry client cannot be set up.
    pub async fn bind(settings: Settings, metrics: Arc<Metrics>) -> Result<Self, Error> {
        let registry = RegistryClient::for_host(&settings.registry)
            .map_err(|e| Error::Config(format!("[registry]: {e}")))?;
        let socket = UdpSocket::bind(settings.listen)
            .await
            .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", settings.listen)))?;
        // Pending pushes keep their entry in progress while they wait.
        let capacity = (settings.max_in_flight * 16).max(4096) + settings.max_pending_pushes;
        let (radsec, radsec_clients) = match settings.radsec {
            None => (None, Vec::new()),
            Some(r) => {
                let listener = TcpListener::bind(r.listen).await.map_err(|e| {
                    Error::Config(format!("cannot listen on {} (RadSec): {e}", r.listen))
                })?;
                (Some((listener, TlsAcceptor::from(r.tls))), r.clients)
            }
        };
        Ok(Self {
            radsec,
            shared: Arc::new(Shared {
                clients: settings.clients,
                radsec_clients,
                auth: Authenticator {
                    registry,
                    state_key: settings.state_key,
                    state_lifetime: settings.state_lifetime,
                    challenge_max_tries: settings.challenge_max_tries,
                    fail_mode: settings.fail_mode,
                    used_states: Mutex::default(),
                    pending: Mutex::new(PendingPushes::new(settings.max_pending_pushes)),
                    keyer: Keyer::new(),
                    metrics,
                },
                cache: Mutex::new(ReplyCache::new(capacity, REPLY_CACHE_AGE)),
                in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
                socket,
            }),
        })
    }

    /// The bound address.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.shared.socket.local_addr()?)
    }

    /// The bound RadSec address, when RadSec is configured.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn radsec_addr(&self) -> Result<Option<SocketAddr>, Error> {
        Ok(match &self.radsec {
            Some((l, _)) => Some(l.local_addr()?),
            None => None,
        })
    }

    /// Serves until the socket (or the RadSec listener) fails.
    ///
    /// # Errors
    /// [`Error::Io`] when receiving fails for good.
    pub async fn run(self) -> Result<(), Error> {
        let udp = serve_udp(Arc::clone(&self.shared));
        match self.radsec {
            None => udp.await,
            Some((listener, acceptor)) => tokio::select! {
                r = udp => r,
                r = serve_radsec(Arc::clone(&self.shared), listener, acceptor) => r,
            },
        }
    }
}

async fn serve_udp(shared: Arc<Shared>) -> Result<(), Error> {
    {
        let mut limits = new_limiters();
        // One octet more than the largest packet shows oversized datagrams.
        let mut buf = vec![0u8; wire::MAX_PACKET_LEN + 1];
        loop {
            let (n, source) = match shared.socket.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            handle_packet(
                &shared,
                Path::Udp,
                &buf[..n],
                source,
                &To::Udp(source),
                &mut limits,
            );
        }
    }
}

fn new_limiters() -> Limiters {
    Limiters {
        unknown: LogLimiter::new(LOG_WINDOW),
        dropped: HashMap::new(),
        shed: LogLimiter::new(LOG_WINDOW),
    }
}

/// Accepts RadSec connections until the listener fails.
async fn serve_radsec(
    shared: Arc<Shared>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> Result<(), Error> {
    let refused = Arc::new(Mutex::new(LogLimiter::new(LOG_WINDOW)));
    let connections = Arc::new(Semaphore::new(crate::radsec::MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) if is_transient(&e) || is_accept_transient(&e) => {
                tracing::warn!("RadSec accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let Ok(place) = Arc::clone(&connections).try_acquire_owned() else {
            let more = refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .allow(Instant::now());
            if let Some(more) = more {
                tracing::warn!(%peer, suppressed = more, "RadSec connection refused: {} connections open already", crate::radsec::MAX_CONNECTIONS);
            }
            continue;
        };
        let shared = Arc::clone(&shared);
        let acceptor = acceptor.clone();
        let refused = Arc::clone(&refused);
        tokio::spawn(async move {
            connection(shared, acceptor, tcp, peer, &refused).await;
            drop(place);
        });
    }
}

fn is_accept_transient(e: &std::io::Error) -> bool {
    // Out of file descriptors, a connection gone before accept: wait, go on.
    matches!(e.raw_os_error(), Some(23 | 24 | 103 | 105 | 12))
}

/// Serves one RadSec connection: source address of a client, TLS
/// handshake with a client certificate, then packets until either side
/// closes or the stream breaks.
async fn connection(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    refused: &Mutex<LogLimiter>,
) {
    let refuse = |why: String| {
        let more = refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allow(Instant::now());
        if let Some(more) = more {
            tracing::warn!(%peer, suppressed = more, "RadSec connection refused: {why}");
        }
    };
    let Some(client) = crate::settings::find_client(&shared.radsec_clients, peer.ip()) else {
        refuse("source address belongs to no [[radius.client]]".into());
        return;
    };
    let name = client.name.clone();
    let tls =
        match tokio::time::timeout(crate::radsec::HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return refuse(format!("client {name:?}: TLS handshake failed: {e}")),
            Err(_) => return refuse(format!("client {name:?}: TLS handshake timed out")),
        };
    tracing::info!(%peer, client = %name, "RadSec connection accepted");
    let (mut reader, mut writer) = tokio::io::split(tls);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let write = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if let Err(e) = writer.write_all(&bytes).await {
                tracing::warn!(%peer, "RadSec send failed: {e}");
                return;
            }
        }
        let _ = writer.shutdown().await;
    });
    let to = To::Tcp(tx);
    let mut limits = new_limiters();
    loop {
        match crate::radsec::read_packet(
            &mut reader,
            crate::radsec::IDLE_TIMEOUT,
            crate::radsec::PACKET_TIMEOUT,
        )
        .await
        {
            crate::radsec::Frame::Packet(p) => {
                handle_packet(&shared, Path::Radsec, &p, peer, &to, &mut limits);
            }
            crate::radsec::Frame::Closed => {
                tracing::info!(%peer, client = %name, "RadSec connection closed by the client");
                break;
            }
            crate::radsec::Frame::Idle => {
                tracing::info!(%peer, client = %name, "RadSec connection closed after {} s without a packet", crate::radsec::IDLE_TIMEOUT.as_secs());
                break;
            }
            crate::radsec::Frame::Broken(why) => {
                tracing::warn!(%peer, client = %name, "RadSec connection closed: {why}");
                break;
            }
        }
    }
    // The writer ends once every answer still being worked on is sent.
    drop(to);
    let _ = write.await;
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionReset | Interrupted | WouldBlock
    )
}

/// Which transport a packet came over, choosing the client table (and so
/// the shared secret).
#[derive(Clone, Copy)]
enum Path {
    Udp,
    Radsec,
}

impl Shared {
    fn clients(&self, path: Path) -> &[Client] {
        match path {
            Path::Udp => &self.clients,
            Path::Radsec => &self.radsec_clients,
        }
    }
}

fn handle_packet(
    shared: &Arc<Shared>,
    path: Path,
    datagram: &[u8],
    source: SocketAddr,
    to: &To,
    limits: &mut Limiters,
) {
    let now = Instant::now();
    let clients = shared.clients(path);
    match classify(datagram, source, clients) {
        Inbound::UnknownSource => {
            shared.auth.metrics.dropped(DropReason::UnknownClient);
            if let Some(more) = limits.unknown.allow(now) {
                // An IPv4 peer of a dual-stack socket as 192.0.2.10, the
                // form a [[radius.client]] address takes.
                let source = SocketAddr::new(source.ip().to_canonical(), source.port());
                tracing::warn!(%source, suppressed = more, "dropped packet from unknown source");
            }
        }
        Inbound::Drop {
            client,
            kind,
            reason,
        } => {
            shared.auth.metrics.dropped(kind.into());
            let limiter = limits
                .dropped
                .entry((client_index(clients, client), kind))
                .or_insert_with(|| LogLimiter::new(LOG_WINDOW));
            if let Some(more) = limiter.allow(now) {
                tracing::warn!(%source, client = %client.name, suppressed = more, "dropped packet: {reason}");
            }
        }
        Inbound::StatusServer { client, packet } => {
            // RFC 5997 §3: answered with Access-Accept, not cached.
            match wire::build_reply(&packet, code::ACCESS_ACCEPT, &[], client.secret.expose()) {
                Ok(bytes) => send(shared, bytes, to),
                Err(e) => tracing::error!(client = %client.name, "Status-Server reply: {e}"),
            }
        }
        Inbound::AccessRequest { client, packet } => {
            let key = RequestKey {
                source,
                identifier: packet.identifier,
                authenticator: packet.authenticator,
            };
            let lookup = shared
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .begin(key, now);
            match lookup {
                Lookup::InProgress => {
                    shared
                        .auth
                        .metrics
                        .retransmission(Retransmission::InProgress);
                    tracing::debug!(%source, id = packet.identifier, "retransmission absorbed (in progress)");
                }
                Lookup::Replay(bytes) => {
                    shared.auth.metrics.retransmission(Retransmission::Replayed);
                    tracing::debug!(%source, id = packet.identifier, "retransmission answered from the reply cache");
                    send(shared, bytes, to);
                }
                Lookup::New => {
                    let Ok(permit) = shared.in_flight.clone().try_acquire_owned() else {
                        shared
                            .cache
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .abandon(&key);
                        shared.auth.metrics.dropped(DropReason::MaxInFlight);
                        if let Some(more) = limits.shed.allow(now) {
                            tracing::warn!(%source, suppressed = more, "too many requests in flight (max_in_flight), request dropped; the NAS will retransmit");
                        }
                        return;
                    };
                    let client_index = client_index(clients, client);
                    let shared = Arc::clone(shared);
                    let to = to.clone();
                    tokio::spawn(async move {
                        answer(&shared, path, client_index, packet, key, to, permit).await;
                    });
                }
            }
        }
    }
}

fn client_index(clients: &[Client], client: &Client) -> usize {
    clients
        .iter()
        .position(|c| std::ptr::eq(c, client))
        .unwrap_or_default()
}

async fn answer(
    shared: &Shared,
    path: Path,
    client_index: usize,
    packet: RawPacket,
    key: RequestKey,
    to: To,
    in_flight: OwnedSemaphorePermit,
) {
    let client = &shared.clients(path)[client_index];
    let Reply { code, attrs } = shared.auth.handle(client, &packet, in_flight).await;
    match wire::build_reply(&packet, code, &attrs, client.secret.expose()) {
        Ok(bytes) => {
            // Awaited: a full socket buffer delays this answer, not the loop.
            match &to {
                To::Udp(addr) => {
                    if let Err(e) = shared.socket.send_to(&bytes, addr).await {
                        tracing::warn!(to = %addr, "send failed: {e}");
                    }
                }
                To::Tcp(tx) => {
                    if tx.send(bytes.clone()).await.is_err() {
                        tracing::warn!(to = %key.source, "RadSec connection gone before the reply");
                    }
                }
            }
            shared
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .finish(key, bytes, Instant::now());
        }
        Err(e) => {
            tracing::error!(client = %client.name, "cannot encode the reply: {e}");
            shared
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .abandon(&key);
        }
    }
}

/// Sends from the receive loop without waiting (a full buffer drops the
/// datagram or reply; the NAS retransmits and gets the cached reply).
fn send(shared: &Shared, bytes: Vec<u8>, to: &To) {
    match to {
        To::Udp(addr) => {
            if let Err(e) = shared.socket.try_send_to(&bytes, *addr) {
                tracing::warn!(to = %addr, "send failed: {e}");
            }
        }
        To::Tcp(tx) => {
            if let Err(e) = tx.try_send(bytes) {
                tracing::warn!("RadSec send failed: {e}");
            }
        }
    }
}
