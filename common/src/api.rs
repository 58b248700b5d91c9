//! The registry's wire types: JSON bodies of the REST API under `/v1`.
//!
//! Server (`twostep-api`) and clients (`pam_twostep.so`, `twostep-radiusd`,
//! `twostep`) both use these types, so the two sides cannot drift. Times are
//! Unix seconds (UTC). The OpenAPI document served at [`OPENAPI_PATH`]
//! describes the same shapes.
//!
//! | method | path | who | body → answer |
//! |---|---|---|---|
//! | GET | `/v1/health` | anyone | → [`Health`] |
//! | GET | `/v1/openapi.json` | anyone | → OpenAPI 3.0 document |
//! | POST | `/v1/admin/users` | admin | [`CreateUser`] → 201 [`User`] |
//! | GET | `/v1/admin/users` | admin | → `[User]` |
//! | GET | `/v1/admin/users/{username}` | admin | → [`User`] |
//! | PATCH | `/v1/admin/users/{username}` | admin | [`UpdateUser`] → [`User`] |
//! | DELETE | `/v1/admin/users/{username}` | admin | → 204 |
//! | POST | `/v1/admin/users/{username}/unlock` | admin | → [`User`] |
//! | POST | `/v1/admin/users/{username}/methods/totp` | admin | [`EnrolTotp`] → 201 [`TotpEnrolment`] |
//! | DELETE | `/v1/admin/users/{username}/methods/{id}` | admin | → 204 |
//! | DELETE | `/v1/admin/users/{username}/methods` | admin | → 204 (reset: all methods) |
//! | POST | `/v1/admin/hosts` | admin | [`CreateHost`] → 201 [`HostCreated`] |
//! | GET | `/v1/admin/hosts` | admin | → `[Host]` |
//! | DELETE | `/v1/admin/hosts/{name}` | admin | → 204 (revoke) |
//! | GET | `/v1/admin/audit?limit=N` | admin | → `[AuditEvent]`, newest first |
//! | GET | `/v1/host/users/{username}/registrations` | host | → [`Registrations`] |
//! | POST | `/v1/host/verify` | host | [`VerifyRequest`] → [`VerifyResponse`] |
//!
//! Admins authenticate with `Authorization: Bearer ADMIN_TOKEN`, hosts with
//! `Authorization: Bearer HOST_API_KEY`. Every error is a JSON [`ErrorBody`]
//! with a fitting HTTP status (400 malformed, 401 no/wrong credential,
//! 403 revoked host, 404 unknown, 409 exists, 413 too large, 503 storage
//! unavailable). Path segments are percent-encoded.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Path of the health check.
pub const HEALTH_PATH: &str = "/v1/health";
/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/v1/openapi.json";

/// Longest accepted username, in bytes.
pub const MAX_USERNAME_BYTES: usize = 256;

/// Every error answer: a stable machine code and one line for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable code, e.g. `"unknown_user"`, `"invalid_code_format"`, `"unauthorized"`.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `"ok"` when the database answers.
    pub status: String,
    /// The registry's version.
    pub version: String,
}

/// `POST /v1/admin/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Login name as PAM and RADIUS see it (`alice`, `alice@example.com`).
    pub username: String,
    /// Optional full name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `PATCH /v1/admin/users/{username}`: fields left out are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// Disable (`true`) or re-enable (`false`) the user.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// A user and their methods, as admins see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub username: String,
    /// Full name, if given.
    pub display_name: Option<String>,
    /// A disabled user cannot pass a second factor.
    pub disabled: bool,
    /// Unix seconds of creation.
    pub created_at: i64,
    /// Unix seconds until which the user is locked out, if locked now.
    pub locked_until: Option<i64>,
    /// Registered methods (never secrets).
    pub methods: Vec<Method>,
}

/// Kind of a verification method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodKind {
    /// Time-based one-time codes (RFC 6238).
    Totp,
    /// Sign-in notifications to a device that approves or denies
    /// ([`crate::push`]).
    Push,
}

