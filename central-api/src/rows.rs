//! Users and methods as read from the database, and the one rule for a
//! user's status ([`UserRow::standing`]) that hosts' registrations and
//! verification share.

use crate::error::ApiError;
use crate::sqlite_reads::{Columns, FromRows};
use crate::state::{ApiResult, AppState};
use sqlx::{AnyPool, Row};
use twostep_common::api::{Method, MethodKind, User, UserStatus};
use twostep_common::methods::ResetKind;

/// The columns [`method_from_row`] reads.
pub(crate) const METHOD_COLUMNS: &str =
    "id, user_id, kind, label, is_default, created_at, last_used_at, disabled";
/// The columns [`UserRow::from_row`] reads.
pub(crate) const USER_COLUMNS: &str =
    "id, username, display_name, disabled, created_at, locked_until, push_blocked_at";

/// A method from a row of [`METHOD_COLUMNS`], each column named
/// `{prefix}{column}` (`""`, or the `m_` of a join).
///
/// # Errors
/// The database's, for a missing or mistyped column, and a column decode
/// error for a kind this build does not know ([`MethodKind::parse`]).
pub(crate) fn method_from_row(row: &impl Columns, prefix: &str) -> Result<Method, sqlx::Error> {
    let name = |c: &str| format!("{prefix}{c}");
    let kind: String = row.col(&name("kind"))?;
    let kind = MethodKind::parse(&kind).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: name("kind"),
        source: format!("unknown method kind {kind:?}").into(),
    })?;
    Ok(Method {
        id: row.col(&name("id"))?,
        kind,
        label: row.col(&name("label"))?,
        is_default: row.col::<i64>(&name("is_default"))? != 0,
        created_at: row.col(&name("created_at"))?,
        last_used_at: row.col(&name("last_used_at"))?,
        disabled: row.col::<i64>(&name("disabled"))? != 0,
    })
}

/// Whether a user can pass a second factor now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Neither disabled nor locked.
    Active,
    /// Disabled by an admin (whether or not also locked).
    Disabled,
    /// Locked out after too many failures, until `until` (Unix seconds).
    Locked {
        /// End of the lockout, in Unix seconds.
        until: i64,
    },
}

impl Standing {
    /// The status hosts see.
    pub(crate) fn status(self) -> UserStatus {
        match self {
            Self::Active => UserStatus::Active,
            Self::Disabled => UserStatus::Disabled,
            Self::Locked { .. } => UserStatus::Locked,
        }
    }
}

/// A row of the `users` table ([`USER_COLUMNS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRow {
    /// Row id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Full name, if given.
    pub display_name: Option<String>,
    /// Disabled by an admin.
    pub disabled: bool,
    /// Unix seconds of creation.
    pub created_at: i64,
    /// End of the last lockout as stored, in Unix seconds; may be past.
    pub locked_until: Option<i64>,
    /// When a report of fraud blocked new pushes, in Unix seconds.
    pub push_blocked_at: Option<i64>,
}

impl UserRow {
    /// The user from a row of [`USER_COLUMNS`].
    ///
    /// # Errors
    /// The database's, for a missing or mistyped column.
    pub(crate) fn from_row(row: &impl Columns) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.col("id")?,
            username: row.col("username")?,
            display_name: row.col("display_name")?,
            disabled: row.col::<i64>("disabled")? != 0,
            created_at: row.col("created_at")?,
            locked_until: row.col("locked_until")?,
            push_blocked_at: row.col("push_blocked_at")?,
        })
    }

    /// The user named `username`, if any.
    ///
    /// # Errors
    /// The database's.
    pub(crate) async fn find(pool: &AnyPool, username: &str) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(Self::from_row)
        .transpose()
    }

    /// The user's standing at `now` (Unix seconds): disabled first, then
    /// locked while `locked_until` is in the future, else active.
    pub(crate) fn standing(&self, now: i64) -> Standing {
        if self.disabled {
            return Standing::Disabled;
        }
        match self.lock_end(now) {
            Some(until) => Standing::Locked { until },
            None => Standing::Active,
        }
    }

    /// The end of a lockout still running at `now`.
    fn lock_end(&self, now: i64) -> Option<i64> {
        self.locked_until.filter(|&t| t > now)
    }

    /// The user as admins see them at `now`, with `methods`.
    pub(crate) fn into_user(self, now: i64, methods: Vec<Method>) -> User {
        User {
            locked_until: self.lock_end(now),
            username: self.username,
            display_name: self.display_name,
            disabled: self.disabled,
            created_at: self.created_at,
            push_blocked_at: self.push_blocked_at,
            methods,
            temporary_access_until: None,
            backup_codes_left: None,
            reset_methods: Vec::new(),
        }
    }
}

/// The methods of the user with row id `user_id`, oldest first. A row of
/// a kind this build does not know (written by a newer registry sharing
/// the database) is left out with a warning: it counts nowhere here.
///
/// # Errors
/// The database's.
pub(crate) async fn methods_of(pool: &AnyPool, user_id: i64) -> Result<Vec<Method>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {METHOD_COLUMNS} FROM methods WHERE user_id = $1 AND pending = 0 ORDER BY id"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    let mut methods = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = row.try_get("kind")?;
        if MethodKind::parse(&kind).is_none() {
            tracing::warn!(user_id, kind, "method of an unknown kind left out");
            continue;
        }
        methods.push(method_from_row(row, "")?);
    }
    Ok(methods)
}

