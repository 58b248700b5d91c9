//! Push approvals: the wire types of device activation, challenges and
//! answers, and the exact bytes a device signs.
//!
//! A push device is a method of kind [`MethodKind::Push`] whose registration
//! holds the device's Ed25519 public key (RFC 8032); the private key never
//! leaves the device. Every request a device makes after activation is
//! signed, so the registry needs no device secret of its own.
//!
//! | method | path | who | body → answer |
//! |---|---|---|---|
//! | POST | `/v1/admin/users/{username}/methods/push` | admin | [`CreateActivation`] → 201 [`Activation`] |
//! | POST | `/v1/device/activate` | anyone with the activation code | [`ActivateDevice`] → 201 [`DeviceActivated`] |
//! | POST | `/v1/device/poll` | device (signed) | [`DevicePoll`] → [`PendingChallenges`] (long-poll) |
//! | POST | `/v1/device/answer` | device (signed) | [`DeviceAnswer`] → [`AnswerAccepted`] |
//! | POST | `/v1/host/push` | host | [`StartPush`] → [`PushStarted`] |
//! | GET | `/v1/host/push/{id}?wait=SECONDS` | host that started it | → [`PushOutcome`] (long-poll) |
//! | DELETE | `/v1/host/push/{id}` | host that started it | → 204 (cancel) |
//! | POST | `/v1/admin/methods/{id}/disable` | admin | → [`Method`] (open challenges cancelled) |
//! | POST | `/v1/admin/methods/{id}/enable` | admin | → [`Method`] |
//!
//! Lifecycle of a challenge: `pending` → one of `approved`, `denied`,
//! `fraud`, `wrong_number`, `expired`, `cancelled`. The final state is
//! reached once (one atomic update whose `WHERE` requires `pending` and an
//! unexpired row), and handed to the host that started it once.
//!
//! [`MethodKind::Push`]: crate::api::MethodKind
//! [`Method`]: crate::api::Method

use serde::{Deserialize, Serialize};

/// Scheme of an activation URI: `twostep-activate://activate?registry=URL&code=CODE&user=NAME`.
pub const ACTIVATION_SCHEME: &str = "twostep-activate";
/// How far a device's timestamp may be from the registry's clock, seconds.
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;
/// Longest long-poll a device or host may ask for, seconds.
pub const MAX_WAIT_SECS: u64 = 30;
/// Bytes of an Ed25519 public key (RFC 8032 §5.1.5).
pub const PUBLIC_KEY_BYTES: usize = 32;
/// Bytes of an Ed25519 signature (RFC 8032 §5.1.6).
pub const SIGNATURE_BYTES: usize = 64;

/// `POST /v1/admin/users/{username}/methods/push`: a one-time activation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateActivation {
    /// Label of the method once activated; default: the device's name.
    #[serde(default)]
    pub label: Option<String>,
}

/// A one-time activation, shown once (URI and QR code).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    /// The user it is for.
    pub username: String,
    /// The one-time activation code (random, 128 bits, base32); the
    /// registry keeps only its SHA-256.
    pub code: String,
    /// `twostep-activate://activate?registry=URL&code=CODE&user=NAME`, percent-encoded.
    pub activation_uri: String,
    /// Unix seconds after which the code is refused.
    pub expires_at: i64,
}

impl std::fmt::Debug for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activation")
            .field("username", &self.username)
            .field("code", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// `POST /v1/device/activate`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateDevice {
    /// The activation code from the URI.
    pub code: String,
    /// The device's own name for itself ("Alice's phone").
    pub device_name: String,
    /// The device's Ed25519 public key, base64url without padding (32 bytes).
    pub public_key: String,
}

impl std::fmt::Debug for ActivateDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivateDevice")
            .field("code", &"<redacted>")
            .field("device_name", &self.device_name)
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// Answer to an activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceActivated {
    /// The device's id: the id of its push method.
    pub device_id: i64,
    /// The user the device answers for.
    pub username: String,
    /// The method's label.
    pub label: String,
}