/// A registered verification method (a registration). Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Method {
    /// Registry-wide id.
    pub id: i64,
    /// What it is.
    pub kind: MethodKind,
    /// Label shown to people, e.g. `"Authenticator app"`.
    pub label: String,
    /// Whether this is the user's default method.
    pub is_default: bool,
    /// Unix seconds of registration.
    pub created_at: i64,
    /// Unix seconds of the last use: the last accepted code or answered
    /// push; `None` when never used.
    #[serde(default)]
    pub last_used_at: Option<i64>,
    /// Disabled by an admin (a lost device): it verifies nothing and gets
    /// no push until enabled again.
    #[serde(default)]
    pub disabled: bool,
}

/// `POST /v1/admin/users/{username}/methods/totp`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolTotp {
    /// Label for the method; default `"Authenticator app"`.
    #[serde(default)]
    pub label: Option<String>,
}

/// Answer to a TOTP enrolment: the only time the secret leaves the registry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpEnrolment {
    /// The new method.
    pub method: Method,
    /// The secret in RFC 4648 base32 without padding, for typing in by hand.
    pub secret_base32: String,
    /// `otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30`.
    pub otpauth_uri: String,
}

impl fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpEnrolment")
            .field("method", &self.method)
            .field("secret_base32", &"<redacted>")
            .field("otpauth_uri", &"<redacted>")
            .finish()
    }
}

/// Kind of host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostKind {
    /// A PAM host: SSH server, console, sudo.
    Ssh,
    /// A RADIUS server in front of VPNs.
    Radius,
}

/// `POST /v1/admin/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateHost {
    /// Unique name, usually the host name.
    pub name: String,
    /// What the host is.
    pub kind: HostKind,
}

/// A host allowed to ask the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Unique name.
    pub name: String,
    /// What the host is.
    pub kind: HostKind,
    /// Unix seconds of creation.
    pub created_at: i64,
    /// Unix seconds of revocation; a revoked key is refused (403).
    pub revoked_at: Option<i64>,
}

/// Answer to `POST /v1/admin/hosts`: the API key is shown this once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCreated {
    /// The host.
    pub host: Host,
    /// The host's API key; the registry keeps only a hash of it.
    pub api_key: String,
}

impl fmt::Debug for HostCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostCreated")
            .field("host", &self.host)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

/// One audit record. Never contains a code or secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Increasing id.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// `"admin"` or `"host:NAME"`.
    pub actor: String,
    /// What happened, e.g. `"user.create"`, `"totp.enrol"`, `"verify"`, `"lockout"`.
    pub action: String,
    /// The user concerned.
    pub username: Option<String>,
    /// Host name from the request context.
    pub host: Option<String>,
    /// Remote address from the request context.
    pub remote_addr: Option<String>,
    /// Result, e.g. a [`VerifyResult`] in snake_case.
    pub result: Option<String>,
    /// More, free text.
    pub detail: Option<String>,
}

/// Whether a user may currently use a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Normal.
    Active,
    /// Disabled by an admin.
    Disabled,
    /// Locked out after too many failures.
    Locked,
}

/// `GET /v1/host/users/{username}/registrations`; 404 `unknown_user` when
/// the registry has no such user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registrations {
    /// Login name.
    pub username: String,
    /// Current status.
    pub status: UserStatus,
    /// Registered methods; empty means not enrolled.
    pub methods: Vec<Method>,
}

/// Where an authentication comes from; recorded in the audit table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthContext {
    /// PAM service (`sshd`, `sudo`) or `radius:CLIENT`.
    #[serde(default)]
    pub service: Option<String>,
    /// Name of the host asking.
    #[serde(default)]
    pub host: Option<String>,
    /// Address the user connects from (PAM_RHOST, Calling-Station-Id).
    #[serde(default)]
    pub remote_addr: Option<String>,
    /// Terminal (PAM_TTY).
    #[serde(default)]
    pub tty: Option<String>,
}

