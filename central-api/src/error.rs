//! The registry's errors: startup problems and HTTP error answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::path::PathBuf;
use twostep_common::api::ErrorBody;

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
    /// A client error with a stable code.
    #[error("{code}: {message}")]
    Client {
        /// HTTP status (4xx; 503 when the admin token file is unusable).
        status: StatusCode,
        /// [`ErrorBody::error`].
        code: &'static str,
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

impl ApiError {
    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::Client {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Client {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
        }
    }

    /// 404 with `code`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::Client {
            status: StatusCode::NOT_FOUND,
            code,
            message: message.into(),
        }
    }

    /// 404 `unknown_user`.
    pub fn unknown_user(username: &str) -> Self {
        Self::not_found("unknown_user", format!("no user {username:?}"))
    }

    /// 409 with `code`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Client {
            status: StatusCode::CONFLICT,
            code,
            message: message.into(),
        }
    }

    /// Status, code and message of the answer.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::Client {
                status,
                code,
                message,
            } => (*status, code, message.clone()),
            Self::Db(e) => classify_db_error(e),
            Self::Secret(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "secret_unreadable",
                "a stored secret cannot be decrypted with the configured key file".into(),
            ),
        }
    }
}

/// What a database error means for the client.
fn classify_db_error(e: &sqlx::Error) -> (StatusCode, &'static str, String) {
    let unavailable = |m: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            m.to_owned(),
        )
    };
    match e {
        sqlx::Error::Database(db) => {
            if db.kind() == sqlx::error::ErrorKind::UniqueViolation {
                return (
                    StatusCode::CONFLICT,
                    "exists",
                    "an entry with that name already exists".into(),
                );
            }
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
        (
            status,
            Json(ErrorBody {
                error: code.to_owned(),
                message,
            }),
        )
            .into_response()
    }
}
