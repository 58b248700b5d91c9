//! Admin: hosts and their API keys (create, list, revoke). A name is
//! unique among hosts not revoked: a revoked host's name can be given to a
//! new host, and the revoked one stays listed (with its revocation time).

use crate::app::Routes;
use crate::audit::{AdminChange, Subject};
use crate::auth::AdminAuth;
use crate::crypto::{host_key_hash, new_host_key};
use crate::error::{exists_as, ApiError};
use crate::extract::{JsonBody, PathArgs, Peer};
use crate::state::{ApiResult, Shared};
use crate::validate::check_host_name;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sqlx::any::AnyRow;
use sqlx::Row;
use twostep_common::api::{paths, ApiErrorCode, CreateHost, Host, HostCreated, HostKind};

/// `/v1/admin/hosts` and `/v1/admin/hosts/{name}`.
pub(crate) fn routes(r: Routes) -> Routes {
    r.get(paths::HOSTS, list_hosts)
        .post(paths::HOSTS, create_host)
        .delete(paths::HOST, revoke_host)
}

fn kind_str(k: HostKind) -> &'static str {
    match k {
        HostKind::Ssh => "ssh",
        HostKind::Radius => "radius",
    }
}

fn host_from_row(row: &AnyRow) -> Result<Host, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    Ok(Host {
        name: row.try_get("name")?,
        kind: if kind == "radius" {
            HostKind::Radius
        } else {
            HostKind::Ssh
        },
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

async fn create_host(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    JsonBody(req): JsonBody<CreateHost>,
) -> ApiResult<(StatusCode, Json<HostCreated>)> {
    check_host_name(&req.name)?;
    let key = new_host_key();
    let mut change = AdminChange::begin(&state, &peer).await?;
    let now = change.now();
    let row = exists_as(
        sqlx::query(
            "INSERT INTO hosts (name, kind, key_hash, created_at) VALUES ($1, $2, $3, $4)
             RETURNING name, kind, created_at, revoked_at",
        )
        .bind(&req.name)
        .bind(kind_str(req.kind))
        .bind(host_key_hash(key.as_bytes()))
        .bind(now)
        .fetch_one(change.conn())
        .await,
        ApiErrorCode::HostExists,
        || format!("host {:?} already exists", req.name),
    )?;
    let host = host_from_row(&row)?;
    change
        .commit(
            "host.create",
            Subject::host(&req.name).detail(format!("kind {}", kind_str(req.kind))),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(HostCreated {
            host,
            api_key: key.to_string(),
        }),
    ))
}

async fn list_hosts(State(state): State<Shared>, _admin: AdminAuth) -> ApiResult<Json<Vec<Host>>> {
    let rows = sqlx::query(
        "SELECT name, kind, created_at, revoked_at FROM hosts ORDER BY name, revoked_at IS NULL, id",
    )
        .fetch_all(&state.pool)
        .await?;
    Ok(Json(
        rows.iter()
            .map(host_from_row)
            .collect::<Result<Vec<_>, _>>()?,
    ))
}

async fn revoke_host(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(name): PathArgs<String>,
) -> ApiResult<StatusCode> {
    let mut change = AdminChange::begin(&state, &peer).await?;
    let now = change.now();
    let row = sqlx::query(
        "UPDATE hosts SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL RETURNING id",
    )
    .bind(&name)
    .bind(now)
    .fetch_optional(change.conn())
    .await?;
    // Revoking twice keeps the first revocation time.
    let known = match row {
        Some(_) => true,
        None => sqlx::query("SELECT id FROM hosts WHERE name = $1")
            .bind(&name)
            .fetch_optional(change.conn())
            .await?
            .is_some(),
    };
    if !known {
        return Err(ApiError::new(
            ApiErrorCode::UnknownHost,
            format!("no host {name:?}"),
        ));
    }
    change.commit("host.revoke", Subject::host(&name)).await?;
    // After the commit: a call checked meanwhile cannot bring it back.
    state.host_keys.forget(&name);
    Ok(StatusCode::NO_CONTENT)
}
