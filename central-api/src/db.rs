//! Storage: one schema on SQLite (embedded, WAL) or PostgreSQL, through
//! sqlx's `Any` driver so every query is written once. Both accept `$N`
//! placeholders; types are kept to BIGINT and TEXT so they decode alike.
//!
//! Every check-and-record that must be race-free is one statement whose
//! `WHERE` clause holds the check (see [`crate::verify`]); multi-statement
//! changes run in a transaction whose first statement writes, so SQLite
//! takes its write lock up front (no lock upgrade, no `SQLITE_BUSY` midway).

use crate::error::StartupError;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;

/// Which database the URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// How far apart, in seconds, a node's clock and its database's may be
/// before the node warns (at start and in `/v1/health`): nodes sharing one
/// PostgreSQL judge time steps by their own clocks, so clocks apart accept
/// and refuse codes differently.
pub const MAX_CLOCK_OFFSET_SECS: i64 = 2;

/// The node's clock `now` minus the database server's clock, in whole
/// seconds (PostgreSQL `clock_timestamp()`; SQLite's is this machine's).
///
/// # Errors
/// The database's.
pub async fn clock_offset(pool: &AnyPool, backend: Backend, now: i64) -> Result<i64, sqlx::Error> {
    let sql = match backend {
        Backend::Postgres => {
            "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp())) AS BIGINT) AS t"
        }
        Backend::Sqlite => "SELECT CAST(strftime('%s', 'now') AS INTEGER) AS t",
    };
    let (t,): (i64,) = sqlx::query_as(sql).fetch_one(pool).await?;
    Ok(now.saturating_sub(t))
}

/// Longest wait for a database connection per request: under the
/// clients' default 5 s deadline, so they get a 503 rather than a timeout.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest wait for the database at startup.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The URL with any password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The backend named by `url`'s scheme.
///
/// # Errors
/// [`StartupError::Database`] for another scheme.
pub fn backend_of(url: &str) -> Result<Backend, StartupError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(StartupError::Database {
            url: redact_url(url),
            message: "database must be sqlite:///PATH or postgres://...".into(),
        })
    }
}

/// For SQLite: the file path, and the URL with `mode=rwc` (create if
/// missing) unless a mode was given.
fn sqlite_url(url: &str) -> (Option<std::path::PathBuf>, String) {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path_part = rest.split('?').next().unwrap_or("");
    let path = (!path_part.is_empty() && path_part != ":memory:")
        .then(|| std::path::PathBuf::from(path_part));
    let full = if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    };
    (path, full)
}

/// The file an `sqlite:` URL names; `None` for another backend and for
/// `sqlite::memory:`.
pub(crate) fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    match backend_of(url) {
        Ok(Backend::Sqlite) => sqlite_url(url).0,
        _ => None,
    }
}

/// Opens the pool (bounded by [`STARTUP_TIMEOUT`]) and brings the schema up to date.
///
/// # Errors
/// [`StartupError::Database`] with a one-line reason.
pub async fn open(url: &str) -> Result<(AnyPool, Backend), StartupError> {
    sqlx::any::install_default_drivers();
    let backend = backend_of(url)?;
    let err = |message: String| StartupError::Database {
        url: redact_url(url),
        message,
    };
    let connect_url = match backend {
        Backend::Sqlite => {
            let (path, full) = sqlite_url(url);
            if let Some(parent) = path.as_deref().and_then(std::path::Path::parent) {
                if !parent.as_os_str().is_empty() && !parent.exists() {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(parent)
                        .map_err(|e| err(format!("{}: {e}", parent.display())))?;
                }
            }
            full
        }
        Backend::Postgres => url.to_owned(),
    };
    let options = AnyConnectOptions::from_str(&connect_url).map_err(|e| err(e.to_string()))?;
    let pool_options = AnyPoolOptions::new()
        .max_connections(match backend {
            Backend::Sqlite => 8,
            Backend::Postgres => 16,
        })
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the writer; busy_timeout
                    // makes writers queue instead of failing at once.
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    // synchronous stays FULL (sqlx's default): an accepted
                    // time step must survive a power loss, or a code could
                    // be replayed after a crash.
                }
                Ok(())
            })
        });
    let pool = tokio::time::timeout(STARTUP_TIMEOUT, pool_options.connect_with(options))
        .await
        .map_err(|_| {
            err(format!(
                "no connection within {} s",
                STARTUP_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| err(twostep_common::error_chain(&e)))?;
    if backend == Backend::Sqlite {
        // journal_mode is persistent in the file; a read-only file keeps
        // what it has (the registry then answers 503 to writes).
        if let Err(e) = sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %twostep_common::error_chain(&e), "could not switch SQLite to WAL mode");
        }
    }
    migrate(&pool, backend).await.map_err(|e| {
        err(format!(
            "schema migration: {}",
            twostep_common::error_chain(&e)
        ))
    })?;
    Ok((pool, backend))
}

