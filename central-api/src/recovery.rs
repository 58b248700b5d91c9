//! Temporary access codes ([`twostep_common::recovery`]): issued by an
//! admin (`POST /v1/admin/users/{username}/temporary-access`, optionally
//! after deleting the user's methods in the same transaction: a phone
//! change), revoked (`DELETE` on the same path), and used by
//! [`crate::verify`] like a code wherever a second factor is asked.
//!
//! Each code is kept as an Argon2id PHC string (`crate::portal::password`
//! parameters), with its expiry and the uses left; issuing a new code
//! revokes the user's earlier open ones, so a user has at most one. A use
//! is one `UPDATE … WHERE uses_left > 0 AND revoked_at IS NULL AND
//! expires_at > now`, so concurrent uses of a one-use code give one
//! accept. Rows stay after use or revocation, for the audit trail.
//!
//! Backup codes (`POST /v1/admin/users/{username}/backup-codes`): a new
//! set of ten voids the user's earlier set. Each code is stored as an
//! HMAC-SHA256 of the set's random 16-byte salt and the code, under a key
//! derived from the registry's secret key
//! ([`crate::crypto::SecretBox::code_mac`]): a stolen database alone gives
//! no way to test guesses, as for the TOTP secrets. (Argon2id would not
//! add to that for 8 digits, and ten of them per set take a noticeable
//! time under load.) A typed code costs one MAC, compared in constant time
//! with each unused code of the current set; a use is one `UPDATE … WHERE
//! used_at IS NULL`. They are a fallback: typed where a
//! code goes, never what a prompt asks for, and a user with backup codes
//! alone is not enrolled.

use crate::app::Routes;
use crate::audit::{AdminChange, Subject};
use crate::auth::AdminAuth;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathArgs, Peer};
use crate::routes::methods::{delete_all_methods, user_id};
use crate::state::{ApiResult, AppState, Shared};
use crate::write_conn::{fetch_int, WriteConn};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sqlx::{AnyConnection, Row};
use twostep_common::api::{paths, ApiErrorCode, BackupCodes, IssueTap, TapIssued};
use twostep_common::recovery::{
    display_tap, generate_tap, TAP_DEFAULT_HOURS, TAP_MAX_HOURS, TAP_MAX_USES,
};
use zeroize::Zeroizing;

/// The SQL condition of a code that still works at `$now` (bound as the
/// parameter named in `now`).
fn open_at(now: &str) -> String {
    open_in("", now)
}

/// [`open_at`] for the table named `alias` (with its dot, `t.`) in a
/// statement that joins others.
pub(crate) fn open_in(alias: &str, now: &str) -> String {
    format!("{alias}revoked_at IS NULL AND {alias}uses_left > 0 AND {alias}expires_at > {now}")
}

/// `/v1/admin/users/{username}/temporary-access`.
pub(crate) fn routes(r: Routes) -> Routes {
    r.post(paths::USER_TAP, issue)
        .delete(paths::USER_TAP, revoke)
        .post(paths::USER_BACKUP_CODES, new_backup_codes)
}

/// Unused codes of the user's current set of backup codes, if they have
/// a set.
///
/// # Errors
/// Database errors.
pub async fn backup_codes_left(pool: &sqlx::AnyPool, uid: i64) -> Result<Option<u32>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM backup_codes c WHERE c.set_id = s.id AND c.used_at IS NULL) AS left_
         FROM backup_code_sets s WHERE s.user_id = $1 AND s.voided_at IS NULL ORDER BY s.id DESC LIMIT 1",
    )
    .bind(uid)
    .fetch_optional(pool)
    .await?;
    row.map(|r| r.try_get::<i64, _>("left_"))
        .transpose()
        .map(|n| n.map(|n| u32::try_from(n).unwrap_or(0)))
}

/// The id of the unused code of the user's current set that `code`
/// (normalised) is, if any.
///
/// # Errors
/// Database errors; a failed hash as an internal error.
pub async fn find_backup(state: &AppState, uid: i64, code: &str) -> Result<Option<i64>, ApiError> {
    let Some(set) = sqlx::query(
        "SELECT id, salt FROM backup_code_sets WHERE user_id = $1 AND voided_at IS NULL ORDER BY id DESC LIMIT 1",
    )
    .bind(uid)
    .fetch_optional(&state.pool)
    .await?
    else {
        return Ok(None);
    };
    let set_id: i64 = set.try_get("id")?;
    let salt = hex::decode(set.try_get::<String, _>("salt")?)
        .map_err(|_| ApiError::new(ApiErrorCode::Internal, "backup code salt is not hex"))?;
    let hash = state.secrets.code_mac(&salt, code);
    let rows =
        sqlx::query("SELECT id, code_hash FROM backup_codes WHERE set_id = $1 AND used_at IS NULL")
            .bind(set_id)
            .fetch_all(&state.pool)
            .await?;
    let mut found = None;
    for r in rows {
        let stored: String = r.try_get("code_hash")?;
        if bool::from(subtle::ConstantTimeEq::ct_eq(
            stored.as_bytes(),
            hash.as_bytes(),
        )) {
            found = Some(r.try_get::<i64, _>("id")?);
        }
    }
    Ok(found)
}