/// `POST /v1/device/poll`: a signed request for the device's pending
/// challenges; the registry holds it open up to `wait` seconds until one
/// is created. Signed over [`poll_message`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicePoll {
    /// The device's id.
    pub device_id: i64,
    /// The device's clock, Unix seconds; refused outside ±[`MAX_CLOCK_SKEW_SECS`].
    pub timestamp: i64,
    /// Random, base64url; a nonce seen before from this device is refused.
    pub nonce: String,
    /// Seconds to hold the poll open when nothing is pending (0 to
    /// [`MAX_WAIT_SECS`]).
    #[serde(default)]
    pub wait: u64,
    /// Ed25519 signature of [`poll_message`], base64url without padding.
    pub signature: String,
}

/// Where a login comes from, as the device shows it to its user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushContext {
    /// PAM service (`sshd`, `sudo`) or `radius:CLIENT`.
    #[serde(default)]
    pub service: Option<String>,
    /// Name of the host asking.
    #[serde(default)]
    pub host: Option<String>,
    /// The user's address (PAM_RHOST, Calling-Station-Id).
    #[serde(default)]
    pub remote_addr: Option<String>,
    /// PAM_TTY, if any.
    #[serde(default)]
    pub tty: Option<String>,
    /// For RADIUS: the NAS (NAS-Identifier or NAS-IP-Address).
    #[serde(default)]
    pub nas: Option<String>,
}

/// One challenge waiting for the device's answer. Carries no number: the
/// user reads it at the login and types it on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChallenge {
    /// The challenge's id (random, base64url).
    pub challenge_id: String,
    /// Random, base64url; part of the signed answer.
    pub nonce: String,
    /// Who is signing in.
    pub username: String,
    /// Where from.
    pub context: PushContext,
    /// Unix seconds of creation.
    pub created_at: i64,
    /// Unix seconds after which answers are refused.
    pub expires_at: i64,
    /// Whether the answer must carry the number shown at the login.
    pub number_matching: bool,
}

/// Answer to a poll: the device's open challenges, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChallenges {
    /// Open challenges for this device's user.
    pub challenges: Vec<PendingChallenge>,
}

/// What the device's user decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// "Yes, it's me".
    Approve,
    /// "No, it's not me".
    Deny,
    /// Deny and report as fraud: new pushes to the user are blocked until
    /// an admin clears it.
    Fraud,
}

impl Decision {
    /// The word on the wire and in the signed message.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Deny => "deny",
            Self::Fraud => "fraud",
        }
    }
}

/// `POST /v1/device/answer`, signed over [`answer_message`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceAnswer {
    /// The device's id.
    pub device_id: i64,
    /// The challenge answered.
    pub challenge_id: String,
    /// The challenge's nonce, as polled.
    pub nonce: String,
    /// Approve, deny or report as fraud.
    pub decision: Decision,
    /// The number the user typed (required to approve when number matching
    /// is on; ignored for deny and fraud).
    #[serde(default)]
    pub number: Option<u8>,
    /// Ed25519 signature of [`answer_message`], base64url without padding.
    pub signature: String,
}

/// Answer to a device's answer: the challenge's final state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerAccepted {
    /// `approved`, `denied`, `fraud` or `wrong_number`.
    pub result: PushResult,
}

/// `POST /v1/host/push`: start a challenge for a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartPush {
    /// Login name.
    pub username: String,
    /// Where the login comes from (shown on the device, audited).
    #[serde(default)]
    pub context: PushContext,
}

/// Why no challenge was started, or that one was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartResult {
    /// Sent: see [`PushStarted::challenge`].
    Sent,
    /// Too many challenges for this user in the rate window.
    RateLimited,
    /// A device reported a push as fraud; blocked until an admin clears it.
    Blocked,
    /// The user has no enabled push device.
    NotEnrolled,
    /// Unknown user.
    UnknownUser,
    /// Locked out after too many failures.
    Locked,
    /// Disabled by an admin.
    Disabled,
}

