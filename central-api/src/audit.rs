//! The audit trail: [`Audit`] records written with `write_audit`, and
//! `AdminChange`, the one transaction every admin change runs in, whose
//! commit writes the change's audit record first, so a change is never
//! without its record.

use crate::error::ApiError;
use crate::extract::Peer;
use crate::state::AppState;
use crate::write_conn::Arg;
use sqlx::{Any, AnyConnection, Transaction};

/// One audit record to write.
#[derive(Debug, Default)]
pub struct Audit<'a> {
    /// `"admin"` or `"host:NAME"`.
    pub actor: &'a str,
    /// What happened.
    pub action: &'a str,
    /// The user concerned.
    pub username: Option<&'a str>,
    /// Host from the request context.
    pub host: Option<&'a str>,
    /// Remote address.
    pub remote_addr: Option<&'a str>,
    /// Result.
    pub result: Option<&'a str>,
    /// More, never a code, secret or key.
    pub detail: Option<String>,
}

impl<'a> Audit<'a> {
    /// A successful admin action from `remote_addr`; set the other fields
    /// with struct update syntax.
    pub fn admin_ok(action: &'a str, remote_addr: Option<&'a str>) -> Self {
        Self {
            actor: "admin",
            action,
            remote_addr,
            result: Some("ok"),
            ..Self::default()
        }
    }
}

/// Writes `a` to the audit table through `exec` and logs it.
///
/// # Errors
/// The database's, when the record cannot be written.
pub(crate) async fn write_audit<'e, E>(exec: E, at: i64, a: &Audit<'_>) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO audit (at, actor, action, username, host, remote_addr, result, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(at)
    .bind(a.actor)
    .bind(a.action)
    .bind(a.username)
    .bind(a.host)
    .bind(a.remote_addr)
    .bind(a.result)
    .bind(a.detail.as_deref())
    .execute(exec)
    .await?;
    tracing::info!(
        target: "twostep::audit",
        actor = a.actor,
        action = a.action,
        username = a.username,
        host = a.host,
        remote_addr = a.remote_addr,
        result = a.result,
        detail = a.detail.as_deref(),
        "audit"
    );
    Ok(())
}

/// An [`Audit`] record that owns its fields, written later with others
/// ([`write_audits`]): the verification writer's batch writes the records
/// of all its jobs in one statement.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// When, in Unix seconds.
    pub at: i64,
    actor: String,
    action: String,
    username: Option<String>,
    host: Option<String>,
    remote_addr: Option<String>,
    result: Option<String>,
    detail: Option<String>,
}

impl AuditRow {
    /// `a`, at `at` (Unix seconds).
    pub fn new(at: i64, a: &Audit<'_>) -> Self {
        Self {
            at,
            actor: a.actor.to_owned(),
            action: a.action.to_owned(),
            username: a.username.map(str::to_owned),
            host: a.host.map(str::to_owned),
            remote_addr: a.remote_addr.map(str::to_owned),
            result: a.result.map(str::to_owned),
            detail: a.detail.clone(),
        }
    }
}

/// Most records one statement writes (8 parameters each: under SQLite's
/// and PostgreSQL's parameter limits).
const ROWS_PER_STATEMENT: usize = 256;

/// Writes `rows` to the audit table through `conn` (a transaction's), in their order, in as
/// few statements as the parameter limits allow, and logs each.
///
/// # Errors
/// The database's, when the records cannot be written.
pub(crate) async fn write_audits(
    conn: &mut dyn crate::write_conn::WriteConn,
    rows: &[AuditRow],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let values = (0..chunk.len())
            .map(|i| {
                let b = i * 8;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO audit (at, actor, action, username, host, remote_addr, result, detail) VALUES {values}"
        );
        let mut args = Vec::with_capacity(chunk.len() * 8);
        for r in chunk {
            args.extend([
                Arg::from(r.at),
                Arg::from(r.actor.as_str()),
                Arg::from(r.action.as_str()),
                Arg::from(r.username.as_deref()),
                Arg::from(r.host.as_deref()),
                Arg::from(r.remote_addr.as_deref()),
                Arg::from(r.result.as_deref()),
                Arg::from(r.detail.as_deref()),
            ]);
        }
        conn.execute(&sql, &args).await?;
    }
    for r in rows {
        tracing::info!(
            target: "twostep::audit",
            actor = r.actor,
            action = r.action,
            username = r.username.as_deref(),
            host = r.host.as_deref(),
            remote_addr = r.remote_addr.as_deref(),
            result = r.result.as_deref(),
            detail = r.detail.as_deref(),
            "audit"
        );
    }
    Ok(())
}

