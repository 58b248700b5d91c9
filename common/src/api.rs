//! The registry's wire types: JSON bodies of the REST API under `/v1`.
//!
//! Server (`twostep-api`) and clients (`pam_twostep.so`, `twostep-radiusd`,
//! `twostep`) both use these types, so the two sides cannot drift. Times are
//! Unix seconds (UTC). The OpenAPI document served at [`OPENAPI_PATH`]
//! describes the same shapes.
//!
//! | method | path ([`paths`]) | who | body → answer |
//! |---|---|---|---|
//! | GET | `/v1/health` ([`paths::HEALTH`]) | anyone | → [`Health`] |
//! | GET | `/v1/openapi.json` ([`paths::OPENAPI`]) | anyone | → OpenAPI 3.0 document |
//! | POST | `/v1/admin/users` ([`paths::USERS`]) | admin | [`CreateUser`] → 201 [`User`] |
//! | GET | `/v1/admin/users` | admin | → `[User]` |
//! | GET | `/v1/admin/users/{username}` ([`paths::USER`]) | admin | → [`User`] |
//! | PATCH | `/v1/admin/users/{username}` | admin | [`UpdateUser`] → [`User`] |
//! | DELETE | `/v1/admin/users/{username}` | admin | → 204 |
//! | POST | `/v1/admin/users/{username}/unlock` ([`paths::USER_UNLOCK`]) | admin | → [`User`] |
//! | POST | `/v1/admin/users/{username}/methods/totp` ([`paths::USER_TOTP`]) | admin | [`EnrolTotp`] → 201 [`TotpEnrolment`] |
//! | DELETE | `/v1/admin/users/{username}/methods/{id}` ([`paths::USER_METHOD`]) | admin | → 204 |
//! | DELETE | `/v1/admin/users/{username}/methods` ([`paths::USER_METHODS`]) | admin | → 204 (reset: all methods) |
//! | POST | `/v1/admin/users/{username}/temporary-access` ([`paths::USER_TAP`]) | admin | [`IssueTap`] → 201 [`TapIssued`] |
//! | DELETE | `/v1/admin/users/{username}/temporary-access` | admin | → 204 (every open code revoked) |
//! | POST | `/v1/admin/users/{username}/backup-codes` ([`paths::USER_BACKUP_CODES`]) | admin | → 201 [`BackupCodes`] (a new set; the old one void) |
//! | POST | `/v1/admin/hosts` ([`paths::HOSTS`]) | admin | [`CreateHost`] → 201 [`HostCreated`] |
//! | GET | `/v1/admin/hosts` | admin | → `[Host]` |
//! | DELETE | `/v1/admin/hosts/{name}` ([`paths::HOST`]) | admin | → 204 (revoke) |
//! | GET | `/v1/admin/audit?limit=N[&after=ID]` ([`paths::AUDIT`]) | admin | → `[AuditEvent]`, newest first; with `after`, the events after ID, oldest first |
//! | GET | `/v1/host/users/{username}/registrations` ([`paths::HOST_REGISTRATIONS`]) | host | → [`Registrations`] |
//! | POST | `/v1/host/verify` ([`paths::HOST_VERIFY`]) | host | [`VerifyRequest`] → [`VerifyResponse`] (an app's code, a sent code, a backup or temporary access code) |
//! | POST | `/v1/host/users/{username}/otp/send` ([`paths::HOST_OTP_SEND`]) | host | [`crate::phone::SendCode`] → [`crate::phone::CodeSent`] |
//! | POST | `/v1/admin/users/{username}/methods/phone` ([`paths::USER_PHONE`]) | admin | [`crate::phone::EnrolPhone`] → 201 [`Method`] |
//!
//! The push routes (device activation, challenges, device poll and answer,
//! method disable / enable) are listed in [`crate::push`].
//!
//! Admins authenticate with `Authorization: Bearer ADMIN_TOKEN`, hosts with
//! `Authorization: Bearer HOST_API_KEY`. Every error is a JSON [`ErrorBody`]
//! whose code is an [`ApiErrorCode`], with the HTTP status that code comes
//! with ([`ApiErrorCode::http_status`]: 400 malformed, 401 no/wrong
//! credential or device signature, 403 revoked host or disabled device, 404
//! unknown, 409 exists or used, 410 expired, 413 too large, 503 storage
//! unavailable). Path segments are percent-encoded
//! ([`paths::fill`]).

