//! The one writer of verifications: group commit.
//!
//! Every verification that writes (a code consumed, a failure or replay
//! counted, its audit record) hands its writes to this task as a job. The
//! task takes the jobs waiting in its queue, up to [`MAX_BATCH`], and runs
//! them one after the other in one transaction, then commits once: one
//! fsync for the batch instead of one per verification. Each caller is
//! answered only after its batch committed (or with the commit's error), so
//! an acknowledged accept is as durable as before.
//!
//! A job that fails is rolled back alone. Savepoints would do that at two
//! statements per job, so the batch first runs without them; only when a
//! job fails is the whole transaction rolled back and the batch run again,
//! each job in its own savepoint. A job is therefore written to be run
//! more than once (its work is a `Fn`; only the run that commits is
//! answered).
//!
//! On an SQLite file the batch runs on the writer's own rusqlite
//! connection ([`crate::write_conn`]), on a blocking thread from `BEGIN
//! IMMEDIATE` to `COMMIT`: one thread hand-off per batch, where sqlx-sqlite
//! would make one per statement. On PostgreSQL it runs in a transaction of
//! the pool. The jobs' statements are the same on both
//! ([`crate::write_conn::WriteConn`]).
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
//! point of this module. A job is a boxed object whose work is a future
//! over the connection; a batch runs in a task (or blocking thread) of its
//! own, so a panic in a job loses that batch (its callers get an error),
//! never the writer.

use crate::audit::{write_audits, AuditRow};
use crate::error::ApiError;
use crate::state::AppState;
pub use crate::write_conn::BoxFuture;
use crate::write_conn::{sqlite_error, SqliteWrite, WriteConn};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use tokio::sync::{mpsc, oneshot};

/// Most jobs committed together.
pub const MAX_BATCH: usize = 128;

/// Jobs waiting before `run` waits for room (back-pressure).
const QUEUE: usize = 4096;

/// One verification's writes, as the batch runs them.
trait Job: Send {
    /// Runs the writes on the batch's connection, keeping their result;
    /// `true` when they succeeded (else the batch rolls them back). May be
    /// called again, after a rollback, when a later run is the one kept.
    /// Its audit records go to `audits`.
    fn run<'a>(
        &'a mut self,
        state: &'a AppState,
        conn: &'a mut dyn WriteConn,
        audits: &'a mut Vec<AuditRow>,
    ) -> BoxFuture<'a, bool>;

    /// Answers the caller with the last run's result once the batch's fate
    /// is known: `commit` is `None` when it committed, else why it did not.
    fn deliver(self: Box<Self>, commit: Option<String>);
}

/// A [`Job`] over a caller's work and its answer channel.
struct Work<T, F> {
    work: F,
    result: Option<Result<T, ApiError>>,
    done: oneshot::Sender<Result<T, ApiError>>,
}

impl<T, F> Job for Work<T, F>
where
    T: Send + 'static,
    F: for<'a> Fn(
            &'a AppState,
            &'a mut dyn WriteConn,
            &'a mut Vec<AuditRow>,
        ) -> BoxFuture<'a, Result<T, ApiError>>
        + Send
        + 'static,
{
    fn run<'a>(
        &'a mut self,
        state: &'a AppState,
        conn: &'a mut dyn WriteConn,
        audits: &'a mut Vec<AuditRow>,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let result = (self.work)(state, conn, audits).await;
            let ok = result.is_ok();
            self.result = Some(result);
            ok
        })
    }

    fn deliver(self: Box<Self>, commit: Option<String>) {
        let answer = match (self.result, commit) {
            (Some(Ok(v)), None) => Ok(v),
            (Some(Ok(_)), Some(why)) => Err(storage(why)),
            (Some(Err(e)), _) => Err(e),
            (None, why) => Err(storage(
                why.unwrap_or_else(|| "the verification was not run".into()),
            )),
        };
        let _ = self.done.send(answer);
    }
}

