//! Who is asking: the admin token ([`AdminAuth`]) or a host API key
//! ([`HostAuth`]), checked before the body is read.

use crate::crypto::host_key_hash;
use crate::error::ApiError;
use crate::extract::bearer;
use crate::state::{ApiResult, AppState, Shared};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use sqlx::Row;
use twostep_common::api::{ApiErrorCode, HostKind};

/// Checks that `headers` carry the admin token.
///
/// # Errors
/// 401 `unauthorized` for a missing or wrong token; 503
/// `admin_token_unavailable` when the token file is unusable (fail closed).
pub(crate) fn require_admin(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let token = bearer(headers)?;
    match state.admin.check(token) {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::unauthorized("wrong admin token")),
        // Fail closed; the detail (path, mode) goes to the log only.
        Err(detail) => {
            tracing::error!(error = %detail, "admin token file unusable; refusing admin requests");
            Err(ApiError::new(
                ApiErrorCode::AdminTokenUnavailable,
                "the registry cannot read its admin token file (see its log); admin requests are refused until it is fixed",
            ))
        }
    }
}

/// The name and kind of the host presenting a valid, unrevoked API key.
///
/// # Errors
/// 401 `unauthorized` for a missing or unknown key, 403 `host_revoked`, 503
/// when the database fails.
pub(crate) async fn require_host(
    state: &AppState,
    headers: &HeaderMap,
) -> ApiResult<(String, HostKind)> {
    let key = bearer(headers)?;
    // The key is looked up by its SHA-256: the database never sees the key
    // and the lookup time does not depend on how much of a key matches.
    let row = sqlx::query("SELECT name, kind, revoked_at FROM hosts WHERE key_hash = $1")
        .bind(host_key_hash(key))
        .fetch_optional(&state.pool)
        .await?;
    let Some(row) = row else {
        return Err(ApiError::unauthorized("unknown host API key"));
    };
    let name: String = row.try_get("name")?;
    let revoked: Option<i64> = row.try_get("revoked_at")?;
    if revoked.is_some() {
        return Err(ApiError::new(
            ApiErrorCode::HostRevoked,
            format!("host {name:?} has been revoked"),
        ));
    }
    let kind: String = row.try_get("kind")?;
    let kind = if kind == "radius" {
        HostKind::Radius
    } else {
        HostKind::Ssh
    };
    Ok((name, kind))
}

/// Extractor: the request carries the admin token (401 otherwise). Runs
/// before the body is read, so unauthenticated requests learn nothing from
/// body errors.
pub struct AdminAuth;

impl FromRequestParts<Shared> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        require_admin(state, &parts.headers).map(|()| Self)
    }
}

/// Extractor: the name and kind of the host whose valid, unrevoked API key
/// the request carries (401 unknown key, 403 revoked).
pub struct HostAuth(pub String, pub HostKind);

impl FromRequestParts<Shared> for HostAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        require_host(state, &parts.headers)
            .await
            .map(|(name, kind)| Self(name, kind))
    }
}
