//! One Access-Request from start to answer: primary check, challenge State,
//! the registry's verdict on the code, and the reply.
//!
//! The code is sent to the registry (and consumed there) only after the
//! primary accepted. Registry answers map through
//! [`twostep_common::decision`]; an unreachable registry follows
//! `[radius].fail_mode`. An unreachable primary is always a reject: the fail
//! mode concerns the second factor only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use twostep_common::api::{AuthContext, UserStatus, VerifyRequest};
use twostep_common::client::{ClientError, RegistryClient};
use twostep_common::decision::{self, Decision, DenyReason};
use twostep_config::{FailMode, UnenrolledPolicy};

use crate::request::{self, Step};
use crate::settings::Client;
use crate::state::{self, Primary, StateKey};
use crate::upstream::{self, PrimaryResult};
use crate::wire::{self, attr, code, RawAttr, RawPacket};

/// Reply-Message of an Access-Challenge.
pub const CHALLENGE_PROMPT: &str = "Enter the verification code from your authenticator app";
/// Reply-Message when the primary refused the password.
pub const PASSWORD_REFUSED: &str = "password refused";
/// Reply-Message when the registry is unreachable under fail mode closed.
pub const UNAVAILABLE: &str = "second factor check unavailable, try again later";
/// Reply-Message when the primary (upstream password server) gives no
/// valid answer: unreachable, or every answer refused (bad authenticators).
pub const PRIMARY_UNAVAILABLE: &str = "password check unavailable, try again later";
/// Reply-Message when a challenge answer's State is refused.
pub const STATE_REFUSED: &str = "challenge expired, start again";

/// A reply to send: code and attributes (Message-Authenticator and
/// Proxy-State are added by [`wire::build_reply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Access-Accept, Access-Reject or Access-Challenge.
    pub code: u8,
    /// Attributes in order.
    pub attrs: Vec<RawAttr>,
}

impl Reply {
    /// Access-Accept with `attrs`.
    pub fn accept(attrs: Vec<RawAttr>) -> Self {
        Self {
            code: code::ACCESS_ACCEPT,
            attrs,
        }
    }

    /// Access-Reject with an optional Reply-Message.
    pub fn reject(message: Option<&str>) -> Self {
        Self {
            code: code::ACCESS_REJECT,
            attrs: message.map(wire::reply_messages).unwrap_or_default(),
        }
    }

    /// Access-Challenge with State, the prompt and Session-Timeout (how
    /// long the NAS may wait for the answer, RFC 2865 §5.27).
    pub fn challenge(state: Vec<u8>, lifetime: Duration) -> Self {
        let mut attrs = wire::reply_messages(CHALLENGE_PROMPT);
        attrs.push(RawAttr {
            typ: attr::STATE,
            value: state,
        });
        attrs.push(RawAttr {
            typ: attr::SESSION_TIMEOUT,
            value: (lifetime.as_secs() as u32).to_be_bytes().to_vec(),
        });
        Self {
            code: code::ACCESS_CHALLENGE,
            attrs,
        }
    }
}