/// `columns` (a list like [`USER_COLUMNS`]) of the table named `alias` in
/// a join, each renamed `{rename}{column}` when `rename` is given.
pub(crate) fn qualified(columns: &str, alias: &str, rename: Option<&str>) -> String {
    columns
        .split(", ")
        .map(|c| match rename {
            Some(r) => format!("{alias}.{c} AS {r}{c}"),
            None => format!("{alias}.{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a host's lookup reads of the user named `username` at `now` (Unix
/// seconds), in one statement: the user, their methods (not pending,
/// unknown kinds left out, by id) and the end of their open temporary
/// access code, if any. `None` for an unknown user. On an SQLite file
/// the statement runs on [`crate::sqlite_reads`], else on the pool.
///
/// # Errors
/// The database's.
pub(crate) async fn lookup(
    state: &AppState,
    username: &str,
    now: i64,
) -> Result<Option<(UserRow, Vec<Method>, Option<i64>)>, sqlx::Error> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT {}, {},
                    (SELECT MAX(t.expires_at) FROM temporary_access_codes t
                     WHERE t.user_id = u.id AND {}) AS tap_until
             FROM users u LEFT JOIN methods m ON m.user_id = u.id AND m.pending = 0
             WHERE u.username = $1
             ORDER BY m.id",
            qualified(USER_COLUMNS, "u", None),
            qualified(METHOD_COLUMNS, "m", Some("m_")),
            crate::recovery::open_in("t.", "$2")
        )
    });
    let mut found = Lookup(None);
    crate::sqlite_reads::by_user_at(state, sql, username, now, &mut found).await?;
    Ok(found.0)
}

/// What [`lookup`]'s rows build.
struct Lookup(Option<(UserRow, Vec<Method>, Option<i64>)>);

impl FromRows for Lookup {
    fn add(&mut self, row: &impl Columns) -> Result<(), sqlx::Error> {
        let (_, methods, _) = match &mut self.0 {
            Some(f) => f,
            None => self
                .0
                .insert((UserRow::from_row(row)?, Vec::new(), row.col("tap_until")?)),
        };
        let Some(id) = row.col::<Option<i64>>("m_id")? else {
            return Ok(());
        };
        let kind: String = row.col("m_kind")?;
        if MethodKind::parse(&kind).is_none() {
            tracing::warn!(method_id = id, kind, "method of an unknown kind left out");
            return Ok(());
        }
        methods.push(method_from_row(row, "m_")?);
        Ok(())
    }
}

/// The user named `username` with their methods, as admins see them.
///
/// # Errors
/// 404 `unknown_user`; 503 when the database fails.
pub(crate) async fn load_user(state: &AppState, username: &str) -> ApiResult<User> {
    let row = UserRow::find(&state.pool, username)
        .await?
        .ok_or_else(|| ApiError::unknown_user(username))?;
    let methods = methods_of(&state.pool, row.id).await?;
    let tap = crate::recovery::open_until(&state.pool, row.id, state.now()).await?;
    let backup = crate::recovery::backup_codes_left(&state.pool, row.id).await?;
    let reset_methods = reset_kinds_of(&state.pool, row.id).await?;
    let mut user = row.into_user(state.now(), methods);
    user.temporary_access_until = tap;
    user.backup_codes_left = backup;
    user.reset_methods = reset_methods;
    Ok(user)
}

/// The password-reset-only methods of the user with row id `user_id`:
/// an address in `reset_emails`, answers in `security_answers`.
///
/// # Errors
/// The database's.
pub(crate) async fn reset_kinds_of(
    pool: &AnyPool,
    user_id: i64,
) -> Result<Vec<ResetKind>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM reset_emails WHERE user_id = $1) AS emails,
                (SELECT COUNT(*) FROM security_answers WHERE user_id = $1) AS answers",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await?;
    let mut kinds = Vec::new();
    if row.try_get::<i64, _>("emails")? > 0 {
        kinds.push(ResetKind::Email);
    }
    if row.try_get::<i64, _>("answers")? > 0 {
        kinds.push(ResetKind::SecurityQuestions);
    }
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(disabled: bool, locked_until: Option<i64>) -> UserRow {
        UserRow {
            id: 1,
            username: "alice".into(),
            display_name: None,
            disabled,
            created_at: 0,
            locked_until,
            push_blocked_at: None,
        }
    }

    #[test]
    fn standing_disabled_first_then_a_running_lockout() {
        let now = 1_000;
        assert_eq!(user(false, None).standing(now), Standing::Active);
        assert_eq!(
            user(false, Some(now + 1)).standing(now),
            Standing::Locked { until: now + 1 }
        );
        // A lockout ending now or before is over.
        assert_eq!(user(false, Some(now)).standing(now), Standing::Active);
        assert_eq!(user(true, Some(now + 1)).standing(now), Standing::Disabled);
        assert_eq!(Standing::Locked { until: now }.status(), UserStatus::Locked);
        // Admins see the same lockout end.
        assert_eq!(
            user(false, Some(now + 1))
                .into_user(now, Vec::new())
                .locked_until,
            Some(now + 1)
        );
        assert_eq!(
            user(false, Some(now))
                .into_user(now, Vec::new())
                .locked_until,
            None
        );
    }
}
