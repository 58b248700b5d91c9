//! Push approvals: the wire types of device activation, challenges and
//! answers, and the exact bytes a device signs.
//!
//! A push device is a method of kind [`MethodKind::Push`] whose registration
//! holds the device's Ed25519 public key (RFC 8032); the private key never
//! leaves the device. Every request a device makes after activation is
//! signed, so the registry needs no device secret of its own.
//!
//! | method | path ([`paths`]) | who | body → answer |
//! |---|---|---|---|
//! | POST | `/v1/admin/users/{username}/methods/push` ([`paths::USER_PUSH`]) | admin | [`CreateActivation`] → 201 [`Activation`] |
//! | POST | `/v1/device/activate` ([`paths::DEVICE_ACTIVATE`]) | anyone with the activation code | [`ActivateDevice`] → 201 [`DeviceActivated`] |
//! | POST | `/v1/device/poll` ([`paths::DEVICE_POLL`]) | device (signed) | [`DevicePoll`] → [`PendingChallenges`] (long-poll) |
//! | POST | `/v1/device/answer` ([`paths::DEVICE_ANSWER`]) | device (signed) | [`DeviceAnswer`] → [`AnswerAccepted`] |
//! | POST | `/v1/host/push` ([`paths::HOST_PUSH`]) | host | [`StartPush`] → [`PushStarted`] |
//! | GET | `/v1/host/push/{challenge_id}?wait=SECONDS` ([`paths::HOST_PUSH_CHALLENGE`]) | host that started it | → [`PushOutcome`] (long-poll) |
//! | DELETE | `/v1/host/push/{challenge_id}` | host that started it | → 204 (cancel) |
//! | POST | `/v1/admin/methods/{id}/disable` ([`paths::METHOD_DISABLE`]) | admin | → [`Method`] (open challenges cancelled) |
//! | POST | `/v1/admin/methods/{id}/enable` ([`paths::METHOD_ENABLE`]) | admin | → [`Method`] |
//!
//! Lifecycle of a challenge: `pending` → one of `approved`, `denied`,
//! `fraud`, `wrong_number`, `expired`, `cancelled`. The final state is
//! reached once (one atomic update whose `WHERE` requires `pending` and an
//! unexpired row), and handed to the host that started it once.
//!
//! Refusals are [`ErrorBody`] answers with these codes, each an
//! [`ApiErrorCode`]: 401 `unknown_device`, `bad_signature`, `clock_skew`,
//! `replayed_nonce`; 403 `device_disabled`; 400 `number_required`,
//! `nonce_mismatch`, `invalid_nonce`, `invalid_public_key`; 404 `unknown_activation`, `unknown_challenge`
//! (also another user's challenge, another host's, or a result handed out
//! already); 409 `activation_used`, `challenge_closed` (a second answer, a
//! replay); 410 `activation_expired`, `challenge_expired`. Each refusal of
//! a known device is audited with its code.
//!
//! [`MethodKind::Push`]: crate::api::MethodKind
//! [`ErrorBody`]: crate::api::ErrorBody
//! [`ApiErrorCode`]: crate::api::ApiErrorCode
//! [`paths`]: crate::api::paths
//! [`paths::USER_PUSH`]: crate::api::paths::USER_PUSH
//! [`paths::DEVICE_ACTIVATE`]: crate::api::paths::DEVICE_ACTIVATE
//! [`paths::DEVICE_POLL`]: crate::api::paths::DEVICE_POLL
//! [`paths::DEVICE_ANSWER`]: crate::api::paths::DEVICE_ANSWER
//! [`paths::HOST_PUSH`]: crate::api::paths::HOST_PUSH
//! [`paths::HOST_PUSH_CHALLENGE`]: crate::api::paths::HOST_PUSH_CHALLENGE
//! [`paths::METHOD_DISABLE`]: crate::api::paths::METHOD_DISABLE
//! [`paths::METHOD_ENABLE`]: crate::api::paths::METHOD_ENABLE
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
    /// Where from. `host` is the registered name of the host that started
    /// the challenge (its API key's), never the host's own claim.
    pub context: PushContext,
    /// The host name the starting host claimed in its context, when it
    /// differs from its registered name: to be shown as a claim only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_host: Option<String>,
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

