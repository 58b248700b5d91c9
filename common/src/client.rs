//! The registry client for hosts (PAM, RADIUS) and the admin CLI.
//!
//! reqwest with rustls; keep-alive clients multiplex their calls over one
//! HTTP/2 connection spoken with h2 instead ([`mux`], which says why);
//! proxies only from the config (environment proxy variables are ignored:
//! sudo keeps the caller's environment); every request bounded by the
//! configured connect and total timeouts.

#[cfg(test)]
use crate::api::paths::encode_segment as seg;
use crate::api::paths::{self, fill};
use crate::api::{
    ApiErrorCode, AuditEvent, AuthContext, BackupCodes, CreateHost, CreateUser, EnrolTotp,
    ErrorBody, Health, Host, HostCreated, IssueTap, Method, Registrations, TapIssued,
    TotpEnrolment, UpdateUser, User, VerifyRequest, VerifyResponse,
};
use crate::error_chain;
use reqwest::{Method as HttpMethod, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;
use twostep_config::{read_secret_file, ConfigError, RegistryClientConfig, Secret};

mod mux;
mod push;

/// Errors from talking to the registry.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Reading the config, key or CA file failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The registry URL or settings are unusable.
    #[error("registry client setup: {0}")]
    Setup(String),
    /// No HTTP answer came from the registry in time: the connection was
    /// refused or the network unreachable, the name did not resolve, or a
    /// connect or request timeout passed. The only error the fail mode
    /// applies to.
    #[error("registry unreachable: {0}")]
    Unreachable(String),
    /// The TLS handshake with the registry failed: its certificate is not
    /// signed by a trusted CA (`ca_file`), is not valid for the URL's host
    /// name, has expired, or either side sent a TLS alert (found as a
    /// `rustls::Error` among the causes). Someone may be intercepting the
    /// connection, so the fail mode does not apply: front ends fail closed.
    #[error("registry TLS failure: {0}")]
    Tls(String),
    /// A connection was made but broke before a complete HTTP answer
    /// (reset, closed early, not HTTP). The registry may have acted on the
    /// request already, so the fail mode does not apply.
    #[error("registry connection failed: {0}")]
    Transport(String),
    /// The registry answered but is failing (HTTP 5xx, e.g. 503 when its
    /// database is full or read-only). It may have judged the code already,
    /// so the fail mode does not apply: front ends fail closed.
    #[error("registry failed ({status}): {message}")]
    Server {
        /// HTTP status (500-599).
        status: u16,
        /// The registry's message, or the start of the body.
        message: String,
    },
    /// The registry refused our credential (401) or the host is revoked (403);
    /// for a push device, its signature or the device itself (disabled).
    /// A configuration problem: the fail mode does not apply.
    #[error("registry refused the credential ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// [`ErrorBody::error`] (`http_error` for an answer without an
        /// [`ErrorBody`]).
        code: String,
        /// The registry's message.
        message: String,
    },
    /// The registry answered with an error body (4xx).
    #[error("registry error {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// [`ErrorBody::error`].
        code: String,
        /// [`ErrorBody::message`].
        message: String,
    },
    /// The answer was not what the API describes.
    #[error("unexpected answer from the registry: {0}")]
    Protocol(String),
}

impl ClientError {
    /// Whether the configured fail mode applies: the registry could not be
    /// reached at all ([`ClientError::Unreachable`]). False for every
    /// answer, 5xx included ([`ClientError::Server`]), for a failed TLS
    /// handshake ([`ClientError::Tls`]) and for a connection that broke
    /// mid-request ([`ClientError::Transport`]).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable(_))
    }

    /// The error code of an [`ClientError::Api`] or
    /// [`ClientError::Refused`] answer; [`ApiErrorCode::Other`] for a code
    /// this version does not know (or an answer without an [`ErrorBody`]).
    pub fn api_code(&self) -> Option<ApiErrorCode> {
        match self {
            Self::Api { code, .. } | Self::Refused { code, .. } => {
                Some(ApiErrorCode::from_wire(code))
            }
            _ => None,
        }
    }
}

/// Whether a client keeps idle connections to the registry between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooling {
    /// Keep idle keep-alive connections for the next call: for
    /// long-running processes whose runtime keeps running
    /// (twostep-radiusd, the CLI), which notice when the registry closes one.
    /// Calls are multiplexed over HTTP/2 where it is known to be there:
    /// negotiated by ALPN over TLS, by prior knowledge on plain HTTP to a
    /// loopback registry without a proxy.
    #[default]
    KeepAlive,
    /// Close each connection once its answer is read; every call opens a
    /// new one. For the PAM module: its runtime is not polled while the
    /// user is at the prompt, so a connection kept across the prompt may
    /// have been closed by the registry (a restart) without the client
    /// knowing, and the verify after the prompt would fail on it.
    PerCall,
}

/// A client of the registry's REST API, holding one credential (a host API
/// key or the admin token).
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    /// Keep-alive calls over HTTP/2 ([`mux`]); `None` for
    /// [`Pooling::PerCall`], through a proxy, and plain HTTP to another
    /// host (reqwest then, HTTP/1.1).
    mux: Option<std::sync::Arc<mux::Mux>>,
    base: String,
    credential: Secret,
    /// The request deadline (`[registry] timeout`).
    timeout: Duration,
}

/// `User-Agent` of every call.
const USER_AGENT: &str = concat!("twostep/", env!("CARGO_PKG_VERSION"));

/// Largest answer read from the registry for host calls (registrations,
/// verify, health), in bytes: 64 KiB, far above any real answer. A longer
/// answer is refused as [`ClientError::Protocol`] without reading it all, so
/// a broken or hostile registry cannot grow the memory of the process the
/// PAM module runs in (sshd, sudo).
pub const MAX_HOST_ANSWER_BYTES: usize = 64 * 1024;

