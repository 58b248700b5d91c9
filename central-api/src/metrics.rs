//! The registry's Prometheus metrics (prometheus-client), served in the
//! OpenMetrics text format on `[api.metrics] listen` (`GET /metrics`),
//! apart from the API's own listener.
//!
//! Each counter is moved at the one place its decision is made:
//!
//! - verifications and their latency, lockouts: [`crate::verify::verify_as`]
//!   (hosts' `POST .../verify` and the pages' code step alike);
//! - database errors: the requests answered with a database failure
//!   (`storage_unavailable`), counted by the router's layer
//!   ([`count_database_errors`]) from the mark that
//!   [`crate::error::ApiError`]'s answers carry;
//! - page sign-ins: the audit record of each sign-in
//!   (`crate::portal::signin::audit`, action `portal.sign_in`);
//! - pending push challenges: read from the database at each scrape (one
//!   `COUNT` over the `push_challenges_open` index), so every replica
//!   reports the same truth.

use crate::error::{DatabaseFailed, StartupError};
use crate::state::{AppState, Shared};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use twostep_common::api::VerifyResult;

/// Path of the metrics on the metrics listener.
pub const METRICS_PATH: &str = "/metrics";

/// The `Content-Type` of the answer (OpenMetrics text 1.0.0, which
/// Prometheus negotiates and reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the verify latency buckets, in seconds.
pub const VERIFY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// `twostep_api_verifications_total` labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerifyLabels {
    /// The registry's answer ([`VerifyResult::as_str`]: `accept`, `reject`,
    /// `replay`, `locked`, `disabled`, `unknown_user`, `not_enrolled`).
    pub result: &'static str,
    /// Who asked: `host` (a PAM host or RADIUS server) or `portal` (the
    /// Security info pages' sign-in).
    pub via: &'static str,
}

/// `twostep_api_page_sign_ins_total` labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignInLabels {
    /// The audit record's result: `password_ok`, `wrong_password`,
    /// `unknown_user`, `disabled`, `rate_limited`, or a second factor's.
    pub result: String,
}

/// The registry's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    verifications: Family<VerifyLabels, Counter>,
    verify_seconds: Histogram,
    lockouts: Counter,
    database_errors: Counter,
    push_pending: Gauge,
    page_sign_ins: Family<SignInLabels, Counter>,
    write_batch: Histogram,
}