/// Base64url without padding (RFC 4648 §5), the encoding of keys,
/// signatures, nonces and challenge ids on the wire.
pub fn b64url(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

/// `n` random bytes from the operating system, base64url without padding:
/// nonces and challenge ids.
pub fn random_token(n: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    b64url(&buf)
}

/// Bytes of random in a poll's nonce (128 bits).
pub const NONCE_BYTES: usize = 16;

/// A device's Ed25519 key pair (RFC 8032 §5.1). The private half never
/// leaves the device; `Debug` shows only the public key.
#[derive(Clone)]
pub struct DeviceKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl DeviceKey {
    /// A new key pair from the operating system's random source.
    pub fn generate() -> Self {
        Self(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// The key pair whose 32-byte secret key (RFC 8032 §5.1.5) is `secret`.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(secret))
    }

    /// The key pair from [`DeviceKey::secret_base64url`]'s text.
    ///
    /// # Errors
    /// A one-line reason when the text is not 32 bytes of base64url.
    pub fn from_secret_base64url(text: &str) -> Result<Self, &'static str> {
        let bytes = zeroize::Zeroizing::new(
            data_encoding::BASE64URL_NOPAD
                .decode(text.trim().as_bytes())
                .map_err(|_| "device secret key is not base64url")?,
        );
        let secret: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| "device secret key is not 32 bytes")?;
        Ok(Self::from_secret_bytes(secret))
    }

    /// The 32-byte secret key, base64url, for the device's own key file.
    pub fn secret_base64url(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(b64url(self.0.as_bytes()))
    }

    /// The public key, base64url without padding, as sent in [`ActivateDevice`].
    pub fn public_key(&self) -> String {
        b64url(self.0.verifying_key().as_bytes())
    }

    fn sign(&self, message: &[u8]) -> String {
        use ed25519_dalek::Signer;
        b64url(&self.0.sign(message).to_bytes())
    }

    /// A signed poll of device `device_id` at `timestamp` (Unix seconds)
    /// with a fresh random nonce, held open up to `wait` seconds.
    pub fn sign_poll(&self, device_id: i64, timestamp: i64, wait: u64) -> DevicePoll {
        let nonce = random_token(NONCE_BYTES);
        DevicePoll {
            device_id,
            timestamp,
            signature: self.sign(&poll_message(device_id, timestamp, &nonce)),
            nonce,
            wait,
        }
    }

    /// A signed answer of device `device_id` to `challenge` (as polled).
    pub fn sign_answer(
        &self,
        device_id: i64,
        challenge: &PendingChallenge,
        decision: Decision,
        number: Option<u8>,
    ) -> DeviceAnswer {
        DeviceAnswer {
            device_id,
            challenge_id: challenge.challenge_id.clone(),
            nonce: challenge.nonce.clone(),
            decision,
            number,
            signature: self.sign(&answer_message(
                device_id,
                &challenge.challenge_id,
                &challenge.nonce,
                decision,
                number,
            )),
        }
    }
}

/// Parses a stored public key: base64url without padding, 32 bytes, a
/// valid Ed25519 point (RFC 8032 §5.1.3).
///
/// # Errors
/// A one-line reason.
pub fn parse_public_key(public_key: &str) -> Result<ed25519_dalek::VerifyingKey, &'static str> {
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(public_key.as_bytes())
        .map_err(|_| "public key is not base64url without padding")?;
    let bytes: [u8; PUBLIC_KEY_BYTES] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| "public key is not 32 bytes")?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| "public key is not an Ed25519 point")
}

