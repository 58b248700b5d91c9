//! Admin: users (create, list, show, disable / enable, delete, unlock).
//! Disabling a user cancels their open push challenges at once and voids
//! their open activation codes, as deleting does.

use crate::app::Routes;
use crate::audit::{AdminChange, Subject};
use crate::auth::AdminAuth;
use crate::error::{exists_as, ApiError};
use crate::extract::{JsonBody, PathArgs, Peer};
use crate::push::activation::void_open;
use crate::push::cancel_open;
use crate::rows::{load_user, method_from_row, UserRow, METHOD_COLUMNS, USER_COLUMNS};
use crate::state::{ApiResult, AppState, Shared};
use crate::validate::{check_text, check_username};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sqlx::Row;
use std::collections::HashMap;
use twostep_common::api::{paths, ApiErrorCode, CreateUser, Method, UpdateUser, User};

/// `/v1/admin/users`, `/v1/admin/users/{username}` and its `unlock`.
pub(crate) fn routes(r: Routes) -> Routes {
    r.get(paths::USERS, list_users)
        .post(paths::USERS, create_user)
        .get(paths::USER, show_user)
        .patch(paths::USER, update_user)
        .delete(paths::USER, delete_user)
        .post(paths::USER_UNLOCK, unlock_user)
}

async fn create_user(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    JsonBody(req): JsonBody<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    check_username(&req.username)?;
    if let Some(d) = &req.display_name {
        check_text("display_name", d)?;
    }
    let mut change = AdminChange::begin(&state, &peer).await?;
    let now = change.now();
    exists_as(
        sqlx::query(
            "INSERT INTO users (username, display_name, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(&req.username)
        .bind(req.display_name.as_deref())
        .bind(now)
        .fetch_one(change.conn())
        .await,
        ApiErrorCode::UserExists,
        || format!("user {:?} already exists", req.username),
    )?;
    change
        .commit("user.create", Subject::user(&req.username))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(load_user(&state, &req.username).await?),
    ))
}

async fn list_users(State(state): State<Shared>, _admin: AdminAuth) -> ApiResult<Json<Vec<User>>> {
    let now = state.now();
    let mut by_user: HashMap<i64, Vec<Method>> = HashMap::new();
    for row in sqlx::query(&format!(
        "SELECT {METHOD_COLUMNS} FROM methods WHERE pending = 0 ORDER BY id"
    ))
    .fetch_all(&state.pool)
    .await?
    {
        let uid: i64 = row.try_get("user_id")?;
        by_user
            .entry(uid)
            .or_default()
            .push(method_from_row(&row, "")?);
    }
    let rows = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users ORDER BY username"
    ))
    .fetch_all(&state.pool)
    .await?;
    let mut users = Vec::with_capacity(rows.len());
    for row in rows {
        let user = UserRow::from_row(&row)?;
        let methods = by_user.remove(&user.id).unwrap_or_default();
        users.push(user.into_user(now, methods));
    }
    Ok(Json(users))
}

async fn show_user(
    State(state): State<Shared>,
    _admin: AdminAuth,
    PathArgs(username): PathArgs<String>,
) -> ApiResult<Json<User>> {
    check_username(&username)?;
    Ok(Json(load_user(&state, &username).await?))
}

/// Begins one change of the user `username`: runs `stmt` (which must
/// write and return the user's id) with `username` bound as `$1` and
/// `extra` as `$2`; the caller adds its statements and commits.
///
/// # Errors
/// 400 `invalid_username`, 404 `unknown_user` when no row matched, 503
/// when the database fails.
async fn begin_user_change(
    state: &AppState,
    peer: &Peer,
    username: &str,
    stmt: &str,
    extra: Option<i64>,
) -> ApiResult<(AdminChange, i64)> {
    check_username(username)?;
    let mut change = AdminChange::begin(state, peer).await?;
    let mut q = sqlx::query(stmt).bind(username);
    if let Some(x) = extra {
        q = q.bind(x);
    }
    let Some(row) = q.fetch_optional(change.conn()).await? else {
        return Err(ApiError::unknown_user(username));
    };
    let uid: i64 = row.try_get("id")?;
    Ok((change, uid))
}

/// Runs one change of the user `username` ([`begin_user_change`]),
/// audited as `action`.
///
/// # Errors
/// Those of [`begin_user_change`].
async fn change_user(
    state: &AppState,
    peer: &Peer,
    username: &str,
    stmt: &str,
    action: &str,
) -> ApiResult<()> {
    let (change, _) = begin_user_change(state, peer, username, stmt, None).await?;
    change.commit(action, Subject::user(username)).await
}

async fn update_user(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
    JsonBody(req): JsonBody<UpdateUser>,
) -> ApiResult<Json<User>> {
    check_username(&username)?;
    if let Some(disabled) = req.disabled {
        let (mut change, uid) = begin_user_change(
            &state,
            &peer,
            &username,
            "UPDATE users SET disabled = $2 WHERE username = $1 RETURNING id",
            Some(i64::from(disabled)),
        )
        .await?;
        let mut cancelled = Vec::new();
        let action = if disabled {
            let now = change.now();
            let peer = peer.text();
            void_open(change.conn(), now, uid, peer.as_deref(), "user disabled").await?;
            cancelled =
                cancel_open(&state, change.conn(), uid, peer.as_deref(), "user disabled").await?;
            "user.disable"
        } else {
            "user.enable"
        };
        change.commit(action, Subject::user(&username)).await?;
        state.push.hub.finished(&cancelled);
    }
    Ok(Json(load_user(&state, &username).await?))
}

async fn delete_user(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
) -> ApiResult<StatusCode> {
    let (mut change, uid) = begin_user_change(
        &state,
        &peer,
        &username,
        "UPDATE users SET disabled = 1 WHERE username = $1 RETURNING id",
        None,
    )
    .await?;
    let now = change.now();
    let text = peer.text();
    void_open(change.conn(), now, uid, text.as_deref(), "user deleted").await?;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(uid)
        .execute(change.conn())
        .await?;
    change
        .commit("user.delete", Subject::user(&username))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unlock_user(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
) -> ApiResult<Json<User>> {
    change_user(
        &state,
        &peer,
        &username,
        "UPDATE users SET locked_until = NULL, failure_count = 0, failure_window_start = NULL,
                          push_blocked_at = NULL
         WHERE username = $1 RETURNING id",
        "user.unlock",
    )
    .await?;
    Ok(Json(load_user(&state, &username).await?))
}