use crate::methods::Place;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Request header by which a host says which newer verification results it
/// understands (comma-separated; today only `replay`). A registry answers
/// [`VerifyResult::Replay`] only to hosts that send `replay` here and
/// `reject` to older ones (a replay is not counted as a failure either way;
/// the audit says `replay`); older registries ignore the header.
pub const RESULTS_HEADER: &str = "twostep-results";

/// The API's paths as route templates: `{name}` stands for one path
/// segment, filled in (percent-encoded) by [`paths::fill`]. The registry's
/// router, its OpenAPI document and the client all use these.
pub mod paths {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

    /// `GET`: health check.
    pub const HEALTH: &str = "/v1/health";
    /// `GET`: the OpenAPI document.
    pub const OPENAPI: &str = "/v1/openapi.json";
    /// `GET` list, `POST` create users.
    pub const USERS: &str = "/v1/admin/users";
    /// `GET` show, `PATCH` change, `DELETE` delete one user.
    pub const USER: &str = "/v1/admin/users/{username}";
    /// `POST`: clear a user's lockout and failure count.
    pub const USER_UNLOCK: &str = "/v1/admin/users/{username}/unlock";
    /// `PUT`: set a user's Security info page password.
    pub const USER_PASSWORD: &str = "/v1/admin/users/{username}/password";
    /// `POST`: a one-time setup link for the Security info page.
    pub const USER_INVITE: &str = "/v1/admin/users/{username}/invite";
    /// `POST`: enrol a TOTP method.
    pub const USER_TOTP: &str = "/v1/admin/users/{username}/methods/totp";
    /// `DELETE`: one method of a user.
    pub const USER_METHOD: &str = "/v1/admin/users/{username}/methods/{id}";
    /// `DELETE`: all methods of a user (reset).
    pub const USER_METHODS: &str = "/v1/admin/users/{username}/methods";
    /// `POST` issue a temporary access code, `DELETE` revoke the open ones.
    pub const USER_TAP: &str = "/v1/admin/users/{username}/temporary-access";
    /// `POST`: a new set of backup codes (the old set void).
    pub const USER_BACKUP_CODES: &str = "/v1/admin/users/{username}/backup-codes";
    /// `GET` list, `POST` create hosts.
    pub const HOSTS: &str = "/v1/admin/hosts";
    /// `DELETE`: revoke a host's API key.
    pub const HOST: &str = "/v1/admin/hosts/{name}";
    /// `GET`: audit events, newest first (query `limit`); with query
    /// `after=ID`, those after ID, oldest first.
    pub const AUDIT: &str = "/v1/admin/audit";
    /// `GET`: a user's registrations, for hosts.
    pub const HOST_REGISTRATIONS: &str = "/v1/host/users/{username}/registrations";
    /// `POST`: verify a code, for hosts.
    pub const HOST_VERIFY: &str = "/v1/host/verify";
    /// `POST`: send a user a one-time code by text message or phone call,
    /// for hosts ([`crate::phone::SendCode`]).
    pub const HOST_OTP_SEND: &str = "/v1/host/users/{username}/otp/send";
    /// `POST`: set up a phone method ([`crate::phone::EnrolPhone`]).
    pub const USER_PHONE: &str = "/v1/admin/users/{username}/methods/phone";