/// Checks `signature` (base64url, 64 bytes) over `message` against the
/// base64url `public_key`, in the strict form of RFC 8032 §5.1.7 (no
/// small-order keys, canonical `S`).
///
/// # Errors
/// A one-line reason; `"signature does not verify"` for a well-formed
/// signature that does not match.
pub fn verify_signature(
    public_key: &str,
    message: &[u8],
    signature: &str,
) -> Result<(), &'static str> {
    let key = parse_public_key(public_key)?;
    let sig = data_encoding::BASE64URL_NOPAD
        .decode(signature.as_bytes())
        .map_err(|_| "signature is not base64url without padding")?;
    let sig: [u8; SIGNATURE_BYTES] = sig
        .as_slice()
        .try_into()
        .map_err(|_| "signature is not 64 bytes")?;
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig))
        .map_err(|_| "signature does not verify")
}

/// [`verify_signature`] of a poll over [`poll_message`].
///
/// # Errors
/// As [`verify_signature`].
pub fn verify_poll(public_key: &str, poll: &DevicePoll) -> Result<(), &'static str> {
    verify_signature(
        public_key,
        &poll_message(poll.device_id, poll.timestamp, &poll.nonce),
        &poll.signature,
    )
}

/// [`verify_signature`] of an answer over [`answer_message`].
///
/// # Errors
/// As [`verify_signature`].
pub fn verify_answer(public_key: &str, answer: &DeviceAnswer) -> Result<(), &'static str> {
    verify_signature(
        public_key,
        &answer_message(
            answer.device_id,
            &answer.challenge_id,
            &answer.nonce,
            answer.decision,
            answer.number,
        ),
        &answer.signature,
    )
}

/// An activation URI: `twostep-activate://activate?registry=URL&code=CODE&user=NAME`,
/// each value percent-encoded.
pub fn activation_uri(registry_url: &str, code: &str, username: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    // Everything but RFC 3986 unreserved characters.
    const VALUE: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let enc = |s: &str| utf8_percent_encode(s, VALUE).to_string();
    format!(
        "{ACTIVATION_SCHEME}://activate?registry={}&code={}&user={}",
        enc(registry_url),
        enc(code),
        enc(username)
    )
}

/// The parts of an activation URI.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationUri {
    /// The registry's base URL.
    pub registry: String,
    /// The one-time activation code.
    pub code: String,
    /// The user it is for.
    pub username: String,
}

impl std::fmt::Debug for ActivationUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationUri")
            .field("registry", &self.registry)
            .field("code", &"<redacted>")
            .field("username", &self.username)
            .finish()
    }
}

