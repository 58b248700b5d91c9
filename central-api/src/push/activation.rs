//! Device activation: an admin creates a one-time code (128 bits, kept as
//! its SHA-256, valid `[api.push] activation_lifetime` seconds); the
//! device sends it with its name and Ed25519 public key and becomes a
//! method of kind `push`. The code is consumed by one statement whose
//! `WHERE` requires it unused and unexpired, so it works once. Resetting,
//! disabling or deleting the user voids their open codes ([`void_open`]);
//! no code is created for, nor a device registered to, a disabled user.

use crate::audit::{write_audit, AdminChange, Audit, Subject};
use crate::auth::AdminAuth;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathArgs, Peer};
use crate::rows::{method_from_row, METHOD_COLUMNS};
use crate::state::{AppState, Shared};
use crate::validate::{check_text, check_username};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use twostep_common::api::ApiErrorCode;
use twostep_common::push::{
    activation_uri, parse_public_key, ActivateDevice, Activation, CreateActivation, DeviceActivated,
};

/// Random bytes of an activation code (128 bits).
pub const CODE_BYTES: usize = 16;

/// How long used and expired activations are kept (to tell "used" and
/// "expired" apart from "unknown"), in seconds: one day.
const KEEP_SECONDS: i64 = 86_400;

/// The stored form of a code: SHA-256, hex, of its canonical text
/// (upper case, without spaces or dashes a person may have typed).
fn code_hash(code: &str) -> String {
    let canonical: String = code
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Voids the open (unused, unexpired) activation codes of user `uid` in
/// the transaction on `conn` (the user reset, disabled or deleted), so a
/// leaked activation URI registers no device afterwards; audits one
/// `push.activation.void` record naming `why` when any was voided, and
/// returns how many were.
///
/// # Errors
/// The database's.
pub async fn void_open(
    conn: &mut AnyConnection,
    now: i64,
    uid: i64,
    peer: Option<&str>,
    why: &str,
) -> Result<u64, ApiError> {
    let n = sqlx::query(
        "DELETE FROM push_activations WHERE user_id = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(uid)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if n > 0 {
        let username = super::challenge::username_of(conn, uid).await?;
        write_audit(
            &mut *conn,
            now,
            &Audit {
                username: username.as_deref(),
                detail: Some(format!("{n} open activation codes voided: {why}")),
                ..Audit::admin_ok("push.activation.void", peer)
            },
        )
        .await?;
    }
    Ok(n)
}

/// `POST /v1/admin/users/{username}/methods/push`.
pub(crate) async fn create(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
    JsonBody(req): JsonBody<CreateActivation>,
) -> Result<(StatusCode, Json<Activation>), ApiError> {
    check_username(&username)?;
    if let Some(l) = &req.label {
        check_text("label", l)?;
    }
    let code = new_code();
    let mut change = AdminChange::begin(&state, &peer).await?;
    let now = change.now();
    let lifetime = i64::try_from(state.push.config.activation_lifetime).unwrap_or(600);
    let expires_at = now.saturating_add(lifetime);
    let inserted = sqlx::query(
        "INSERT INTO push_activations (code_hash, user_id, label, created_at, expires_at)
         SELECT $1, u.id, $2, $3, $4 FROM users u WHERE u.username = $5 AND u.disabled = 0
         RETURNING user_id",
    )
    .bind(code_hash(&code))
    .bind(req.label.as_deref())
    .bind(now)
    .bind(expires_at)
    .bind(&username)
    .fetch_optional(change.conn())
    .await?;
    if inserted.is_none() {
        let user = sqlx::query("SELECT id FROM users WHERE username = $1")
            .bind(&username)
            .fetch_optional(change.conn())
            .await?;
        return Err(match user {
            Some(_) => user_disabled(&username),
            None => ApiError::unknown_user(&username),
        });
    }
    sqlx::query("DELETE FROM push_activations WHERE expires_at < $1")
        .bind(now.saturating_sub(KEEP_SECONDS))
        .execute(change.conn())
        .await?;
    change
        .commit(
            "push.activation",
            Subject::user(&username).detail(format!("expires at {expires_at}")),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Activation {
            activation_uri: activation_uri(&state.push.public_url, &code, &username),
            username,
            code,
            expires_at,
        }),
    ))
}

