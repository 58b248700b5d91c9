//! Startup: config checks, key and token files, database, listener (plain
//! HTTP on loopback or HTTPS with rustls), graceful shutdown.

use crate::app::router;
use crate::clock::{Clock, SystemClock};
use crate::crypto::{AdminToken, SecretBox};
use crate::error::StartupError;
use crate::state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use twostep_config::ApiConfig;

/// Refuses plain HTTP on a non-loopback address unless the config allows it.
///
/// # Errors
/// [`StartupError::Listen`] with the fix.
pub fn check_listen(api: &ApiConfig) -> Result<(), StartupError> {
    let tls = api.tls_cert_file.is_some() && api.tls_key_file.is_some();
    if !tls && !api.listen.ip().is_loopback() && !api.allow_plain_http {
        return Err(StartupError::Listen(format!(
            "refusing plain HTTP on non-loopback address {}: set tls_cert_file and tls_key_file, or allow_plain_http = true",
            api.listen
        )));
    }
    Ok(())
}

/// Warn when the TLS certificate expires within this many days.
pub const CERT_WARN_DAYS: i64 = 14;

/// Where the TLS certificate's validity stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertValidity {
    /// Valid for more than [`CERT_WARN_DAYS`] days.
    Valid,
    /// Valid, but expires within [`CERT_WARN_DAYS`] days.
    ExpiresSoon(String),
    /// Past its notAfter, or before its notBefore (RFC 5280 §4.1.2.5).
    Invalid(String),
}