/// Largest answer read for admin calls (`/v1/admin/...`: user, host and
/// audit lists), in bytes: 16 MiB, some 100 000 users.
pub const MAX_ADMIN_ANSWER_BYTES: usize = 16 * 1024 * 1024;

impl RegistryClient {
    /// A client using `credential` with the settings of `[registry]`,
    /// keeping idle connections ([`Pooling::KeepAlive`]).
    ///
    /// # Errors
    /// [`ClientError::Setup`] for an unusable URL (plain `http://` to a
    /// non-loopback host without `allow_plain_http`), proxy or CA file.
    pub fn new(cfg: &RegistryClientConfig, credential: Secret) -> Result<Self, ClientError> {
        Self::with_pooling(cfg, credential, Pooling::KeepAlive)
    }

    /// As [`RegistryClient::new`], with the given connection [`Pooling`].
    ///
    /// # Errors
    /// As [`RegistryClient::new`].
    pub fn with_pooling(
        cfg: &RegistryClientConfig,
        credential: Secret,
        pooling: Pooling,
    ) -> Result<Self, ClientError> {
        let url = reqwest::Url::parse(&cfg.url)
            .map_err(|e| ClientError::Setup(format!("registry url {:?}: {e}", cfg.url)))?;
        match url.scheme() {
            "https" => {}
            "http" if cfg.allow_plain_http || is_loopback_host(&url) => {}
            "http" => {
                return Err(ClientError::Setup(format!(
                    "registry url {} is plain http to a non-loopback host; use https or set allow_plain_http = true",
                    cfg.url
                )))
            }
            other => {
                return Err(ClientError::Setup(format!(
                    "registry url scheme {other:?} is not http or https"
                )))
            }
        }
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(cfg.connect_timeout))
            .timeout(Duration::from_secs(cfg.timeout))
            .user_agent(USER_AGENT)
            // The registry answers where it is asked; a redirect is an
            // answer like any other (a 3xx is refused), and no request is
            // copied to follow one.
            .redirect(reqwest::redirect::Policy::none());
        // Every keep-alive call on one connection, multiplexed: HTTP/2 by
        // ALPN over TLS, and by prior knowledge (RFC 9113 §3.3) on plain
        // HTTP straight to a loopback registry, which serves both on one
        // port; spoken by [`mux`] (reqwest for a TLS registry that picks
        // HTTP/1.1). A pending push login is then a stream, not a
        // connection with its buffers. Through a proxy, or plain HTTP to
        // another host (a reverse proxy may sit there), HTTP/1.1 by
        // reqwest.
        let multiplexed = pooling == Pooling::KeepAlive
            && cfg.proxy.is_none()
            && (url.scheme() == "https" || is_loopback_host(&url));
        if pooling == Pooling::PerCall {
            // One call, then the connection closes: HTTP/2 would add its
            // SETTINGS exchange and nothing else.
            builder = builder.pool_max_idle_per_host(0).http1_only();
        }
        if let Some(proxy) = &cfg.proxy {
            let p = reqwest::Proxy::all(proxy)
                .map_err(|e| ClientError::Setup(format!("proxy {proxy:?}: {e}")))?;
            builder = builder.proxy(p);
        }
        let mut ca_pem = None;
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|error| ConfigError::Io {
                path: ca.clone(),
                error,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ClientError::Setup(format!(
                    "{}: not a PEM certificate bundle: {e}",
                    ca.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(ClientError::Setup(format!(
                    "{}: no certificate in the file",
                    ca.display()
                )));
            }
            builder = builder.tls_built_in_root_certs(false);
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
            ca_pem = Some(pem);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Setup(format!("HTTP client: {e}")))?;
        let base = cfg.url.trim_end_matches('/').to_owned();
        let mux = if multiplexed {
            let tls = match url.scheme() {
                "https" => Some(tls_config(ca_pem.as_deref(), cfg)?),
                _ => None,
            };
            let connect_timeout = Duration::from_secs(cfg.connect_timeout);
            Some(std::sync::Arc::new(mux::Mux::new(
                &url,
                &base,
                tls,
                connect_timeout,
                USER_AGENT,
            )?))
        } else {
            None
        };
        Ok(Self {
            http,
            mux,
            base,
            credential,
            timeout: Duration::from_secs(cfg.timeout),
        })
    }

    /// A host client: the credential is read from `[registry].api_key_file`
    /// (which must be root-owned, mode 0600).
    ///
    /// # Errors
    /// [`ClientError::Setup`] when no key file is configured, [`ClientError::Config`]
    /// when its owner or mode is refused or it is unreadable, and as [`RegistryClient::new`].
    pub fn for_host(cfg: &RegistryClientConfig) -> Result<Self, ClientError> {
        Self::for_host_with(cfg, Pooling::KeepAlive)
    }

    /// As [`RegistryClient::for_host`], with the given connection [`Pooling`]
    /// (the PAM module uses [`Pooling::PerCall`]).
    ///
    /// # Errors
    /// As [`RegistryClient::for_host`].
    pub fn for_host_with(
        cfg: &RegistryClientConfig,
        pooling: Pooling,
    ) -> Result<Self, ClientError> {
        let path = cfg.api_key_file.as_deref().ok_or_else(|| {
            ClientError::Setup("[registry] has no api_key_file for this host".into())
        })?;
        Self::with_pooling(cfg, read_secret_file(path)?, pooling)
    }

