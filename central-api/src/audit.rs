//! The audit trail: [`Audit`] records written with `write_audit`, and
//! `AdminChange`, the one transaction every admin change runs in, whose
//! commit writes the change's audit record first, so a change is never
//! without its record.

use crate::error::ApiError;
use crate::extract::Peer;
use crate::state::AppState;
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