/// Uses backup code `id` in `tx`; the unused codes of its set left after
/// it, or `None` when it was used (or its set voided) since
/// [`find_backup`].
///
/// # Errors
/// Database errors.
pub async fn use_backup(
    conn: &mut dyn WriteConn,
    id: i64,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let used = conn
        .execute(
            "UPDATE backup_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL
           AND set_id IN (SELECT id FROM backup_code_sets WHERE voided_at IS NULL)",
            &[id.into(), now.into()],
        )
        .await?;
    if used != 1 {
        return Ok(None);
    }
    let left = fetch_int(
        conn,
        "SELECT COUNT(*) AS n FROM backup_codes WHERE used_at IS NULL
           AND set_id = (SELECT set_id FROM backup_codes WHERE id = $1)",
        &[id.into()],
        "n",
    )
    .await?;
    Ok(Some(left.flatten().unwrap_or(0)))
}

/// A new set of backup codes for user `uid` within `conn` (the earlier
/// set voided); the codes as shown.
///
/// # Errors
/// Database errors; a failed hash as an internal error.
pub async fn create_backup_set(
    state: &AppState,
    conn: &mut AnyConnection,
    uid: i64,
    now: i64,
) -> Result<Vec<String>, ApiError> {
    let codes = twostep_common::recovery::generate_backup_codes();
    let salt: [u8; 16] = rand::random();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| state.secrets.code_mac(&salt, c))
        .collect();
    sqlx::query(
        "UPDATE backup_code_sets SET voided_at = $2 WHERE user_id = $1 AND voided_at IS NULL",
    )
    .bind(uid)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let set_id: i64 = sqlx::query(
        "INSERT INTO backup_code_sets (user_id, salt, created_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(uid)
    .bind(hex::encode(salt))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?
    .try_get("id")?;
    for h in hashes {
        sqlx::query("INSERT INTO backup_codes (set_id, code_hash) VALUES ($1, $2)")
            .bind(set_id)
            .bind(h)
            .execute(&mut *conn)
            .await?;
    }
    Ok(codes
        .iter()
        .map(|c| twostep_common::recovery::display_backup_code(c))
        .collect())
}

/// `POST …/backup-codes`: a new set (the old one void), shown once.
async fn new_backup_codes(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
) -> ApiResult<(StatusCode, Json<BackupCodes>)> {
    let uid = user_id(&state, &username).await?;
    let mut change = AdminChange::begin(&state, &peer).await?;
    let now = change.now();
    let codes = create_backup_set(&state, change.conn(), uid, now).await?;
    change
        .commit(
            "backup_codes.create",
            Subject::user(&username).detail(format!("{} codes; the earlier set void", codes.len())),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(BackupCodes {
            codes,
            created_at: now,
        }),
    ))
}

/// The expiry of the user's open code, if they have one.
///
/// # Errors
/// Database errors.
pub async fn open_until(
    pool: &sqlx::AnyPool,
    uid: i64,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let sql = format!(
        "SELECT MAX(expires_at) AS until FROM temporary_access_codes WHERE user_id = $1 AND {}",
        open_at("$2")
    );
    let row = sqlx::query(&sql)
        .bind(uid)
        .bind(now)
        .fetch_one(pool)
        .await?;
    row.try_get::<Option<i64>, _>("until")
}