    /// An admin client with the token from `token_file`.
    ///
    /// # Errors
    /// As [`RegistryClient::for_host`].
    pub fn for_admin(cfg: &RegistryClientConfig, token_file: &Path) -> Result<Self, ClientError> {
        Self::new(cfg, read_secret_file(token_file)?)
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: HttpMethod,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<T>, ClientError> {
        self.send_timed(method, path, body, None).await
    }

    /// As `send`, with a request deadline of `timeout` instead of the
    /// client's (long-polls), and no `Authorization` header when the
    /// credential is empty (a device's signed requests).
    async fn send_timed<B: Serialize, T: DeserializeOwned>(
        &self,
        method: HttpMethod,
        path: &str,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<Option<T>, ClientError> {
        let token = self
            .credential
            .expose_str()
            .ok_or_else(|| ClientError::Setup("credential file is not UTF-8 text".into()))?;
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Setup(format!("{path}: request body: {e}")))?
            .map(bytes::Bytes::from);
        let cap = if path.starts_with(paths::ADMIN_PREFIX) {
            MAX_ADMIN_ANSWER_BYTES
        } else {
            MAX_HOST_ANSWER_BYTES
        };
        let url = format!("{}{path}", self.base);
        let mut answer = None;
        if let Some(mux) = self.mux.as_ref().filter(|m| !m.is_http1()) {
            // The whole call within the deadline, as reqwest's `timeout`.
            let deadline = timeout.unwrap_or(self.timeout);
            // The call's future is built in place: a future held in a
            // local first would be stored twice in this one.
            answer = tokio::time::timeout(
                deadline,
                mux.call(method.clone(), &url, token, body.clone(), path, cap),
            )
            .await
            .map_err(|_| {
                ClientError::Unreachable(format!(
                    "{}: no answer within {} s (timeout)",
                    self.base,
                    deadline.as_secs_f64()
                ))
            })??;
        }
        let (status, bytes) = match answer {
            Some(a) => a,
            // Boxed: a multiplexed call's future has no room for it.
            None => {
                Box::pin(self.via_reqwest(method, url, token, body, timeout, path, cap)).await?
            }
        };
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ClientError::Protocol(format!("{path}: {e}")));
        }
        let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        let (code, message) = body.map_or_else(
            || {
                (
                    String::from("http_error"),
                    String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                )
            },
            |b| (b.error, b.message),
        );
        if status.is_server_error() {
            return Err(ClientError::Server {
                status: status.as_u16(),
                message,
            });
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(ClientError::Refused {
                status: status.as_u16(),
                code,
                message,
            });
        }
        Err(ClientError::Api {
            status: status.as_u16(),
            code,
            message,
        })
    }

    /// One call through reqwest: the status and (unless 204) the body
    /// of the answer, capped at `cap` bytes.
    #[allow(clippy::too_many_arguments)]
    async fn via_reqwest(
        &self,
        method: HttpMethod,
        url: String,
        token: &str,
        body: Option<bytes::Bytes>,
        timeout: Option<Duration>,
        path: &str,
        cap: usize,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let mut req = self
            .http
            .request(method, url)
            .header(crate::api::RESULTS_HEADER, "replay");
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        if status == StatusCode::NO_CONTENT {
            return Ok((status, Vec::new()));
        }
        Ok((status, self.read_capped(resp, path, cap).await?))
    }

    /// The body of `resp`, read chunk by chunk and refused as soon as it
    /// passes `cap` bytes (reqwest's `bytes()` has no limit).
    async fn read_capped(
        &self,
        mut resp: reqwest::Response,
        path: &str,
        cap: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let too_large = || {
            ClientError::Protocol(format!(
                "{path}: the answer is larger than {cap} bytes; refused"
            ))
        };
        if resp
            .content_length()
            .is_some_and(|n| n > u64::try_from(cap).unwrap_or(u64::MAX))
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport_error(&e))? {
            if body.len() + chunk.len() > cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Sorts a failed request: TLS failures first (reqwest reports a
    /// failed handshake as a connect error too), then what counts as
    /// unreachable, then everything else that broke mid-request.
    fn transport_error(&self, e: &reqwest::Error) -> ClientError {
        let why = format!("{}: {}", self.base, error_chain(e));
        if tls_cause(e).is_some() {
            ClientError::Tls(why)
        } else if e.is_connect() || e.is_timeout() {
            ClientError::Unreachable(why)
        } else if e.is_builder() {
            ClientError::Setup(why)
        } else if e.is_redirect() {
            ClientError::Protocol(why)
        } else if self.base.starts_with("http://") {
            // A TLS listener answers a plain-text request with a TLS
            // record, which reads as a malformed HTTP answer ("frame with
            // invalid size", "invalid HTTP version"): say the likely cause.
            ClientError::Transport(format!(
                "{why} (if the registry serves TLS, its URL starts with https://)"
            ))
        } else {
            ClientError::Transport(why)
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send::<(), T>(HttpMethod::GET, path, None)
            .await?
            .ok_or_else(|| ClientError::Protocol(format!("{path}: empty answer")))
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(HttpMethod::POST, path, Some(body))
            .await?
            .ok_or_else(|| ClientError::Protocol(format!("{path}: empty answer")))
    }

    async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send::<(), serde_json::Value>(HttpMethod::DELETE, path, None)
            .await
            .map(|_| ())
    }

    /// `GET /v1/health`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get(paths::HEALTH).await
    }

    // ---- host calls -------------------------------------------------------

    /// A user's registrations; `Ok(None)` when the registry has no such user.
    /// A lookup without a login's context (see [`Self::registrations_for`]).
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn registrations(
        &self,
        username: &str,
    ) -> Result<Option<Registrations>, ClientError> {
        self.registrations_for(username, &AuthContext::default())
            .await
    }

    /// A user's registrations at the start of a login from `context`
    /// (sent as query parameters `service`, `host`, `remote_addr`, `tty`;
    /// empty ones left out), so the registry's audit records a login it
    /// sees refused before any code is asked (unknown user, not enrolled,
    /// locked, disabled). `Ok(None)` when the registry has no such user.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn registrations_for(
        &self,
        username: &str,
        context: &AuthContext,
    ) -> Result<Option<Registrations>, ClientError> {
        let mut path = fill(paths::HOST_REGISTRATIONS, &[username]);
        let query = lookup_query(context);
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query);
        }
        match self.get(&path).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.api_code() == Some(ApiErrorCode::UnknownUser) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Asks the registry to verify (and on success consume) a code.
    ///
    /// # Errors
    /// See [`ClientError`]; a malformed code is `Api { code: "invalid_code_format" }`.
    pub async fn verify(&self, req: &VerifyRequest) -> Result<VerifyResponse, ClientError> {
        self.post(paths::HOST_VERIFY, req).await
    }

    /// Asks the registry to send `username` a one-time code by text
    /// message or phone call (`POST /v1/host/users/{username}/otp/send`);
    /// the code is then typed and verified with [`Self::verify`].
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn send_code(
        &self,
        username: &str,
        req: &crate::phone::SendCode,
    ) -> Result<crate::phone::CodeSent, ClientError> {
        self.post(&fill(paths::HOST_OTP_SEND, &[username]), req)
            .await
    }

    // ---- admin calls ------------------------------------------------------

    /// Creates a user.
    ///
    /// # Errors
    /// See [`ClientError`]; `Api { status: 409 }` when the user exists.
    pub async fn create_user(&self, req: &CreateUser) -> Result<User, ClientError> {
        self.post(paths::USERS, req).await
    }

    /// Lists users.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn list_users(&self) -> Result<Vec<User>, ClientError> {
        self.get(paths::USERS).await
    }

    /// One user.
    ///
    /// # Errors
    /// See [`ClientError`]; `Api { status: 404 }` for an unknown user.
    pub async fn user(&self, username: &str) -> Result<User, ClientError> {
        self.get(&fill(paths::USER, &[username])).await
    }

    /// Changes a user (disable / enable).
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn update_user(&self, username: &str, req: &UpdateUser) -> Result<User, ClientError> {
        self.send(
            HttpMethod::PATCH,
            &fill(paths::USER, &[username]),
            Some(req),
        )
        .await?
        .ok_or_else(|| ClientError::Protocol("empty answer".into()))
    }

    /// Deletes a user and their methods.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn delete_user(&self, username: &str) -> Result<(), ClientError> {
        self.delete(&fill(paths::USER, &[username])).await
    }

    /// Clears a user's lockout and failure count.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn unlock_user(&self, username: &str) -> Result<User, ClientError> {
        self.post(&fill(paths::USER_UNLOCK, &[username]), &()).await
    }

    /// Enrols a TOTP method; the answer holds the secret, this once.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn enrol_totp(
        &self,
        username: &str,
        req: &EnrolTotp,
    ) -> Result<TotpEnrolment, ClientError> {
        self.post(&fill(paths::USER_TOTP, &[username]), req).await
    }

    /// Sets up a phone method for a user (the admin vouches for the
    /// number; the page proves it with a code instead).
    ///
    /// # Errors
    /// See [`ClientError`]; `Api { status: 400 }` for a number that is not E.164.
    pub async fn enrol_phone(
        &self,
        username: &str,
        req: &crate::phone::EnrolPhone,
    ) -> Result<Method, ClientError> {
        self.post(&fill(paths::USER_PHONE, &[username]), req).await
    }

    /// Deletes one method.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn delete_method(&self, username: &str, id: i64) -> Result<(), ClientError> {
        self.delete(&fill(paths::USER_METHOD, &[username, &id.to_string()]))
            .await
    }

    /// Deletes all of a user's methods (a user who changed phone).
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn reset_methods(&self, username: &str) -> Result<(), ClientError> {
        self.delete(&fill(paths::USER_METHODS, &[username])).await
    }

    /// Issues a temporary access code (the user's earlier open one is
    /// revoked); the answer holds the code, this once.
    ///
    /// # Errors
    /// See [`ClientError`]; `Api { status: 400 }` for hours or uses out
    /// of range, 404 for an unknown user.
    pub async fn issue_tap(
        &self,
        username: &str,
        req: &IssueTap,
    ) -> Result<TapIssued, ClientError> {
        self.post(&fill(paths::USER_TAP, &[username]), req).await
    }

    /// A new set of backup codes for the user (the old set void); the
    /// answer holds them, this once.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn new_backup_codes(&self, username: &str) -> Result<BackupCodes, ClientError> {
        self.post(
            &fill(paths::USER_BACKUP_CODES, &[username]),
            &serde_json::json!({}),
        )
        .await
    }

    /// Revokes the user's open temporary access codes.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn revoke_tap(&self, username: &str) -> Result<(), ClientError> {
        self.delete(&fill(paths::USER_TAP, &[username])).await
    }

    /// Adds a host; the answer holds its API key, this once.
    ///
    /// # Errors
    /// See [`ClientError`]; `Api { status: 409 }` when the name is taken.
    pub async fn create_host(&self, req: &CreateHost) -> Result<HostCreated, ClientError> {
        self.post(paths::HOSTS, req).await
    }

    /// Lists hosts.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn list_hosts(&self) -> Result<Vec<Host>, ClientError> {
        self.get(paths::HOSTS).await
    }

    /// Revokes a host's API key.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn revoke_host(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&fill(paths::HOST, &[name])).await
    }

    /// Sets a user's Security info page password (ends their page sessions).
    ///
    /// # Errors
    /// See [`ClientError`]; `Api { code: "weak_password" }` when the
    /// password breaks [`crate::portal::check_password`].
    pub async fn set_password(
        &self,
        username: &str,
        req: &crate::portal::SetPassword,
    ) -> Result<(), ClientError> {
        self.send::<_, serde_json::Value>(
            HttpMethod::PUT,
            &fill(paths::USER_PASSWORD, &[username]),
            Some(req),
        )
        .await
        .map(|_| ())
    }

    /// A new one-time setup link for a user; shown this once.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn invite(&self, username: &str) -> Result<crate::portal::Invite, ClientError> {
        self.post(
            &fill(paths::USER_INVITE, &[username]),
            &crate::portal::CreateInvite::default(),
        )
        .await
    }

    /// The newest `limit` audit events.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn audit(&self, limit: u32) -> Result<Vec<AuditEvent>, ClientError> {
        self.get(&format!("{}?limit={limit}", paths::AUDIT)).await
    }

    /// The oldest `limit` audit events whose id is greater than `after`,
    /// oldest first (an older registry ignores `after` and answers the
    /// newest, newest first).
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn audit_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, ClientError> {
        self.get(&format!("{}?limit={limit}&after={after}", paths::AUDIT))
            .await
    }
}

