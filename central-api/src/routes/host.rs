//! Host-facing routes (host API key): a user's registrations and code
//! verification ([`crate::verify`]).
//!
//! A lookup that shows the login cannot go on to a code (unknown user, no
//! usable method, locked, disabled) is recorded in the audit trail with the
//! context the host sends as query parameters (`service`, `host`,
//! `remote_addr`, `tty`; older hosts send none and are answered alike),
//! within per-host limits (`crate::audit::record_refused_lookup`).

use crate::app::Routes;
use crate::auth::HostAuth;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathArgs, QueryArgs};
use crate::state::{ApiResult, Shared};
use crate::validate::check_username;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use twostep_common::api::{
    paths, AuthContext, MethodKind, Registrations, UserStatus, VerifyRequest, VerifyResponse,
    VerifyResult, RESULTS_HEADER,
};
use twostep_common::methods::Place;

/// `/v1/host/users/{username}/registrations` and `/v1/host/verify`.
pub(crate) fn routes(r: Routes) -> Routes {
    r.get(paths::HOST_REGISTRATIONS, registrations)
        .post(paths::HOST_VERIFY, verify)
}

/// The login context of a lookup, from query parameters; unknown ones are
/// ignored (newer hosts), missing ones are `None` (older hosts).
#[derive(Debug, Default, Deserialize)]
struct LookupQuery {
    service: Option<String>,
    host: Option<String>,
    remote_addr: Option<String>,
    tty: Option<String>,
}

/// Longest context value kept, in bytes; longer ones are refused (400).
const MAX_CONTEXT_BYTES: usize = 256;

impl LookupQuery {
    fn context(self) -> Result<AuthContext, ApiError> {
        let ctx = AuthContext {
            service: self.service,
            host: self.host,
            remote_addr: self.remote_addr,
            tty: self.tty,
        };
        check_context(&ctx)?;
        Ok(ctx)
    }
}

/// Checks a login context a host sent: each value at most
/// [`MAX_CONTEXT_BYTES`] bytes without control characters.
///
/// # Errors
/// 400 `invalid_query`.
pub(crate) fn check_context(ctx: &AuthContext) -> Result<(), ApiError> {
    for v in [&ctx.service, &ctx.host, &ctx.remote_addr, &ctx.tty]
        .into_iter()
        .flatten()
    {
        if v.len() > MAX_CONTEXT_BYTES || v.chars().any(char::is_control) {
            return Err(ApiError::new(
                twostep_common::api::ApiErrorCode::InvalidQuery,
                format!(
                    "context values must be at most {MAX_CONTEXT_BYTES} bytes without control characters"
                ),
            ));
        }
    }
    Ok(())
}

async fn registrations(
    State(state): State<Shared>,
    HostAuth(host, host_kind): HostAuth,
    PathArgs(username): PathArgs<String>,
    QueryArgs(query): QueryArgs<LookupQuery>,
) -> ApiResult<Json<Registrations>> {
    check_username(&username)?;
    let context = query.context()?;
    let refused = |result| crate::audit::RefusedLookup {
        host_key: &host,
        username: &username,
        result,
        context: &context,
    };
    let Some((user, all, temporary_access_until)) =
        crate::rows::lookup(&state, &username, state.now()).await?
    else {
        crate::audit::record_refused_lookup(&state, &refused("unknown_user")).await?;
        return Err(ApiError::unknown_user(&username));
    };
    let place = Place::for_host(host_kind);
    let (methods, other): (Vec<_>, Vec<_>) = all.into_iter().partition(|m| m.kind.counts_in(place));
    let mut elsewhere: Vec<MethodKind> = Vec::new();
    for m in other.iter().filter(|m| !m.disabled) {
        if !elsewhere.contains(&m.kind) {
            elsewhere.push(m.kind);
        }
    }
    let reg = Registrations {
        status: user.standing(state.now()).status(),
        username: user.username,
        methods,
        temporary_access_until,
        place: Some(place),
        elsewhere,
    };
    let result = match reg.status {
        UserStatus::Locked => Some("locked"),
        UserStatus::Disabled => Some("disabled"),
        UserStatus::Active if !reg.is_enrolled() => Some("not_enrolled"),
        UserStatus::Active => None,
    };
    if let Some(result) = result {
        crate::audit::record_refused_lookup(&state, &refused(result)).await?;
    }
    Ok(Json(reg))
}

async fn verify(
    State(state): State<Shared>,
    HostAuth(host, host_kind): HostAuth,
    headers: HeaderMap,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> ApiResult<Json<VerifyResponse>> {
    let mut resp = crate::verify::verify(&state, &host, Place::for_host(host_kind), &req).await?;
    if resp.result == VerifyResult::Replay && !understands_replay(&headers) {
        // An older host knows no `replay`: it gets `reject` (still no
        // failure counted; the audit says `replay`).
        resp.result = VerifyResult::Reject;
    }
    Ok(Json(resp))
}

/// Whether the host sent `replay` in [`RESULTS_HEADER`].
fn understands_replay(headers: &HeaderMap) -> bool {
    headers
        .get_all(RESULTS_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|r| r.trim() == "replay")
}