/// Upper bounds of the write batch size buckets, in verifications.
pub const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric registered, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("twostep_api");
        let verifications = Family::<VerifyLabels, Counter>::default();
        registry.register(
            "verifications",
            "Code verifications answered, by result and by who asked",
            verifications.clone(),
        );
        let verify_seconds = Histogram::new(VERIFY_BUCKETS);
        registry.register_with_unit(
            "verify_duration",
            "Time to answer a code verification (database reads and the write transaction)",
            Unit::Seconds,
            verify_seconds.clone(),
        );
        let lockouts = Counter::default();
        registry.register(
            "lockouts",
            "Users locked out after max_failures failed verifications",
            lockouts.clone(),
        );
        let database_errors = Counter::default();
        registry.register(
            "database_errors",
            "Requests answered storage_unavailable because the database failed",
            database_errors.clone(),
        );
        let push_pending = Gauge::default();
        registry.register(
            "push_challenges_pending",
            "Push challenges waiting for the device's answer (not yet expired); -1 when the database cannot be read",
            push_pending.clone(),
        );
        let page_sign_ins = Family::<SignInLabels, Counter>::default();
        registry.register(
            "page_sign_ins",
            "Sign-ins to the Security info pages (password step), by result",
            page_sign_ins.clone(),
        );
        let write_batch = Histogram::new(BATCH_BUCKETS);
        registry.register(
            "write_batch_size",
            "Verifications committed together in one transaction by the writer (group commit)",
            write_batch.clone(),
        );
        Self {
            registry,
            verifications,
            verify_seconds,
            lockouts,
            database_errors,
            push_pending,
            page_sign_ins,
            write_batch,
        }
    }

    /// One verification answered `result` for `actor` (`host:NAME` or
    /// `portal`), after `elapsed`.
    pub fn verified(&self, result: VerifyResult, actor: &str, elapsed: Duration) {
        let via = if actor == "portal" { "portal" } else { "host" };
        self.verifications
            .get_or_create(&VerifyLabels {
                result: result.as_str(),
                via,
            })
            .inc();
        self.verify_seconds.observe(elapsed.as_secs_f64());
    }

    /// One verification that failed (database, undecryptable secret) after
    /// `elapsed`: its latency only.
    pub fn verify_failed(&self, elapsed: Duration) {
        self.verify_seconds.observe(elapsed.as_secs_f64());
    }

    /// One batch of `size` verifications committed by the writer.
    pub fn write_batch(&self, size: usize) {
        self.write_batch.observe(size as f64);
    }

    /// One user locked out.
    pub fn locked_out(&self) {
        self.lockouts.inc();
    }

    /// One request answered with a database failure.
    pub fn database_error(&self) {
        self.database_errors.inc();
    }

    /// One page sign-in audited with `result`.
    pub fn page_sign_in(&self, result: &str) {
        self.page_sign_ins
            .get_or_create(&SignInLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// The text of every metric, with `pending` push challenges.
    ///
    /// # Errors
    /// Never in practice (formatting into a `String`).
    pub fn encode(&self, pending: i64) -> Result<String, std::fmt::Error> {
        self.push_pending.set(pending);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Push challenges still waiting for an answer at `now` (Unix seconds).
async fn pending_challenges(state: &AppState, now: i64) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM push_challenges WHERE status = 'pending' AND expires_at > $1",
    )
    .bind(now)
    .fetch_one(&state.pool)
    .await?;
    Ok(n)
}

async fn metrics(State(state): State<Shared>) -> Response {
    let pending = match pending_challenges(&state, state.now()).await {
        Ok(n) => n,
        Err(e) => {
            // The other metrics are still worth a scrape; the gauge says -1.
            tracing::warn!(error = %e, "metrics: cannot count pending push challenges");
            -1
        }
    };
    match state.metrics.encode(pending) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The metrics listener's router: `GET /metrics`, 404 for anything else.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route(METRICS_PATH, get(metrics))
        .with_state(state)
}

/// Binds `listen` for the metrics.
///
/// # Errors
/// [`StartupError::Listen`] when the address cannot be bound.
pub async fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener, StartupError> {
    tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        StartupError::Listen(format!(
            "cannot listen on {listen} ([api.metrics] listen): {e}"
        ))
    })
}

/// Serves the metrics on `listener` until the process ends.
pub fn spawn(listener: tokio::net::TcpListener, state: Arc<AppState>) {
    let addr = listener.local_addr().ok();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state)).await {
            tracing::error!(listen = ?addr, "metrics listener failed: {e}");
        }
    });
}

/// The router's layer that counts answers marked [`DatabaseFailed`].
pub(crate) async fn count_database_errors(
    State(state): State<Shared>,
    req: Request,
    next: Next,
) -> Response {
    let resp = next.run(req).await;
    if resp.extensions().get::<DatabaseFailed>().is_some() {
        state.metrics.database_error();
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_names_labels_and_units() {
        let m = Metrics::new();
        m.verified(VerifyResult::Accept, "host:vpn", Duration::from_millis(3));
        m.verified(VerifyResult::Replay, "portal", Duration::from_millis(30));
        m.locked_out();
        m.page_sign_in("wrong_password");
        let text = m.encode(2).unwrap();
        for line in [
            "# TYPE twostep_api_verifications counter",
            "twostep_api_verifications_total{result=\"accept\",via=\"host\"} 1",
            "twostep_api_verifications_total{result=\"replay\",via=\"portal\"} 1",
            "# UNIT twostep_api_verify_duration_seconds seconds",
            "twostep_api_verify_duration_seconds_count 2",
            "twostep_api_verify_duration_seconds_bucket{le=\"0.005\"} 1",
            "twostep_api_verify_duration_seconds_bucket{le=\"0.05\"} 2",
            "twostep_api_lockouts_total 1",
            "twostep_api_database_errors_total 0",
            "twostep_api_push_challenges_pending 2",
            "twostep_api_page_sign_ins_total{result=\"wrong_password\"} 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
