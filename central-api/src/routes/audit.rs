//! Admin: the audit trail, newest first.

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

/// `GET /v1/admin/audit?limit=N`.
pub(crate) fn routes(r: Routes) -> Routes {
    r.get(paths::AUDIT, list_audit)
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<u32>,
}

async fn list_audit(
    State(state): State<Shared>,
    _admin: AdminAuth,
    QueryArgs(q): QueryArgs<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEvent>>> {
    let limit = q.limit.unwrap_or(DEFAULT_AUDIT_LIMIT).min(MAX_AUDIT_LIMIT);
    let rows = sqlx::query(
        "SELECT id, at, actor, action, username, host, remote_addr, result, detail
         FROM audit ORDER BY id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(&state.pool)
    .await?;
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
