//! Admin: a user's verification methods (TOTP enrolment, delete one,
//! reset all). Deleting a push device or resetting cancels the user's
//! open push challenges ([`crate::push::cancel_open`]).

use crate::app::Routes;
use crate::audit::{AdminChange, Subject};
use crate::auth::AdminAuth;
use crate::crypto::totp_aad;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathArgs, Peer};
use crate::rows::{method_from_row, METHOD_COLUMNS};
use crate::state::{ApiResult, AppState, Shared};
use crate::validate::{check_text, check_username};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sqlx::{AnyConnection, Row};
use twostep_common::api::{paths, ApiErrorCode, EnrolTotp, TotpEnrolment};
use twostep_common::totp::{self, TotpParams};

/// Default label of a TOTP method.
pub const DEFAULT_TOTP_LABEL: &str = "Authenticator app";

/// `/v1/admin/users/{username}/methods/totp`, `.../methods/{id}` and
/// `.../methods`.
pub(crate) fn routes(r: Routes) -> Routes {
    r.post(paths::USER_TOTP, enrol_totp)
        .delete(paths::USER_METHOD, delete_method)
        .delete(paths::USER_METHODS, reset_methods)
}

async fn enrol_totp(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
    JsonBody(req): JsonBody<EnrolTotp>,
) -> ApiResult<(StatusCode, Json<TotpEnrolment>)> {
    check_username(&username)?;
    let label = req.label.unwrap_or_else(|| DEFAULT_TOTP_LABEL.to_owned());
    check_text("label", &label)?;
    let params = TotpParams {
        skew_steps: state.skew_steps,
        ..TotpParams::default()
    };
    let mut change = AdminChange::begin(&state, &peer).await?;
    let now = change.now();
    // Write first (SQLite takes the write lock here); the first method
    // becomes the default.
    let row = sqlx::query(
        "INSERT INTO methods (user_id, kind, label, is_default, created_at, digits, step_seconds)
         SELECT u.id, 'totp', $2,
                CASE WHEN EXISTS (SELECT 1 FROM methods m WHERE m.user_id = u.id AND m.pending = 0) THEN 0 ELSE 1 END,
                $3, $4, $5
         FROM users u WHERE u.username = $1
         RETURNING id, user_id",
    )
    .bind(&username)
    .bind(&label)
    .bind(now)
    .bind(i64::from(params.digits))
    .bind(params.step_seconds as i64)
    .fetch_optional(change.conn())
    .await?
    .ok_or_else(|| ApiError::unknown_user(&username))?;
    let method_id: i64 = row.try_get("id")?;
    let user_id: i64 = row.try_get("user_id")?;
    let secret = zeroize::Zeroizing::new(totp::generate_secret());
    let sealed = state
        .secrets
        .seal(secret.as_ref(), &totp_aad(method_id, user_id))
        .map_err(ApiError::Secret)?;
    sqlx::query("UPDATE methods SET secret_sealed = $1 WHERE id = $2")
        .bind(hex::encode(sealed))
        .bind(method_id)
        .execute(change.conn())
        .await?;
    let method = method_from_row(
        &sqlx::query(&format!(
            "SELECT {METHOD_COLUMNS} FROM methods WHERE id = $1"
        ))
        .bind(method_id)
        .fetch_one(change.conn())
        .await?,
        "",
    )?;
    change
        .commit(
            "totp.enrol",
            Subject::user(&username).detail(format!("method {method_id}")),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrolment {
            method,
            secret_base32: totp::secret_base32(secret.as_ref()),
            otpauth_uri: totp::otpauth_uri(&state.issuer, &username, secret.as_ref(), &params),
        }),
    ))
}

/// The row id of the user `username`.
///
/// # Errors
/// 400 `invalid_username`, 404 `unknown_user`, 503 when the database fails.
pub(crate) async fn user_id(state: &AppState, username: &str) -> ApiResult<i64> {
    check_username(username)?;
    let row = sqlx::query("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(&state.pool)
        .await?
        .ok_or_else(|| ApiError::unknown_user(username))?;
    Ok(row.try_get("id")?)
}

async fn delete_method(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs((username, id)): PathArgs<(String, i64)>,
) -> ApiResult<StatusCode> {
    let uid = user_id(&state, &username).await?;
    let mut change = AdminChange::begin(&state, &peer).await?;
    let deleted =
        sqlx::query("DELETE FROM methods WHERE id = $1 AND user_id = $2 RETURNING id, kind")
            .bind(id)
            .bind(uid)
            .fetch_optional(change.conn())
            .await?;
    let Some(deleted) = deleted else {
        return Err(ApiError::new(
            ApiErrorCode::UnknownMethod,
            format!("user {username:?} has no method {id}"),
        ));
    };
    promote_default(change.conn(), uid).await?;
    let kind: String = deleted.try_get("kind")?;
    let cancelled = if kind == "push" {
        let peer = peer.text();
        crate::push::cancel_open(
            &state,
            change.conn(),
            uid,
            peer.as_deref(),
            "device deleted",
        )
        .await?
    } else {
        Vec::new()
    };
    change
        .commit(
            "method.delete",
            Subject::user(&username).detail(format!("method {id} ({kind})")),
        )
        .await?;
    state.push.hub.finished(&cancelled);
    Ok(StatusCode::NO_CONTENT)
}

/// Makes the oldest remaining method the default when none is.
pub(crate) async fn promote_default(conn: &mut AnyConnection, uid: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE methods SET is_default = 1
         WHERE id = (SELECT MIN(id) FROM methods WHERE user_id = $1 AND pending = 0)
           AND NOT EXISTS (SELECT 1 FROM methods WHERE user_id = $1 AND is_default = 1)",
    )
    .bind(uid)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes every method of user `uid` within `change`, voids their open
/// activation codes and cancels their open push challenges (the old
/// phone's answers refused from then on); the methods deleted and the
/// challenges to announce once `change` is committed.
///
/// # Errors
/// Database errors.
pub(crate) async fn delete_all_methods(
    state: &AppState,
    change: &mut AdminChange,
    uid: i64,
    peer: &Peer,
) -> Result<(u64, Vec<String>), ApiError> {
    let n = sqlx::query("DELETE FROM methods WHERE user_id = $1")
        .bind(uid)
        .execute(change.conn())
        .await?
        .rows_affected();
    let peer = peer.text();
    let now = change.now();
    crate::push::activation::void_open(change.conn(), now, uid, peer.as_deref(), "methods reset")
        .await?;
    let cancelled =
        crate::push::cancel_open(state, change.conn(), uid, peer.as_deref(), "methods reset")
            .await?;
    Ok((n, cancelled))
}

async fn reset_methods(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
) -> ApiResult<StatusCode> {
    let uid = user_id(&state, &username).await?;
    let mut change = AdminChange::begin(&state, &peer).await?;
    let (n, cancelled) = delete_all_methods(&state, &mut change, uid, &peer).await?;
    change
        .commit(
            "method.reset",
            Subject::user(&username).detail(format!("{n} methods deleted")),
        )
        .await?;
    state.push.hub.finished(&cancelled);
    Ok(StatusCode::NO_CONTENT)
}
