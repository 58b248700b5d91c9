//! The Security info pages' admin side: wire types of setting a user's
//! page password and of one-time setup links, and the password rule the
//! pages and the CLI both apply.
//!
//! | method | path | who | body → answer |
//! |---|---|---|---|
//! | PUT | `/v1/admin/users/{username}/password` | admin | [`SetPassword`] → 204 |
//! | POST | `/v1/admin/users/{username}/invite` | admin | [`CreateInvite`] → 201 [`Invite`] |
//!
//! The registry keeps an Argon2id hash of the password (RFC 9106) and the
//! SHA-256 of an invite token, never the password or the token.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Path prefix of the Security info pages.
pub const PORTAL_PATH: &str = "/my";
/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest accepted password, in bytes (hashing cost is bounded).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// How long a setup link stays valid, in seconds (24 h).
pub const INVITE_LIFETIME_SECS: i64 = 86_400;

/// `PUT /v1/admin/users/{username}/password`: the user's new page password.
/// Setting it ends the user's page sessions.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The password, checked with [`check_password`].
    pub password: String,
}

impl fmt::Debug for SetPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetPassword")
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `POST /v1/admin/users/{username}/invite`: a new one-time setup link;
/// any earlier unused link of the user stops working.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvite {}

/// A one-time setup link, shown once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The user it is for.
    pub username: String,
    /// Path of the link on the registry, `/my/invite/TOKEN`.
    pub path: String,
    /// The whole link when `[api.portal] public_url` is set.
    #[serde(default)]
    pub url: Option<String>,
    /// Unix seconds after which the link is refused.
    pub expires_at: i64,
}

impl fmt::Debug for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invite")
            .field("username", &self.username)
            .field("path", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Checks a new password: at least [`MIN_PASSWORD_CHARS`] characters, at
/// most [`MAX_PASSWORD_BYTES`] bytes, not all one character, and not
/// containing the username or any word of at least 3 characters of the
/// display name (compared without case).
///
/// # Errors
/// One sentence for the person choosing it.
pub fn check_password(
    password: &str,
    username: &str,
    display_name: Option<&str>,
) -> Result<(), &'static str> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err("Use at least 12 characters.");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err("Use at most 1024 bytes.");
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err("Use more than one distinct character.");
    }
    let lower = password.to_lowercase();
    // The local part too, for names like alice@example.com.
    let local = username.split('@').next().unwrap_or(username);
    let names = std::iter::once(username)
        .chain(std::iter::once(local))
        .chain(
            display_name
                .unwrap_or("")
                .split(|c: char| !c.is_alphanumeric()),
        );
    for name in names {
        if name.chars().count() >= 3 && lower.contains(&name.to_lowercase()) {
            return Err("Don't use your name or username in your password.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rule() {
        assert!(check_password("correct horse battery", "alice", None).is_ok());
        assert_eq!(
            check_password("short", "alice", None),
            Err("Use at least 12 characters.")
        );
        assert!(check_password("xxxxxxxxxxxxxxxx", "alice", None).is_err());
        assert!(check_password("my-ALICE-password", "alice", None).is_err());
        assert!(check_password("alice2024secret!", "alice@example.com", None).is_err());
        assert!(check_password("smith is my name", "as", Some("Alice Smith")).is_err());
        assert!(check_password("a long enough one", "bo", Some("Bo Li")).is_ok());
        assert!(check_password(&"ab".repeat(600), "alice", None).is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let p = SetPassword {
            password: "hunter2hunter2".into(),
        };
        assert!(!format!("{p:?}").contains("hunter2"));
        let i = Invite {
            username: "alice".into(),
            path: "/my/invite/SECRETTOKEN".into(),
            url: Some("https://r/my/invite/SECRETTOKEN".into()),
            expires_at: 1,
        };
        assert!(!format!("{i:?}").contains("SECRETTOKEN"));
    }
}
