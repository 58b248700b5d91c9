//! A push device's side of the registry's device protocol
//! ([`twostep_common::push`]): activation, signed polls and answers, and
//! how a challenge is shown to the device's user.

use super::store::{PushAccount, SecretText};
use crate::output::{text, time};
use anyhow::{anyhow, Context};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;
use twostep_common::api::ApiErrorCode;
use twostep_common::client::{ClientError, RegistryClient};
use twostep_common::push::{
    ActivateDevice, ActivationUri, Decision, DeviceKey, PendingChallenge, PushResult, MAX_WAIT_SECS,
};

/// Unix seconds now (0 before 1970).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A push account's registry client and key.
pub struct Device {
    /// The account.
    pub account: PushAccount,
    client: RegistryClient,
    key: DeviceKey,
}

impl Device {
    /// The client and key of `account`.
    ///
    /// # Errors
    /// An unusable registry URL or CA file, a malformed stored key.
    pub fn new(account: &PushAccount) -> anyhow::Result<Self> {
        let client = RegistryClient::for_device(&account.registry, account.ca_file.as_deref())?;
        let key = DeviceKey::from_secret_base64url(account.secret_key.expose())
            .map_err(|e| anyhow!("account {:?}: {e}", account.name))?;
        Ok(Self {
            account: account.clone(),
            client,
            key,
        })
    }

    /// One signed poll, held open by the registry up to `wait_secs` (at
    /// most [`MAX_WAIT_SECS`]) until a challenge is created.
    ///
    /// # Errors
    /// See [`RegistryClient::poll`].
    pub async fn poll(&self, wait_secs: u64) -> Result<Vec<PendingChallenge>, ClientError> {
        let poll = self.key.sign_poll(
            self.account.device_id,
            unix_now(),
            wait_secs.min(MAX_WAIT_SECS),
        );
        Ok(self.client.poll(&poll).await?.challenges)
    }

    /// Polls until a pending challenge is there (the one with id `wanted`,
    /// or the oldest) or `wait` has passed.
    ///
    /// # Errors
    /// As [`Device::poll`].
    pub async fn wait_for(
        &self,
        wanted: Option<&str>,
        wait: Duration,
    ) -> Result<Option<PendingChallenge>, ClientError> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Whole seconds, rounded up, so the last poll still waits.
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            let list = self.poll(secs).await?;
            let found = match wanted {
                Some(id) => list.iter().find(|c| c.challenge_id == id),
                None => list.first(),
            };
            if let Some(c) = found {
                return Ok(Some(c.clone()));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            if !list.is_empty() {
                // Others are pending, so the registry answered at once:
                // ask again in a moment, not in a loop.
                tokio::time::sleep(Duration::from_secs(1).min(left)).await;
            }
        }
    }

    /// Whether the challenge `id`, not among the pending ones, is closed
    /// (answered, cancelled, expired) or unknown, asked without answering
    /// it: a deny signed for an empty nonce, which the registry refuses for
    /// what the challenge is (closed, expired, unknown; a nonce mismatch
    /// when it is still open) and never records.
    ///
    /// # Errors
    /// Any other failure of the request.
    pub async fn probe(&self, id: &str) -> Result<Probe, ClientError> {
        let probe = PendingChallenge {
            challenge_id: id.to_owned(),
            nonce: String::new(),
            username: String::new(),
            context: Default::default(),
            claimed_host: None,
            created_at: 0,
            expires_at: 0,
            number_matching: false,
        };
        let answer = self
            .key
            .sign_answer(self.account.device_id, &probe, Decision::Deny, None);
        match self.client.answer(&answer).await {
            Err(e) => Ok(match e.api_code() {
                Some(ApiErrorCode::ChallengeClosed | ApiErrorCode::ChallengeExpired) => {
                    Probe::Closed(answer_error(&e))
                }
                Some(ApiErrorCode::UnknownChallenge) => Probe::Unknown,
                Some(ApiErrorCode::NonceMismatch) => Probe::Open,
                _ => return Err(e),
            }),
            // An empty nonce never matches: the registry cannot accept it.
            Ok(_) => Ok(Probe::Open),
        }
    }

    /// Sends the signed answer `decision` (with the number typed, for an
    /// approval under number matching) and gives the registry's result.
    ///
    /// # Errors
    /// See [`RegistryClient::answer`].
    pub async fn answer(
        &self,
        challenge: &PendingChallenge,
        decision: Decision,
        number: Option<u8>,
    ) -> Result<PushResult, ClientError> {
        let answer = self
            .key
            .sign_answer(self.account.device_id, challenge, decision, number);
        Ok(self.client.answer(&answer).await?.result)
    }
}

