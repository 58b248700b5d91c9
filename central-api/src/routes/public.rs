//! Unauthenticated routes: the health check and the OpenAPI document.

use crate::app::Routes;
use crate::state::{ApiResult, Shared};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use twostep_common::api::{paths, Health};

/// `GET /v1/health`, `GET /v1/openapi.json`.
pub(crate) fn routes(r: Routes) -> Routes {
    r.get(paths::HEALTH, health).get(paths::OPENAPI, openapi)
}

async fn health(State(state): State<Shared>) -> ApiResult<Json<Health>> {
    let offset = crate::db::clock_offset(&state.pool, state.backend, state.now()).await?;
    Ok(Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        clock_offset_seconds: Some(offset),
    }))
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::openapi::document().to_string(),
    )
        .into_response()
}