/// Reads the validity period (RFC 5280 §4.1.2.5) of the first certificate
/// in the PEM file `cert` (the leaf, as rustls sends it) and compares it
/// with `now` (seconds since the Unix epoch).
///
/// # Errors
/// [`StartupError::Listen`] naming the file when it holds no parsable
/// certificate.
pub fn cert_validity(cert: &std::path::Path, now: i64) -> Result<CertValidity, StartupError> {
    let fail = |m: String| StartupError::Listen(format!("TLS certificate {}: {m}", cert.display()));
    let bytes = std::fs::read(cert).map_err(|e| fail(e.to_string()))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes)
        .map_err(|e| fail(format!("no PEM certificate: {e}")))?;
    let x509 = pem
        .parse_x509()
        .map_err(|e| fail(format!("not an X.509 certificate: {e}")))?;
    let validity = x509.validity();
    let (from, until) = (validity.not_before, validity.not_after);
    let path = cert.display();
    Ok(if now < from.timestamp() {
        CertValidity::Invalid(format!(
            "TLS certificate {path} is not valid before {from} (check the clock)"
        ))
    } else if now > until.timestamp() {
        CertValidity::Invalid(format!("TLS certificate {path} expired on {until}"))
    } else if until.timestamp() - now < CERT_WARN_DAYS * 86_400 {
        CertValidity::ExpiresSoon(format!(
            "TLS certificate {path} expires on {until}, in {} days: renew it",
            (until.timestamp() - now) / 86_400
        ))
    } else {
        CertValidity::Valid
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Opens everything `[api]` names and returns the state, using `clock`.
///
/// # Errors
/// [`StartupError`] naming the file, database or setting at fault.
pub async fn prepare(
    api: &ApiConfig,
    clock: Arc<dyn Clock>,
) -> Result<Arc<AppState>, StartupError> {
    check_listen(api)?;
    if let Some(key) = &api.tls_key_file {
        twostep_config::check_secret_file(key)?;
    }
    let (pool, backend) = crate::db::open(&api.database).await?;
    // Files created by this start are removed again when it fails before
    // the key check value names their key, so a retry starts clean.
    let mut created = Vec::new();
    match open_keys(api, &pool, &mut created).await {
        Ok((secrets, admin)) => {
            let mut state = AppState::new(api, pool, backend, secrets, admin, clock);
            state.sqlite_reads =
                crate::sqlite_reads::SqliteReads::for_url(&api.database).map_err(|e| {
                    StartupError::Database {
                        url: crate::db::redact_url(&api.database),
                        message: format!("read-only connection: {e}"),
                    }
                })?;
            let state = Arc::new(state);
            crate::writer::Writer::start(&state);
            Ok(state)
        }
        Err(e) => {
            for path in created.iter().filter(|p| p.exists()) {
                if let Err(re) = std::fs::remove_file(path) {
                    tracing::warn!(path = %path.display(), error = %re, "could not remove a file this failed start created");
                }
            }
            pool.close().await;
            Err(e)
        }
    }
}

/// The stored key check value, `None` when absent (or, read-only, when the
/// settings table does not exist yet).
async fn stored_key_check(pool: &sqlx::AnyPool, url: &str) -> Result<Option<String>, StartupError> {
    let has_table = sqlx::query("SELECT 1 FROM settings LIMIT 1")
        .fetch_optional(pool)
        .await
        .is_ok();
    if !has_table {
        return Ok(None);
    }
    let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE name = $1")
        .bind(crate::db::KEY_CHECK_SETTING)
        .fetch_optional(pool)
        .await
        .map_err(|e| StartupError::Database {
            url: crate::db::redact_url(url),
            message: twostep_common::error_chain(&e),
        })?;
    Ok(row.map(|(v,)| v))
}

/// Loads (or, on a database without a key check value, creates) the secret
/// key and the admin token, pushing each file it creates onto `created`,
/// and makes sure the database's key check value matches the key: written
/// when absent (insert-if-absent, then read back, so of two nodes starting
/// together on a new database exactly one key wins and the other refuses).
async fn open_keys(
    api: &ApiConfig,
    pool: &sqlx::AnyPool,
    created: &mut Vec<std::path::PathBuf>,
) -> Result<(SecretBox, AdminToken), StartupError> {
    let url = &api.database;
    let mismatch = || StartupError::KeyMismatch {
        url: crate::db::redact_url(url),
    };
    let db_err = |e: sqlx::Error| StartupError::Database {
        url: crate::db::redact_url(url),
        message: twostep_common::error_chain(&e),
    };
    let stored = stored_key_check(pool, url).await?;
    if stored.is_some() && !api.secret_key_file.exists() {
        return Err(mismatch());
    }
    if !api.secret_key_file.exists() {
        created.push(api.secret_key_file.clone());
    }
    let secrets = SecretBox::load_or_create(&api.secret_key_file)?;
    if !api.admin_token_file.exists() {
        created.push(api.admin_token_file.clone());
    }
    let admin = AdminToken::load_or_create(&api.admin_token_file)?;
    match stored {
        Some(value) if secrets.matches_check_value(&value) => {}
        Some(_) => return Err(mismatch()),
        None => {
            // A database from before the key check value: the key must
            // open a stored secret before it is recorded as the key.
            check_key_matches(pool, &secrets, &api.secret_key_file, url).await?;
            let value = secrets.key_check_value().map_err(|m| StartupError::File {
                path: api.secret_key_file.clone(),
                message: m,
            })?;
            sqlx::query(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(crate::db::KEY_CHECK_SETTING)
            .bind(value)
            .execute(pool)
            .await
            .map_err(db_err)?;
            match stored_key_check(pool, url).await? {
                Some(v) if secrets.matches_check_value(&v) => {
                    tracing::info!("recorded the secret key's check value in the database");
                }
                _ => return Err(mismatch()),
            }
        }
    }
    Ok((secrets, admin))
}

/// What `twostep-api --check` found: everything [`prepare`] would refuse is
/// an error; the rest is described here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// `"HTTPS"` or `"plain HTTP"`.
    pub transport: &'static str,
    /// Which database the URL names.
    pub backend: crate::db::Backend,
    /// One sentence each: files to be created at first start, a database
    /// without the schema yet.
    pub notes: Vec<String>,
}

/// Checks `[api]` as [`run`] would, without creating, binding or writing
/// anything: the listen rule, the TLS key's owner and mode and that the
/// certificate and key load and that the certificate is within its validity
/// period (a note when it ends within [`CERT_WARN_DAYS`] days), the secret key and admin token files (owner,
/// mode, contents) when they exist, the database URL, and, when the database
/// exists, that the secret key matches its key check value (refused, as at
/// startup, when the key file is missing then), or on a database from before
/// the check value, that the key decrypts a stored TOTP secret.
///
/// # Errors
/// The [`StartupError`] that [`run`] would stop with.
pub async fn check(api: &ApiConfig) -> Result<CheckReport, StartupError> {
    let mut notes = Vec::new();
    check_listen(api)?;
    notes.extend(
        api.portal
            .webauthn
            .origin_mismatch(api.portal.public_url.as_deref()),
    );
    for (table, gateway) in [("sms", &api.sms), ("voice", &api.voice)] {
        notes.extend(gateway.as_ref().and_then(|g| g.plain_http_note(table)));
    }
    let transport = match (&api.tls_cert_file, &api.tls_key_file) {
        (Some(cert), Some(key)) => {
            twostep_config::check_secret_file(key)?;
            let _ = rustls::crypto::ring::default_provider().install_default();
            axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| {
                    StartupError::Listen(format!(
                        "TLS certificate {} / key {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?;
            match cert_validity(cert, unix_now())? {
                CertValidity::Valid => {}
                CertValidity::ExpiresSoon(m) => notes.push(m),
                CertValidity::Invalid(m) => return Err(StartupError::Listen(m)),
            }
            "HTTPS"
        }
        _ => "plain HTTP",
    };
    let absent = |what: &str, path: &std::path::Path| {
        format!(
            "{what} {} does not exist: twostep-api creates it (mode 0600) at first start",
            path.display()
        )
    };
    let secrets = if api.secret_key_file.exists() {
        Some(SecretBox::load_or_create(&api.secret_key_file)?)
    } else {
        notes.push(absent("secret key file", &api.secret_key_file));
        None
    };
    if api.admin_token_file.exists() {
        AdminToken::load_or_create(&api.admin_token_file)?;
    } else {
        notes.push(absent("admin token file", &api.admin_token_file));
    }
    let backend = crate::db::backend_of(&api.database)?;
    match crate::db::open_existing(&api.database).await? {
        None => notes.push(format!(
            "database {} does not exist: twostep-api creates it at first start",
            crate::db::redact_url(&api.database)
        )),
        Some((pool, _)) => {
            let has_schema = sqlx::query("SELECT 1 FROM methods LIMIT 1")
                .fetch_optional(&pool)
                .await
                .is_ok();
            let stored = stored_key_check(&pool, &api.database).await?;
            if let Some(value) = &stored {
                if !secrets
                    .as_ref()
                    .is_some_and(|s| s.matches_check_value(value))
                {
                    pool.close().await;
                    return Err(StartupError::KeyMismatch {
                        url: crate::db::redact_url(&api.database),
                    });
                }
            } else if !has_schema {
                notes.push(format!(
                    "database {} has no twostep tables yet: twostep-api creates them at first start",
                    crate::db::redact_url(&api.database)
                ));
            } else if let Some(secrets) = &secrets {
                check_key_matches(&pool, secrets, &api.secret_key_file, &api.database).await?;
            } else {
                let sealed =
                    sqlx::query("SELECT id FROM methods WHERE secret_sealed IS NOT NULL LIMIT 1")
                        .fetch_optional(&pool)
                        .await
                        .map_err(|e| StartupError::Database {
                            url: crate::db::redact_url(&api.database),
                            message: twostep_common::error_chain(&e),
                        })?;
                if sealed.is_some() {
                    return Err(StartupError::File {
                        path: api.secret_key_file.clone(),
                        message: "does not exist, but the database holds TOTP secrets sealed with a key: restore that key file (a new one would not decrypt them)".into(),
                    });
                }
            }
            pool.close().await;
        }
    }
    Ok(CheckReport {
        transport,
        backend,
        notes,
    })
}

/// Refuses to start when the key file does not decrypt a stored secret
/// (a replaced or mixed-up key file), instead of failing every verification.
async fn check_key_matches(
    pool: &sqlx::AnyPool,
    secrets: &SecretBox,
    key_file: &std::path::Path,
    url: &str,
) -> Result<(), StartupError> {
    use sqlx::Row;
    let db_err = |e: sqlx::Error| StartupError::Database {
        url: crate::db::redact_url(url),
        message: twostep_common::error_chain(&e),
    };
    let row = sqlx::query(
        "SELECT id, user_id, secret_sealed FROM methods WHERE secret_sealed IS NOT NULL ORDER BY id LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    let Some(row) = row else { return Ok(()) };
    let id: i64 = row.try_get("id").map_err(db_err)?;
    let uid: i64 = row.try_get("user_id").map_err(db_err)?;
    let sealed: String = row.try_get("secret_sealed").map_err(db_err)?;
    let ok = hex::decode(sealed)
        .ok()
        .is_some_and(|b| secrets.open(&b, &crate::crypto::totp_aad(id, uid)).is_ok());
    if ok {
        Ok(())
    } else {
        Err(StartupError::File {
            path: key_file.to_owned(),
            message: format!(
                "this key does not decrypt the TOTP secrets in the database (method {id}); is it the key file this database was created with?"
            ),
        })
    }
}

/// SIGTERM and SIGINT, installed before anything else so that a signal
/// arriving during startup is not met by the default action (exit by signal).
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
    }
}

async fn shutdown_signal(mut stop: StopSignals) {
    stop.recv().await;
    tracing::info!("shutting down");
}

/// The warning logged for each SIGHUP.
pub const SIGHUP_WARNING: &str =
    "SIGHUP: reloading the configuration is not supported; restart the service to apply changes";

/// Handles SIGHUP (whose default action ends the process, which systemd's
/// `Restart=on-failure` takes for a clean stop) by logging
/// [`SIGHUP_WARNING`] and carrying on.
///
/// # Errors
/// When the signal handler cannot be installed.
pub fn warn_on_sighup() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::warn!("{SIGHUP_WARNING}");
        }
    });
    Ok(())
}

