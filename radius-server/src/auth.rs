//! The driver of the login flow: performs each [`Action`] of a
//! [`Login`] (the primary check over RADIUS, registry calls over HTTPS,
//! the pending-push table), feeds the result back with the clock, records
//! spent State and writes the verdict's log line. Every decision is the
//! flow's ([`crate::flow`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tracing::Level;
use twostep_common::client::RegistryClient;
use twostep_config::FailMode;

use crate::flow::{Action, Env, Event, Joined, LogLine, Login, RegistryFailure, Reply, Verdict};
use crate::metrics::{Answer, Call as Metric, Metrics};
use crate::pending::{Join, Keyer, PendingKey, PendingPushes};
use crate::settings::Client;
use crate::state::{StateKey, UsedStates};
use crate::upstream;
use crate::wire::RawPacket;

/// Longest a request waits for an identical pending push login's reply:
/// longer than that login can take (a held push waits 120 s, each
/// registry call its own deadline).
pub const MAX_JOIN_WAIT: Duration = Duration::from_secs(300);

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
    /// Wrong answers one challenge State takes.
    pub challenge_max_tries: u32,
    /// States that completed a login here, and the wrong answers each took.
    pub used_states: Mutex<UsedStates>,
    /// Push logins pending here (`max_pending_pushes`).
    pub pending: Mutex<PendingPushes>,
    /// Keys push logins for `pending`.
    pub keyer: Keyer,
    /// Requests answered and call latency ([`crate::metrics`]).
    pub metrics: Arc<Metrics>,
}

/// One action's call in progress, resolving to the event it brings.
type Call<'s> = Pin<Box<dyn Future<Output = Event> + Send + 's>>;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The entry of a push login this request leads: finished with its
/// verdict, or abandoned if the request ends without one.
struct Lead<'a> {
    pending: &'a Mutex<PendingPushes>,
    key: Option<PendingKey>,
}