/// A new activation code: [`CODE_BYTES`] random bytes, Base32.
fn new_code() -> String {
    use rand::RngCore;
    let mut raw = [0u8; CODE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    data_encoding::BASE32_NOPAD.encode(&raw)
}

/// Creates a `pending` activation code for user `uid` on `conn` (the
/// Security info page's "add a device" flow): the device it registers is
/// pending until the user approves its test notification. Returns the
/// code and its activation URI; the caller keeps the code sealed in the
/// page session and audits.
///
/// # Errors
/// The database's.
pub(crate) async fn create_pending(
    state: &AppState,
    conn: &mut AnyConnection,
    uid: i64,
    username: &str,
    now: i64,
) -> Result<(String, String), ApiError> {
    let code = new_code();
    let lifetime = i64::try_from(state.push.config.activation_lifetime).unwrap_or(600);
    sqlx::query(
        "INSERT INTO push_activations (code_hash, user_id, label, created_at, expires_at, pending)
         VALUES ($1, $2, NULL, $3, $4, 1)",
    )
    .bind(code_hash(&code))
    .bind(uid)
    .bind(now)
    .bind(now.saturating_add(lifetime))
    .execute(&mut *conn)
    .await?;
    let uri = activation_uri(&state.push.public_url, &code, username);
    Ok((code, uri))
}

/// The device a page activation code registered, if it has been used:
/// `(method id, device label)`.
///
/// # Errors
/// The database's.
pub(crate) async fn pending_device(
    state: &AppState,
    uid: i64,
    code: &str,
) -> Result<Option<(i64, String)>, ApiError> {
    let row = sqlx::query(
        "SELECT m.id, m.label FROM push_activations a JOIN methods m ON m.id = a.method_id
         WHERE a.code_hash = $1 AND a.user_id = $2 AND m.user_id = $2 AND a.pending = 1",
    )
    .bind(code_hash(code))
    .bind(uid)
    .fetch_optional(&state.pool)
    .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("label")?)))
        .transpose()
}

/// Whether the page activation `code` of user `uid` can still be used or
/// has been (false: expired unused, or gone).
///
/// # Errors
/// The database's.
pub(crate) async fn pending_code_live(
    state: &AppState,
    uid: i64,
    code: &str,
) -> Result<bool, ApiError> {
    let row = sqlx::query(
        "SELECT 1 FROM push_activations WHERE code_hash = $1 AND user_id = $2
         AND (used_at IS NOT NULL OR expires_at > $3)",
    )
    .bind(code_hash(code))
    .bind(uid)
    .bind(state.now())
    .fetch_optional(&state.pool)
    .await?;
    Ok(row.is_some())
}

