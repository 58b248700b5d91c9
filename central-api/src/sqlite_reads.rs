//! The hot reads on SQLite, without sqlx's thread hand-off.
//!
//! sqlx-sqlite runs every connection on a thread of its own: each
//! statement is sent to that thread and each row sent back, two wake-ups
//! of an idle thread per statement plus the pool's own. On a lightly
//! loaded registry those wake-ups, not SQLite, are most of a host's lookup
//! (about 0.3 ms of a 0.4 ms answer), and under load they are most of the
//! CPU (context switches). sqlx has no way to run a statement on the
//! calling thread, hence this module: the reads every login makes (a
//! host's key, a user's registrations, a verification's reads) run here
//! on read-only rusqlite connections, on the calling task. Everything
//! else, and every write, stays on the sqlx pool and the writer.
//!
//! The statements are point lookups by a unique index on a WAL database,
//! tens of microseconds, so they run inline on the async worker (as a
//! short mutex would) instead of through `spawn_blocking`, which is a
//! thread hand-off again. A WAL reader does not wait for the writer; the
//! rare cases where SQLite makes one wait (recovery of the WAL index) are
//! bounded by [`BUSY_TIMEOUT`].
//!
//! Rows are decoded by the same code as the pool's ([`Columns`]), so a
//! query's columns are read one way on either path.

use rusqlite::{Connection, OpenFlags, ToSql};
use sqlx::any::AnyRow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Longest a read waits for a lock SQLite holds briefly (WAL-index
/// recovery after a crash, a checkpoint's truncation).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// Idle connections kept; more are opened when more threads read at once
/// (at most one per thread that runs tasks) and closed when returned.
const KEEP: usize = 8;

/// Read-only connections to one SQLite database file.
pub struct SqliteReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReads")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A named parameter of a statement and its value (`("$1", &username)`:
/// the statements keep the `$n` placeholders the pool's use).
pub type Param<'a> = (&'a str, &'a dyn ToSql);

impl SqliteReads {
    /// Reads of the database file at `path`, opening one connection now
    /// so a file that cannot be read fails the start, not a login.
    ///
    /// # Errors
    /// SQLite's, for a file it cannot open read-only.
    pub fn open(path: &Path) -> Result<Self, rusqlite::Error> {
        let reads = Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        };
        let first = reads.connect()?;
        reads.put_back(first);
        Ok(reads)
    }

    /// The database file these connections read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The reads for a `database` URL: `None` unless it names an SQLite
    /// file (PostgreSQL and `sqlite::memory:` stay on the pool; another
    /// connection would not see an in-memory database).
    ///
    /// # Errors
    /// SQLite's, for a file it cannot open read-only.
    pub fn for_url(url: &str) -> Result<Option<Self>, rusqlite::Error> {
        match crate::db::sqlite_file(url) {
            Some(path) => Self::open(&path).map(Some),
            None => Ok(None),
        }
    }

    fn connect(&self) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    }

    fn take(&self) -> Result<Connection, rusqlite::Error> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < KEEP {
            idle.push(conn);
        }
    }

    /// Runs `sql` with `params` and decodes each row with `each`, in order.
    ///
    /// # Errors
    /// SQLite's, as [`sqlx::Error::Protocol`] (answered 503 like any
    /// database failure), and `each`'s.
    pub fn query<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        mut each: impl FnMut(&rusqlite::Row<'_>) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, sqlx::Error> {
        let conn = self.take().map_err(read_error)?;
        let out = (|| {
            let mut stmt = conn.prepare_cached(sql).map_err(read_error)?;
            let mut rows = stmt.query(params).map_err(read_error)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(read_error)? {
                out.push(each(row)?);
            }
            Ok(out)
        })();
        // A connection whose statement failed is still sound: SQLite
        // resets a statement when it is dropped.
        self.put_back(conn);
        out
    }
}

/// What a statement's rows build, one row at a time, on either path.
pub trait FromRows {
    /// Takes the next row.
    ///
    /// # Errors
    /// A missing or mistyped column.
    fn add(&mut self, row: &impl Columns) -> Result<(), sqlx::Error>;
}

/// Runs `sql`, whose `$1` is a username and `$2` a time (Unix seconds),
/// with `username` and `now`, and feeds its rows to `into`, in order: on
/// `state`'s SQLite reads when it has them, else on the pool.
///
/// # Errors
/// The database's and `into`'s.
pub async fn by_user_at(
    state: &crate::state::AppState,
    sql: &str,
    username: &str,
    now: i64,
    into: &mut impl FromRows,
) -> Result<(), sqlx::Error> {
    if let Some(reads) = &state.sqlite_reads {
        reads.query(sql, &[("$1", &username), ("$2", &now)], |r| into.add(r))?;
    } else {
        let rows = sqlx::query(sql)
            .bind(username)
            .bind(now)
            .fetch_all(&state.pool)
            .await?;
        for r in &rows {
            into.add(r)?;
        }
    }
    Ok(())
}

fn read_error(e: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Protocol(format!("SQLite read: {e}"))
}

/// A value a column holds, readable from either kind of row.
pub trait Column:
    for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}

impl<T> Column for T where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}

/// A row read by column name: the pool's [`AnyRow`] or a rusqlite row,
/// so one decoder serves both paths.
pub trait Columns {
    /// The column `name` as `T`.
    ///
    /// # Errors
    /// A missing column or a value of another type.
    fn col<T: Column>(&self, name: &str) -> Result<T, sqlx::Error>;
}

impl Columns for AnyRow {
    fn col<T: Column>(&self, name: &str) -> Result<T, sqlx::Error> {
        sqlx::Row::try_get(self, name)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn col<T: Column>(&self, name: &str) -> Result<T, sqlx::Error> {
        self.get(name).map_err(|e| sqlx::Error::ColumnDecode {
            index: name.to_owned(),
            source: Box::new(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_what_another_connection_committed_and_cannot_write() {
        let dir = std::env::temp_dir().join(format!("twostep-reads-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.db");
        let _ = std::fs::remove_file(&path);
        let w = Connection::open(&path).unwrap();
        w.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER);
             INSERT INTO t (name, n) VALUES ('a', NULL), ('b', 7);",
        )
        .unwrap();
        let reads = SqliteReads::open(&path).unwrap();
        let sql = "SELECT name, n FROM t WHERE id >= $1 ORDER BY id";
        let rows = reads
            .query(sql, &[("$1", &1_i64)], |r| {
                Ok((r.col::<String>("name")?, r.col::<Option<i64>>("n")?))
            })
            .unwrap();
        assert_eq!(rows, vec![("a".into(), None), ("b".into(), Some(7))]);
        // A write committed afterwards is seen by the next read.
        w.execute("INSERT INTO t (name, n) VALUES ('c', 1)", [])
            .unwrap();
        let n = reads
            .query(sql, &[("$1", &3_i64)], |r| r.col::<String>("name"))
            .unwrap();
        assert_eq!(n, vec!["c".to_owned()]);
        // A mistyped column is an error, not a wrong value.
        let e = reads
            .query(sql, &[("$1", &1_i64)], |r| r.col::<i64>("name"))
            .unwrap_err();
        assert!(matches!(e, sqlx::Error::ColumnDecode { .. }), "{e}");
        // Read-only: a write through these connections fails.
        let e = reads
            .query("INSERT INTO t (name) VALUES ('x') RETURNING id", &[], |r| {
                r.col::<i64>("id")
            })
            .unwrap_err();
        assert!(e.to_string().contains("readonly"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