/// For `twostep-api --check`: connects to an existing database without
/// creating, migrating or writing anything (SQLite read-only). `Ok(None)`
/// when the SQLite file does not exist yet; the URL is parsed either way.
///
/// # Errors
/// [`StartupError::Database`] when the URL does not parse or the database
/// cannot be reached within [`STARTUP_TIMEOUT`].
pub async fn open_existing(url: &str) -> Result<Option<(AnyPool, Backend)>, StartupError> {
    sqlx::any::install_default_drivers();
    let backend = backend_of(url)?;
    let err = |message: String| StartupError::Database {
        url: redact_url(url),
        message,
    };
    let connect_url = match backend {
        Backend::Sqlite => {
            let (path, _) = sqlite_url(url);
            let ro = if url.contains('?') {
                format!("{url}&mode=ro")
            } else {
                format!("{url}?mode=ro")
            };
            AnyConnectOptions::from_str(&ro).map_err(|e| err(e.to_string()))?;
            match path {
                Some(p) if p.exists() => ro,
                _ => return Ok(None),
            }
        }
        Backend::Postgres => url.to_owned(),
    };
    let options = AnyConnectOptions::from_str(&connect_url).map_err(|e| err(e.to_string()))?;
    let pool = tokio::time::timeout(
        STARTUP_TIMEOUT,
        AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options),
    )
    .await
    .map_err(|_| {
        err(format!(
            "no connection within {} s",
            STARTUP_TIMEOUT.as_secs()
        ))
    })?
    .map_err(|e| err(twostep_common::error_chain(&e)))?;
    Ok(Some((pool, backend)))
}

/// One schema change. `{id}` in a statement stands for the backend's
/// auto-increment primary key column type; a statement that starts with
/// `sqlite: ` or `postgres: ` runs on that backend only (where the two
/// dialects change a table differently).
///
/// (sqlx's migrator wants one migration directory per database type and,
/// through the `Any` driver, would run the same files on both; the few
/// statements live here instead.)
struct Migration {
    version: i64,
    statements: &'static [&'static str],
}

impl Backend {
    /// The type of an auto-increment `BIGINT` primary key column.
    fn identity_column(self) -> &'static str {
        match self {
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        }
    }
}