    /// `POST`: create a one-time push device activation for a user.
    pub const USER_PUSH: &str = "/v1/admin/users/{username}/methods/push";
    /// `POST`: disable a method (a lost device).
    pub const METHOD_DISABLE: &str = "/v1/admin/methods/{id}/disable";
    /// `POST`: enable a disabled method again.
    pub const METHOD_ENABLE: &str = "/v1/admin/methods/{id}/enable";
    /// `POST`: a device registers its public key with an activation code.
    pub const DEVICE_ACTIVATE: &str = "/v1/device/activate";
    /// `POST`: a device's signed long-poll for its open challenges.
    pub const DEVICE_POLL: &str = "/v1/device/poll";
    /// `POST`: a device's signed answer to a challenge.
    pub const DEVICE_ANSWER: &str = "/v1/device/answer";
    /// `POST`: start a push challenge, for hosts.
    pub const HOST_PUSH: &str = "/v1/host/push";
    /// `GET` (long-poll, query `wait`) the state of, `DELETE` cancel, a
    /// push challenge the host started.
    pub const HOST_PUSH_CHALLENGE: &str = "/v1/host/push/{challenge_id}";

    /// Start of every path that takes the admin token.
    pub const ADMIN_PREFIX: &str = "/v1/admin/";

    /// Path segment encoding: everything but RFC 3986 unreserved characters.
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');

    /// `s` percent-encoded as one path segment (RFC 3986 §3.3): every
    /// byte but the unreserved characters, so `/`, `?`, `%` and spaces in
    /// a username cannot change the path.
    pub fn encode_segment(s: &str) -> String {
        utf8_percent_encode(s, SEGMENT).to_string()
    }