/// The id of the user's open code that `code` (normalised) is, if any;
/// the Argon2id checks run on the blocking pool.
///
/// # Errors
/// Database errors; a failed blocking task as an internal error.
pub async fn find(
    state: &AppState,
    uid: i64,
    code: &str,
    now: i64,
) -> Result<Option<i64>, ApiError> {
    let sql = format!(
        "SELECT id, code_hash FROM temporary_access_codes WHERE user_id = $1 AND {} ORDER BY id DESC",
        open_at("$2")
    );
    let rows = sqlx::query(&sql)
        .bind(uid)
        .bind(now)
        .fetch_all(&state.pool)
        .await?;
    for r in rows {
        let id: i64 = r.try_get("id")?;
        let phc: String = r.try_get("code_hash")?;
        let typed = Zeroizing::new(code.to_owned());
        let matched =
            tokio::task::spawn_blocking(move || crate::portal::password::verify(&phc, &typed))
                .await
                .map_err(|e| {
                    ApiError::new(ApiErrorCode::Internal, format!("code check failed: {e}"))
                })?;
        if matched {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Uses code `id` once in `tx`; the uses left after this one, or `None`
/// when it stopped working since [`find`] (used up by a concurrent
/// request, revoked, expired).
///
/// # Errors
/// Database errors.
pub async fn use_once(
    conn: &mut dyn WriteConn,
    id: i64,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let sql = format!(
        "UPDATE temporary_access_codes SET uses_left = uses_left - 1, last_used_at = $2
         WHERE id = $1 AND {} RETURNING uses_left",
        open_at("$2")
    );
    Ok(fetch_int(conn, &sql, &[id.into(), now.into()], "uses_left")
        .await?
        .map(|left| left.unwrap_or(0)))
}

/// Revokes the user's open codes within `conn`; how many.
async fn revoke_open(conn: &mut AnyConnection, uid: i64, now: i64) -> Result<u64, sqlx::Error> {
    let sql = format!(
        "UPDATE temporary_access_codes SET revoked_at = $2 WHERE user_id = $1 AND {}",
        open_at("$2")
    );
    Ok(sqlx::query(&sql)
        .bind(uid)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

fn out_of_range(field: &str, value: u32, max: u32) -> ApiError {
    ApiError::new(
        ApiErrorCode::InvalidField,
        format!("{field} must be 1..={max}, not {value}"),
    )
}

/// Issues a code: 400 `invalid_field` for `hours` outside 1..=720 or
/// `uses` outside 1..=100; with `reset_methods` the user's methods go
/// first, in the same transaction.
async fn issue(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
    JsonBody(req): JsonBody<IssueTap>,
) -> ApiResult<(StatusCode, Json<TapIssued>)> {
    let hours = req.hours.unwrap_or(TAP_DEFAULT_HOURS);
    if !(1..=TAP_MAX_HOURS).contains(&hours) {
        return Err(out_of_range("hours", hours, TAP_MAX_HOURS));
    }
    let uses = req.uses.unwrap_or(1);
    if !(1..=TAP_MAX_USES).contains(&uses) {
        return Err(out_of_range("uses", uses, TAP_MAX_USES));
    }
    let uid = user_id(&state, &username).await?;
    let code = Zeroizing::new(generate_tap());
    let to_hash = code.clone();
    let phc = tokio::task::spawn_blocking(move || crate::portal::password::hash(&to_hash))
        .await
        .map_err(|e| {
            ApiError::new(ApiErrorCode::Internal, format!("code hashing failed: {e}"))
        })??;
    let mut change = AdminChange::begin(&state, &peer).await?;
    let (deleted, cancelled) = if req.reset_methods {
        delete_all_methods(&state, &mut change, uid, &peer).await?
    } else {
        (0, Vec::new())
    };
    let now = change.now();
    let expires_at = now.saturating_add(i64::from(hours) * 3600);
    let revoked = revoke_open(change.conn(), uid, now).await?;
    sqlx::query(
        "INSERT INTO temporary_access_codes (user_id, code_hash, created_at, expires_at, uses_left)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(uid)
    .bind(&phc)
    .bind(now)
    .bind(expires_at)
    .bind(i64::from(uses))
    .execute(change.conn())
    .await?;
    let mut detail = format!(
        "valid until {}, {uses} use(s)",
        crate::portal::time::date_time(expires_at)
    );
    if req.reset_methods {
        detail.push_str(&format!("; {deleted} methods deleted first"));
    }
    if revoked > 0 {
        detail.push_str("; the earlier open code revoked");
    }
    change
        .commit("tap.issue", Subject::user(&username).detail(detail))
        .await?;
    state.push.hub.finished(&cancelled);
    tracing::warn!(
        username = %username,
        expires_at,
        uses,
        methods_deleted = deleted,
        "temporary access code issued"
    );
    Ok((
        StatusCode::CREATED,
        Json(TapIssued {
            code: display_tap(&code),
            expires_at,
            uses,
            methods_deleted: deleted,
        }),
    ))
}

/// Revokes the user's open codes (204 whether or not there were any).
async fn revoke(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
) -> ApiResult<StatusCode> {
    let uid = user_id(&state, &username).await?;
    let mut change = AdminChange::begin(&state, &peer).await?;
    let now = change.now();
    let n = revoke_open(change.conn(), uid, now).await?;
    change
        .commit(
            "tap.revoke",
            Subject::user(&username).detail(format!("{n} open code(s) revoked")),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
