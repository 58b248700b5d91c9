//! The admin API side of the pages: `PUT /v1/admin/users/{username}/password`
//! (`twostep user passwd`) and `POST /v1/admin/users/{username}/invite`
//! (`twostep user invite`); see [`twostep_common::portal`].

use super::session::{delete_all, token_hash};
use crate::app::Routes;
use crate::audit::{AdminChange, Subject};
use crate::auth::AdminAuth;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathArgs, Peer};
use crate::state::{ApiResult, AppState, Shared};
use crate::validate::check_username;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sqlx::Row;
use twostep_common::api::{paths, ApiErrorCode};
use twostep_common::portal::{
    check_password, CreateInvite, Invite, SetPassword, INVITE_LIFETIME_SECS, PORTAL_PATH,
};

/// `PUT /v1/admin/users/{username}/password` and `POST .../invite`.
pub(crate) fn routes(r: Routes) -> Routes {
    r.put(paths::USER_PASSWORD, set_password)
        .post(paths::USER_INVITE, invite)
}

/// The user's row id and display name; 400 for a malformed name, 404 unknown.
async fn user_row(state: &AppState, username: &str) -> ApiResult<(i64, Option<String>)> {
    check_username(username)?;
    let row = sqlx::query("SELECT id, display_name FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(&state.pool)
        .await?
        .ok_or_else(|| ApiError::unknown_user(username))?;
    Ok((row.try_get("id")?, row.try_get("display_name")?))
}

/// `PUT /v1/admin/users/{username}/password`: sets the page password
/// (Argon2id) and ends the user's page sessions. 400 `weak_password`.
async fn set_password(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
    JsonBody(req): JsonBody<SetPassword>,
) -> ApiResult<StatusCode> {
    let (uid, display_name) = user_row(&state, &username).await?;
    check_password(&req.password, &username, display_name.as_deref())
        .map_err(|m| ApiError::new(ApiErrorCode::WeakPassword, m))?;
    let password = zeroize::Zeroizing::new(req.password);
    let phc = tokio::task::spawn_blocking(move || super::password::hash(&password))
        .await
        .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))??;
    let mut change = AdminChange::begin(&state, &peer).await?;
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(uid)
        .bind(&phc)
        .execute(change.conn())
        .await?;
    let ended = delete_all(change.conn(), uid, None).await?;
    change
        .commit(
            "user.password",
            Subject::user(&username).detail(format!("{ended} page sessions ended")),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/admin/users/{username}/invite`: a new one-time setup link,
/// valid [`INVITE_LIFETIME_SECS`]; the user's earlier unused links stop
/// working. The token is answered once; the database keeps its SHA-256.
async fn invite(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
    JsonBody(_req): JsonBody<CreateInvite>,
) -> ApiResult<(StatusCode, Json<Invite>)> {
    let (uid, _) = user_row(&state, &username).await?;
    let token = crate::crypto::random_token();
    let mut change = AdminChange::begin(&state, &peer).await?;
    let at = change.now();
    let expires_at = at + INVITE_LIFETIME_SECS;
    sqlx::query(
        "DELETE FROM portal_invites WHERE user_id = $1 AND (used_at IS NULL OR expires_at <= $2)",
    )
    .bind(uid)
    .bind(at)
    .execute(change.conn())
    .await?;
    sqlx::query(
        "INSERT INTO portal_invites (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash(&token))
    .bind(uid)
    .bind(at)
    .bind(expires_at)
    .execute(change.conn())
    .await?;
    change
        .commit(
            "user.invite",
            Subject::user(&username).detail(format!(
                "valid until {}",
                crate::portal::time::date_time(expires_at)
            )),
        )
        .await?;
    let path = format!("{PORTAL_PATH}/invite/{}", token.as_str());
    Ok((
        StatusCode::CREATED,
        Json(Invite {
            username,
            url: state
                .portal
                .public_url
                .as_ref()
                .map(|u| format!("{u}{path}")),
            path,
            expires_at,
        }),
    ))
}