    /// `template` with its `{...}` parameters replaced, in order, by
    /// `params`, each encoded with [`encode_segment`]: `fill(USER_METHOD,
    /// &["alice smith", "3"])` is `/v1/admin/users/alice%20smith/methods/3`.
    /// Parameters beyond those given stay as they are and extra `params`
    /// are ignored (the registry then answers 404 or 400).
    pub fn fill(template: &str, params: &[&str]) -> String {
        let mut out = String::with_capacity(template.len() + 16);
        let mut rest = template;
        let mut params = params.iter();
        while let Some(open) = rest.find('{') {
            let Some(len) = rest[open..].find('}') else {
                break;
            };
            let Some(value) = params.next() else {
                break;
            };
            out.push_str(&rest[..open]);
            out.push_str(&encode_segment(value));
            rest = &rest[open + len + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// Path of the health check ([`paths::HEALTH`]).
pub const HEALTH_PATH: &str = paths::HEALTH;
/// Path of the OpenAPI document ([`paths::OPENAPI`]).
pub const OPENAPI_PATH: &str = paths::OPENAPI;

/// Longest accepted username, in bytes.
pub const MAX_USERNAME_BYTES: usize = 256;

/// Every error answer: a stable machine code and one line for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable code, an [`ApiErrorCode`] in snake_case, e.g. `"unknown_user"`,
    /// `"invalid_code_format"`, `"unauthorized"`; kept as text so that a
    /// code this version does not know still reads
    /// ([`ApiErrorCode::from_wire`]).
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
}

/// The stable error codes of [`ErrorBody::error`], in snake_case on the
/// wire, each with one HTTP status ([`ApiErrorCode::http_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorCode {
    /// 400: the body is not JSON of the expected shape.
    MalformedJson,
    /// 400: a path parameter does not decode (e.g. a method id that is
    /// not a number).
    InvalidPath,
    /// 400: a query parameter does not decode.
    InvalidQuery,
    /// 400: the username breaks [`validate_username`].
    InvalidUsername,
    /// 400: a label or display name is empty, too long or has control
    /// characters.
    InvalidField,
    /// 400: the host name breaks the username rules.
    InvalidHostName,
    /// 400: the code is not exactly the method's digits.
    InvalidCodeFormat,
    /// 400: a device's public key is not an Ed25519 key in base64url.
    InvalidPublicKey,
    /// 400: a device's nonce is empty or too long.
    InvalidNonce,
    /// 400: approving this challenge needs the number shown at the login.
    NumberRequired,
    /// 400: the answer's nonce is not the challenge's.
    NonceMismatch,
    /// 401: no credential, not a bearer credential, or a wrong one.
    Unauthorized,
    /// 401: no push device with that id.
    UnknownDevice,
    /// 401: the device's signature does not verify with its key.
    BadSignature,
    /// 401: the device's timestamp is out of the registry's window.
    ClockSkew,
    /// 401: the device's nonce was used before.
    ReplayedNonce,
    /// 403: the host's API key has been revoked.
    HostRevoked,
    /// 403: the push device (or its user) is disabled.
    DeviceDisabled,
    /// 404: no such route.
    NotFound,
    /// 404: no such user.
    UnknownUser,
    /// 404: the user has no such method.
    UnknownMethod,
    /// 404: no such host.
    UnknownHost,
    /// 404: no such device activation code.
    UnknownActivation,
    /// 404: no such challenge for this device's user or this host (or
    /// its result was handed out already).
    UnknownChallenge,
    /// 405: the route does not take this HTTP method.
    MethodNotAllowed,
    /// 409: a user of that name exists.
    UserExists,
    /// 409: a host of that name exists.
    HostExists,
    /// 409: another entry of that name exists.
    Exists,
    /// 409: the activation code was used already.
    ActivationUsed,
    /// 409: the challenge is closed already (answered, cancelled).
    ChallengeClosed,
    /// 410: the activation code has expired.
    ActivationExpired,
    /// 410: the challenge has expired.
    ChallengeExpired,
    /// 413: the body is larger than the registry's `max_body_bytes`.
    BodyTooLarge,
    /// 500: a stored secret does not decrypt with the registry's key file.
    SecretUnreadable,
    /// 503: the registry cannot read its admin token file.
    AdminTokenUnavailable,
    /// 503: the database is unavailable, busy, read-only or full.
    StorageUnavailable,
    /// 400: a new page password breaks [`crate::portal::check_password`].
    WeakPassword,
    /// 403: a Security info page form without its page's CSRF token.
    FormExpired,
    /// 500: the registry failed in a way that is its own fault (a page
    /// that did not render, a password hash that could not be made).
    Internal,
    /// A code this version does not know (from an older or newer
    /// registry); never sent by this registry.
    #[serde(other)]
    Other,
}

impl ApiErrorCode {
    /// Every code the registry sends (all but [`ApiErrorCode::Other`]).
    pub const ALL: &'static [Self] = &[
        Self::MalformedJson,
        Self::InvalidPath,
        Self::InvalidQuery,
        Self::InvalidUsername,
        Self::InvalidField,
        Self::InvalidHostName,
        Self::InvalidCodeFormat,
        Self::InvalidPublicKey,
        Self::InvalidNonce,
        Self::NumberRequired,
        Self::NonceMismatch,
        Self::Unauthorized,
        Self::UnknownDevice,
        Self::BadSignature,
        Self::ClockSkew,
        Self::ReplayedNonce,
        Self::HostRevoked,
        Self::DeviceDisabled,
        Self::NotFound,
        Self::UnknownUser,
        Self::UnknownMethod,
        Self::UnknownHost,
        Self::UnknownActivation,
        Self::UnknownChallenge,
        Self::MethodNotAllowed,
        Self::UserExists,
        Self::HostExists,
        Self::Exists,
        Self::ActivationUsed,
        Self::ChallengeClosed,
        Self::ActivationExpired,
        Self::ChallengeExpired,
        Self::BodyTooLarge,
        Self::SecretUnreadable,
        Self::AdminTokenUnavailable,
        Self::StorageUnavailable,
        Self::WeakPassword,
        Self::FormExpired,
        Self::Internal,
    ];

    /// The snake_case wire name (`"other"` for [`ApiErrorCode::Other`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::InvalidPath => "invalid_path",
            Self::InvalidQuery => "invalid_query",
            Self::InvalidUsername => "invalid_username",
            Self::InvalidField => "invalid_field",
            Self::InvalidHostName => "invalid_host_name",
            Self::InvalidCodeFormat => "invalid_code_format",
            Self::InvalidPublicKey => "invalid_public_key",
            Self::InvalidNonce => "invalid_nonce",
            Self::NumberRequired => "number_required",
            Self::NonceMismatch => "nonce_mismatch",
            Self::Unauthorized => "unauthorized",
            Self::UnknownDevice => "unknown_device",
            Self::BadSignature => "bad_signature",
            Self::ClockSkew => "clock_skew",
            Self::ReplayedNonce => "replayed_nonce",
            Self::HostRevoked => "host_revoked",
            Self::DeviceDisabled => "device_disabled",
            Self::NotFound => "not_found",
            Self::UnknownUser => "unknown_user",
            Self::UnknownMethod => "unknown_method",
            Self::UnknownHost => "unknown_host",
            Self::UnknownActivation => "unknown_activation",
            Self::UnknownChallenge => "unknown_challenge",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UserExists => "user_exists",
            Self::HostExists => "host_exists",
            Self::Exists => "exists",
            Self::ActivationUsed => "activation_used",
            Self::ChallengeClosed => "challenge_closed",
            Self::ActivationExpired => "activation_expired",
            Self::ChallengeExpired => "challenge_expired",
            Self::BodyTooLarge => "body_too_large",
            Self::SecretUnreadable => "secret_unreadable",
            Self::AdminTokenUnavailable => "admin_token_unavailable",
            Self::StorageUnavailable => "storage_unavailable",
            Self::WeakPassword => "weak_password",
            Self::FormExpired => "form_expired",
            Self::Internal => "internal",
            Self::Other => "other",
        }
    }

    /// The code named `wire`; [`ApiErrorCode::Other`] for a name this
    /// version does not know.
    pub fn from_wire(wire: &str) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == wire)
            .unwrap_or(Self::Other)
    }

    /// The HTTP status the registry answers with this code (RFC 9110 §15);
    /// 500 for [`ApiErrorCode::Other`].
    pub fn http_status(self) -> u16 {
        match self {
            Self::MalformedJson
            | Self::InvalidPath
            | Self::InvalidQuery
            | Self::InvalidUsername
            | Self::InvalidField
            | Self::InvalidHostName
            | Self::InvalidCodeFormat
            | Self::InvalidPublicKey
            | Self::InvalidNonce
            | Self::NumberRequired
            | Self::NonceMismatch
            | Self::WeakPassword => 400,
            Self::Unauthorized
            | Self::UnknownDevice
            | Self::BadSignature
            | Self::ClockSkew
            | Self::ReplayedNonce => 401,
            Self::HostRevoked | Self::DeviceDisabled | Self::FormExpired => 403,
            Self::NotFound
            | Self::UnknownUser
            | Self::UnknownMethod
            | Self::UnknownHost
            | Self::UnknownActivation
            | Self::UnknownChallenge => 404,
            Self::MethodNotAllowed => 405,
            Self::UserExists
            | Self::HostExists
            | Self::Exists
            | Self::ActivationUsed
            | Self::ChallengeClosed => 409,
            Self::ActivationExpired | Self::ChallengeExpired => 410,
            Self::BodyTooLarge => 413,
            Self::SecretUnreadable | Self::Internal | Self::Other => 500,
            Self::AdminTokenUnavailable | Self::StorageUnavailable => 503,
        }
    }
}