/// Name of the settings row holding the key check value.
pub const KEY_CHECK_SETTING: &str = "key_check";

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        statements: &[
            "CREATE TABLE users (
            id {id},
            username TEXT NOT NULL UNIQUE,
            display_name TEXT,
            disabled BIGINT NOT NULL DEFAULT 0,
            created_at BIGINT NOT NULL,
            failure_count BIGINT NOT NULL DEFAULT 0,
            failure_window_start BIGINT,
            locked_until BIGINT)",
            "CREATE TABLE methods (
            id {id},
            user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            label TEXT NOT NULL,
            is_default BIGINT NOT NULL DEFAULT 0,
            created_at BIGINT NOT NULL,
            secret_sealed TEXT,
            digits BIGINT NOT NULL DEFAULT 6,
            step_seconds BIGINT NOT NULL DEFAULT 30,
            last_step BIGINT)",
            "CREATE INDEX methods_user ON methods(user_id)",
            "CREATE TABLE hosts (
            id {id},
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            created_at BIGINT NOT NULL,
            revoked_at BIGINT)",
            "CREATE TABLE audit (
            id {id},
            at BIGINT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            username TEXT,
            host TEXT,
            remote_addr TEXT,
            result TEXT,
            detail TEXT)",
        ],
    },
    // Version 2: name/value settings; `key_check` holds a constant sealed
    // with the secret key, so every node can tell whether its key file is
    // the one the database was set up with (see crate::server).
    Migration {
        version: 2,
        statements: &["CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)"],
    },
    // Version 3: push approvals (crate::push). A push device is a method
    // row with its Ed25519 public key; users get the fraud block.
    Migration {
        version: 3,
        statements: &[
            "ALTER TABLE methods ADD COLUMN public_key TEXT",
            "ALTER TABLE methods ADD COLUMN last_used_at BIGINT",
            "ALTER TABLE methods ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE users ADD COLUMN push_blocked_at BIGINT",
            "CREATE TABLE push_activations (
            code_hash TEXT PRIMARY KEY,
            user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            label TEXT,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            used_at BIGINT)",
            "CREATE TABLE push_challenges (
            id TEXT PRIMARY KEY,
            user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            host TEXT NOT NULL,
            nonce TEXT NOT NULL,
            number BIGINT,
            context TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            answered_at BIGINT,
            answered_by BIGINT,
            collected BIGINT NOT NULL DEFAULT 0)",
            "CREATE INDEX push_challenges_user ON push_challenges(user_id, created_at)",
            "CREATE TABLE push_seen_nonces (
            method_id BIGINT NOT NULL REFERENCES methods(id) ON DELETE CASCADE,
            nonce TEXT NOT NULL,
            expires_at BIGINT NOT NULL,
            PRIMARY KEY (method_id, nonce))",
            "CREATE INDEX push_seen_nonces_expiry ON push_seen_nonces(expires_at)",
        ],
    },
    // Version 4: the Security info pages (crate::portal): each user's page
    // password (Argon2id, PHC string), page sessions (only a SHA-256 of the
    // session id is kept), one-time setup links (SHA-256 of the token) and
    // sign-in failure counts per username and per address.
    Migration {
        version: 4,
        statements: &[
            "ALTER TABLE users ADD COLUMN password_hash TEXT",
            "CREATE TABLE portal_sessions (
            id_hash TEXT PRIMARY KEY,
            user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            stage TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            last_seen_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            factor_at BIGINT,
            set_password BIGINT NOT NULL DEFAULT 0,
            flow_sealed TEXT,
            remote_addr TEXT)",
            "CREATE INDEX portal_sessions_user ON portal_sessions(user_id)",
            "CREATE TABLE portal_invites (
            token_hash TEXT PRIMARY KEY,
            user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            used_at BIGINT)",
            "CREATE INDEX portal_invites_user ON portal_invites(user_id)",
            "CREATE TABLE portal_throttle (
            name TEXT PRIMARY KEY,
            window_start BIGINT NOT NULL,
            failures BIGINT NOT NULL)",
        ],
    },
    // Version 5: replayed codes counted per user apart from failures
    // (crate::verify), and the per-host rate of audit records of logins
    // refused before a code is asked (crate::routes::host).
    Migration {
        version: 5,
        statements: &[
            "ALTER TABLE users ADD COLUMN replay_count BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE users ADD COLUMN replay_window_start BIGINT",
            "CREATE TABLE audit_throttle (
            name TEXT PRIMARY KEY,
            window_start BIGINT NOT NULL,
            records BIGINT NOT NULL)",
        ],
    },
    // Version 6: push devices added on the Security info page. A device
    // activated by the page's flow is `pending` (no login reaches it, and
    // it sees only challenges addressed to it by `device_id`) until the
    // user approves its test notification; the page's activation codes
    // are `pending` and remember the device they registered. A page
    // session remembers the push challenge it waits for (sign-in with a
    // notification). A push device's last accepted poll: when and from
    // which address (shown on the Devices page).
    Migration {
        version: 6,
        statements: &[
            "ALTER TABLE methods ADD COLUMN pending BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE push_activations ADD COLUMN pending BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE push_activations ADD COLUMN method_id BIGINT",
            "ALTER TABLE push_challenges ADD COLUMN device_id BIGINT",
            "ALTER TABLE portal_sessions ADD COLUMN push_challenge TEXT",
            "ALTER TABLE methods ADD COLUMN last_seen_at BIGINT",
            "ALTER TABLE methods ADD COLUMN last_seen_addr TEXT",
        ],
    },
    // Version 7: a host name is unique among hosts not revoked, so the
    // name of a revoked host can be given to a new one; the revoked row
    // stays (its name, kind and dates) for the audit trail. SQLite cannot
    // drop a column's UNIQUE: the table is copied.
    Migration {
        version: 7,
        statements: &[
            "sqlite: CREATE TABLE hosts_v7 (
            id {id},
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            created_at BIGINT NOT NULL,
            revoked_at BIGINT)",
            "sqlite: INSERT INTO hosts_v7 (id, name, kind, key_hash, created_at, revoked_at)
            SELECT id, name, kind, key_hash, created_at, revoked_at FROM hosts",
            "sqlite: DROP TABLE hosts",
            "sqlite: ALTER TABLE hosts_v7 RENAME TO hosts",
            "postgres: ALTER TABLE hosts DROP CONSTRAINT IF EXISTS hosts_name_key",
            "CREATE UNIQUE INDEX hosts_live_name ON hosts(name) WHERE revoked_at IS NULL",
        ],
    },
    // Version 8: the pending push challenges counted at each metrics
    // scrape (crate::metrics) without reading the whole table.
    Migration {
        version: 8,
        statements: &["CREATE INDEX push_challenges_open ON push_challenges(status, expires_at)"],
    },
    // Version 9: temporary access codes (crate::recovery) issued by the
    // help desk: an Argon2id hash (PHC string) of each, its expiry and the
    // uses left; a revoked or used-up code stays for the audit trail.
    Migration {
        version: 9,
        statements: &[
            "CREATE TABLE temporary_access_codes (
            id {id},
            user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            code_hash TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            uses_left BIGINT NOT NULL,
            last_used_at BIGINT,
            revoked_at BIGINT)",
            "CREATE INDEX temporary_access_codes_user ON temporary_access_codes(user_id)",
        ],
    },
    // Version 10: backup codes. One set per user is current (the others
    // `voided_at`); each code is an HMAC of the set's salt and the code
    // under a key derived from the secret key (crate::crypto::SecretBox::code_mac).
    Migration {
        version: 10,
        statements: &[
            "CREATE TABLE backup_code_sets (
            id {id},
            user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            salt TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            voided_at BIGINT)",
            "CREATE INDEX backup_code_sets_user ON backup_code_sets(user_id)",
            "CREATE TABLE backup_codes (
            id {id},
            set_id BIGINT NOT NULL REFERENCES backup_code_sets(id) ON DELETE CASCADE,
            code_hash TEXT NOT NULL,
            used_at BIGINT)",
            "CREATE INDEX backup_codes_set ON backup_codes(set_id)",
        ],
    },
    // Version 12: self-service password reset (crate::portal::reset).
    // Password-reset methods are kept apart from `methods`, so they never
    // count as a second factor: a proven email address per user, and
    // security questions (an index into twostep_common::reset::QUESTIONS,
    // the normalised answer's Argon2id hash). A reset in progress is a row
    // named by the SHA-256 of its cookie, for a user or for an unknown
    // name alike (`user_id` NULL), with the kinds proven so far and the
    // emailed code (Argon2id hash, expiry, tries left). A new address
    // waits in `email_proofs` until the code sent to it comes back.
    Migration {
        version: 12,
        statements: &[
            "CREATE TABLE reset_emails (
            user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
            address TEXT NOT NULL,
            created_at BIGINT NOT NULL)",
            "CREATE TABLE security_answers (
            user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            question BIGINT NOT NULL,
            answer_hash TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (user_id, question))",
            "CREATE TABLE password_resets (
            id_hash TEXT PRIMARY KEY,
            username TEXT NOT NULL,
            user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            proofs TEXT NOT NULL DEFAULT '',
            code_hash TEXT,
            code_expires_at BIGINT,
            code_tries_left BIGINT NOT NULL DEFAULT 0,
            remote_addr TEXT)",
            "CREATE INDEX password_resets_expiry ON password_resets(expires_at)",
            "CREATE TABLE email_proofs (
            session_hash TEXT PRIMARY KEY,
            user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            address TEXT NOT NULL,
            code_hash TEXT NOT NULL,
            expires_at BIGINT NOT NULL,
            tries_left BIGINT NOT NULL)",
        ],
    },
    // Version 13: text-message and phone-call codes (crate::phone). A
    // phone method is a `methods` row of kind `sms` or `voice` with its
    // E.164 number sealed in `phone_sealed`; each code sent is a row of
    // `sent_codes` (an HMAC of its salt and the code, its expiry, tries
    // left, one use; `method_id` NULL for the page's proof of a number
    // not saved yet); a page's number waiting for its code is a row of
    // `phone_proofs`, sealed, named by the SHA-256 of the page session.
    // (11 is not used; 14 belongs to security keys.)
    Migration {
        version: 13,
        statements: &[
            "ALTER TABLE methods ADD COLUMN phone_sealed TEXT",
            "CREATE TABLE sent_codes (
            id {id},
            user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            method_id BIGINT REFERENCES methods(id) ON DELETE CASCADE,
            channel TEXT NOT NULL,
            purpose TEXT NOT NULL,
            salt TEXT NOT NULL,
            code_hash TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            tries_left BIGINT NOT NULL,
            used_at BIGINT,
            status TEXT NOT NULL)",
            "CREATE INDEX sent_codes_user ON sent_codes(user_id, created_at)",
            "CREATE TABLE phone_proofs (
            session_hash TEXT PRIMARY KEY,
            user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            sent_id BIGINT NOT NULL,
            channel TEXT NOT NULL,
            phone_sealed TEXT NOT NULL,
            created_at BIGINT NOT NULL)",
        ],
    },
    // Version 14: security keys (crate::portal::security_key). A key is a
    // `methods` row of kind `security_key` with its WebAuthn credential id
    // (base64url, unique across the registry: a key is registered once)
    // and the serialised credential (public key, counter). Each user gets
    // a random WebAuthn user handle at their first key. A ceremony's state
    // (its challenge) waits in `webauthn_ceremonies`, one row per page
    // session and purpose, until its answer takes it or it expires.
    Migration {
        version: 14,
        statements: &[
            "ALTER TABLE methods ADD COLUMN credential_id TEXT",
            "ALTER TABLE methods ADD COLUMN credential TEXT",
            "CREATE UNIQUE INDEX methods_credential_id ON methods(credential_id)",
            "ALTER TABLE users ADD COLUMN webauthn_user_id TEXT",
            "CREATE TABLE webauthn_ceremonies (
            session_hash TEXT NOT NULL,
            purpose TEXT NOT NULL,
            user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            state TEXT NOT NULL,
            label TEXT,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            PRIMARY KEY (session_hash, purpose))",
            "CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies(expires_at)",
        ],
    },
    // Version 15: two-step methods as proofs of a password reset
    // (crate::portal::reset). A reset in progress keeps the push challenge
    // it waits for (or, for a name that cannot be reset, the number and
    // expiry its page shows), and the text-message or call code it sent
    // (a `sent_codes` row of purpose `reset`; for a code not sent, the
    // life and tries a real one would have). A security key's ceremony
    // for a reset is a `webauthn_ceremonies` row named by the reset's
    // own hash.
    Migration {
        version: 15,
        statements: &[
            "ALTER TABLE password_resets ADD COLUMN push_challenge TEXT",
            "ALTER TABLE password_resets ADD COLUMN push_number BIGINT",
            "ALTER TABLE password_resets ADD COLUMN push_expires_at BIGINT",
            "ALTER TABLE password_resets ADD COLUMN phone_sent_id BIGINT",
            "ALTER TABLE password_resets ADD COLUMN phone_channel TEXT",
            "ALTER TABLE password_resets ADD COLUMN phone_expires_at BIGINT",
            "ALTER TABLE password_resets ADD COLUMN phone_tries_left BIGINT",
        ],
    },
    // Version 16: what a push challenge is for (crate::push::challenge::
    // Purpose): `login`, or `reset` for a password reset's, counted apart
    // against `[api.push] max_challenges`.
    Migration {
        version: 16,
        statements: &[
            "ALTER TABLE push_challenges ADD COLUMN purpose TEXT NOT NULL DEFAULT 'login'",
        ],
    },
];

