//! What every request needs: the database, the keys, the clock, the
//! settings of `[api]` and the push wake-ups.

use crate::clock::Clock;
use crate::crypto::{AdminToken, SecretBox};
use crate::db::Backend;
use crate::error::ApiError;
use sqlx::AnyPool;
use std::sync::Arc;
use twostep_config::{ApiConfig, LockoutConfig};

/// Everything a request needs.
#[derive(Debug)]
pub struct AppState {
    /// The database.
    pub pool: AnyPool,
    /// Which database.
    pub backend: Backend,
    /// At-rest encryption of TOTP secrets.
    pub secrets: SecretBox,
    /// The admin token.
    pub admin: AdminToken,
    /// Source of time.
    pub clock: Arc<dyn Clock>,
    /// `otpauth://` issuer.
    pub issuer: String,
    /// Skew window, in time steps either side.
    pub skew_steps: u8,
    /// Failure counting and lockout.
    pub lockout: LockoutConfig,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The Security info pages' settings.
    pub portal: crate::portal::Settings,
    /// Push approvals: settings and the wake-ups of waiting requests.
    pub push: crate::push::PushState,
    /// The Prometheus metrics (served on `[api.metrics] listen`).
    pub metrics: crate::metrics::Metrics,
    /// The verifications' writes, committed in batches
    /// ([`crate::writer`]; started with [`crate::writer::Writer::start`]).
    pub writer: crate::writer::Writer,
    /// Email (`[api.smtp]`), when configured.
    pub mailer: Option<crate::mail::Mailer>,
    /// The text-message and phone-call gateways (`[api.sms]`, `[api.voice]`).
    pub gateways: crate::phone::Gateways,
    /// Host API keys recently found valid ([`crate::auth::HostKeys`]).
    pub host_keys: crate::auth::HostKeys,
    /// The hot reads on an SQLite file, off sqlx's thread hand-off
    /// ([`crate::sqlite_reads`]); `None` on PostgreSQL and in memory.
    pub sqlite_reads: Option<crate::sqlite_reads::SqliteReads>,
}

impl AppState {
    /// State from the `[api]` settings and opened resources.
    pub fn new(
        api: &ApiConfig,
        pool: AnyPool,
        backend: Backend,
        secrets: SecretBox,
        admin: AdminToken,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            pool,
            backend,
            secrets,
            admin,
            clock,
            issuer: api.issuer.clone(),
            skew_steps: api.totp.skew_steps,
            lockout: api.lockout.clone(),
            max_body_bytes: api.max_body_bytes,
            portal: crate::portal::Settings::from_api(api),
            push: crate::push::PushState::new(api, backend),
            metrics: crate::metrics::Metrics::new(),
            writer: crate::writer::Writer::new(),
            mailer: api.smtp.as_ref().map(crate::mail::Mailer::new),
            gateways: crate::phone::Gateways::new(api),
            host_keys: crate::auth::HostKeys::default(),
            sqlite_reads: None,
        }
    }

    /// The clock's time as stored in the database, in Unix seconds.
    pub(crate) fn now(&self) -> i64 {
        i64::try_from(self.clock.now()).unwrap_or(i64::MAX)
    }
}

/// The state as handlers receive it.
pub(crate) type Shared = Arc<AppState>;

/// What a handler returns.
pub(crate) type ApiResult<T> = Result<T, ApiError>;