impl Lead<'_> {
    fn finish(mut self, verdict: &Verdict) {
        if let Some(key) = self.key.take() {
            lock(self.pending).finish(key, &verdict.reply, verdict.push.as_ref(), unix_now());
        }
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(self.pending).abandon(key);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits (at most [`MAX_JOIN_WAIT`]) for the reply of the login that
/// leads; `None` when it ended without one.
async fn leader_reply(mut rx: watch::Receiver<Option<Reply>>) -> Option<Reply> {
    let got = tokio::time::timeout(MAX_JOIN_WAIT, rx.wait_for(Option::is_some)).await;
    match got {
        Ok(Ok(reply)) => reply.clone(),
        _ => None,
    }
}

impl Authenticator {
    /// Answers one authenticated Access-Request of `client`. `in_flight`
    /// is the request's `max_in_flight` place, let go once it becomes a
    /// pending push ([`Action::Join`]): pushes waiting for their answer
    /// never keep code logins out.
    pub async fn handle(
        &self,
        client: &Client,
        packet: &RawPacket,
        in_flight: OwnedSemaphorePermit,
    ) -> Reply {
        let env = Env {
            client,
            state_key: &self.state_key,
            state_lifetime: self.state_lifetime,
            fail_mode: self.fail_mode,
            keyer: &self.keyer,
            max_tries: self.challenge_max_tries,
        };
        let mut in_flight = Some(in_flight);
        let mut lead = None;
        let (mut login, mut action) =
            Login::start(env, packet, &lock(&self.used_states), unix_now());
        let verdict = loop {
            let call = match action {
                Action::Reply(verdict) => break verdict,
                Action::Join(key) => {
                    drop(in_flight.take());
                    self.join(key, &mut lead)
                }
                other => self.call(other, packet),
            };
            let event = call.await;
            action = login.resume(event, unix_now());
        };
        if let Some(spent) = &verdict.spent_state {
            lock(&self.used_states).insert(&spent.state, spent.expires_at, unix_now());
        }
        if let Some(tried) = &verdict.wrong_try {
            lock(&self.used_states).count_wrong(&tried.state, tried.expires_at, unix_now());
        }
        if let Some(lead) = lead {
            lead.finish(&verdict);
        }
        log(client, &verdict.log);
        if let Some(answer) = Answer::from_code(verdict.reply.code) {
            self.metrics.answered(&client.name, answer);
        }
        verdict.reply
    }

    /// The future of one action's call, boxed: while a request waits (a
    /// push long-poll, a slow registry), its task holds this call's state
    /// and nothing else, not room for the largest call of them all.
    fn call<'s>(&'s self, action: Action, packet: &'s RawPacket) -> Call<'s> {
        match action {
            Action::AskPrimary {
                upstream,
                user,
                password,
            } => Box::pin(async move {
                Event::Primary(
                    self.timed(Metric::Primary, || {
                        upstream::check(&upstream, &user, &password, packet)
                    })
                    .await,
                )
            }),
            Action::LookUp { user, context } => Box::pin(async move {
                Event::Registrations(
                    self.timed(Metric::Registrations, || {
                        self.registry.registrations_for(&user, &context)
                    })
                    .await
                    .map_err(RegistryFailure::from),
                )
            }),
            Action::Verify(req) => Box::pin(async move {
                Event::Verified(
                    self.timed(Metric::Verify, || self.registry.verify(&req))
                        .await
                        .map_err(RegistryFailure::from),
                )
            }),
            Action::StartPush(req) => Box::pin(async move {
                Event::PushStarted(
                    self.timed(Metric::PushStart, || self.registry.start_push(&req))
                        .await
                        .map_err(RegistryFailure::from),
                )
            }),
            Action::AwaitPush { challenge_id, wait } => Box::pin(async move {
                Event::PushOutcome(
                    self.timed(Metric::PushOutcome, || {
                        self.registry.push_outcome(&challenge_id, wait)
                    })
                    .await
                    .map_err(RegistryFailure::from),
                )
            }),
            Action::CancelPush { challenge_id } => Box::pin(async move {
                Event::PushCancelled(
                    self.timed(Metric::PushCancel, || {
                        self.registry.cancel_push(&challenge_id)
                    })
                    .await
                    .map_err(RegistryFailure::from),
                )
            }),
            Action::SendCode { user, request } => Box::pin(async move {
                Event::CodeSent(
                    self.timed(Metric::SendCode, || {
                        self.registry.send_code(&user, &request)
                    })
                    .await
                    .map_err(RegistryFailure::from),
                )
            }),
            // Handled by the caller (`handle`); never reached.
            Action::Join(_) | Action::Reply(_) => {
                Box::pin(std::future::ready(Event::Joined(Joined::LeaderGone)))
            }
        }
    }

    /// [`Action::Join`]: looks the push login up among the pending ones;
    /// the request leads it (`lead` set) or waits for the leader's reply.
    fn join<'s>(&'s self, key: PendingKey, lead: &mut Option<Lead<'s>>) -> Call<'s> {
        let join = lock(&self.pending).join(key, unix_now());
        let joined = match join {
            Join::Lead => {
                *lead = Some(Lead {
                    pending: &self.pending,
                    key: Some(key),
                });
                Joined::Lead
            }
            Join::Replay(reply) => Joined::Reply(reply),
            Join::Wait(rx) => {
                return Box::pin(async move {
                    Event::Joined(
                        leader_reply(rx)
                            .await
                            .map_or(Joined::LeaderGone, Joined::Reply),
                    )
                })
            }
            Join::Full => Joined::Full,
        };
        Box::pin(std::future::ready(Event::Joined(joined)))
    }

    /// The future `start` makes, awaited, its time recorded in the
    /// metrics. Made here rather than passed in: a future passed in would
    /// be stored twice in this one (as the argument and as what is
    /// awaited), and it is most of what a pending request holds.
    async fn timed<T, F: Future<Output = T>>(&self, call: Metric, start: impl FnOnce() -> F) -> T {
        let started = Instant::now();
        let out = start().await;
        self.metrics.call(call, started.elapsed());
        out
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
