//! The driver of the login flow: performs each [`Action`] of a
//! [`Login`] (the primary check over RADIUS, registry calls over HTTPS),
//! feeds the result back with the clock, records spent State and writes
//! the verdict's log line. Every decision is the flow's ([`crate::flow`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::Level;
use twostep_common::client::RegistryClient;
use twostep_config::FailMode;

use crate::flow::{Action, Env, Event, LogLine, Login, RegistryFailure, Reply};
use crate::settings::Client;
use crate::state::{StateKey, UsedStates};
use crate::upstream;
use crate::wire::RawPacket;

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
    pub used_states: std::sync::Mutex<UsedStates>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Authenticator {
    /// Answers one authenticated Access-Request of `client`.
    pub async fn handle(&self, client: &Client, packet: &RawPacket) -> Reply {
        let env = Env {
            client,
            state_key: &self.state_key,
            state_lifetime: self.state_lifetime,
            fail_mode: self.fail_mode,
        };
        let (mut login, mut action) = self.used(|u| Login::start(env, packet, u, unix_now()));
        let verdict = loop {
            let event = match action {
                Action::AskPrimary {
                    upstream,
                    user,
                    password,
                } => Event::Primary(upstream::check(&upstream, &user, &password, packet).await),
                Action::LookUp { user } => Event::Registrations(
                    self.registry
                        .registrations(&user)
                        .await
                        .map_err(RegistryFailure::from),
                ),
                Action::Verify(req) => Event::Verified(
                    self.registry
                        .verify(&req)
                        .await
                        .map_err(RegistryFailure::from),
                ),
                Action::Reply(verdict) => break verdict,
            };
            action = login.resume(event, unix_now());
        };
        if let Some(spent) = &verdict.spent_state {
            self.used(|u| u.insert(&spent.state, spent.expires_at, unix_now()));
        }
        log(client, &verdict.log);
        verdict.reply
    }

    fn used<T>(&self, f: impl FnOnce(&mut UsedStates) -> T) -> T {
        f(&mut self.used_states.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Writes a verdict's log line with the client, user and upstream fields.
fn log(client: &Client, line: &LogLine) {
    let user = line.user.as_deref();
    let upstream = line.upstream.as_deref();
    let text = &line.text;
    match line.level {
        Level::ERROR => tracing::error!(client = %client.name, user, upstream, "{text}"),
        Level::WARN => tracing::warn!(client = %client.name, user, upstream, "{text}"),
        _ => tracing::info!(client = %client.name, user, upstream, "{text}"),
    }
}