/// The queue to the writer task.
pub struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
    rx: Mutex<Option<mpsc::Receiver<Box<dyn Job>>>>,
    /// On an SQLite file, the writer's own connection
    /// ([`crate::write_conn::SqliteWrite`]), set by [`Writer::start`];
    /// `None` on PostgreSQL and in memory (the batches run on the pool).
    sqlite: Mutex<Option<rusqlite::Connection>>,
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
            sqlite: Mutex::new(None),
        }
    }

    /// Starts the writer task of `state` (once; later calls do nothing).
    /// On an SQLite file ([`AppState::sqlite_reads`] names it) the batches
    /// run on a read-write connection of the writer's own; when that
    /// cannot be opened (a read-only file) they run on the pool, whose
    /// writes then fail as every other write does. The task ends when
    /// `state` is dropped.
    pub fn start(state: &Arc<AppState>) {
        let rx = state.writer.rx.lock().ok().and_then(|mut r| r.take());
        let Some(rx) = rx else {
            return;
        };
        if let Some(reads) = &state.sqlite_reads {
            match crate::write_conn::open_sqlite(reads.path()) {
                Ok(conn) => {
                    *state
                        .writer
                        .sqlite
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(conn);
                }
                Err(e) => tracing::warn!(
                    path = %reads.path().display(),
                    error = %e,
                    "the verification writer could not open the database for writing; verifications write through the pool"
                ),
            }
        }
        tokio::spawn(writer_loop(Arc::downgrade(state), rx));
    }

    /// Runs `work` (the writes of one verification) in the next batch and
    /// returns its result once the batch committed. The audit records
    /// `work` pushes are written after the batch's jobs, all in one
    /// statement, in the same transaction. `work` may be run more
    /// than once (after a rollback of the batch); the result of its last
    /// run is the one returned.
    ///
    /// # Errors
    /// The job's own error; the batch's commit error (503); 503 when the
    /// writer is gone.
    pub async fn run<T, F>(&self, state: &AppState, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: for<'a> Fn(
                &'a AppState,
                &'a mut dyn WriteConn,
                &'a mut Vec<AuditRow>,
            ) -> BoxFuture<'a, Result<T, ApiError>>
            + Send
            + 'static,
    {
        let (done, answer) = oneshot::channel::<Result<T, ApiError>>();
        let job: Box<dyn Job> = Box::new(Work {
            work,
            result: None,
            done,
        });
        let started = self.rx.lock().map(|r| r.is_none()).unwrap_or(false);
        if !started {
            // No task (a state built without `start`): one job, one
            // transaction, as the batch would run it.
            run_batch_on_pool(state, vec![job]).await;
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

async fn writer_loop(state: Weak<AppState>, mut rx: mpsc::Receiver<Box<dyn Job>>) {
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
        run_batch(state, batch).await;
    }
}

/// Runs `jobs` as one batch: on the writer's SQLite connection, in a
/// blocking thread, when it has one; else on the pool. Returns once every
/// job is answered. A panic in a job loses the batch (its callers' answer
/// channels are dropped: an error for them), never the writer.
async fn run_batch(state: Arc<AppState>, jobs: Vec<Box<dyn Job>>) {
    let has_sqlite = state
        .writer
        .sqlite
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some();
    if has_sqlite {
        let rt = tokio::runtime::Handle::current();
        let _ = tokio::task::spawn_blocking(move || {
            let mut conn = state
                .writer
                .sqlite
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(conn) = conn.as_mut() {
                rt.block_on(run_batch_on_sqlite(&state, conn, jobs));
            }
        })
        .await;
    } else {
        let _ = tokio::spawn(async move { run_batch_on_pool(&state, jobs).await }).await;
    }
}

/// One transaction for `jobs`, then every job's answer with the commit's
/// outcome. The jobs run without savepoints; when one fails, the
/// transaction is rolled back and they run again, each in a savepoint, so
/// that the failing one alone is undone. Jobs not run because the batch
/// broke off get the batch's error.
async fn run_batch_on_pool(state: &AppState, mut jobs: Vec<Box<dyn Job>>) {
    let outcome = match run_all_on_pool(state, &mut jobs, false).await {
        Ok(true) => Ok(()),
        Ok(false) => run_all_on_pool(state, &mut jobs, true).await.map(|_| ()),
        Err(e) => Err(e),
    };
    deliver(state, jobs, outcome);
}

/// [`run_batch_on_pool`] on the writer's SQLite connection `conn`. Its
/// futures never wait, so the thread that calls this runs the batch to
/// the end (the commit's fsync included) without a hand-off.
async fn run_batch_on_sqlite(
    state: &AppState,
    conn: &mut rusqlite::Connection,
    mut jobs: Vec<Box<dyn Job>>,
) {
    // A batch that panicked midway left its transaction open.
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let outcome = match run_all_on_sqlite(state, conn, &mut jobs, false).await {
        Ok(true) => Ok(()),
        Ok(false) => run_all_on_sqlite(state, conn, &mut jobs, true)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    deliver(state, jobs, outcome);
}

/// Answers every job of a batch whose commit gave `outcome`.
fn deliver(state: &AppState, jobs: Vec<Box<dyn Job>>, outcome: Result<(), sqlx::Error>) {
    match outcome {
        Ok(()) => {
            state.metrics.write_batch(jobs.len());
            for j in jobs {
                j.deliver(None);
            }
        }
        Err(e) => {
            let why = format!("database write failed: {}", twostep_common::error_chain(&e));
            tracing::error!(error = %why, jobs = jobs.len(), "a batch of verifications was not committed");
            for j in jobs {
                j.deliver(Some(why.clone()));
            }
        }
    }
}

/// Runs `jobs` in one transaction of the pool. Without savepoints:
/// `Ok(false)`, rolled back, at the first job that fails; else committed,
/// `Ok(true)`. With savepoints: a failing job's writes are rolled back
/// alone and the rest committed (`Ok(true)`).
async fn run_all_on_pool(
    state: &AppState,
    jobs: &mut [Box<dyn Job>],
    savepoints: bool,
) -> Result<bool, sqlx::Error> {
    let mut tx = state.pool.begin().await?;
    if !run_jobs(state, &mut *tx, jobs, savepoints).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

/// [`run_all_on_pool`] on the writer's SQLite connection. The transaction
/// takes the write lock at once (`BEGIN IMMEDIATE`): no lock upgrade
/// midway, so no `SQLITE_BUSY` after the first statement.
async fn run_all_on_sqlite(
    state: &AppState,
    conn: &mut rusqlite::Connection,
    jobs: &mut [Box<dyn Job>],
    savepoints: bool,
) -> Result<bool, sqlx::Error> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(sqlite_error)?;
    let ran = run_jobs(state, &mut SqliteWrite(conn), jobs, savepoints).await;
    let end = match ran {
        Ok(true) => conn.execute_batch("COMMIT"),
        _ => conn.execute_batch("ROLLBACK"),
    };
    if end.is_err() && !conn.is_autocommit() {
        // A failed COMMIT (a full disk, say) leaves the transaction open.
        let _ = conn.execute_batch("ROLLBACK");
    }
    let ran = ran?;
    end.map_err(sqlite_error)?;
    Ok(ran)
}

/// The jobs of one batch, then their audit records, in the transaction
/// `conn` is in: `Ok(false)` at the first job that fails without
/// savepoints (the caller rolls back); with savepoints a failing job's
/// writes are undone alone.
async fn run_jobs(
    state: &AppState,
    conn: &mut dyn WriteConn,
    jobs: &mut [Box<dyn Job>],
    savepoints: bool,
) -> Result<bool, sqlx::Error> {
    let mut audits = Vec::with_capacity(jobs.len());
    for job in jobs.iter_mut() {
        if !savepoints {
            if !job.run(state, conn, &mut audits).await {
                return Ok(false);
            }
            continue;
        }
        let kept = audits.len();
        conn.execute("SAVEPOINT job", &[]).await?;
        if !job.run(state, conn, &mut audits).await {
            conn.execute("ROLLBACK TO SAVEPOINT job", &[]).await?;
            audits.truncate(kept);
        }
        conn.execute("RELEASE SAVEPOINT job", &[]).await?;
    }
    write_audits(conn, &audits).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn state() -> (tempfile::TempDir, Arc<AppState>) {
        let (dir, app, _) = crate::server::test_state("").await;
        (dir, app)
    }

    /// `f`, with the signature a job's work has.
    fn shaped<T, F>(f: F) -> F
    where
        F: for<'a> Fn(
            &'a AppState,
            &'a mut dyn WriteConn,
            &'a mut Vec<AuditRow>,
        ) -> BoxFuture<'a, Result<T, ApiError>>,
    {
        f
    }

    /// A job that inserts user `name` (and fails afterwards when `fail`),
    /// counting its runs; its answer channel.
    fn insert(
        name: &'static str,
        fail: bool,
        runs: &Arc<AtomicUsize>,
    ) -> (
        Box<dyn Job>,
        oneshot::Receiver<Result<&'static str, ApiError>>,
    ) {
        let (done, answer) = oneshot::channel();
        let runs = Arc::clone(runs);
        let work = shaped(move |_, conn, audits| {
            runs.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                conn.execute(
                    "INSERT INTO users (username, created_at) VALUES ($1, 1)",
                    &[name.into()],
                )
                .await?;
                audits.push(AuditRow::new(
                    1,
                    &crate::audit::Audit {
                        actor: "test",
                        action: "insert",
                        username: Some(name),
                        ..Default::default()
                    },
                ));
                if fail {
                    return Err(ApiError::Secret(format!("{name}: made to fail")));
                }
                Ok(name)
            })
        });
        let job: Box<dyn Job> = Box::new(Work {
            work,
            result: None,
            done,
        });
        (job, answer)
    }

    async fn users(state: &AppState) -> Vec<String> {
        sqlx::query("SELECT username FROM users ORDER BY username")
            .fetch_all(&state.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("username").unwrap())
            .collect()
    }

    async fn audited(state: &AppState) -> Vec<String> {
        sqlx::query("SELECT username FROM audit WHERE action = 'insert' ORDER BY id")
            .fetch_all(&state.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("username").unwrap())
            .collect()
    }

    /// How a test runs a batch: on the writer's SQLite connection (what
    /// a registry on an SQLite file does) or on the pool (PostgreSQL's way).
    #[derive(Clone, Copy, Debug)]
    enum Side {
        Sqlite,
        Pool,
    }

    async fn batch(side: Side, state: &Arc<AppState>, jobs: Vec<Box<dyn Job>>) {
        let native = state.writer.sqlite.lock().unwrap().is_some();
        assert!(
            native,
            "a registry on an SQLite file writes on its own connection"
        );
        match side {
            Side::Sqlite => run_batch(Arc::clone(state), jobs).await,
            Side::Pool => run_batch_on_pool(state, jobs).await,
        }
    }

    #[tokio::test]
    async fn a_batch_that_succeeds_runs_each_job_once_and_commits_all() {
        for side in [Side::Sqlite, Side::Pool] {
            let (_dir, state) = state().await;
            let runs = Arc::new(AtomicUsize::new(0));
            let (a, ra) = insert("a", false, &runs);
            let (b, rb) = insert("b", false, &runs);
            batch(side, &state, vec![a, b]).await;
            assert_eq!(ra.await.unwrap().unwrap(), "a", "{side:?}");
            assert_eq!(rb.await.unwrap().unwrap(), "b", "{side:?}");
            assert_eq!(runs.load(Ordering::SeqCst), 2, "{side:?}: no second pass");
            assert_eq!(users(&state).await, ["a", "b"], "{side:?}");
            assert_eq!(audited(&state).await, ["a", "b"], "{side:?}");
        }
    }

    #[tokio::test]
    async fn a_failing_job_is_rolled_back_alone_and_the_others_commit_once() {
        for side in [Side::Sqlite, Side::Pool] {
            let (_dir, state) = state().await;
            let runs = Arc::new(AtomicUsize::new(0));
            let (a, ra) = insert("a", false, &runs);
            let (b, rb) = insert("b", true, &runs);
            let (c, rc) = insert("c", false, &runs);
            batch(side, &state, vec![a, b, c]).await;
            assert_eq!(ra.await.unwrap().unwrap(), "a", "{side:?}");
            let err = rb.await.unwrap().unwrap_err();
            assert!(
                err.to_string().contains("b: made to fail"),
                "{side:?}: {err}"
            );
            assert_eq!(rc.await.unwrap().unwrap(), "c", "{side:?}");
            // First pass: a, b (fails, rollback); second pass: a, b, c.
            assert_eq!(runs.load(Ordering::SeqCst), 5, "{side:?}");
            // b's insert is undone, a's is not written twice.
            assert_eq!(users(&state).await, ["a", "c"], "{side:?}");
            // Its audit record too; the others' once each, in order.
            assert_eq!(audited(&state).await, ["a", "c"], "{side:?}");
        }
    }

    #[tokio::test]
    async fn a_batch_that_breaks_off_writes_nothing_and_the_next_one_commits() {
        let (_dir, state) = state().await;
        let runs = Arc::new(AtomicUsize::new(0));
        let (a, ra) = insert("a", false, &runs);
        // A second "a" breaks the unique username: its job fails, the
        // savepoint pass undoes it alone.
        let (dup, rdup) = insert("a", false, &runs);
        batch(Side::Sqlite, &state, vec![a, dup]).await;
        assert_eq!(ra.await.unwrap().unwrap(), "a");
        let err = rdup.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        // The writer's connection is usable afterwards, out of any
        // transaction.
        let (b, rb) = insert("b", false, &runs);
        batch(Side::Sqlite, &state, vec![b]).await;
        assert_eq!(rb.await.unwrap().unwrap(), "b");
        assert_eq!(users(&state).await, ["a", "b"]);
        assert_eq!(audited(&state).await, ["a", "b"]);
        assert!(state
            .writer
            .sqlite
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .is_autocommit());
    }
}