/// What [`Device::probe`] learnt of a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Still open (created after the poll): wait for it.
    Open,
    /// Answered, cancelled or expired: why, for the device's user.
    Closed(String),
    /// The registry does not know it (for this device's user).
    Unknown,
}

/// Registers a new device with `uri`'s one-time code: makes its Ed25519
/// key pair, sends the public half and `device_name`, and gives the
/// account to store under `name` (the private key inside).
///
/// # Errors
/// The registry refused the code (unknown, used, expired) or could not be
/// reached; the message says which.
pub async fn activate(
    uri: &ActivationUri,
    name: String,
    device_name: String,
    ca_file: Option<&Path>,
) -> anyhow::Result<PushAccount> {
    let client = RegistryClient::for_device(&uri.registry, ca_file)?;
    let key = DeviceKey::generate();
    let activated = client
        .activate(&ActivateDevice {
            code: uri.code.clone(),
            device_name: device_name.clone(),
            public_key: key.public_key(),
        })
        .await
        .map_err(|e| match e.api_code() {
            Some(ApiErrorCode::UnknownActivation) => anyhow!("the registry does not know this activation code (mistyped, or for another registry)"),
            Some(ApiErrorCode::ActivationUsed) => anyhow!("this activation code was used already: ask an admin for a new one"),
            Some(ApiErrorCode::ActivationExpired) => anyhow!("this activation code has expired: ask an admin for a new one"),
            _ => anyhow::Error::new(e),
        })
        .with_context(|| format!("activation at {}", uri.registry))?;
    Ok(PushAccount {
        name,
        registry: uri.registry.clone(),
        ca_file: ca_file.map(Path::to_owned),
        username: activated.username,
        label: activated.label,
        device_name,
        device_id: activated.device_id,
        secret_key: SecretText::new(key.secret_base64url().to_string()),
        added_at: unix_now(),
    })
}

/// The context fields a challenge has: (label shown, key in `pending`, value).
/// The host's claimed name (`claimed_host`) is shown as a claim.
fn context_fields(
    c: &PendingChallenge,
) -> impl Iterator<Item = (&'static str, &'static str, &str)> {
    let ctx = &c.context;
    [
        ("service", "service", &ctx.service),
        ("host", "host", &ctx.host),
        ("claimed", "claimed_host", &c.claimed_host),
        ("from", "from", &ctx.remote_addr),
        ("NAS", "nas", &ctx.nas),
        ("tty", "tty", &ctx.tty),
    ]
    .into_iter()
    .filter_map(|(label, key, v)| v.as_deref().map(|v| (label, key, v)))
}

/// The challenge for the device's user to judge: who, which service,
/// which host, from where, when; text from the registry escaped.
pub fn describe(account: &str, c: &PendingChallenge, now: i64) -> String {
    let mut s = format!(
        "Sign-in request for {} ({})\n",
        text(&c.username),
        text(account)
    );
    for (label, _, value) in context_fields(c) {
        let _ = writeln!(s, "  {label:<8} {}", text(value));
    }
    let _ = writeln!(
        s,
        "  {:<8} {} (expires in {} s)",
        "when",
        time(c.created_at),
        c.expires_at.saturating_sub(now).max(0)
    );
    s
}

