//! Admin: the audit trail, newest first; or, with `after`, the events
//! after one, oldest first (`twostep audit --follow` pages forward so).

use crate::app::Routes;
use crate::auth::AdminAuth;
use crate::extract::QueryArgs;
use crate::state::{ApiResult, Shared};
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use sqlx::Row;
use twostep_common::api::{paths, AuditEvent};

/// Audit events returned when no limit is given.
pub const DEFAULT_AUDIT_LIMIT: u32 = 100;
/// Most audit events returned at once.
pub const MAX_AUDIT_LIMIT: u32 = 10_000;

/// `GET /v1/admin/audit?limit=N[&after=ID]`.
pub(crate) fn routes(r: Routes) -> Routes {
    r.get(paths::AUDIT, list_audit)
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<u32>,
    /// Only events with a larger id, the oldest `limit` of them, oldest
    /// first: a poller that passes its last id sees each event once, in
    /// order, without gaps.
    after: Option<i64>,
}

async fn list_audit(
    State(state): State<Shared>,
    _admin: AdminAuth,
    QueryArgs(q): QueryArgs<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEvent>>> {
    let limit = i64::from(q.limit.unwrap_or(DEFAULT_AUDIT_LIMIT).min(MAX_AUDIT_LIMIT));
    let columns = "id, at, actor, action, username, host, remote_addr, result, detail";
    let rows = match q.after {
        None => {
            sqlx::query(&format!(
                "SELECT {columns} FROM audit ORDER BY id DESC LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(&state.pool)
            .await?
        }
        Some(after) => {
            sqlx::query(&format!(
                "SELECT {columns} FROM audit WHERE id > $1 ORDER BY id LIMIT $2"
            ))
            .bind(after)
            .bind(limit)
            .fetch_all(&state.pool)
            .await?
        }
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(AuditEvent {
            id: r.try_get("id")?,
            at: r.try_get("at")?,
            actor: r.try_get("actor")?,
            action: r.try_get("action")?,
            username: r.try_get("username")?,
            host: r.try_get("host")?,
            remote_addr: r.try_get("remote_addr")?,
            result: r.try_get("result")?,
            detail: r.try_get("detail")?,
        });
    }
    Ok(Json(out))
}
