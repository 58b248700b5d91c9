//! One phone number once per user and channel: a number a user already
//! has for text messages (or for calls) is refused when it is added again
//! for the same channel, however it is typed (`+15550100042`, `+1 555 010
//! 0042`: the E.164 form is compared). The numbers are sealed, so the
//! user's phone methods of that channel are opened and compared.
//!
//! Applied by the page's add-phone flow (`portal/phone.rs` `send` and
//! `code_submit`) and by `POST /v1/admin/users/{username}/methods/phone`
//! (`phone.rs` `admin_enrol`), inside the transaction that saves.

use crate::error::ApiError;
use crate::phone::phone_aad;
use crate::state::AppState;
use sqlx::{AnyConnection, Row};
use twostep_common::api::ApiErrorCode;
use twostep_common::phone::{self, Channel};

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