/// Applies the migrations not yet recorded in `schema_migrations`, each in
/// its own transaction. On PostgreSQL an advisory lock serialises replicas
/// starting at the same time.
async fn migrate(pool: &AnyPool, backend: Backend) -> Result<(), sqlx::Error> {
    pool.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await
    .or_else(|e| match (&e, backend) {
        // Two replicas racing on CREATE TABLE IF NOT EXISTS: the other won
        // (a unique violation in the catalogue, or 42710 duplicate_object /
        // 42P07 duplicate_table for its row type).
        (sqlx::Error::Database(d), Backend::Postgres)
            if d.kind() == sqlx::error::ErrorKind::UniqueViolation
                || matches!(d.code().as_deref(), Some("42710" | "42P07")) =>
        {
            Ok(Default::default())
        }
        _ => Err(e),
    })?;
    for m in MIGRATIONS {
        // Applied already: nothing to lock (a read-only SQLite file starts).
        let applied: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(pool)
                .await?;
        if applied.is_some() {
            continue;
        }
        let mut tx = pool.begin().await?;
        match backend {
            Backend::Postgres => {
                tx.execute("SELECT pg_advisory_xact_lock(7326017)").await?;
            }
            // A write first takes SQLite's write lock (waiting up to
            // busy_timeout behind another process migrating), instead of
            // reading first and failing with "database is locked" when the
            // read upgrades to a write after the other committed.
            Backend::Sqlite => {
                tx.execute("UPDATE schema_migrations SET applied_at = applied_at WHERE 0 = 1")
                    .await?;
            }
        }
        let done: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            tx.rollback().await?;
            continue;
        }
        for s in m.statements {
            let s = match (s.split_once(": "), backend) {
                (Some(("sqlite", s)), Backend::Sqlite)
                | (Some(("postgres", s)), Backend::Postgres) => s,
                (Some(("sqlite" | "postgres", _)), _) => continue,
                _ => s,
            };
            tx.execute(s.replace("{id}", backend.identity_column()).as_str())
                .await?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(m.version)
            .bind(crate::clock::Clock::now(&crate::clock::SystemClock) as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, "applied schema migration");
    }
    Ok(())
}