/// What an admin change concerned, for its audit record.
#[derive(Debug, Default)]
pub(crate) struct Subject<'a> {
    /// The user changed.
    pub username: Option<&'a str>,
    /// The host changed.
    pub host: Option<&'a str>,
    /// More, never a secret or key.
    pub detail: Option<String>,
}

impl<'a> Subject<'a> {
    /// A change to the user `username`.
    pub(crate) fn user(username: &'a str) -> Self {
        Self {
            username: Some(username),
            ..Self::default()
        }
    }

    /// A change to the host `name`.
    pub(crate) fn host(name: &'a str) -> Self {
        Self {
            host: Some(name),
            ..Self::default()
        }
    }

    /// With `detail` added.
    pub(crate) fn detail(self, detail: String) -> Self {
        Self {
            detail: Some(detail),
            ..self
        }
    }
}

/// One admin change: a transaction begun at one instant. Run the change's
/// statements on [`AdminChange::conn`], then [`AdminChange::commit`]
/// writes the audit record (actor `admin`, result `ok`, the peer's
/// address) and commits. Returning early (an error) drops it, which rolls
/// the change back: nothing is written without its record.
///
/// Let the first statement write, so SQLite takes its write lock up front.
pub(crate) struct AdminChange {
    tx: Transaction<'static, Any>,
    now: i64,
    remote_addr: Option<String>,
}

impl AdminChange {
    /// Begins a change requested by `peer`.
    ///
    /// # Errors
    /// 503 when the database cannot begin a transaction.
    pub(crate) async fn begin(state: &AppState, peer: &Peer) -> Result<Self, ApiError> {
        Ok(Self {
            now: state.now(),
            tx: state.pool.begin().await?,
            remote_addr: peer.text(),
        })
    }

    /// The instant of the change, in Unix seconds.
    pub(crate) fn now(&self) -> i64 {
        self.now
    }

    /// The transaction's connection, for the change's statements.
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Writes the audit record of `action` on `subject` and commits.
    ///
    /// # Errors
    /// 503 when the record or the commit fails; nothing is changed then.
    pub(crate) async fn commit(
        mut self,
        action: &str,
        subject: Subject<'_>,
    ) -> Result<(), ApiError> {
        let record = Audit {
            username: subject.username,
            host: subject.host,
            detail: subject.detail,
            ..Audit::admin_ok(action, self.remote_addr.as_deref())
        };
        write_audit(&mut *self.tx, self.now, &record).await?;
        self.tx.commit().await?;
        Ok(())
    }
}

/// Window of the refused-lookup record limits, in seconds.
pub const LOOKUP_WINDOW_SECS: i64 = 60;
/// Refused lookups of users the registry does not know recorded per host
/// (the authenticated host key's name) within [`LOOKUP_WINDOW_SECS`]; the
/// next one writes one summary record, and the rest of the window none.
/// A flood of made-up names thus writes at most 11 records a minute per host.
pub const UNKNOWN_LOOKUPS_PER_WINDOW: i64 = 10;
/// Refused lookups of known users (locked, disabled, not enrolled)
/// recorded per host within [`LOOKUP_WINDOW_SECS`], then as for unknown ones.
pub const KNOWN_LOOKUPS_PER_WINDOW: i64 = 60;