/// The `rustls::Error` among the causes of `e`, if any: each error of the
/// source chain is tried, and so is the error inside each `std::io::Error`
/// (tokio-rustls wraps rustls errors in one, and `io::Error::source` skips
/// over what it wraps).
fn tls_cause<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut cur: Option<&'e (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if let Some(t) = tls_cause(inner) {
                return Some(t);
            }
        }
        cur = err.source();
    }
    None
}

/// The rustls configuration of [`mux`] over TLS, trusting what reqwest
/// trusts with the same settings: the certificates of the `ca_file` bundle
/// `ca_pem` when given, else the bundled web PKI roots; TLS 1.2 and 1.3
/// with ring.
fn tls_config(
    ca_pem: Option<&[u8]>,
    cfg: &RegistryClientConfig,
) -> Result<rustls::ClientConfig, ClientError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let name = || {
                cfg.ca_file
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            };
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| {
                    ClientError::Setup(format!("{}: not a PEM certificate bundle: {e}", name()))
                })?;
                roots.add(cert).map_err(|e| {
                    ClientError::Setup(format!("{}: unusable CA certificate: {e}", name()))
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ClientError::Setup(format!("TLS settings: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn is_loopback_host(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The query string of a registrations lookup from `context`: the set
/// fields, form-urlencoded; empty when none is set.
fn lookup_query(context: &AuthContext) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("service", &context.service),
        ("host", &context.host),
        ("remote_addr", &context.remote_addr),
        ("tty", &context.tty),
    ] {
        if let Some(v) = value {
            query.append_pair(name, v);
        }
    }
    query.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests' canned servers speak HTTP/1.1 only, and each answers
    /// one call: a client of one connection per call.
    fn h1(cfg: &RegistryClientConfig, key: Secret) -> Result<RegistryClient, ClientError> {
        RegistryClient::with_pooling(cfg, key, Pooling::PerCall)
    }

    fn cfg(url: &str) -> RegistryClientConfig {
        RegistryClientConfig {
            url: url.into(),
            api_key_file: None,
            admin_token_file: None,
            ca_file: None,
            allow_plain_http: false,
            proxy: None,
            connect_timeout: 1,
            timeout: 1,
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let key = || Secret::new(b"k".to_vec());
        assert!(h1(&cfg("http://127.0.0.1:1"), key()).is_ok());
        assert!(h1(&cfg("http://localhost:1"), key()).is_ok());
        assert!(h1(&cfg("http://[::1]:1"), key()).is_ok());
        let e = h1(&cfg("http://192.0.2.1:1"), key()).unwrap_err();
        assert!(matches!(e, ClientError::Setup(_)), "{e}");
        let mut c = cfg("http://192.0.2.1:1");
        c.allow_plain_http = true;
        assert!(h1(&c, key()).is_ok());
        assert!(h1(&cfg("https://registry.example:1"), key()).is_ok());
        assert!(h1(&cfg("ftp://x"), key()).is_err());
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            seg("alice smith@example.com"),
            "alice%20smith%40example.com"
        );
        assert_eq!(seg("../x"), "..%2Fx");
    }

    /// A one-connection HTTP responder on 127.0.0.1 that sends `head`
    /// then `body` (once, or forever when `repeat`); returns its URL and
    /// the count of body bytes the client took.
    async fn responder(
        head: String,
        body: Vec<u8>,
        repeat: bool,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            loop {
                if s.write_all(&body).await.is_err() || !repeat {
                    return;
                }
                counter.fetch_add(body.len(), Ordering::Relaxed);
            }
        });
        (url, sent)
    }

    /// A client of a responder that answers once with `status` (e.g.
    /// `503 Service Unavailable`) and the JSON `body`.
    async fn client_answered(status: &str, body: &[u8]) -> RegistryClient {
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let (url, _) = responder(head, body.to_vec(), false).await;
        h1(&cfg(&url), Secret::new(b"k".to_vec())).unwrap()
    }

    #[tokio::test]
    async fn server_error_is_not_unreachable() {
        let body = br#"{"error":"storage_full","message":"database storage is full"}"#;
        let c = client_answered("503 Service Unavailable", body).await;
        let e = c
            .verify(&VerifyRequest {
                username: "alice".into(),
                code: "000000".into(),
                context: Default::default(),
            })
            .await
            .unwrap_err();
        assert!(!e.is_unreachable(), "a 5xx answer is not unreachable: {e}");
        match &e {
            ClientError::Server { status, message } => {
                assert_eq!(*status, 503);
                assert_eq!(message, "database storage is full");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            e.to_string(),
            "registry failed (503): database storage is full"
        );
    }

    /// A 401 or 403 is `Refused` and keeps its code: a push device
    /// learns why it was refused.
    #[tokio::test]
    async fn refusal_keeps_its_code() {
        let body = br#"{"error":"device_disabled","message":"this device is disabled"}"#;
        let c = client_answered("403 Forbidden", body).await;
        let e = c.health().await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Refused { status: 403, message, .. } if message == "this device is disabled"),
            "{e:?}"
        );
        assert_eq!(e.api_code(), Some(ApiErrorCode::DeviceDisabled));
        assert_eq!(
            e.to_string(),
            "registry refused the credential (403): this device is disabled"
        );
    }

    /// An endless answer is cut off just past the cap, long before the
    /// request timeout, instead of being buffered whole.
    #[tokio::test]
    async fn endless_answer_is_refused_past_the_cap() {
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n["
                .to_owned();
        let (url, sent) = responder(head, b"{\"name\":\"x\"},".repeat(1024), true).await;
        let mut c = cfg(&url);
        c.timeout = 30;
        let client = h1(&c, Secret::new(b"k".to_vec())).unwrap();
        let start = std::time::Instant::now();
        let e = client
            .registrations("alice")
            .await
            .expect_err("an endless answer must fail");
        let took = start.elapsed();
        match &e {
            ClientError::Protocol(m) => assert!(m.contains("larger than 65536 bytes"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(!e.is_unreachable());
        assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
        // What the client read (and held) is bounded by the cap plus what
        // the kernel buffers hold: far from the endless stream.
        let taken = sent.load(std::sync::atomic::Ordering::Relaxed);
        assert!(taken < 16 * 1024 * 1024, "{taken} bytes taken");

        // A declared length over the cap is refused before reading.
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            MAX_ADMIN_ANSWER_BYTES + 1
        );
        let (url, _) = responder(head, b"[".to_vec(), false).await;
        let client = h1(&cfg(&url), Secret::new(b"k".to_vec())).unwrap();
        let e = client.list_users().await.unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("larger than {MAX_ADMIN_ANSWER_BYTES} bytes")),
            "{e}"
        );
    }

    /// A PEM file holding `pem` in the temp dir, named after `name` and
    /// this process.
    fn pem_file(name: &str, pem: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!(
            "twostep-client-test-{}-{name}.pem",
            std::process::id()
        ));
        std::fs::write(&p, pem).unwrap();
        p
    }

    /// A TLS server on 127.0.0.1 presenting `cert`: each connection that
    /// completes the handshake gets one `503` answer with a JSON error
    /// body. Returns its port. Every read is bounded (5 s).
    fn tls_server(cert: &rcgen::CertifiedKey) -> u16 {
        use std::io::{Read, Write};
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der());
        let config = std::sync::Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.cert.der().clone()], key.into())
                .unwrap(),
        );
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, s);
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let body = br#"{"error":"storage_full","message":"database storage is full"}"#;
                let _ = write!(
                    tls,
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(body);
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        port
    }

    fn tls_client(port: u16, ca_pem: &str, name: &str) -> RegistryClient {
        let mut c = cfg(&format!("https://127.0.0.1:{port}"));
        c.ca_file = Some(pem_file(name, ca_pem));
        c.timeout = 10;
        h1(&c, Secret::new(b"k".to_vec())).unwrap()
    }

    /// A certificate not signed by the CA in `ca_file` (someone else's
    /// certificate, an interception) is a TLS failure, never "unreachable":
    /// fail_mode = "open" must not turn it into a login.
    #[tokio::test]
    async fn untrusted_certificate_is_tls_not_unreachable() {
        let server = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        // Another CA with its own name (rcgen's default subject would make
        // it look like the server's issuer with a bad signature).
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "another CA");
        let other_ca = params
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let port = tls_server(&server);

        // Control: with the server's own certificate as the CA, the
        // handshake passes and its answer arrives.
        let trusting = tls_client(port, &server.cert.pem(), "own-ca");
        let e = trusting.health().await.unwrap_err();
        assert!(
            matches!(e, ClientError::Server { status: 503, .. }),
            "{e:?}"
        );

        let c = tls_client(port, &other_ca.pem(), "other-ca");
        let e = c.health().await.unwrap_err();
        assert!(!e.is_unreachable(), "{e}");
        match &e {
            ClientError::Tls(m) => {
                assert!(m.contains("invalid peer certificate: UnknownIssuer"), "{m}");
                assert!(m.starts_with(&format!("https://127.0.0.1:{port}: ")), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().starts_with("registry TLS failure: "), "{e}");
        // verify, the call that lets a user in, the same way.
        let e = c
            .verify(&VerifyRequest {
                username: "alice".into(),
                code: "000000".into(),
                context: Default::default(),
            })
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Tls(_)), "{e:?}");
    }

    /// A trusted certificate for another name is a TLS failure too.
    #[tokio::test]
    async fn certificate_for_another_name_is_tls() {
        let server = rcgen::generate_simple_self_signed(vec!["registry.example".into()]).unwrap();
        let port = tls_server(&server);
        let c = tls_client(port, &server.cert.pem(), "wrong-name");
        let e = c.health().await.unwrap_err();
        assert!(!e.is_unreachable(), "{e}");
        match &e {
            ClientError::Tls(m) => assert!(
                m.contains(
                    "invalid peer certificate: certificate not valid for name \"127.0.0.1\""
                ),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }

    /// A registry that takes the request and closes the connection without
    /// an answer may have acted on it: not "unreachable".
    #[tokio::test]
    async fn connection_closed_before_the_answer_is_not_unreachable() {
        use tokio::io::AsyncReadExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            // Dropped: closed with the request unanswered.
        });
        let c = h1(&cfg(&url), Secret::new(b"k".to_vec())).unwrap();
        let e = c.health().await.unwrap_err();
        assert!(!e.is_unreachable(), "{e}");
        assert!(matches!(e, ClientError::Transport(_)), "{e:?}");
    }

    /// An http:// URL pointed at a TLS listener: the listener's TLS alert
    /// record reads as a malformed answer; the error names the likely
    /// cause.
    #[tokio::test]
    async fn plain_http_to_a_tls_listener_suggests_https() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                // A fatal decode_error alert (RFC 8446 §6), as a TLS
                // server sends to a client that does not speak TLS.
                let _ = s
                    .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32])
                    .await;
            }
        });
        for c in [
            h1(&cfg(&url), Secret::new(b"k".to_vec())).unwrap(),
            RegistryClient::new(&cfg(&url), Secret::new(b"k".to_vec())).unwrap(),
        ] {
            let e = c.health().await.unwrap_err();
            assert!(!e.is_unreachable(), "{e}");
            assert!(e.to_string().contains("starts with https://"), "{e}");
        }
    }

    /// A registry that accepts the connection and never answers: the
    /// request timeout (1 s) makes it unreachable.
    #[tokio::test]
    async fn silent_registry_times_out_as_unreachable() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(s);
        });
        let c = h1(&cfg(&url), Secret::new(b"k".to_vec())).unwrap();
        let start = std::time::Instant::now();
        let e = c.health().await.unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(e.is_unreachable(), "{e:?}");
    }

    #[tokio::test]
    async fn refused_connection_is_unreachable() {
        // Bind then drop to get a port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = h1(
            &cfg(&format!("http://127.0.0.1:{port}")),
            Secret::new(b"k".to_vec()),
        )
        .unwrap();
        let e = c.health().await.unwrap_err();
        assert!(e.is_unreachable(), "{e}");
    }

    // ---- keep-alive clients: HTTP/2 by prior knowledge (client::mux) ----

    /// What a canned HTTP/2 server does with each request.
    #[derive(Clone, Copy)]
    enum H2Answer {
        /// `status` with the JSON `body`.
        With(u16, &'static str),
        /// Nothing, ever (the stream stays open).
        Silence,
        /// The connection is dropped once the request arrived.
        Hangup,
        /// An endless body.
        Endless,
    }

    /// The head and body of a request an [`h2_server`] received.
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(http::request::Parts, Vec<u8>)>>>;

    /// An HTTP/2 server (prior knowledge) on 127.0.0.1 answering every
    /// request with `answer`; a connection is closed after `per_conn`
    /// answers. Returns its URL, the requests it saw and the count of
    /// connections it took.
    async fn h2_server(
        answer: H2Answer,
        per_conn: usize,
    ) -> (String, Seen, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::Ordering;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let seen: Seen = Seen::default();
        let conns = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (seen2, conns2) = (seen.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let (s, _) = l.accept().await.unwrap();
                conns2.fetch_add(1, Ordering::SeqCst);
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(s).await else {
                        return;
                    };
                    let mut answered = 0;
                    while let Some(Ok((req, mut respond))) = conn.accept().await {
                        let (parts, mut body) = req.into_parts();
                        let mut bytes = Vec::new();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            bytes.extend_from_slice(&chunk);
                        }
                        seen.lock().unwrap().push((parts, bytes));
                        let head = |status: u16| {
                            http::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(())
                                .unwrap()
                        };
                        match answer {
                            H2Answer::With(status, body) => {
                                let mut tx = respond.send_response(head(status), false).unwrap();
                                tx.send_data(bytes::Bytes::from_static(body.as_bytes()), true)
                                    .unwrap();
                            }
                            H2Answer::Silence => {
                                tokio::spawn(async move {
                                    tokio::time::sleep(Duration::from_secs(30)).await;
                                    drop(respond);
                                });
                            }
                            H2Answer::Hangup => return,
                            H2Answer::Endless => {
                                let mut tx = respond.send_response(head(200), false).unwrap();
                                tokio::spawn(async move {
                                    let chunk =
                                        bytes::Bytes::from(b"{\"name\":\"x\"},".repeat(1024));
                                    loop {
                                        tx.reserve_capacity(chunk.len());
                                        match std::future::poll_fn(|cx| tx.poll_capacity(cx)).await
                                        {
                                            Some(Ok(_)) => {}
                                            _ => return,
                                        }
                                        if tx.send_data(chunk.clone(), false).is_err() {
                                            return;
                                        }
                                    }
                                });
                            }
                        }
                        answered += 1;
                        if answered == per_conn {
                            // Closed gracefully: GOAWAY, then the end.
                            conn.graceful_shutdown();
                        }
                    }
                    // Serve what is left (the GOAWAY and open streams).
                    while let Some(Ok(_)) = conn.accept().await {}
                });
            }
        });
        (url, seen, conns)
    }

    fn keep_alive(url: &str) -> RegistryClient {
        let c = RegistryClient::new(&cfg(url), Secret::new(b"k".to_vec())).unwrap();
        assert!(c.mux.is_some(), "loopback http:// is multiplexed");
        c
    }

    fn verify_req() -> VerifyRequest {
        VerifyRequest {
            username: "alice".into(),
            code: "000000".into(),
            context: Default::default(),
        }
    }

    /// Concurrent calls of a keep-alive client are streams of one
    /// HTTP/2 connection, each with the headers reqwest sent.
    #[tokio::test]
    async fn keep_alive_calls_share_one_http2_connection() {
        let body = r#"{"status":"ok","version":"1"}"#;
        let (url, seen, conns) = h2_server(H2Answer::With(200, body), usize::MAX).await;
        let c = keep_alive(&url);
        let calls: Vec<_> = (0..20).map(|_| c.health()).collect();
        for h in futures_join(calls).await {
            assert_eq!(h.unwrap().status, "ok");
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 1);
        let _ = c.verify(&verify_req()).await;
        let seen = seen.lock().unwrap();
        let (get, _) = &seen[0];
        assert_eq!(get.method, http::Method::GET);
        assert_eq!(get.uri.path(), paths::HEALTH);
        assert_eq!(get.headers["authorization"], "Bearer k");
        assert_eq!(get.headers["twostep-results"], "replay");
        assert_eq!(
            get.headers["user-agent"],
            concat!("twostep/", env!("CARGO_PKG_VERSION"))
        );
        assert!(get.headers.get("content-type").is_none());
        let (post, sent) = seen.last().unwrap();
        assert_eq!(post.method, http::Method::POST);
        assert_eq!(post.uri.path(), paths::HOST_VERIFY);
        assert_eq!(post.headers["content-type"], "application/json");
        let sent: serde_json::Value = serde_json::from_slice(sent).unwrap();
        assert_eq!(sent["username"], "alice");
    }

    /// `join_all` without the futures crate: each call spawned on the
    /// test's runtime would need `'static`, so they are polled together.
    async fn futures_join<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
        let mut fs: Vec<_> = fs.into_iter().map(Box::pin).collect();
        let mut out: Vec<Option<F::Output>> = fs.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut done = true;
            for (f, o) in fs.iter_mut().zip(out.iter_mut()) {
                if o.is_none() {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => *o = Some(v),
                        std::task::Poll::Pending => done = false,
                    }
                }
            }
            if done {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        out.into_iter().map(Option::unwrap).collect()
    }

    #[tokio::test]
    async fn http2_server_error_is_not_unreachable() {
        let body = r#"{"error":"storage_full","message":"database storage is full"}"#;
        let (url, _, _) = h2_server(H2Answer::With(503, body), usize::MAX).await;
        let e = keep_alive(&url).verify(&verify_req()).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Server { status: 503, message } if message == "database storage is full"),
            "{e:?}"
        );
        let body = r#"{"error":"device_disabled","message":"this device is disabled"}"#;
        let (url, _, _) = h2_server(H2Answer::With(403, body), usize::MAX).await;
        let e = keep_alive(&url).health().await.unwrap_err();
        assert_eq!(e.api_code(), Some(ApiErrorCode::DeviceDisabled), "{e:?}");
    }

    /// A registry that takes the stream and never answers: the request
    /// timeout (1 s) makes it unreachable, as with reqwest.
    #[tokio::test]
    async fn silent_http2_registry_times_out_as_unreachable() {
        let (url, _, _) = h2_server(H2Answer::Silence, usize::MAX).await;
        let start = std::time::Instant::now();
        let e = keep_alive(&url).verify(&verify_req()).await.unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(e.is_unreachable(), "{e:?}");
    }

    /// A connection dropped with the request unanswered: the registry may
    /// have acted on it, so not unreachable.
    #[tokio::test]
    async fn http2_connection_dropped_before_the_answer_is_transport() {
        let (url, _, _) = h2_server(H2Answer::Hangup, usize::MAX).await;
        let e = keep_alive(&url).verify(&verify_req()).await.unwrap_err();
        assert!(matches!(e, ClientError::Transport(_)), "{e:?}");
    }

    /// A connection the registry closed (gracefully, after each answer)
    /// is replaced: every call gets its answer.
    #[tokio::test]
    async fn closed_http2_connection_is_replaced() {
        let body = r#"{"status":"ok","version":"1"}"#;
        let (url, _, conns) = h2_server(H2Answer::With(200, body), 1).await;
        let c = keep_alive(&url);
        for _ in 0..3 {
            assert_eq!(c.health().await.unwrap().status, "ok");
            // Let the GOAWAY and the close arrive.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn endless_http2_answer_is_refused_past_the_cap() {
        let (url, _, _) = h2_server(H2Answer::Endless, usize::MAX).await;
        let mut c = cfg(&url);
        c.timeout = 30;
        let client = RegistryClient::new(&c, Secret::new(b"k".to_vec())).unwrap();
        let start = std::time::Instant::now();
        let e = client.registrations("alice").await.unwrap_err();
        match &e {
            ClientError::Protocol(m) => assert!(m.contains("larger than 65536 bytes"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn refused_connection_is_unreachable_when_multiplexed() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = keep_alive(&format!("http://127.0.0.1:{port}"));
        let e = c.health().await.unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }

    /// Over TLS a keep-alive client offers HTTP/2 by ALPN; a registry that
    /// does not take it (this one has no ALPN) is served HTTP/1.1 by
    /// reqwest, and a certificate from another CA is a TLS failure there
    /// too, never unreachable.
    #[tokio::test]
    async fn keep_alive_over_tls_without_h2_uses_http1() {
        let server = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let port = tls_server(&server);
        let mut c = cfg(&format!("https://127.0.0.1:{port}"));
        c.ca_file = Some(pem_file("keep-alive-own-ca", &server.cert.pem()));
        c.timeout = 10;
        let trusting = RegistryClient::new(&c, Secret::new(b"k".to_vec())).unwrap();
        assert!(trusting.mux.is_some());
        let e = trusting.health().await.unwrap_err();
        assert!(
            matches!(e, ClientError::Server { status: 503, .. }),
            "{e:?}"
        );
        assert!(trusting.mux.as_ref().unwrap().is_http1());

        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "another CA");
        let other_ca = params
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        c.ca_file = Some(pem_file("keep-alive-other-ca", &other_ca.pem()));
        let e = RegistryClient::new(&c, Secret::new(b"k".to_vec()))
            .unwrap()
            .verify(&verify_req())
            .await
            .unwrap_err();
        assert!(!e.is_unreachable(), "{e}");
        match &e {
            ClientError::Tls(m) => {
                assert!(m.contains("invalid peer certificate: UnknownIssuer"), "{m}");
                assert!(m.starts_with(&format!("https://127.0.0.1:{port}: ")), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }
}