/// Forgets the page activation `code` of user `uid` and the pending
/// device it registered, if any (the flow abandoned or restarted).
///
/// # Errors
/// The database's.
pub(crate) async fn discard_pending(
    conn: &mut AnyConnection,
    uid: i64,
    code: &str,
) -> Result<(), ApiError> {
    sqlx::query(
        "DELETE FROM methods WHERE pending = 1 AND user_id = $1
         AND id IN (SELECT method_id FROM push_activations WHERE code_hash = $2 AND user_id = $1)",
    )
    .bind(uid)
    .bind(code_hash(code))
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM push_activations WHERE code_hash = $1 AND user_id = $2")
        .bind(code_hash(code))
        .bind(uid)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes user `uid`'s pending devices older than `max_age` seconds
/// (flows abandoned without Cancel).
///
/// # Errors
/// The database's.
pub(crate) async fn prune_pending(
    conn: &mut AnyConnection,
    uid: i64,
    now: i64,
    max_age: i64,
) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM methods WHERE pending = 1 AND user_id = $1 AND created_at < $2")
        .bind(uid)
        .bind(now.saturating_sub(max_age))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// 403 `device_disabled`: `username` is disabled, so no device is
/// registered for them.
fn user_disabled(username: &str) -> ApiError {
    ApiError::new(
        ApiErrorCode::DeviceDisabled,
        format!(
            "user {username:?} is disabled: no push device can be registered for them (`twostep user enable {username}` first)"
        ),
    )
}

/// `POST /v1/device/activate`.
pub(crate) async fn activate(
    State(state): State<Shared>,
    peer: Peer,
    JsonBody(req): JsonBody<ActivateDevice>,
) -> Result<(StatusCode, Json<DeviceActivated>), ApiError> {
    check_text("device_name", &req.device_name)?;
    parse_public_key(&req.public_key)
        .map_err(|m| ApiError::new(ApiErrorCode::InvalidPublicKey, m))?;
    let hash = code_hash(&req.code);
    let now = state.now();
    let peer = peer.text();
    let mut tx = state.pool.begin().await?;
    let used = sqlx::query(
        "UPDATE push_activations SET used_at = $2
         WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2
         RETURNING user_id, label, pending",
    )
    .bind(&hash)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(used) = used else {
        tx.rollback().await?;
        return Err(refusal(&state, &hash, now, peer.as_deref()).await?);
    };
    let uid: i64 = used.try_get("user_id")?;
    let user = sqlx::query("SELECT username, disabled FROM users WHERE id = $1")
        .bind(uid)
        .fetch_one(&mut *tx)
        .await?;
    if user.try_get::<i64, _>("disabled")? != 0 {
        tx.rollback().await?;
        let username: String = user.try_get("username")?;
        let err = user_disabled(&username);
        return Err(audit_refused(state.as_ref(), now, &username, peer.as_deref(), err).await?);
    }
    let label = used
        .try_get::<Option<String>, _>("label")?
        .unwrap_or_else(|| req.device_name.clone());
    // A page activation's device waits for its test notification: not
    // the default, and no login reaches it (migration 6).
    let pending: i64 = used.try_get("pending")?;
    let row = sqlx::query(&format!(
        "INSERT INTO methods (user_id, kind, label, is_default, created_at, public_key, pending)
         SELECT $1, 'push', $2,
                CASE WHEN $5 = 1 OR EXISTS (SELECT 1 FROM methods m WHERE m.user_id = $1 AND m.pending = 0)
                     THEN 0 ELSE 1 END,
                $3, $4, $5
         RETURNING {METHOD_COLUMNS}"
    ))
    .bind(uid)
    .bind(&label)
    .bind(now)
    .bind(&req.public_key)
    .bind(pending)
    .fetch_one(&mut *tx)
    .await?;
    let method = method_from_row(&row, "")?;
    sqlx::query("UPDATE push_activations SET method_id = $1 WHERE code_hash = $2")
        .bind(method.id)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    let username = super::challenge::username_of(&mut *tx, uid)
        .await?
        .unwrap_or_default();
    let actor = format!("device:{}", method.id);
    write_audit(
        &mut *tx,
        now,
        &Audit {
            actor: &actor,
            action: "push.activate",
            username: Some(&username),
            remote_addr: peer.as_deref(),
            result: Some("ok"),
            detail: Some(format!("device {} {:?}", method.id, req.device_name)),
            ..Audit::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(DeviceActivated {
            device_id: method.id,
            username,
            label: method.label,
        }),
    ))
}

/// Why the code with `hash` was not accepted (audited when it names a
/// user): 409 used, 410 expired, 404 unknown.
async fn refusal(
    state: &AppState,
    hash: &str,
    now: i64,
    peer: Option<&str>,
) -> Result<ApiError, ApiError> {
    let row = sqlx::query(
        "SELECT a.used_at, a.expires_at, u.username FROM push_activations a
         JOIN users u ON u.id = a.user_id WHERE a.code_hash = $1",
    )
    .bind(hash)
    .fetch_optional(&state.pool)
    .await?;
    let Some(row) = row else {
        return Ok(ApiError::new(
            ApiErrorCode::UnknownActivation,
            "no such activation code",
        ));
    };
    let err = if row.try_get::<Option<i64>, _>("used_at")?.is_some() {
        ApiError::new(
            ApiErrorCode::ActivationUsed,
            "this activation code was used already",
        )
    } else {
        ApiError::new(
            ApiErrorCode::ActivationExpired,
            format!(
                "this activation code expired at {}; create a new one",
                row.try_get::<i64, _>("expires_at")?
            ),
        )
    };
    let username: String = row.try_get("username")?;
    audit_refused(state, now, &username, peer, err).await
}

/// Audits `err` as the refusal of an activation for `username`, and
/// returns it.
async fn audit_refused(
    state: &AppState,
    now: i64,
    username: &str,
    peer: Option<&str>,
    err: ApiError,
) -> Result<ApiError, ApiError> {
    let (_, code, _) = err.parts();
    write_audit(
        &state.pool,
        now,
        &Audit {
            actor: "device",
            action: "push.activate",
            username: Some(username),
            remote_addr: peer,
            result: Some(code.as_str()),
            ..Audit::default()
        },
    )
    .await?;
    Ok(err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn typed_codes_match_their_canonical_form() {
        assert_eq!(
            super::code_hash("abcd-efgh ij"),
            super::code_hash("ABCDEFGHIJ")
        );
        assert_ne!(
            super::code_hash("ABCDEFGHIJ"),
            super::code_hash("ABCDEFGHIK")
        );
        assert_eq!(super::code_hash("A").len(), 64);
    }
}
