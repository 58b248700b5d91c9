//! Startup: config checks, key and token files, database, listener (plain
//! HTTP on loopback or HTTPS with rustls), graceful shutdown.

use crate::app::{router, AppState};
use crate::clock::{Clock, SystemClock};
use crate::crypto::{AdminToken, SecretBox};
use crate::error::StartupError;
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
    let secrets = SecretBox::load_or_create(&api.secret_key_file)?;
    let admin = AdminToken::load_or_create(&api.admin_token_file)?;
    let (pool, backend) = crate::db::open(&api.database).await?;
    check_key_matches(&pool, &secrets, &api.secret_key_file, &api.database).await?;
    Ok(Arc::new(AppState::new(
        api, pool, backend, secrets, admin, clock,
    )))
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

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {},
                _ = i.recv() => {},
            }
        }
        _ => std::future::pending::<()>().await,
    }
    tracing::info!("shutting down");
}

/// Runs the registry until SIGTERM or SIGINT, with the system clock.
///
/// # Errors
/// [`StartupError`] when it cannot start; I/O errors of the server loop.
pub async fn run(api: &ApiConfig) -> Result<(), StartupError> {
    let state = prepare(api, Arc::new(SystemClock)).await?;
    let backend = state.backend;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // tokio's bind sets SO_REUSEADDR, so a restart can take the port again at once.
    let listener = tokio::net::TcpListener::bind(api.listen)
        .await
        .map_err(|e| StartupError::Listen(format!("cannot listen on {}: {e}", api.listen)))?;
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
            let std_listener = listener
                .into_std()
                .map_err(|e| StartupError::Listen(format!("listener: {e}")))?;
            let handle = axum_server::Handle::new();
            let h2 = handle.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                h2.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
            });
            tracing::info!(listen = %api.listen, ?backend, "twostep-api listening (HTTPS)");
            axum_server::from_tcp_rustls(std_listener, tls)
                .handle(handle)
                .serve(app)
                .await
                .map_err(|e| StartupError::Listen(format!("server: {e}")))
        }
        _ => {
            tracing::info!(listen = %api.listen, ?backend, "twostep-api listening (plain HTTP)");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
                .map_err(|e| StartupError::Listen(format!("server: {e}")))
        }
    }
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
