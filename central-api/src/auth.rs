//! Who is asking: the admin token ([`AdminAuth`]) or a host API key
//! ([`HostAuth`]), checked before the body is read.

use crate::crypto::host_key_hash;
use crate::error::ApiError;
use crate::extract::bearer;
use crate::sqlite_reads::Columns;
use crate::state::{ApiResult, AppState, Shared};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
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

/// How long a host API key found valid is taken as valid without asking
/// the database again, in seconds. A revocation on this node applies at
/// once ([`HostKeys::forget`]); on another node of the same database
/// within this time.
pub const HOST_KEY_CACHE_SECONDS: u64 = 2;

/// Most keys remembered; past it the cache starts empty again.
const HOST_KEY_CACHE_ENTRIES: usize = 4096;

/// Host API keys recently found valid, by their SHA-256 (hex): a host call
/// costs no database statement for its key while one is fresh. Only valid,
/// unrevoked keys are kept, so an unknown or revoked key is always looked
/// up (a host added since is let in at once).
#[derive(Debug, Default)]
pub struct HostKeys {
    entries:
        std::sync::Mutex<std::collections::HashMap<String, (String, HostKind, std::time::Instant)>>,
}

impl HostKeys {
    fn get(&self, hash: &str) -> Option<(String, HostKind)> {
        let entries = self.entries.lock().ok()?;
        let (name, kind, at) = entries.get(hash)?;
        (at.elapsed().as_secs() < HOST_KEY_CACHE_SECONDS).then(|| (name.clone(), *kind))
    }

    fn put(&self, hash: String, name: &str, kind: HostKind) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= HOST_KEY_CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(hash, (name.to_owned(), kind, std::time::Instant::now()));
        }
    }

    /// Forgets host `name`'s key (it was revoked on this node).
    pub(crate) fn forget(&self, name: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (n, _, _)| n != name);
        }
    }
}

/// The name and kind of the host presenting a valid, unrevoked API key
/// (remembered [`HOST_KEY_CACHE_SECONDS`] by [`HostKeys`]).
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
    let hash = host_key_hash(key);
    if let Some(found) = state.host_keys.get(&hash) {
        return Ok(found);
    }
    const SQL: &str = "SELECT name, kind, revoked_at FROM hosts WHERE key_hash = $1";
    let found = match &state.sqlite_reads {
        Some(reads) => reads
            .query(SQL, &[("$1", &hash)], |r| host_row(r))?
            .into_iter()
            .next(),
        None => sqlx::query(SQL)
            .bind(&hash)
            .fetch_optional(&state.pool)
            .await?
            .as_ref()
            .map(host_row)
            .transpose()?,
    };
    let Some((name, kind, revoked)) = found else {
        return Err(ApiError::unauthorized("unknown host API key"));
    };
    if revoked.is_some() {
        return Err(ApiError::new(
            ApiErrorCode::HostRevoked,
            format!("host {name:?} has been revoked"),
        ));
    }
    let kind = if kind == "radius" {
        HostKind::Radius
    } else {
        HostKind::Ssh
    };
    state.host_keys.put(hash, &name, kind);
    Ok((name, kind))
}

/// A row of `hosts`' name, kind and revocation time.
fn host_row(r: &impl Columns) -> Result<(String, String, Option<i64>), sqlx::Error> {
    Ok((r.col("name")?, r.col("kind")?, r.col("revoked_at")?))
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
