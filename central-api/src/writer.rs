//! The one writer of verifications: group commit.
//!
//! Every verification that writes (a code consumed, a failure or replay
//! counted, its audit record) hands its writes to this task as a job. The
//! task takes the jobs waiting in its queue, up to [`MAX_BATCH`], and runs
//! them one after the other in one transaction, each inside its own
//! savepoint (a job that fails is rolled back alone), then commits once:
//! one fsync for the batch instead of one per verification. Each caller is
//! answered only after its batch committed (or with the commit's error), so
//! an acknowledged accept is as durable as before.
//!
//! Because the jobs of a batch run in order on one connection, the
//! single-statement rules of [`crate::verify`] (`UPDATE … WHERE last_step <
//! $s`, `uses_left > 0`, `used_at IS NULL`) see the writes of the jobs
//! before them: two submissions of one code in one batch give one accept
//! and one replay. And verifications no longer compete for SQLite's write
//! lock among themselves, so none of them waits in `busy_timeout`'s
//! back-off: they queue here, in order, in the process.
//!
//! Written by hand: sqlx has no group commit, and the batching is the
//! point of this module. A job is a boxed future over the connection; a
//! batch runs in a task of its own, so a panic in a job loses that batch
//! (its callers get an error), never the writer.

use crate::error::ApiError;
use crate::state::AppState;
use sqlx::{AnyConnection, Connection};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{mpsc, oneshot};

/// Most jobs committed together.
pub const MAX_BATCH: usize = 128;

/// Jobs waiting before `run` waits for room (back-pressure).
const QUEUE: usize = 4096;

/// A boxed future borrowing `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Hands a job's result to its caller once the batch's fate is known:
/// `None` when the batch committed, else why it did not.
type Deliver = Box<dyn FnOnce(Option<String>) + Send>;

/// One job: its writes on the batch's connection; `true` when they
/// succeeded (else its savepoint is rolled back), and its delivery.
type Job = Box<
    dyn for<'a> FnOnce(&'a AppState, &'a mut AnyConnection) -> BoxFuture<'a, (bool, Deliver)>
        + Send,
>;

/// The queue to the writer task.
pub struct Writer {
    tx: mpsc::Sender<Job>,
    rx: Mutex<Option<mpsc::Receiver<Job>>>,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// A writer whose task is not started yet ([`Writer::start`]); until
    /// then [`Writer::run`] runs each job in a transaction of its own.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// Starts the writer task of `state` (once; later calls do nothing).
    /// The task ends when `state` is dropped.
    pub fn start(state: &Arc<AppState>) {
        let rx = state.writer.rx.lock().ok().and_then(|mut r| r.take());
        if let Some(rx) = rx {
            tokio::spawn(writer_loop(Arc::downgrade(state), rx));
        }
    }

    /// Runs `work` (the writes of one verification) in the next batch and
    /// returns its result once the batch committed.
    ///
    /// # Errors
    /// The job's own error; the batch's commit error (503); 503 when the
    /// writer is gone.
    pub async fn run<T, F>(&self, state: &AppState, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(
                &'a AppState,
                &'a mut AnyConnection,
            ) -> BoxFuture<'a, Result<T, ApiError>>
            + Send
            + 'static,
    {
        let (done, answer) = oneshot::channel::<Result<T, ApiError>>();
        let job: Job = Box::new(move |state, conn| {
            Box::pin(async move {
                let result = work(state, conn).await;
                let ok = result.is_ok();
                let deliver: Deliver = Box::new(move |commit: Option<String>| {
                    let _ = done.send(match (result, commit) {
                        (Ok(v), None) => Ok(v),
                        (Ok(_), Some(why)) => Err(storage(why)),
                        (Err(e), _) => Err(e),
                    });
                });
                (ok, deliver)
            })
        });
        let started = self.rx.lock().map(|r| r.is_none()).unwrap_or(false);
        if !started {
            // No task (a state built without `start`): one job, one
            // transaction, as the batch would run it.
            run_batch(state, vec![job]).await;
        } else if self.tx.send(job).await.is_err() {
            return Err(storage("the verification writer has stopped".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(storage("the verification writer failed".into())))
    }
}

/// A database-unavailable error (503) from a message.
fn storage(why: String) -> ApiError {
    ApiError::Db(sqlx::Error::Io(std::io::Error::other(why)))
}

async fn writer_loop(state: Weak<AppState>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::with_capacity(MAX_BATCH.min(rx.len() + 1));
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let Some(state) = state.upgrade() else {
            return;
        };
        // A task of its own: a panic in a job loses this batch (its
        // callers' answers are dropped: an error for them), not the writer.
        let _ = tokio::spawn(async move { run_batch(&state, batch).await }).await;
    }
}

/// One transaction for `jobs`, each in a savepoint; every job's delivery
/// called with the commit's outcome. Jobs not run because the batch broke
/// off are dropped: their callers get an error.
async fn run_batch(state: &AppState, jobs: Vec<Job>) {
    let mut deliveries: Vec<Deliver> = Vec::with_capacity(jobs.len());
    let outcome: Result<(), sqlx::Error> = async {
        let mut tx = state.pool.begin().await?;
        for job in jobs {
            let mut savepoint = Connection::begin(&mut *tx).await?;
            let (ok, deliver) = job(state, &mut savepoint).await;
            deliveries.push(deliver);
            if ok {
                savepoint.commit().await?;
            } else {
                savepoint.rollback().await?;
            }
        }
        tx.commit().await
    }
    .await;
    match outcome {
        Ok(()) => {
            state.metrics.write_batch(deliveries.len());
            for d in deliveries {
                d(None);
            }
        }
        Err(e) => {
            let why = format!("database write failed: {}", twostep_common::error_chain(&e));
            tracing::error!(error = %why, jobs = deliveries.len(), "a batch of verifications was not committed");
            for d in deliveries {
                d(Some(why.clone()));
            }
        }
    }
}