/// Runs the registry until SIGTERM or SIGINT, with the system clock; a
/// SIGHUP only logs [`SIGHUP_WARNING`].
///
/// # Errors
/// [`StartupError`] when it cannot start; I/O errors of the server loop.
pub async fn run(api: &ApiConfig) -> Result<(), StartupError> {
    let signal_err = |e: std::io::Error| StartupError::Listen(format!("signal handlers: {e}"));
    let stop = StopSignals::install().map_err(signal_err)?;
    warn_on_sighup().map_err(signal_err)?;
    // A stop signal during startup is acted on once serving (startup is
    // bounded by db::STARTUP_TIMEOUT): prepare is not cut off halfway.
    let state = prepare(api, Arc::new(SystemClock)).await?;
    let backend = state.backend;
    match crate::db::clock_offset(&state.pool, backend, state.now()).await {
        Ok(o) if o.abs() > crate::db::MAX_CLOCK_OFFSET_SECS => tracing::warn!(
            offset_seconds = o,
            "this node's clock is {o} s off the database server's: codes are judged by each node's own clock, so nodes apart accept and refuse them differently; synchronise the clocks (chrony, systemd-timesyncd)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not compare this node's clock with the database's"),
    }
    // tokio's bind sets SO_REUSEADDR, so a restart can take the port again at once.
    let listener = tokio::net::TcpListener::bind(api.listen)
        .await
        .map_err(|e| StartupError::Listen(format!("cannot listen on {}: {e}", api.listen)))?;
    if let Some(m) = &api.metrics {
        let metrics = crate::metrics::bind(m.listen).await?;
        tracing::info!(listen = %m.listen, "metrics served (GET /metrics, plain HTTP)");
        crate::metrics::spawn(metrics, Arc::clone(&state));
    }
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    match (&api.tls_cert_file, &api.tls_key_file) {
        (Some(cert), Some(key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| {
                    StartupError::Listen(format!(
                        "TLS certificate {} / key {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?;
            // An expired (or not yet valid) certificate is logged as an
            // error but does not stop the start: refusing would turn a
            // routine restart of a fleet into an outage of every node, and
            // clients refuse the certificate anyway. `--check` fails on it.
            match cert_validity(cert, unix_now())? {
                CertValidity::Valid => {}
                CertValidity::ExpiresSoon(m) => tracing::warn!("{m}"),
                CertValidity::Invalid(m) => {
                    tracing::error!("{m}; clients will refuse it: replace it and restart");
                }
            }
            let std_listener = listener
                .into_std()
                .map_err(|e| StartupError::Listen(format!("listener: {e}")))?;
            let handle = axum_server::Handle::new();
            let h2 = handle.clone();
            tokio::spawn(async move {
                shutdown_signal(stop).await;
                h2.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
            });
            tracing::info!(listen = %api.listen, ?backend, "twostep-api listening (HTTPS)");
            // TCP_NODELAY: an HTTP/2 connection carries many small frames
            // in both directions; with Nagle's algorithm a reply can wait
            // for the peer's delayed ACK (40 ms).
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
                .acceptor(axum_server::accept::NoDelayAcceptor::new());
            let mut server = axum_server::from_tcp(std_listener).acceptor(acceptor);
            tune_http(server.http_builder());
            server
                .handle(handle)
                .serve(app)
                .await
                .map_err(|e| StartupError::Listen(format!("server: {e}")))
        }
        _ => {
            let std_listener = listener
                .into_std()
                .map_err(|e| StartupError::Listen(format!("listener: {e}")))?;
            let handle = axum_server::Handle::new();
            let h2 = handle.clone();
            tokio::spawn(async move {
                shutdown_signal(stop).await;
                h2.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
            });
            tracing::info!(listen = %api.listen, ?backend, "twostep-api listening (plain HTTP)");
            // TCP_NODELAY, as for HTTPS above.
            let mut server = axum_server::from_tcp(std_listener)
                .acceptor(axum_server::accept::NoDelayAcceptor::new());
            tune_http(server.http_builder());
            server
                .handle(handle)
                .serve(app)
                .await
                .map_err(|e| StartupError::Listen(format!("server: {e}")))
        }
    }
}

/// Most requests one HTTP/2 connection may carry at once. A RADIUS server
/// multiplexes every registry call over one connection (HTTP/2 with ALPN
/// over TLS, prior knowledge on loopback plain HTTP), and holds one open
/// per pending push login: with hyper's default of 200 the rest would
/// queue behind them in the client.
pub const MAX_CONCURRENT_STREAMS: u32 = 65_536;

/// HTTP/1.1 and HTTP/2 settings of the API listener (both are served on
/// the same port; HTTP/2 by ALPN over TLS, by its preface on plain HTTP).
fn tune_http(b: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>) {
    b.http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        // Pending requests are long-polls: keep-alive pings find a dead
        // peer rather than holding its streams until their deadline.
        .keep_alive_interval(Some(std::time::Duration::from_secs(20)))
        .keep_alive_timeout(std::time::Duration::from_secs(10));
}

/// A registry for unit tests: a fresh SQLite file in a new directory,
/// the `[api]` settings plus `extra` (TOML tables), its clock at a fixed
/// time.
#[cfg(test)]
pub(crate) async fn test_state(
    extra: &str,
) -> (tempfile::TempDir, Arc<AppState>, crate::clock::FixedClock) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&token)
        .unwrap()
        .write_all(b"admin-token-for-the-unit-tests\n")
        .unwrap();
    let text = format!(
        "version = 1\n[api]\nlisten = \"127.0.0.1:1\"\ndatabase = \"sqlite://{0}/registry.db\"\nsecret_key_file = \"{0}/secret.key\"\nadmin_token_file = \"{1}\"\n{extra}",
        dir.path().display(),
        token.display()
    );
    let config = twostep_config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let clock = crate::clock::FixedClock::new(1_700_000_000);
    let app = prepare(config.api().unwrap(), Arc::new(clock.clone()))
        .await
        .unwrap();
    (dir, app, clock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(extra: &str, listen: &str) -> ApiConfig {
        let text = format!(
            "version = 1\n[api]\nlisten = \"{listen}\"\ndatabase = \"sqlite:///x.db\"\nsecret_key_file = \"/k\"\nadmin_token_file = \"/t\"\n{extra}"
        );
        twostep_config::Config::parse(&text, std::path::Path::new("t.toml"))
            .unwrap()
            .api
            .unwrap()
    }

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        assert!(check_listen(&api("", "127.0.0.1:8443")).is_ok());
        assert!(check_listen(&api("", "[::1]:8443")).is_ok());
        let e = check_listen(&api("", "192.0.2.1:8443"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("refusing plain HTTP") && e.contains("192.0.2.1:8443"),
            "{e}"
        );
        assert!(check_listen(&api("", "[::]:8443")).is_err());
        assert!(check_listen(&api("allow_plain_http = true\n", "0.0.0.0:8443")).is_ok());
        let tls = "tls_cert_file = \"/c.pem\"\ntls_key_file = \"/k.pem\"\n";
        assert!(check_listen(&api(tls, "0.0.0.0:8443")).is_ok());
    }
}
