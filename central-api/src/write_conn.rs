//! The connection a batch of verification writes runs on
//! ([`crate::writer`]), behind one small trait with two sides:
//!
//! - on PostgreSQL (and `sqlite::memory:`), sqlx's [`AnyConnection`] in the
//!   batch's transaction, as before;
//! - on an SQLite file, the writer's own read-write rusqlite connection
//!   ([`SqliteWrite`]), run on a blocking thread for the whole batch.
//!   sqlx-sqlite sends every statement to the connection's own thread and
//!   waits for it to wake and answer: at 32 verifications in flight those
//!   hand-offs were a third of the registry's CPU (context switches), more
//!   than SQLite itself. The writer's statements now run where the batch
//!   runs, one hand-off per batch instead of one per statement.
//!
//! The statements are written once, with the `$n` placeholders both
//! drivers take, and bound by number ([`Arg`]); rows are read by column
//! name ([`WriteRow`]). Only the two column types the schema uses for
//! these tables (BIGINT and TEXT) are needed.

use sqlx::any::AnyArguments;
use sqlx::{Any, AnyConnection, Row};
use std::future::Future;
use std::pin::Pin;

/// A boxed future borrowing `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A value bound to a statement's `$n` (`args[n - 1]`), typed even when
/// NULL so PostgreSQL is told the column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    /// A BIGINT (or NULL).
    Int(Option<i64>),
    /// A TEXT (or NULL).
    Text(Option<&'a str>),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v)
    }
}

/// One row of a statement's result, read by column name.
pub trait WriteRow {
    /// The BIGINT column `name`, `None` for NULL.
    ///
    /// # Errors
    /// A missing column or one of another type.
    fn int(&self, name: &str) -> Result<Option<i64>, sqlx::Error>;

    /// The TEXT column `name`, `None` for NULL.
    ///
    /// # Errors
    /// A missing column or one of another type.
    fn text(&self, name: &str) -> Result<Option<String>, sqlx::Error>;
}

/// What a row callback of [`WriteConn::fetch`] is.
pub type EachRow<'a> = dyn FnMut(&dyn WriteRow) -> Result<(), sqlx::Error> + Send + 'a;

/// A connection in a write transaction (the writer's batch, or any sqlx
/// connection the caller holds in one).
pub trait WriteConn: Send {
    /// Runs `sql` with `args` bound to `$1`, `$2`, …; the rows it changed.
    ///
    /// # Errors
    /// The database's.
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> BoxFuture<'a, Result<u64, sqlx::Error>>;

    /// Runs `sql` with `args` and gives each row to `each`, in order.
    ///
    /// # Errors
    /// The database's and `each`'s.
    fn fetch<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
        each: &'a mut EachRow<'a>,
    ) -> BoxFuture<'a, Result<(), sqlx::Error>>;
}

/// The BIGINT column `col` of the first row of `sql`: `None` when there
/// is no row, `Some(None)` for NULL.
///
/// # Errors
/// The database's; a missing or mistyped column.
pub async fn fetch_int(
    conn: &mut dyn WriteConn,
    sql: &str,
    args: &[Arg<'_>],
    col: &str,
) -> Result<Option<Option<i64>>, sqlx::Error> {
    let mut first = None;
    let mut each = |r: &dyn WriteRow| {
        if first.is_none() {
            first = Some(r.int(col)?);
        }
        Ok(())
    };
    conn.fetch(sql, args, &mut each).await?;
    Ok(first)
}

/// The TEXT column `col` of every row of `sql`; NULLs are skipped.
///
/// # Errors
/// The database's; a missing or mistyped column.
pub async fn fetch_texts(
    conn: &mut dyn WriteConn,
    sql: &str,
    args: &[Arg<'_>],
    col: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let mut out = Vec::new();
    let mut each = |r: &dyn WriteRow| {
        out.extend(r.text(col)?);
        Ok(())
    };
    conn.fetch(sql, args, &mut each).await?;
    Ok(out)
}

fn bind<'q>(
    mut q: sqlx::query::Query<'q, Any, AnyArguments<'q>>,
    args: &'q [Arg<'q>],
) -> sqlx::query::Query<'q, Any, AnyArguments<'q>> {
    for a in args {
        q = match *a {
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
        };
    }
    q
}

impl WriteRow for sqlx::any::AnyRow {
    fn int(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(name)
    }

    fn text(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(name)
    }
}

impl WriteConn for AnyConnection {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> BoxFuture<'a, Result<u64, sqlx::Error>> {
        Box::pin(async move {
            Ok(bind(sqlx::query(sql), args)
                .execute(&mut *self)
                .await?
                .rows_affected())
        })
    }

    fn fetch<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
        each: &'a mut EachRow<'a>,
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            for r in &bind(sqlx::query(sql), args).fetch_all(&mut *self).await? {
                each(r)?;
            }
            Ok(())
        })
    }
}

/// The writer's read-write rusqlite connection to an SQLite file, in a
/// batch's transaction. Its futures never wait: each statement runs to
/// the end when polled, on the thread that polls (the writer's blocking
/// thread, [`crate::writer`]).
pub struct SqliteWrite<'c>(pub &'c mut rusqlite::Connection);