/// Parses an [`activation_uri`].
///
/// # Errors
/// A one-line reason: another scheme, or a missing part.
pub fn parse_activation_uri(uri: &str) -> Result<ActivationUri, &'static str> {
    let u = url::Url::parse(uri).map_err(|_| "not a URI")?;
    if u.scheme() != ACTIVATION_SCHEME {
        return Err("not a twostep-activate:// URI");
    }
    let get = |name: &str| {
        u.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
    };
    Ok(ActivationUri {
        registry: get("registry").ok_or("the activation URI has no registry")?,
        code: get("code").ok_or("the activation URI has no code")?,
        username: get("user").ok_or("the activation URI has no user")?,
    })
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

    fn challenge() -> PendingChallenge {
        PendingChallenge {
            challenge_id: "c1".into(),
            nonce: "n1".into(),
            username: "alice".into(),
            context: PushContext::default(),
            claimed_host: None,
            created_at: 0,
            expires_at: 60,
            number_matching: true,
        }
    }

    #[test]
    fn poll_sign_verify_round_trip() {
        let k = DeviceKey::generate();
        let p = k.sign_poll(7, 1_700_000_000, 30);
        assert_eq!(verify_poll(&k.public_key(), &p), Ok(()));
        // Every signed field is bound.
        let mut q = p.clone();
        q.device_id = 8;
        assert_eq!(
            verify_poll(&k.public_key(), &q),
            Err("signature does not verify")
        );
        let mut q = p.clone();
        q.timestamp += 1;
        assert!(verify_poll(&k.public_key(), &q).is_err());
        let mut q = p.clone();
        q.nonce = random_token(NONCE_BYTES);
        assert!(verify_poll(&k.public_key(), &q).is_err());
        // Another device's key does not verify it.
        assert!(verify_poll(&DeviceKey::generate().public_key(), &p).is_err());
        // Two polls never share a nonce.
        assert_ne!(p.nonce, k.sign_poll(7, 1_700_000_000, 30).nonce);
    }

    #[test]
    fn answer_sign_verify_round_trip_and_tampering() {
        let k = DeviceKey::generate();
        let pk = k.public_key();
        let a = k.sign_answer(7, &challenge(), Decision::Approve, Some(42));
        assert_eq!(verify_answer(&pk, &a), Ok(()));
        let tampered: [fn(&mut DeviceAnswer); 6] = [
            |a| a.number = Some(43),
            |a| a.number = None,
            |a| a.decision = Decision::Deny,
            |a| a.nonce = "n2".into(),
            |a| a.challenge_id = "c2".into(),
            |a| a.device_id = 8,
        ];
        for (i, change) in tampered.iter().enumerate() {
            let mut b = a.clone();
            change(&mut b);
            assert_eq!(
                verify_answer(&pk, &b),
                Err("signature does not verify"),
                "change {i}"
            );
        }
        let d = k.sign_answer(7, &challenge(), Decision::Fraud, None);
        assert_eq!(verify_answer(&pk, &d), Ok(()));
    }

    #[test]
    fn malformed_keys_and_signatures_are_refused() {
        let k = DeviceKey::generate();
        let a = k.sign_answer(1, &challenge(), Decision::Deny, None);
        assert_eq!(
            verify_signature("not base64!", b"", &a.signature),
            Err("public key is not base64url without padding")
        );
        assert_eq!(
            verify_signature(&b64url(&[1u8; 31]), b"", &a.signature),
            Err("public key is not 32 bytes")
        );
        assert_eq!(
            verify_signature(&k.public_key(), b"", &b64url(&[0u8; 63])),
            Err("signature is not 64 bytes")
        );
        // The secret key survives its text form.
        let again = DeviceKey::from_secret_base64url(&k.secret_base64url()).unwrap();
        assert_eq!(again.public_key(), k.public_key());
        assert!(!format!("{k:?}").contains(k.secret_base64url().as_str()));
    }

    /// RFC 8032 §7.1, TEST 1: the empty message.
    #[test]
    fn rfc8032_test_1() {
        let hex = |s: &str| data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap();
        let secret: [u8; 32] =
            hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .try_into()
                .unwrap();
        let public = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let signature = hex(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        );
        let k = DeviceKey::from_secret_bytes(&secret);
        assert_eq!(k.public_key(), b64url(&public));
        assert_eq!(k.sign(b""), b64url(&signature));
        assert_eq!(
            verify_signature(&b64url(&public), b"", &b64url(&signature)),
            Ok(())
        );
        assert!(verify_signature(&b64url(&public), b"x", &b64url(&signature)).is_err());
    }

    #[test]
    fn activation_uri_round_trip() {
        let uri = activation_uri(
            "https://reg.example:8443",
            "ABC234",
            "alice smith@example.com",
        );
        assert!(uri.starts_with("twostep-activate://activate?registry=https%3A%2F%2Freg"));
        let p = parse_activation_uri(&uri).unwrap();
        assert_eq!(p.registry, "https://reg.example:8443");
        assert_eq!(p.code, "ABC234");
        assert_eq!(p.username, "alice smith@example.com");
        assert!(parse_activation_uri("otpauth://totp/x?secret=A").is_err());
        assert!(!format!("{p:?}").contains("ABC234"));
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
