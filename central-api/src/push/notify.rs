//! Wake-ups of waiting long-polls: a device's poll when a challenge for
//! its user is created, a host's wait when its challenge reaches a final
//! state.
//!
//! In one process an in-memory broadcast channel carries the events. On
//! PostgreSQL every event is also sent with `pg_notify` inside the
//! transaction that causes it (delivered at commit), and each process
//! LISTENs on [`CHANNEL`], so a poll held by one `twostep-api` is woken by
//! a challenge created on another. A waiter always re-reads the database
//! after a wake-up; an event only says "look again", so a lost or doubled
//! event costs a query or a wait, never a wrong answer, and every wait is
//! bounded by its deadline.

use crate::db::Backend;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// PostgreSQL notification channel of push events.
pub const CHANNEL: &str = "twostep_push";

/// Events held for slow waiters before they are told they lagged (and
/// look again).
const EVENT_CAPACITY: usize = 4096;

/// Pause before the listener reconnects after a failure.
const RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// Something waiters may be waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// A challenge for this user (row id) was created: wake its devices' polls.
    Created {
        /// `users.id`.
        user_id: i64,
    },
    /// This challenge reached a final state: wake the host's wait.
    Finished {
        /// The challenge's id.
        challenge_id: String,
    },
    /// Events may have been missed (the listener reconnected): everyone
    /// looks again.
    Resync,
}

impl PushEvent {
    /// The notification payload: `c:USER_ID` or `f:CHALLENGE_ID`.
    fn payload(&self) -> String {
        match self {
            Self::Created { user_id } => format!("c:{user_id}"),
            Self::Finished { challenge_id } => format!("f:{challenge_id}"),
            Self::Resync => "r:".to_owned(),
        }
    }

    fn parse(payload: &str) -> Option<Self> {
        let (kind, rest) = payload.split_once(':')?;
        match kind {
            "c" => rest.parse().ok().map(|user_id| Self::Created { user_id }),
            "f" => Some(Self::Finished {
                challenge_id: rest.to_owned(),
            }),
            "r" => Some(Self::Resync),
            _ => None,
        }
    }
}

/// The event hub of one registry process.
#[derive(Debug)]
pub struct PushHub {
    tx: broadcast::Sender<PushEvent>,
    backend: Backend,
}

impl PushHub {
    /// A hub; on PostgreSQL it also starts the task that LISTENs on
    /// [`CHANNEL`] at `database_url` (reconnecting after failures, each
    /// logged at warning) when called inside a tokio runtime.
    pub fn new(backend: Backend, database_url: &str) -> Self {
        let (tx, _) = broadcast::channel(EVENT_CAPACITY);
        if backend == Backend::Postgres {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(listen(database_url.to_owned(), tx.clone()));
                }
                Err(_) => tracing::warn!(
                    "no tokio runtime: push long-polls are not woken by other registry processes"
                ),
            }
        }
        Self { tx, backend }
    }

    /// A receiver of the events from now on; subscribe before reading the
    /// database, so no event between the read and the wait is missed.
    pub fn subscribe(&self) -> broadcast::Receiver<PushEvent> {
        self.tx.subscribe()
    }

    /// Wakes this process's waiters for `event` (call after the commit).
    pub fn publish(&self, event: PushEvent) {
        // No receiver is no error: nobody waits.
        let _ = self.tx.send(event);
    }

    /// [`PushHub::publish`] of `Finished` for each challenge id.
    pub fn finished(&self, challenge_ids: &[String]) {
        for id in challenge_ids {
            self.publish(PushEvent::Finished {
                challenge_id: id.clone(),
            });
        }
    }

    /// On PostgreSQL, sends `event` to every registry process when the
    /// transaction on `conn` commits (`pg_notify`); nothing on SQLite,
    /// which has one process.
    ///
    /// # Errors
    /// The database's.
    pub async fn announce(
        &self,
        conn: &mut dyn crate::write_conn::WriteConn,
        event: &PushEvent,
    ) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres {
            // pg_notify returns void, which the Any driver cannot decode:
            // select a constant beside it.
            let payload = event.payload();
            conn.execute(
                "SELECT 1 AS sent FROM pg_notify($1, $2)",
                &[CHANNEL.into(), payload.as_str().into()],
            )
            .await?;
        }
        Ok(())
    }
}

/// Waits until an event `wanted` accepts (or a [`PushEvent::Resync`], or
/// lost events) arrives, or `until`: `true` when the caller should look
/// again now, `false` when the deadline passed.
pub async fn wait(
    rx: &mut broadcast::Receiver<PushEvent>,
    until: Instant,
    wanted: impl Fn(&PushEvent) -> bool,
) -> bool {
    loop {
        match tokio::time::timeout_at(until, rx.recv()).await {
            Err(_) => return false,
            Ok(Ok(e)) if e == PushEvent::Resync || wanted(&e) => return true,
            Ok(Ok(_)) => {}
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => return true,
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                tokio::time::sleep_until(until).await;
                return false;
            }
        }
    }
}

/// LISTENs on [`CHANNEL`] and forwards each event to this process's
/// waiters, for as long as the runtime runs.
async fn listen(url: String, tx: broadcast::Sender<PushEvent>) {
    loop {
        match sqlx::postgres::PgListener::connect(&url).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    tracing::debug!(channel = CHANNEL, "listening for push events");
                    let _ = tx.send(PushEvent::Resync);
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(n)) => {
                                if let Some(e) = PushEvent::parse(n.payload()) {
                                    let _ = tx.send(e);
                                }
                            }
                            // The connection was lost; the next call
                            // reconnects. Events meanwhile are lost.
                            Ok(None) => {
                                tracing::warn!(
                                    "push event listener lost its database connection; reconnecting"
                                );
                                let _ = tx.send(PushEvent::Resync);
                            }
                            Err(e) => {
                                tracing::warn!(error = %twostep_common::error_chain(&e), "push event listener failed; reconnecting");
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %twostep_common::error_chain(&e), "push event listener: LISTEN failed");
                }
            },
            Err(e) => {
                tracing::warn!(error = %twostep_common::error_chain(&e), "push event listener: cannot connect to the database");
            }
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        for e in [
            PushEvent::Created { user_id: 42 },
            PushEvent::Finished {
                challenge_id: "AbC-_9".into(),
            },
            PushEvent::Resync,
        ] {
            assert_eq!(PushEvent::parse(&e.payload()), Some(e));
        }
        assert_eq!(PushEvent::parse("c:x"), None);
        assert_eq!(PushEvent::parse("zz"), None);
    }

    #[tokio::test]
    async fn wait_wakes_on_the_wanted_event_only() {
        let hub = PushHub::new(Backend::Sqlite, "sqlite::memory:");
        let mut rx = hub.subscribe();
        hub.publish(PushEvent::Created { user_id: 1 });
        hub.publish(PushEvent::Created { user_id: 2 });
        let until = Instant::now() + Duration::from_secs(5);
        let start = Instant::now();
        assert!(wait(&mut rx, until, |e| *e == PushEvent::Created { user_id: 2 }).await);
        assert!(start.elapsed() < Duration::from_secs(1));
        // Nothing more: the deadline ends the wait.
        let until = Instant::now() + Duration::from_millis(100);
        assert!(!wait(&mut rx, until, |_| true).await);
    }
}