impl StartResult {
    /// The word in logs and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "push_sent",
            Self::RateLimited => "rate_limited",
            Self::Blocked => "blocked",
            Self::NotEnrolled => "not_enrolled",
            Self::UnknownUser => "unknown_user",
            Self::Locked => "locked",
            Self::Disabled => "disabled",
        }
    }
}

/// A started challenge, as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedChallenge {
    /// The challenge's id, for [`PushOutcome`] and cancel.
    pub challenge_id: String,
    /// The 2-digit number (10–99) to show at the login, when number
    /// matching is on.
    pub number: Option<u8>,
    /// Unix seconds after which the challenge expires.
    pub expires_at: i64,
    /// Label of the device(s) it went to ("Alice's phone"; several joined
    /// with ", ").
    pub device_label: String,
}

/// Answer to [`StartPush`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushStarted {
    /// `sent`, or why not.
    pub result: StartResult,
    /// Present exactly when `result` is `sent`.
    #[serde(default)]
    pub challenge: Option<StartedChallenge>,
}

/// State of a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushResult {
    /// No answer yet.
    Pending,
    /// Approved (with the right number when matching is on).
    Approved,
    /// Denied on the device.
    Denied,
    /// Denied and reported as fraud.
    Fraud,
    /// Approved with the wrong number: refused.
    WrongNumber,
    /// No answer before the expiry.
    Expired,
    /// Cancelled by the host (conversation aborted), an admin (device
    /// disabled) or a reset.
    Cancelled,
}

impl PushResult {
    /// The word on the wire and in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Fraud => "fraud",
            Self::WrongNumber => "wrong_number",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
}

/// `GET /v1/host/push/{id}`: the challenge's state. A final state is
/// handed out once; asking again answers 404.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushOutcome {
    /// `pending` while the wait ran out with no answer.
    pub result: PushResult,
}

/// The bytes a device signs for a poll:
/// `twostep-poll-v1\n{device_id}\n{timestamp}\n{nonce}`.
pub fn poll_message(device_id: i64, timestamp: i64, nonce: &str) -> Vec<u8> {
    format!("twostep-poll-v1\n{device_id}\n{timestamp}\n{nonce}").into_bytes()
}

/// The bytes a device signs for an answer:
/// `twostep-answer-v1\n{device_id}\n{challenge_id}\n{nonce}\n{decision}\n{number or "-"}`.
pub fn answer_message(
    device_id: i64,
    challenge_id: &str,
    nonce: &str,
    decision: Decision,
    number: Option<u8>,
) -> Vec<u8> {
    let number = number.map_or_else(|| "-".to_owned(), |n| n.to_string());
    format!(
        "twostep-answer-v1\n{device_id}\n{challenge_id}\n{nonce}\n{}\n{number}",
        decision.as_str()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_messages_bind_every_field() {
        assert_eq!(
            poll_message(7, 1700000000, "n"),
            b"twostep-poll-v1\n7\n1700000000\nn"
        );
        assert_eq!(
            answer_message(7, "c", "n", Decision::Approve, Some(42)),
            b"twostep-answer-v1\n7\nc\nn\napprove\n42"
        );
        assert_ne!(
            answer_message(7, "c", "n", Decision::Approve, None),
            answer_message(7, "c", "n", Decision::Deny, None)
        );
    }

    #[test]
    fn wire_words() {
        assert_eq!(
            serde_json::to_string(&PushResult::WrongNumber).unwrap(),
            "\"wrong_number\""
        );
        assert_eq!(StartResult::Sent.as_str(), "push_sent");
        assert_eq!(
            serde_json::from_str::<Decision>("\"fraud\"").unwrap(),
            Decision::Fraud
        );
    }
}