/// Where a login refused at the registrations lookup came from.
#[derive(Debug)]
pub(crate) struct RefusedLookup<'a> {
    /// The host key's name (`HostAuth`): the unit of the limits.
    pub host_key: &'a str,
    /// The user looked up.
    pub username: &'a str,
    /// Why no code will be asked: `unknown_user`, `not_enrolled`,
    /// `locked` or `disabled`.
    pub result: &'a str,
    /// The login's context, as sent by the host.
    pub context: &'a twostep_common::api::AuthContext,
}

/// Records a login the registrations lookup shows cannot go on to a code
/// (action `lookup`, actor `host:NAME`), within the per-host limits
/// [`UNKNOWN_LOOKUPS_PER_WINDOW`] / [`KNOWN_LOOKUPS_PER_WINDOW`] counted in
/// `audit_throttle` (one upsert, so every node shares the count): past the
/// limit one summary record says further ones are not recorded until the
/// window ends, logged at warning level.
///
/// # Errors
/// 503 when the database fails; nothing is written then.
pub(crate) async fn record_refused_lookup(
    state: &AppState,
    r: &RefusedLookup<'_>,
) -> Result<(), ApiError> {
    let now = state.now();
    let (class, limit) = if r.result == "unknown_user" {
        ("unknown", UNKNOWN_LOOKUPS_PER_WINDOW)
    } else {
        ("known", KNOWN_LOOKUPS_PER_WINDOW)
    };
    let mut tx = state.pool.begin().await?;
    let row = sqlx::query(
        "INSERT INTO audit_throttle (name, window_start, records) VALUES ($1, $2, 1)
         ON CONFLICT (name) DO UPDATE SET
           records = CASE WHEN audit_throttle.window_start > $3
                          THEN audit_throttle.records + 1 ELSE 1 END,
           window_start = CASE WHEN audit_throttle.window_start > $3
                               THEN audit_throttle.window_start ELSE $2 END
         RETURNING records, window_start",
    )
    .bind(format!("lookup:{class}:{}", r.host_key))
    .bind(now)
    .bind(now - LOOKUP_WINDOW_SECS)
    .fetch_one(&mut *tx)
    .await?;
    let count: i64 = sqlx::Row::try_get(&row, "records")?;
    let window_start: i64 = sqlx::Row::try_get(&row, "window_start")?;
    let ctx = r.context;
    let actor = format!("host:{}", r.host_key);
    let host = ctx.host.as_deref().or(Some(r.host_key));
    if count <= limit {
        let mut detail = Vec::new();
        if let Some(s) = &ctx.service {
            detail.push(format!("service={s}"));
        }
        if let Some(t) = &ctx.tty {
            detail.push(format!("tty={t}"));
        }
        detail.push("refused before a code was asked".into());
        let record = Audit {
            actor: &actor,
            action: "lookup",
            username: Some(r.username),
            host,
            remote_addr: ctx.remote_addr.as_deref(),
            result: Some(r.result),
            detail: Some(detail.join(" ")),
        };
        write_audit(&mut *tx, now, &record).await?;
    } else if count == limit + 1 {
        let until = window_start + LOOKUP_WINDOW_SECS;
        let detail = format!(
            "more than {limit} refused lookups of {class} users from host {} within {LOOKUP_WINDOW_SECS} s: further ones are not recorded until {until}",
            r.host_key
        );
        let record = Audit {
            actor: &actor,
            action: "lookup",
            username: None,
            host,
            remote_addr: ctx.remote_addr.as_deref(),
            result: Some(r.result),
            detail: Some(detail),
        };
        write_audit(&mut *tx, now, &record).await?;
        tracing::warn!(
            host = r.host_key,
            limit,
            window_seconds = LOOKUP_WINDOW_SECS,
            "refused lookups of {class} users over the audit limit: the rest of this window is not recorded (a flood of made-up user names?)"
        );
    }
    tx.commit().await?;
    Ok(())
}