impl fmt::Display for ApiErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `"ok"` when the database answers.
    pub status: String,
    /// The registry's version.
    pub version: String,
    /// This node's clock minus its database server's, in seconds (absent
    /// from older registries). Nodes sharing a database should agree
    /// within 2 s: each judges a code's time step by its own clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_seconds: Option<i64>,
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
    /// Unix seconds of the report of fraud that blocks new pushes to the
    /// user, until `twostep user unlock` clears it (absent from older
    /// registries: read as not blocked).
    #[serde(default)]
    pub push_blocked_at: Option<i64>,
    /// Registered methods (never secrets).
    pub methods: Vec<Method>,
    /// Unix seconds until which the user's latest open temporary access
    /// code is valid, if one is (absent from older registries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_access_until: Option<i64>,
    /// Unused backup codes of the user's current set, if they have one
    /// (absent from older registries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_codes_left: Option<u32>,
    /// The password-reset-only methods the user has set up (absent from
    /// older registries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reset_methods: Vec<crate::methods::ResetKind>,
}

/// The answer to `POST /v1/admin/users/{username}/backup-codes`: the new
/// set, this once ([`crate::recovery`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupCodes {
    /// The codes as shown (`1234 5678`); the registry keeps only hashes.
    pub codes: Vec<String>,
    /// Unix seconds of the set's creation.
    pub created_at: i64,
}

