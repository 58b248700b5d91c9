//! Checks of names and labels in requests, each refused with a 400 and a
//! stable code.

use crate::error::ApiError;
use crate::state::ApiResult;
use twostep_common::api::{validate_username, ApiErrorCode};

/// Longest label or display name, in characters.
pub const MAX_LABEL_CHARS: usize = 128;

/// Checks a username ([`validate_username`]).
///
/// # Errors
/// 400 `invalid_username` with the reason.
pub(crate) fn check_username(name: &str) -> ApiResult<()> {
    validate_username(name).map_err(|m| ApiError::new(ApiErrorCode::InvalidUsername, m))
}

/// Checks a host name: the username rules.
///
/// # Errors
/// 400 `invalid_host_name` with the reason.
pub(crate) fn check_host_name(name: &str) -> ApiResult<()> {
    validate_username(name).map_err(|m| {
        ApiError::new(
            ApiErrorCode::InvalidHostName,
            m.replace("username", "host name"),
        )
    })
}

/// Checks a label or display name (`what`): not blank, at most
/// [`MAX_LABEL_CHARS`] characters, no control characters.
///
/// # Errors
/// 400 `invalid_field` naming `what`.
pub(crate) fn check_text(what: &str, s: &str) -> ApiResult<()> {
    if s.trim().is_empty() {
        return Err(ApiError::new(
            ApiErrorCode::InvalidField,
            format!("{what} is empty"),
        ));
    }
    if s.chars().count() > MAX_LABEL_CHARS || s.chars().any(char::is_control) {
        return Err(ApiError::new(
            ApiErrorCode::InvalidField,
            format!(
                "{what} must be at most {MAX_LABEL_CHARS} characters without control characters"
            ),
        ));
    }
    Ok(())
}
