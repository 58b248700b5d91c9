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

/// Whether `c` is refused in shown text: a control character (Unicode
/// category Cc), or a bidirectional formatting character that can make
/// text read otherwise than it is stored (U+200E/U+200F marks, U+061C,
/// U+202A–U+202E embeddings and overrides, U+2066–U+2069 isolates;
/// Unicode UAX #9, CVE-2021-42574).
pub(crate) fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// Checks a label or display name (`what`): not blank, at most
/// [`MAX_LABEL_CHARS`] characters, no control or bidirectional formatting
/// characters ([`is_unsafe_char`]).
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
    if s.chars().count() > MAX_LABEL_CHARS || s.chars().any(is_unsafe_char) {
        return Err(ApiError::new(
            ApiErrorCode::InvalidField,
            format!(
                "{what} must be at most {MAX_LABEL_CHARS} characters without control or bidirectional formatting characters"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bidi_formatting_is_refused_like_control_characters() {
        for bad in [
            "phone\u{202E}cod.exe",
            "a\u{2066}b",
            "a\u{2069}",
            "\u{200E}x",
            "x\u{200F}",
            "x\u{202A}",
            "x\u{1b}[2J",
        ] {
            let e = super::check_text("label", bad).unwrap_err();
            assert_eq!(
                e.parts().1,
                twostep_common::api::ApiErrorCode::InvalidField,
                "{bad:?}"
            );
        }
        assert!(super::check_text("label", "Jörg's phone \u{05D0}\u{05D1}").is_ok());
    }
}