/// What answers Access-Requests: registry client, State key and policy.
#[derive(Debug)]
pub struct Authenticator {
    /// The registry, with this server's host API key.
    pub registry: RegistryClient,
    /// Seals challenge State.
    pub state_key: StateKey,
    /// Challenge State lifetime.
    pub state_lifetime: Duration,
    /// Registry unreachable: closed or open.
    pub fail_mode: FailMode,
    /// States that completed a login here.
    pub used_states: std::sync::Mutex<state::UsedStates>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Authenticator {
    /// Answers one authenticated Access-Request of `client`.
    pub async fn handle(&self, client: &Client, packet: &RawPacket) -> Reply {
        let req = match request::parse(client, packet) {
            Ok(r) => r,
            Err(refusal) => {
                tracing::info!(client = %client.name, "Access-Reject: {}", refusal.log);
                return Reply::reject(refusal.message);
            }
        };
        let user = req.user.as_str();
        let ctx = req.context;
        match req.step {
            Step::Code { code, state: None } => {
                self.verify(client, user, &code, ctx, Vec::new()).await
            }
            Step::Code {
                code,
                state: Some(state),
            } => match state::open(
                &self.state_key,
                &client.name,
                user.as_bytes(),
                unix_now(),
                &state,
            ) {
                Ok(_) if self.used(|u| u.contains(&state, unix_now())) => {
                    tracing::info!(client = %client.name, user, "Access-Reject: State already used for a login");
                    Reply::reject(Some(STATE_REFUSED))
                }
                Ok(opened) => {
                    let reply = self.verify(client, user, &code, ctx, opened.attrs).await;
                    if reply.code == code::ACCESS_ACCEPT {
                        self.used(|u| u.insert(&state, opened.expires_at, unix_now()));
                    }
                    reply
                }
                Err(e) => {
                    tracing::info!(client = %client.name, user, "Access-Reject: {e}");
                    Reply::reject(Some(STATE_REFUSED))
                }
            },
            Step::PasswordAndCode { password, code } => {
                let attrs = match self.primary(client, user, &password, packet).await {
                    Ok(a) => a,
                    Err(r) => return r,
                };
                self.verify(client, user, &code, ctx, attrs).await
            }
            Step::Password { password } => {
                let (attrs, primary) = match &client.primary {
                    None => (Vec::new(), Primary::None),
                    Some(_) => match self.primary(client, user, &password, packet).await {
                        Ok(a) => (a, Primary::UpstreamAccepted),
                        Err(r) => return r,
                    },
                };
                if let Some(r) = self.precheck(client, user, &attrs).await {
                    return r;
                }
                let expires = unix_now() + self.state_lifetime.as_secs();
                match state::seal(
                    &self.state_key,
                    &client.name,
                    user.as_bytes(),
                    expires,
                    primary,
                    &attrs,
                ) {
                    Ok(s) => {
                        tracing::info!(client = %client.name, user, "Access-Challenge: code requested");
                        Reply::challenge(s, self.state_lifetime)
                    }
                    Err(e) => {
                        tracing::error!(client = %client.name, user, "Access-Reject: {e}");
                        Reply::reject(None)
                    }
                }
            }
        }
    }

    fn used<T>(&self, f: impl FnOnce(&mut state::UsedStates) -> T) -> T {
        f(&mut self.used_states.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The primary check; `Err` is the reply that ends the request.
    async fn primary(
        &self,
        client: &Client,
        user: &str,
        password: &[u8],
        packet: &RawPacket,
    ) -> Result<Vec<RawAttr>, Reply> {
        let Some(up) = &client.primary else {
            return Ok(Vec::new());
        };
        match upstream::check(up, user, password, packet).await {
            PrimaryResult::Accept(attrs) => Ok(attrs),
            PrimaryResult::Reject => {
                tracing::info!(client = %client.name, user, upstream = %up.name, "Access-Reject: primary refused the password");
                Err(Reply::reject(Some(PASSWORD_REFUSED)))
            }
            PrimaryResult::Unreachable(why) => {
                tracing::error!(client = %client.name, user, upstream = %up.name, "Access-Reject: primary unreachable: {why}");
                Err(Reply::reject(Some(PRIMARY_UNAVAILABLE)))
            }
        }
    }

    /// Before a challenge: refuse users who cannot pass (unknown, not
    /// enrolled, locked, disabled) without prompting them for a code.
    async fn precheck(&self, client: &Client, user: &str, attrs: &[RawAttr]) -> Option<Reply> {
        let deny = |r: DenyReason| {
            tracing::info!(client = %client.name, user, "Access-Reject: {}", r.message());
            Some(Reply::reject(Some(r.message())))
        };
        match self.registry.registrations(user).await {
            Ok(None) => deny(DenyReason::NotEnrolled),
            Ok(Some(r)) => match r.status {
                UserStatus::Locked => deny(DenyReason::Locked),
                UserStatus::Disabled => deny(DenyReason::Disabled),
                UserStatus::Active if r.methods.is_empty() => deny(DenyReason::NotEnrolled),
                UserStatus::Active => None,
            },
            Err(e) => Some(self.registry_error(client, user, &e, attrs)),
        }
    }

    fn registry_error(
        &self,
        client: &Client,
        user: &str,
        e: &ClientError,
        attrs: &[RawAttr],
    ) -> Reply {
        if e.is_unreachable() {
            return self.decide(
                client,
                user,
                decision::unreachable(self.fail_mode),
                attrs,
                Some(e),
            );
        }
        if e.api_code() == Some(twostep_common::api::ApiErrorCode::InvalidCodeFormat) {
            return self.decide(client, user, Decision::WrongCode, attrs, None);
        }
        match e {
            // The registry refused the request itself (e.g. a user name it
            // cannot hold): nothing the user can retry.
            ClientError::Api { .. } => {
                tracing::warn!(client = %client.name, user, "Access-Reject: registry refused the request: {e}");
                Reply::reject(None)
            }
            // Revoked host key, wrong settings, unexpected answers: ours to fix.
            _ => {
                tracing::error!(client = %client.name, user, "Access-Reject: registry error: {e}");
                Reply::reject(Some(UNAVAILABLE))
            }
        }
    }

    async fn verify(
        &self,
        client: &Client,
        user: &str,
        code: &str,
        context: AuthContext,
        attrs: Vec<RawAttr>,
    ) -> Reply {
        let req = VerifyRequest {
            username: user.to_owned(),
            code: code.to_owned(),
            context,
        };
        match self.registry.verify(&req).await {
            Ok(resp) => {
                let d = decision::from_result(resp.result, UnenrolledPolicy::Deny);
                self.decide(client, user, d, &attrs, None)
            }
            Err(e) => self.registry_error(client, user, &e, &attrs),
        }
    }

    fn decide(
        &self,
        client: &Client,
        user: &str,
        d: Decision,
        attrs: &[RawAttr],
        cause: Option<&ClientError>,
    ) -> Reply {
        let reply = reply_for(d, attrs);
        let verdict = if reply.code == code::ACCESS_ACCEPT {
            "Access-Accept"
        } else {
            "Access-Reject"
        };
        match (d, cause) {
            (Decision::FailOpen, Some(e)) => tracing::warn!(
                client = %client.name, user,
                "{verdict}: {e}; fail_mode = open lets the user in without a second factor"
            ),
            (_, Some(e)) => {
                tracing::error!(client = %client.name, user, "{verdict}: {e} (fail_mode = closed)")
            }
            _ => tracing::info!(client = %client.name, user, "{verdict}: {}", d.as_str()),
        }
        reply
    }
}

/// The reply for a decision; `attrs` (from the primary) go on an Accept only.
pub fn reply_for(d: Decision, attrs: &[RawAttr]) -> Reply {
    match d {
        Decision::Verified | Decision::FailOpen => Reply::accept(attrs.to_vec()),
        Decision::WrongCode => Reply::reject(Some("code refused")),
        Decision::Denied(r) => Reply::reject(Some(r.message())),
        Decision::Ignore => Reply::reject(Some(DenyReason::NotEnrolled.message())),
        Decision::Unavailable => Reply::reject(Some(UNAVAILABLE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_verified_or_fail_open_accepts() {
        let attrs = vec![RawAttr {
            typ: attr::CLASS,
            value: b"x".to_vec(),
        }];
        assert_eq!(
            reply_for(Decision::Verified, &attrs),
            Reply::accept(attrs.clone())
        );
        assert_eq!(
            reply_for(Decision::FailOpen, &attrs).code,
            code::ACCESS_ACCEPT
        );
        for (d, msg) in [
            (Decision::WrongCode, "code refused"),
            (Decision::Denied(DenyReason::Locked), "account locked"),
            (
                Decision::Denied(DenyReason::NotEnrolled),
                "second factor not set up",
            ),
            (Decision::Ignore, "second factor not set up"),
            (Decision::Unavailable, UNAVAILABLE),
        ] {
            let r = reply_for(d, &attrs);
            assert_eq!(r.code, code::ACCESS_REJECT);
            assert_eq!(r.attrs, wire::reply_messages(msg), "{d:?}");
        }
    }

    #[test]
    fn challenge_carries_state_prompt_and_timeout() {
        let r = Reply::challenge(vec![1, 2, 3], Duration::from_secs(120));
        assert_eq!(r.code, code::ACCESS_CHALLENGE);
        assert!(r.attrs.contains(&RawAttr {
            typ: attr::STATE,
            value: vec![1, 2, 3]
        }));
        assert!(r.attrs.contains(&RawAttr {
            typ: 27,
            value: vec![0, 0, 0, 120]
        }));
        assert_eq!(r.attrs[0].value, CHALLENGE_PROMPT.as_bytes());
    }
}
