//! The admin API side of the pages: `PUT /v1/admin/users/{username}/password`
//! (`twostep user passwd`) and `POST /v1/admin/users/{username}/invite`
//! (`twostep user invite`); see [`twostep_common::portal`].

use super::session::{delete_all, token_hash};
use crate::app::{write_audit, AdminAuth, AppState, Audit};
use crate::error::ApiError;
use crate::extract::{JsonBody, PathArgs, Peer};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sqlx::Row;
use std::sync::Arc;
use twostep_common::api::validate_username;
use twostep_common::portal::{
    check_password, CreateInvite, Invite, SetPassword, INVITE_LIFETIME_SECS, PORTAL_PATH,
};

fn now(state: &AppState) -> i64 {
    i64::try_from(state.clock.now()).unwrap_or(i64::MAX)
}

/// The user's row id and display name; 400 for a malformed name, 404 unknown.
async fn user_row(state: &AppState, username: &str) -> Result<(i64, Option<String>), ApiError> {
    validate_username(username).map_err(|m| ApiError::bad_request("invalid_username", m))?;
    let row = sqlx::query("SELECT id, display_name FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(&state.pool)
        .await?
        .ok_or_else(|| ApiError::unknown_user(username))?;
    Ok((row.try_get("id")?, row.try_get("display_name")?))
}

/// `PUT /v1/admin/users/{username}/password`: sets the page password
/// (Argon2id) and ends the user's page sessions. 400 `weak_password`.
pub async fn set_password(
    State(state): State<Arc<AppState>>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
    JsonBody(req): JsonBody<SetPassword>,
) -> Result<StatusCode, ApiError> {
    let (uid, display_name) = user_row(&state, &username).await?;
    check_password(&req.password, &username, display_name.as_deref())
        .map_err(|m| ApiError::bad_request("weak_password", m))?;
    let password = zeroize::Zeroizing::new(req.password);
    let phc = tokio::task::spawn_blocking(move || super::password::hash(&password))
        .await
        .map_err(|e| ApiError::Client {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "password_hash",
            message: e.to_string(),
        })??;
    let at = now(&state);
    let mut tx = state.pool.begin().await?;
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(uid)
        .bind(&phc)
        .execute(&mut *tx)
        .await?;
    let ended = delete_all(&mut *tx, uid, None).await?;
    let peer = peer.text();
    write_audit(
        &mut *tx,
        at,
        &Audit {
            username: Some(&username),
            detail: Some(format!("{ended} page sessions ended")),
            ..Audit::admin_ok("user.password", peer.as_deref())
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/admin/users/{username}/invite`: a new one-time setup link,
/// valid [`INVITE_LIFETIME_SECS`]; the user's earlier unused links stop
/// working. The token is answered once; the database keeps its SHA-256.
pub async fn invite(
    State(state): State<Arc<AppState>>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
    JsonBody(_req): JsonBody<CreateInvite>,
) -> Result<(StatusCode, Json<Invite>), ApiError> {
    let (uid, _) = user_row(&state, &username).await?;
    let token = crate::crypto::random_token();
    let at = now(&state);
    let expires_at = at + INVITE_LIFETIME_SECS;
    let mut tx = state.pool.begin().await?;
    sqlx::query(
        "DELETE FROM portal_invites WHERE user_id = $1 AND (used_at IS NULL OR expires_at <= $2)",
    )
    .bind(uid)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO portal_invites (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash(&token))
    .bind(uid)
    .bind(at)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    let peer = peer.text();
    write_audit(
        &mut *tx,
        at,
        &Audit {
            username: Some(&username),
            detail: Some(format!("valid until {expires_at}")),
            ..Audit::admin_ok("user.invite", peer.as_deref())
        },
    )
    .await?;
    tx.commit().await?;
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