impl std::fmt::Debug for BackupCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupCodes")
            .field("codes", &self.codes.len())
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// `POST /v1/admin/users/{username}/temporary-access`: a temporary access
/// code for a user who lost their phone ([`crate::recovery`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueTap {
    /// Lifetime in hours, 1..=720; default 8.
    #[serde(default)]
    pub hours: Option<u32>,
    /// Uses, 1..=100; default 1.
    #[serde(default)]
    pub uses: Option<u32>,
    /// Delete the user's methods and devices first, in the same
    /// transaction (open push challenges cancelled): a phone change.
    #[serde(default)]
    pub reset_methods: bool,
}

/// The answer to [`IssueTap`]: the code, this once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapIssued {
    /// The code in groups of four (`K7QM-3XHD-W9PR`); never stored.
    pub code: String,
    /// Unix seconds at which it stops working.
    pub expires_at: i64,
    /// Uses it allows.
    pub uses: u32,
    /// Methods deleted first (with `reset_methods`).
    pub methods_deleted: u64,
}

impl std::fmt::Debug for TapIssued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapIssued")
            .field("code", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("uses", &self.uses)
            .field("methods_deleted", &self.methods_deleted)
            .finish()
    }
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
    /// A one-time code sent by text message to a phone number.
    Sms,
    /// A one-time code read out by a phone call.
    Voice,
    /// A WebAuthn / FIDO2 security key (the Security info page only: see
    /// [`crate::methods`]).
    SecurityKey,
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
    /// Registered methods; empty (and no temporary access code) means not
    /// enrolled.
    pub methods: Vec<Method>,
    /// Unix seconds until which an open temporary access code is valid,
    /// if the user has one: the user is enrolled and is asked for a code
    /// even without a method (absent from older registries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_access_until: Option<i64>,
    /// The place the registry answered for (the asking host's kind): only
    /// methods that count there are in `methods` ([`crate::methods`]).
    /// Absent from older registries, which sent every method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<Place>,
    /// Kinds of the user's usable methods left out of `methods` because
    /// they do not count in `place` (a security key for SSH): such a user
    /// is told "second factor not set up for SSH" rather than only "not
    /// set up".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elsewhere: Vec<MethodKind>,
}

impl Registrations {
    /// The method a login offers first: the user's default where it
    /// counts, else the first usable one ([`crate::methods::first_offer`]).
    pub fn first_offer(&self) -> Option<&Method> {
        crate::methods::first_offer(&self.methods, self.place.unwrap_or(Place::Pam))
    }

    /// Whether the user has something to pass a second factor with: a
    /// usable method or an open temporary access code.
    pub fn is_enrolled(&self) -> bool {
        self.usable().next().is_some() || self.temporary_access_until.is_some()
    }

    /// The methods that can verify now: every method not disabled by an
    /// admin (a lost device). A user with none is not enrolled.
    pub fn usable(&self) -> impl Iterator<Item = &Method> {
        self.methods.iter().filter(|m| !m.disabled)
    }

    /// Whether the user can type a code: a usable authenticator app, or an
    /// open temporary access code.
    pub fn has_code_method(&self) -> bool {
        self.temporary_access_until.is_some() || self.usable().any(|m| m.kind == MethodKind::Totp)
    }