/// `pending`: one line per challenge, `ID key="value"...`.
pub fn pending_line(c: &PendingChallenge, now: i64) -> String {
    let mut s = text(&c.challenge_id).into_owned();
    let _ = write!(s, " user={:?}", c.username);
    for (_, key, value) in context_fields(c) {
        let _ = write!(s, " {key}={value:?}");
    }
    let _ = write!(
        s,
        " created={} expires_in={}s number_matching={}",
        time(c.created_at),
        c.expires_at.saturating_sub(now).max(0),
        if c.number_matching { "yes" } else { "no" }
    );
    s
}

/// What a result means to the device's user, one line.
pub fn result_message(result: PushResult, username: &str) -> String {
    match result {
        PushResult::Approved => "approved: the login goes on".into(),
        PushResult::Denied => "denied: the login is refused".into(),
        PushResult::Fraud => format!(
            "reported as fraud: the login is refused and new sign-in requests for {} are blocked until an admin clears them (`twostep user unlock`)",
            text(username)
        ),
        PushResult::WrongNumber => {
            "wrong number: the login is refused (the number is the one shown at the login)".into()
        }
        other => format!("the request ended as {}", other.as_str()),
    }
}

/// A refused answer as one line for the device's user.
pub fn answer_error(e: &ClientError) -> String {
    match e.api_code() {
        Some(ApiErrorCode::ChallengeClosed) => {
            "this request was answered or cancelled already (another device, or the login was abandoned)".into()
        }
        Some(ApiErrorCode::ChallengeExpired) => "this request expired before the answer arrived".into(),
        Some(ApiErrorCode::UnknownChallenge) => "the registry no longer knows this request".into(),
        _ => twostep_common::error_chain(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twostep_common::push::PushContext;

    #[test]
    fn a_hosts_claimed_name_is_shown_as_a_claim() {
        let c = PendingChallenge {
            claimed_host: Some("bank-login".into()),
            ..challenge()
        };
        let d = describe("a@r", &c, 1_700_000_003);
        assert!(
            d.contains("  host     web1\n  claimed  bank-login\n"),
            "{d}"
        );
        assert!(
            pending_line(&c, 1_700_000_003).contains(" host=\"web1\" claimed_host=\"bank-login\" ")
        );
    }

    fn challenge() -> PendingChallenge {
        PendingChallenge {
            challenge_id: "c1".into(),
            nonce: "n1".into(),
            username: "alice".into(),
            context: PushContext {
                service: Some("sshd".into()),
                host: Some("web1".into()),
                remote_addr: Some("192.0.2.7\u{1b}[2J".into()),
                tty: None,
                nas: Some("vpn-gw".into()),
            },
            claimed_host: None,
            created_at: 1_700_000_000,
            expires_at: 1_700_000_060,
            number_matching: true,
        }
    }

    #[test]
    fn an_absurd_expiry_from_the_registry_shows_zero_seconds() {
        let c = PendingChallenge {
            expires_at: i64::MIN,
            ..challenge()
        };
        assert!(describe("a@r", &c, 1_700_000_003).contains("(expires in 0 s)"));
        assert!(pending_line(&c, i64::MAX).contains(" expires_in=0s "));
    }

    #[test]
    fn a_challenge_shows_who_what_where_when() {
        let d = describe("alice@reg", &challenge(), 1_700_000_003);
        assert_eq!(
            d,
            "Sign-in request for alice (alice@reg)\n  service  sshd\n  host     web1\n  from     192.0.2.7\\u{1b}[2J\n  NAS      vpn-gw\n  when     2023-11-14T22:13:20Z (expires in 57 s)\n"
        );
        let line = pending_line(&challenge(), 1_700_000_003);
        assert_eq!(
            line,
            "c1 user=\"alice\" service=\"sshd\" host=\"web1\" from=\"192.0.2.7\\u{1b}[2J\" nas=\"vpn-gw\" created=2023-11-14T22:13:20Z expires_in=57s number_matching=yes"
        );
    }
}
