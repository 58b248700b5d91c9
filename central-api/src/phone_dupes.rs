//! One phone number once per user and channel: a number a user already
//! has for text messages (or for calls) is refused when it is added again
//! for the same channel, however it is typed (`+15550100042`, `+1 555 010
//! 0042`: the E.164 form is compared). The numbers are sealed, so the
//! user's phone methods of that channel are opened and compared.
//!
//! Applied by the page's add-phone flow (`portal/phone.rs` `send` and
//! `code_submit`) and, for `POST /v1/admin/users/{username}/methods/phone`,
//! by [`refuse_duplicate`], a layer in front of that route's handler.

use crate::auth::AdminAuth;
use crate::error::ApiError;
use crate::phone::phone_aad;
use crate::state::{AppState, Shared};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sqlx::{AnyConnection, Row};
use twostep_common::api::{paths, ApiErrorCode};
use twostep_common::phone::{self, Channel, EnrolPhone};

/// The id of user `uid`'s phone method for `channel` whose number is
/// `e164` (E.164, as [`phone::parse_e164`] gives it), if there is one.
///
/// # Errors
/// Database errors; 500 when a stored number does not decrypt.
pub async fn existing(
    state: &AppState,
    conn: &mut AnyConnection,
    uid: i64,
    channel: Channel,
    e164: &str,
) -> Result<Option<i64>, ApiError> {
    let rows = sqlx::query(
        "SELECT id, phone_sealed FROM methods
         WHERE user_id = $1 AND kind = $2 AND phone_sealed IS NOT NULL",
    )
    .bind(uid)
    .bind(channel.as_str())
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let id: i64 = r.try_get("id")?;
        let hex_sealed: String = r.try_get("phone_sealed")?;
        let sealed = hex::decode(hex_sealed)
            .map_err(|_| ApiError::Secret(format!("method {id}: stored number is not hex")))?;
        let plain = state
            .secrets
            .open(&sealed, &phone_aad(uid))
            .map_err(|e| ApiError::Secret(format!("method {id}: {e}")))?;
        if plain.as_slice() == e164.as_bytes() {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The 409 answer for a number the user has already (method `id`).
pub fn duplicate_error(username: &str, channel: Channel, e164: &str, id: i64) -> ApiError {
    let by = match channel {
        Channel::Sms => "text messages",
        Channel::Voice => "calls",
    };
    ApiError::new(
        ApiErrorCode::Exists,
        format!(
            "number: {username} already has {} for {by} (method {id})",
            phone::mask(e164)
        ),
    )
}

/// A layer over the API's routes: on `POST
/// /v1/admin/users/{username}/methods/phone` from an admin, with a body
/// and number the handler would accept, answers 409 [`duplicate_error`]
/// when the user has that number for that channel already; every other
/// request (and every request this check cannot judge: not an admin, a
/// malformed body or number, an unknown user) goes on unchanged to the
/// handler, which answers it as before.
pub async fn refuse_duplicate(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let is_enrol = req.method() == axum::http::Method::POST && is_enrol_path(req.uri().path());
    if !is_enrol {
        return next.run(req).await;
    }
    // The admin token first, before the body is read (as the handler's
    // own extractors do): others go on to the handler unchanged.
    let (mut parts, body) = req.into_parts();
    let admin = AdminAuth::from_request_parts(&mut parts, &state)
        .await
        .is_ok();
    let username = Path::<String>::from_request_parts(&mut parts, &state)
        .await
        .ok()
        .map(|p| p.0);
    let (Some(username), true) = (username, admin) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let bytes = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                ApiErrorCode::BodyTooLarge,
                format!("the body is larger than {} bytes", state.max_body_bytes),
            )
            .into_response()
        }
    };
    let req_again = |parts, bytes| Request::from_parts(parts, axum::body::Body::from(bytes));
    let Ok(enrol) = serde_json::from_slice::<EnrolPhone>(&bytes) else {
        return next.run(req_again(parts, bytes)).await;
    };
    let Ok(number) = phone::parse_e164(&enrol.number) else {
        return next.run(req_again(parts, bytes)).await;
    };
    match duplicate_of(&state, &username, enrol.channel, &number).await {
        Ok(Some(id)) => duplicate_error(&username, enrol.channel, &number, id).into_response(),
        Ok(None) => next.run(req_again(parts, bytes)).await,
        Err(e) => e.into_response(),
    }
}

/// Whether `path` is [`paths::USER_PHONE`] with some username.
fn is_enrol_path(path: &str) -> bool {
    let (head, tail) = paths::USER_PHONE
        .split_once("{username}")
        .unwrap_or((paths::USER_PHONE, ""));
    path.strip_prefix(head)
        .and_then(|rest| rest.strip_suffix(tail))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// [`existing`] for the user named `username`; `None` for an unknown user
/// (the handler answers that).
async fn duplicate_of(
    state: &AppState,
    username: &str,
    channel: Channel,
    e164: &str,
) -> Result<Option<i64>, ApiError> {
    let Some(r) = sqlx::query("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(&state.pool)
        .await?
    else {
        return Ok(None);
    };
    let uid: i64 = r.try_get("id")?;
    let mut conn = state.pool.acquire().await?;
    existing(state, &mut conn, uid, channel, e164).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_admin_phone_route_is_judged() {
        assert!(super::is_enrol_path("/v1/admin/users/bob/methods/phone"));
        assert!(!super::is_enrol_path("/v1/admin/users//methods/phone"));
        assert!(!super::is_enrol_path("/v1/admin/users/a/b/methods/phone"));
        assert!(!super::is_enrol_path("/v1/admin/users/bob/methods/push"));
        assert!(!super::is_enrol_path("/v1/host/users/bob/otp/send"));
    }
}