    /// The usable push devices, default first.
    pub fn push_devices(&self) -> Vec<&Method> {
        let mut v: Vec<&Method> = self
            .usable()
            .filter(|m| m.kind == MethodKind::Push)
            .collect();
        v.sort_by_key(|m| !m.is_default);
        v
    }
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
    /// Wrong or expired code (counted as a failure).
    Reject,
    /// The code matched, but its time step was used already (by this login
    /// sent twice, a NAS retransmission with a new Identifier, another
    /// server of a pool): refused, never counted as a failure; the user
    /// waits for the next code. Older registries answered `reject`, and a
    /// registry answers `reject` to hosts that do not send `replay` in
    /// [`RESULTS_HEADER`].
    Replay,
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
            Self::Replay => "replay",
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
    /// On `not_enrolled`: the place the user has no method for, when they
    /// have methods that count elsewhere only (a security key, at a VPN
    /// login). Absent from older registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_set_up_for: Option<Place>,
}

/// Checks a username: 1 to [`MAX_USERNAME_BYTES`] bytes, no control
/// characters, no `/`, no `-` first, no whitespace at either end, and in Unicode
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
    if name.starts_with('-') {
        return Err("username starts with '-' (it would read as an option on a command line)");
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
            VerifyResult::Replay,
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
        assert!(validate_username("-x").is_err());
        assert!(validate_username("x-y").is_ok());
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
    fn error_code_wire_names() {
        for &c in ApiErrorCode::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<ApiErrorCode>(&json).unwrap(), c);
            assert_eq!(ApiErrorCode::from_wire(c.as_str()), c);
        }
        // The strings the registry has always sent.
        assert_eq!(
            ApiErrorCode::InvalidCodeFormat.as_str(),
            "invalid_code_format"
        );
        assert_eq!(ApiErrorCode::InvalidUsername.as_str(), "invalid_username");
        assert_eq!(
            ApiErrorCode::StorageUnavailable.as_str(),
            "storage_unavailable"
        );
        assert_eq!(ApiErrorCode::InvalidCodeFormat.http_status(), 400);
        assert_eq!(ApiErrorCode::HostRevoked.http_status(), 403);
        // The push refusals keep the strings and statuses devices see.
        assert_eq!(ApiErrorCode::BadSignature.as_str(), "bad_signature");
        assert_eq!(ApiErrorCode::BadSignature.http_status(), 401);
        assert_eq!(ApiErrorCode::DeviceDisabled.as_str(), "device_disabled");
        assert_eq!(ApiErrorCode::DeviceDisabled.http_status(), 403);
        assert_eq!(ApiErrorCode::ChallengeExpired.http_status(), 410);
        assert_eq!(ApiErrorCode::ActivationUsed.http_status(), 409);
        // A code from a newer registry still reads.
        assert_eq!(
            serde_json::from_str::<ApiErrorCode>("\"push_timeout\"").unwrap(),
            ApiErrorCode::Other
        );
        assert_eq!(ApiErrorCode::from_wire("push_timeout"), ApiErrorCode::Other);
    }

    #[test]
    fn paths_are_filled_and_encoded() {
        assert_eq!(
            paths::fill(paths::USER_METHOD, &["alice smith@example.com", "3"]),
            "/v1/admin/users/alice%20smith%40example.com/methods/3"
        );
        assert_eq!(
            paths::fill(paths::HOST_REGISTRATIONS, &["../x"]),
            "/v1/host/users/..%2Fx/registrations"
        );
        assert_eq!(
            paths::fill(paths::USER, &["a?b%c"]),
            "/v1/admin/users/a%3Fb%25c"
        );
        assert_eq!(
            paths::fill(paths::HOST, &["{name}"]),
            "/v1/admin/hosts/%7Bname%7D"
        );
        assert_eq!(paths::fill(paths::HOST_VERIFY, &[]), paths::HOST_VERIFY);
        assert_eq!(
            paths::fill(paths::HOST_PUSH_CHALLENGE, &["Ab-_9"]),
            "/v1/host/push/Ab-_9"
        );
        assert_eq!(
            paths::fill(paths::METHOD_DISABLE, &["7"]),
            "/v1/admin/methods/7/disable"
        );
        assert_eq!(paths::fill(paths::USER, &[]), paths::USER);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e =
            serde_json::from_str::<VerifyRequest>(r#"{"username":"a","code":"123456","extra":1}"#);
        assert!(e.is_err());
    }
}
