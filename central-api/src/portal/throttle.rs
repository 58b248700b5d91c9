//! Sign-in rate limiting: failed password checks counted per username
//! (whether or not the user exists, so the answer tells nothing) and per
//! address, in fixed windows, as rows of `portal_throttle` shared by every
//! node.

use super::Portal;
use crate::error::ApiError;
use sqlx::Row;

/// Failed sign-ins per username within [`WINDOW_SECS`] before the next
/// attempts are refused unchecked.
pub const USER_LIMIT: i64 = 10;
/// Failed sign-ins per address within [`WINDOW_SECS`].
pub const ADDRESS_LIMIT: i64 = 50;
/// The counting window, in seconds (15 minutes).
pub const WINDOW_SECS: i64 = 900;

/// The counters one sign-in attempt touches.
#[derive(Debug, Clone)]
pub struct Keys {
    user: String,
    address: Option<String>,
}

impl Keys {
    /// Counters for `username` from `address`.
    pub fn new(username: &str, address: Option<&str>) -> Self {
        Self {
            user: format!("user:{username}"),
            address: address.map(|a| format!("addr:{a}")),
        }
    }

    fn with_limits(&self) -> impl Iterator<Item = (&str, i64)> {
        std::iter::once((self.user.as_str(), USER_LIMIT))
            .chain(self.address.as_deref().map(|a| (a, ADDRESS_LIMIT)))
    }
}

impl Portal {
    /// Whether any counter of `keys` is at its limit in the current window.
    ///
    /// # Errors
    /// Database errors.
    pub async fn throttled(&self, keys: &Keys) -> Result<bool, ApiError> {
        let since = self.now() - WINDOW_SECS;
        for (name, limit) in keys.with_limits() {
            let row = sqlx::query(
                "SELECT failures FROM portal_throttle WHERE name = $1 AND window_start > $2",
            )
            .bind(name)
            .bind(since)
            .fetch_optional(&self.app.pool)
            .await?;
            if let Some(r) = row {
                if r.try_get::<i64, _>("failures")? >= limit {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Counts one failure on every counter of `keys` (one statement each:
    /// a counter whose window ended starts again at 1).
    ///
    /// # Errors
    /// Database errors.
    pub async fn count_failure(&self, keys: &Keys) -> Result<(), ApiError> {
        let now = self.now();
        for (name, _) in keys.with_limits() {
            sqlx::query(
                "INSERT INTO portal_throttle (name, window_start, failures) VALUES ($1, $2, 1)
                 ON CONFLICT (name) DO UPDATE SET
                   failures = CASE WHEN portal_throttle.window_start > $3
                                   THEN portal_throttle.failures + 1 ELSE 1 END,
                   window_start = CASE WHEN portal_throttle.window_start > $3
                                       THEN portal_throttle.window_start ELSE $2 END",
            )
            .bind(name)
            .bind(now)
            .bind(now - WINDOW_SECS)
            .execute(&self.app.pool)
            .await?;
        }
        Ok(())
    }

    /// Clears the username's counter after a successful sign-in (the
    /// address keeps its count) and drops counters whose window ended.
    ///
    /// # Errors
    /// Database errors.
    pub async fn clear_failures(&self, keys: &Keys) -> Result<(), ApiError> {
        sqlx::query("DELETE FROM portal_throttle WHERE name = $1 OR window_start <= $2")
            .bind(&keys.user)
            .bind(self.now() - WINDOW_SECS)
            .execute(&self.app.pool)
            .await?;
        Ok(())
    }
}
