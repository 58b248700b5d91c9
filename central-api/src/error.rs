//! The registry's errors: startup problems and HTTP error answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::path::PathBuf;
use twostep_common::api::{ApiErrorCode, ErrorBody};

/// Why `twostep-api` cannot start. `Display` is one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Configuration file or secret file problem.
    #[error(transparent)]
    Config(#[from] twostep_config::ConfigError),
    /// A key, token or TLS file could not be created or used.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The database could not be opened, reached or migrated.
    #[error("database {url}: {message}")]
    Database {
        /// The database URL with any password removed.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The database holds a key check value the secret key file does not
    /// match (or the key file is missing): the nodes of one registry have
    /// different keys.
    #[error("{url} was set up with another secret key: copy secret_key_file from the first registry node to every node")]
    KeyMismatch {
        /// The database URL with any password removed.
        url: String,
    },
    /// The listen address or TLS setup is refused or unusable.
    #[error("{0}")]
    Listen(String),
}

/// An error answer: HTTP status and [`ErrorBody`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A client error with a stable code; the HTTP status is the code's
    /// ([`ApiErrorCode::http_status`]: 4xx, 503 when the admin token file
    /// is unusable).
    #[error("{code}: {message}")]
    Client {
        /// [`ErrorBody::error`].
        code: ApiErrorCode,
        /// [`ErrorBody::message`].
        message: String,
    },
    /// The database failed; mapped to 503 (or 409 for a unique violation).
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored secret could not be decrypted (wrong key file); 500.
    #[error("stored secret: {0}")]
    Secret(String),
}

/// The mark on an answer that a database failure caused (a 503
/// `storage_unavailable` for an [`ApiError::Db`]), counted once by the
/// router ([`crate::metrics`]).
#[derive(Debug, Clone, Copy)]
pub struct DatabaseFailed;

impl ApiError {
    /// Whether this is the database failing (not a name that exists).
    pub fn is_database_failure(&self) -> bool {
        matches!(self, Self::Db(e) if !is_unique_violation(e))
    }

    /// `resp` with [`DatabaseFailed`] when this error is a database failure.
    pub(crate) fn mark(&self, mut resp: Response) -> Response {
        if self.is_database_failure() {
            resp.extensions_mut().insert(DatabaseFailed);
        }
        resp
    }

    /// An answer with `code` (and its status) and `message`.
    pub fn new(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self::Client {
            code,
            message: message.into(),
        }
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::Unauthorized, message)
    }

    /// 404 `unknown_user`.
    pub fn unknown_user(username: &str) -> Self {
        Self::new(ApiErrorCode::UnknownUser, format!("no user {username:?}"))
    }

    /// Status, code and message of the answer.
    pub fn parts(&self) -> (StatusCode, ApiErrorCode, String) {
        let (code, message) = match self {
            Self::Client { code, message } => (*code, message.clone()),
            Self::Db(e) => classify_db_error(e),
            Self::Secret(_) => (
                ApiErrorCode::SecretUnreadable,
                "a stored secret cannot be decrypted with the configured key file".into(),
            ),
        };
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, code, message)
    }
}

/// Whether `e` is the database refusing a second row with the same unique
/// key (a name that exists).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// What a database error means for the client.
fn classify_db_error(e: &sqlx::Error) -> (ApiErrorCode, String) {
    let unavailable = |m: &str| (ApiErrorCode::StorageUnavailable, m.to_owned());
    if is_unique_violation(e) {
        return (
            ApiErrorCode::Exists,
            "an entry with that name already exists".into(),
        );
    }
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // SQLite primary result codes (extended code & 0xff) and
            // PostgreSQL SQLSTATEs for read-only and full storage.
            let sqlite_primary = code.parse::<i32>().ok().map(|c| c & 0xff);
            match (sqlite_primary, code.as_str()) {
                (Some(8), _) | (_, "25006") => unavailable("the database is read-only"),
                (Some(13), _) | (_, "53100") => unavailable("the database storage is full"),
                (Some(5 | 6), _) => unavailable("the database is busy"),
                _ => unavailable("the database failed"),
            }
        }
        _ => unavailable("the database is unavailable"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        if status.is_server_error() {
            tracing::error!(error = %self, reason = %message, "request failed");
        }
        let resp = (
            status,
            Json(ErrorBody {
                error: code.as_str().to_owned(),
                message,
            }),
        )
            .into_response();
        self.mark(resp)
    }
}

/// `result`, with a unique violation (the name exists) answered as `code`
/// and `message()`.
///
/// # Errors
/// `code` for a unique violation; other database errors as [`ApiError::Db`].
pub(crate) fn exists_as<T>(
    result: Result<T, sqlx::Error>,
    code: ApiErrorCode,
    message: impl FnOnce() -> String,
) -> Result<T, ApiError> {
    match result {
        Err(e) if is_unique_violation(&e) => Err(ApiError::new(code, message())),
        other => Ok(other?),
    }
}
