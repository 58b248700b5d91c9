//! Host-facing routes (host API key): a user's registrations and code
//! verification ([`crate::verify`]).

use crate::app::Routes;
use crate::auth::HostAuth;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathArgs};
use crate::rows::{methods_of, UserRow};
use crate::state::{ApiResult, Shared};
use crate::validate::check_username;
use axum::extract::State;
use axum::Json;
use twostep_common::api::{paths, Registrations, VerifyRequest, VerifyResponse};

/// `/v1/host/users/{username}/registrations` and `/v1/host/verify`.
pub(crate) fn routes(r: Routes) -> Routes {
    r.get(paths::HOST_REGISTRATIONS, registrations)
        .post(paths::HOST_VERIFY, verify)
}

async fn registrations(
    State(state): State<Shared>,
    _host: HostAuth,
    PathArgs(username): PathArgs<String>,
) -> ApiResult<Json<Registrations>> {
    check_username(&username)?;
    let user = UserRow::find(&state.pool, &username)
        .await?
        .ok_or_else(|| ApiError::unknown_user(&username))?;
    let methods = methods_of(&state.pool, user.id).await?;
    Ok(Json(Registrations {
        status: user.standing(state.now()).status(),
        username: user.username,
        methods,
    }))
}

async fn verify(
    State(state): State<Shared>,
    HostAuth(host): HostAuth,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> ApiResult<Json<VerifyResponse>> {
    Ok(Json(crate::verify::verify(&state, &host, &req).await?))
}