/// `POST /v1/host/verify`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Login name.
    pub username: String,
    /// The code as typed: ASCII digits, exactly the method's digits (6);
    /// anything else is refused with 400 `invalid_code_format`.
    pub code: String,
    /// Where the login comes from.
    #[serde(default)]
    pub context: AuthContext,
}

impl fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("username", &self.username)
            .field("code", &"<redacted>")
            .field("context", &self.context)
            .finish()
    }
}

/// The registry's verdict on a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyResult {
    /// The code is valid and now consumed.
    Accept,
    /// Wrong, expired or replayed code (counted as a failure).
    Reject,
    /// Too many failures: locked out until `locked_until`, even for a right code.
    Locked,
    /// The user has no method that can verify a code.
    NotEnrolled,
    /// The registry has no such user.
    UnknownUser,
    /// The user is disabled.
    Disabled,
}

impl VerifyResult {
    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::Locked => "locked",
            Self::NotEnrolled => "not_enrolled",
            Self::UnknownUser => "unknown_user",
            Self::Disabled => "disabled",
        }
    }
}

impl fmt::Display for VerifyResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Answer to `POST /v1/host/verify` (always 200 when the request was well formed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResponse {
    /// The verdict.
    pub result: VerifyResult,
    /// The method that matched, on `accept`.
    #[serde(default)]
    pub method_id: Option<i64>,
    /// Unix seconds until which the user is locked, on `locked`.
    #[serde(default)]
    pub locked_until: Option<i64>,
}

/// Checks a username: 1 to [`MAX_USERNAME_BYTES`] bytes, no control
/// characters, no `/`, no whitespace at either end, and in Unicode
/// Normalization Form C (UAX #15), so that `" demo"`, `"demo "` and the
/// decomposed spelling of `"Jörg"` cannot become users distinct from
/// `"demo"` and `"Jörg"`.
///
/// # Errors
/// A one-line reason.
pub fn validate_username(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.trim().is_empty() {
        return Err("username is empty");
    }
    if name.trim() != name {
        return Err("username has whitespace at its start or end");
    }
    if !unicode_normalization::is_nfc(name) {
        return Err("username is not in Unicode NFC (composed) form; normalise it to NFC first");
    }
    if name.len() > MAX_USERNAME_BYTES {
        return Err("username is longer than 256 bytes");
    }
    if name.chars().any(|c| c.is_control() || c == '/') {
        return Err("username contains a control character or '/'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_result_wire_names() {
        for r in [
            VerifyResult::Accept,
            VerifyResult::Reject,
            VerifyResult::Locked,
            VerifyResult::NotEnrolled,
            VerifyResult::UnknownUser,
            VerifyResult::Disabled,
        ] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let req = VerifyRequest {
            username: "alice".into(),
            code: "123456".into(),
            context: AuthContext::default(),
        };
        assert!(!format!("{req:?}").contains("123456"));
        let h = HostCreated {
            host: Host {
                name: "h".into(),
                kind: HostKind::Ssh,
                created_at: 0,
                revoked_at: None,
            },
            api_key: "topsecretkey".into(),
        };
        assert!(!format!("{h:?}").contains("topsecretkey"));
    }

    #[test]
    fn usernames() {
        assert!(validate_username("alice").is_ok());
        assert!(validate_username("alice smith@example.com").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("  ").is_err());
        assert!(validate_username("a/b").is_err());
        assert!(validate_username("a\nb").is_err());
        assert!(validate_username(&"x".repeat(257)).is_err());
        // Lookalikes of "demo" and "Jörg".
        assert_eq!(
            validate_username(" demo"),
            Err("username has whitespace at its start or end")
        );
        assert!(validate_username("demo ").is_err());
        assert!(validate_username("demo\u{a0}").is_err());
        assert!(validate_username("J\u{f6}rg").is_ok());
        assert_eq!(
            validate_username("Jo\u{308}rg"),
            Err("username is not in Unicode NFC (composed) form; normalise it to NFC first")
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e =
            serde_json::from_str::<VerifyRequest>(r#"{"username":"a","code":"123456","extra":1}"#);
        assert!(e.is_err());
    }
}