/// Opens the writer's connection to the SQLite file at `path`, with the
/// pool's settings ([`crate::db::open`]): `busy_timeout` 5 s (another
/// process, or the admin API's pool, may hold the write lock for a
/// moment), foreign keys on, `synchronous` FULL (an accepted time step
/// survives a power loss).
///
/// # Errors
/// SQLite's, for a file it cannot open for writing.
pub fn open_sqlite(path: &std::path::Path) -> Result<rusqlite::Connection, rusqlite::Error> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")?;
    // The audit insert's text differs with the batch's size.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// A rusqlite error as the pool's would be: a database failure (503).
pub fn sqlite_error(e: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Protocol(format!("SQLite write: {e}"))
}

/// `sql` prepared (cached) with `args` bound by the number in each
/// parameter's name (`$3` takes `args[2]`): SQLite numbers `$n`
/// parameters in the order they first appear, not by `n`.
fn prepared<'c>(
    conn: &'c rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<rusqlite::CachedStatement<'c>, sqlx::Error> {
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error)?;
    for idx in 1..=stmt.parameter_count() {
        let n = stmt
            .parameter_name(idx)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                sqlx::Error::Protocol(format!("SQLite write: parameter {idx} is not $n: {sql}"))
            })?;
        let arg = n.checked_sub(1).and_then(|i| args.get(i)).ok_or_else(|| {
            sqlx::Error::Protocol(format!("SQLite write: no value for ${n}: {sql}"))
        })?;
        match *arg {
            Arg::Int(v) => stmt.raw_bind_parameter(idx, v),
            Arg::Text(v) => stmt.raw_bind_parameter(idx, v),
        }
        .map_err(sqlite_error)?;
    }
    Ok(stmt)
}

impl WriteRow for rusqlite::Row<'_> {
    fn int(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
        self.get(name).map_err(|e| decode(name, e))
    }

    fn text(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
        self.get(name).map_err(|e| decode(name, e))
    }
}

fn decode(name: &str, e: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: name.to_owned(),
        source: Box::new(e),
    }
}

impl WriteConn for SqliteWrite<'_> {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> BoxFuture<'a, Result<u64, sqlx::Error>> {
        let done = prepared(self.0, sql, args)
            .and_then(|mut s| s.raw_execute().map_err(sqlite_error))
            .map(|n| n as u64);
        Box::pin(std::future::ready(done))
    }

    fn fetch<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
        each: &'a mut EachRow<'a>,
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        let done = prepared(self.0, sql, args).and_then(|mut s| {
            let mut rows = s.raw_query();
            while let Some(r) = rows.next().map_err(sqlite_error)? {
                each(r)?;
            }
            Ok(())
        });
        Box::pin(std::future::ready(done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both sides on one file: the same statements, the same answers.
    #[tokio::test]
    async fn both_sides_bind_by_number_and_read_by_name_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, n BIGINT, s TEXT);")
            .unwrap();
        sqlx::any::install_default_drivers();
        let mut any =
            <AnyConnection as sqlx::Connection>::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
        // $2 appears before $1: SQLite would number it first.
        let insert = "INSERT INTO t (s, n) VALUES ($2, $1)";
        let select = "SELECT n, s FROM t WHERE n >= $1 ORDER BY id";
        let mut sides: [&mut dyn WriteConn; 2] = [&mut SqliteWrite(&mut raw), &mut any];
        for (i, conn) in sides.iter_mut().enumerate() {
            let i = i64::try_from(i).unwrap();
            let n = conn
                .execute(insert, &[Arg::from(10 + i), Arg::from("x")])
                .await
                .unwrap();
            assert_eq!(n, 1);
            conn.execute(insert, &[Arg::Int(None), Arg::Text(None)])
                .await
                .unwrap();
        }
        for conn in sides.iter_mut() {
            // Rows 10 ("x") and 11 ("x"); the NULL rows are not >= 10.
            let texts = fetch_texts(&mut **conn, select, &[Arg::from(10)], "s")
                .await
                .unwrap();
            assert_eq!(texts, ["x", "x"]);
            let first = fetch_int(&mut **conn, select, &[Arg::from(11)], "n")
                .await
                .unwrap();
            assert_eq!(first, Some(Some(11)));
            let none = fetch_int(&mut **conn, select, &[Arg::from(99)], "n")
                .await
                .unwrap();
            assert_eq!(none, None);
            let nulls = fetch_int(
                &mut **conn,
                "SELECT n FROM t WHERE n IS NULL ORDER BY id",
                &[],
                "n",
            )
            .await
            .unwrap();
            assert_eq!(nulls, Some(None));
            // A mistyped column is an error, not a wrong value.
            let e = fetch_int(&mut **conn, select, &[Arg::from(10)], "s")
                .await
                .unwrap_err();
            assert!(matches!(e, sqlx::Error::ColumnDecode { .. }), "{e}");
        }
        // Rows changed, counted alike (a row set to the value it holds counts).
        for conn in sides.iter_mut() {
            let changed = conn
                .execute("UPDATE t SET s = $1 WHERE n IS NOT NULL", &[Arg::from("y")])
                .await
                .unwrap();
            assert_eq!(changed, 2);
        }
        // A statement that names a value not given is an error.
        let e = SqliteWrite(&mut raw)
            .execute("UPDATE t SET n = $2", &[Arg::from(1)])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no value for $2"), "{e}");
    }
}
