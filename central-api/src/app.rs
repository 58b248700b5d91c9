//! The registry's HTTP API: state, router and handlers. The route table is
//! the one in [`twostep_common::api`].

use crate::clock::Clock;
use crate::crypto::{host_key_hash, new_host_key, totp_aad, AdminToken, SecretBox};
use crate::db::Backend;
use crate::error::ApiError;
use crate::extract::{bearer, JsonBody, PathArgs, Peer, QueryArgs};
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row};
use std::collections::HashMap;
use std::sync::Arc;
use twostep_common::api::{
    validate_username, AuditEvent, CreateHost, CreateUser, EnrolTotp, Health, Host, HostCreated,
    HostKind, Method, MethodKind, Registrations, TotpEnrolment, UpdateUser, User, UserStatus,
    VerifyRequest, VerifyResponse, VerifyResult, HEALTH_PATH, OPENAPI_PATH,
};
use twostep_common::totp::{self, TotpParams};
use twostep_config::{ApiConfig, LockoutConfig};

/// Default label of a TOTP method.
pub const DEFAULT_TOTP_LABEL: &str = "Authenticator app";
/// Longest label or display name, in characters.
pub const MAX_LABEL_CHARS: usize = 128;
/// Audit events returned when no limit is given.
pub const DEFAULT_AUDIT_LIMIT: u32 = 100;
/// Most audit events returned at once.
pub const MAX_AUDIT_LIMIT: u32 = 10_000;

/// Everything a request needs.
#[derive(Debug)]
pub struct AppState {
    /// The database.
    pub pool: AnyPool,
    /// Which database.
    pub backend: Backend,
    /// At-rest encryption of TOTP secrets.
    pub secrets: SecretBox,
    /// The admin token.
    pub admin: AdminToken,
    /// Source of time.
    pub clock: Arc<dyn Clock>,
    /// `otpauth://` issuer.
    pub issuer: String,
    /// Skew window, in time steps either side.
    pub skew_steps: u8,
    /// Failure counting and lockout.
    pub lockout: LockoutConfig,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Push approvals: settings and the wake-ups of waiting requests.
    pub push: crate::push::PushState,
}

impl AppState {
    /// State from the `[api]` settings and opened resources.
    pub fn new(
        api: &ApiConfig,
        pool: AnyPool,
        backend: Backend,
        secrets: SecretBox,
        admin: AdminToken,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            pool,
            backend,
            secrets,
            admin,
            clock,
            issuer: api.issuer.clone(),
            skew_steps: api.totp.skew_steps,
            lockout: api.lockout.clone(),
            max_body_bytes: api.max_body_bytes,
            push: crate::push::PushState::new(api, backend),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        i64::try_from(self.clock.now()).unwrap_or(i64::MAX)
    }
}

pub(crate) type Shared = Arc<AppState>;
type ApiResult<T> = Result<T, ApiError>;

/// Every path the router serves, with its methods; the OpenAPI document
/// must describe each (checked by a test).
pub const ROUTES: &[(&str, &[&str])] = &[
    (HEALTH_PATH, &["get"]),
    (OPENAPI_PATH, &["get"]),
    ("/v1/admin/users", &["get", "post"]),
    ("/v1/admin/users/{username}", &["get", "patch", "delete"]),
    ("/v1/admin/users/{username}/unlock", &["post"]),
    ("/v1/admin/users/{username}/methods/totp", &["post"]),
    ("/v1/admin/users/{username}/methods/{id}", &["delete"]),
    ("/v1/admin/users/{username}/methods", &["delete"]),
    ("/v1/admin/hosts", &["get", "post"]),
    ("/v1/admin/hosts/{name}", &["delete"]),
    ("/v1/admin/audit", &["get"]),
    ("/v1/host/users/{username}/registrations", &["get"]),
    ("/v1/host/verify", &["post"]),
    ("/v1/admin/users/{username}/methods/push", &["post"]),
    ("/v1/admin/methods/{id}/disable", &["post"]),
    ("/v1/admin/methods/{id}/enable", &["post"]),
    ("/v1/device/activate", &["post"]),
    ("/v1/device/poll", &["post"]),
    ("/v1/device/answer", &["post"]),
    ("/v1/host/push", &["post"]),
    ("/v1/host/push/{id}", &["get", "delete"]),
];

/// The router over `state`.
pub fn router(state: Shared) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route(HEALTH_PATH, get(health))
        .route(OPENAPI_PATH, get(openapi))
        .route("/v1/admin/users", get(list_users).post(create_user))
        .route(
            "/v1/admin/users/{username}",
            get(show_user).patch(update_user).delete(delete_user),
        )
        .route("/v1/admin/users/{username}/unlock", post(unlock_user))
        .route("/v1/admin/users/{username}/methods/totp", post(enrol_totp))
        .route(
            "/v1/admin/users/{username}/methods/{id}",
            delete(delete_method),
        )
        .route("/v1/admin/users/{username}/methods", delete(reset_methods))
        .route("/v1/admin/hosts", get(list_hosts).post(create_host))
        .route("/v1/admin/hosts/{name}", delete(revoke_host))
        .route("/v1/admin/audit", get(list_audit))
        .route(
            "/v1/host/users/{username}/registrations",
            get(registrations),
        )
        .route("/v1/host/verify", post(verify))
        .merge(crate::push::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::Client {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: "method not allowed on this route".into(),
    }
}

// ---- audit ------------------------------------------------------------------

/// One audit record to write.
#[derive(Debug, Default)]
pub struct Audit<'a> {
    /// `"admin"` or `"host:NAME"`.
    pub actor: &'a str,
    /// What happened.
    pub action: &'a str,
    /// The user concerned.
    pub username: Option<&'a str>,
    /// Host from the request context.
    pub host: Option<&'a str>,
    /// Remote address.
    pub remote_addr: Option<&'a str>,
    /// Result.
    pub result: Option<&'a str>,
    /// More, never a code, secret or key.
    pub detail: Option<String>,
}

impl<'a> Audit<'a> {
    /// A successful admin action from `remote_addr`; set the other fields
    /// with struct update syntax.
    pub fn admin_ok(action: &'a str, remote_addr: Option<&'a str>) -> Self {
        Self {
            actor: "admin",
            action,
            remote_addr,
            result: Some("ok"),
            ..Self::default()
        }
    }
}

/// Writes `a` to the audit table through `exec` and logs it.
pub(crate) async fn write_audit<'e, E>(exec: E, at: i64, a: &Audit<'_>) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO audit (at, actor, action, username, host, remote_addr, result, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(at)
    .bind(a.actor)
    .bind(a.action)
    .bind(a.username)
    .bind(a.host)
    .bind(a.remote_addr)
    .bind(a.result)
    .bind(a.detail.as_deref())
    .execute(exec)
    .await?;
    tracing::info!(
        target: "twostep::audit",
        actor = a.actor,
        action = a.action,
        username = a.username,
        host = a.host,
        remote_addr = a.remote_addr,
        result = a.result,
        detail = a.detail.as_deref(),
        "audit"
    );
    Ok(())
}

// ---- credentials --------------------------------------------------------------

fn require_admin(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let token = bearer(headers)?;
    match state.admin.check(token) {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::unauthorized("wrong admin token")),
        // Fail closed; the detail (path, mode) goes to the log only.
        Err(detail) => {
            tracing::error!(error = %detail, "admin token file unusable; refusing admin requests");
            Err(ApiError::Client {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "admin_token_unavailable",
                message: "the registry cannot read its admin token file (see its log); admin requests are refused until it is fixed".into(),
            })
        }
    }
}

/// The name of the host presenting a valid, unrevoked API key.
async fn require_host(state: &AppState, headers: &HeaderMap) -> ApiResult<String> {
    let key = bearer(headers)?;
    // The key is looked up by its SHA-256: the database never sees the key
    // and the lookup time does not depend on how much of a key matches.
    let row = sqlx::query("SELECT name, revoked_at FROM hosts WHERE key_hash = $1")
        .bind(host_key_hash(key))
        .fetch_optional(&state.pool)
        .await?;
    let Some(row) = row else {
        return Err(ApiError::unauthorized("unknown host API key"));
    };
    let name: String = row.try_get("name")?;
    let revoked: Option<i64> = row.try_get("revoked_at")?;
    if revoked.is_some() {
        return Err(ApiError::Client {
            status: StatusCode::FORBIDDEN,
            code: "host_revoked",
            message: format!("host {name:?} has been revoked"),
        });
    }
    Ok(name)
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

/// Extractor: the name of the host whose valid, unrevoked API key the
/// request carries (401 unknown key, 403 revoked).
pub struct HostAuth(pub String);

impl FromRequestParts<Shared> for HostAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        require_host(state, &parts.headers).await.map(Self)
    }
}

// ---- validation ---------------------------------------------------------------

pub(crate) fn check_username(name: &str) -> ApiResult<()> {
    validate_username(name).map_err(|m| ApiError::bad_request("invalid_username", m))
}

pub(crate) fn check_text(what: &str, s: &str) -> ApiResult<()> {
    if s.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("{what} is empty"),
        ));
    }
    if s.chars().count() > MAX_LABEL_CHARS || s.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!(
                "{what} must be at most {MAX_LABEL_CHARS} characters without control characters"
            ),
        ));
    }
    Ok(())
}

// ---- rows ---------------------------------------------------------------------

pub(crate) fn method_from_row(row: &AnyRow) -> Result<Method, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    Ok(Method {
        id: row.try_get("id")?,
        kind: if kind == "push" {
            MethodKind::Push
        } else {
            MethodKind::Totp
        },
        label: row.try_get("label")?,
        is_default: row.try_get::<i64, _>("is_default")? != 0,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
    })
}

pub(crate) const METHOD_COLUMNS: &str =
    "id, user_id, kind, label, is_default, created_at, last_used_at, disabled";
const USER_COLUMNS: &str = "id, username, display_name, disabled, created_at, locked_until";

fn user_from_row(row: &AnyRow, now: i64, methods: Vec<Method>) -> Result<User, sqlx::Error> {
    let locked: Option<i64> = row.try_get("locked_until")?;
    Ok(User {
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
        locked_until: locked.filter(|&t| t > now),
        methods,
    })
}

async fn methods_of(pool: &AnyPool, user_id: i64) -> Result<Vec<Method>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {METHOD_COLUMNS} FROM methods WHERE user_id = $1 ORDER BY id"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(method_from_row)
    .collect()
}

async fn load_user(state: &AppState, username: &str) -> ApiResult<User> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
    ))
    .bind(username)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| ApiError::unknown_user(username))?;
    let id: i64 = row.try_get("id")?;
    let methods = methods_of(&state.pool, id).await?;
    Ok(user_from_row(&row, state.now(), methods)?)
}

// ---- public -------------------------------------------------------------------

async fn health(State(state): State<Shared>) -> ApiResult<Json<Health>> {
    sqlx::query("SELECT 1").execute(&state.pool).await?;
    Ok(Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }))
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::openapi::document().to_string(),
    )
        .into_response()
}

// ---- admin: users -------------------------------------------------------------

async fn create_user(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    JsonBody(req): JsonBody<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    check_username(&req.username)?;
    if let Some(d) = &req.display_name {
        check_text("display_name", d)?;
    }
    let now = state.now();
    let mut tx = state.pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO users (username, display_name, created_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(&req.username)
    .bind(req.display_name.as_deref())
    .bind(now)
    .fetch_one(&mut *tx)
    .await;
    if let Err(sqlx::Error::Database(d)) = &inserted {
        if d.kind() == sqlx::error::ErrorKind::UniqueViolation {
            return Err(ApiError::conflict(
                "user_exists",
                format!("user {:?} already exists", req.username),
            ));
        }
    }
    inserted?;
    let peer = peer.text();
    write_audit(
        &mut *tx,
        now,
        &Audit {
            username: Some(&req.username),
            ..Audit::admin_ok("user.create", peer.as_deref())
        },
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(load_user(&state, &req.username).await?),
    ))
}

async fn list_users(State(state): State<Shared>, _admin: AdminAuth) -> ApiResult<Json<Vec<User>>> {
    let now = state.now();
    let mut by_user: HashMap<i64, Vec<Method>> = HashMap::new();
    for row in sqlx::query(&format!("SELECT {METHOD_COLUMNS} FROM methods ORDER BY id"))
        .fetch_all(&state.pool)
        .await?
    {
        let uid: i64 = row.try_get("user_id")?;
        by_user.entry(uid).or_default().push(method_from_row(&row)?);
    }
    let rows = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users ORDER BY username"
    ))
    .fetch_all(&state.pool)
    .await?;
    let mut users = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("id")?;
        users.push(user_from_row(
            &row,
            now,
            by_user.remove(&id).unwrap_or_default(),
        )?);
    }
    Ok(Json(users))
}

async fn show_user(
    State(state): State<Shared>,
    _admin: AdminAuth,
    PathArgs(username): PathArgs<String>,
) -> ApiResult<Json<User>> {
    check_username(&username)?;
    Ok(Json(load_user(&state, &username).await?))
}

/// Runs one admin change: `stmt` (which must write first and return the
/// user's id) with `username` bound as `$1` and `extra` as `$2`, then the
/// audit record, in one transaction. 404 when no row matched.
async fn admin_user_change(
    state: &AppState,
    peer: &Peer,
    username: &str,
    stmt: &str,
    extra: Option<i64>,
    action: &str,
) -> ApiResult<()> {
    check_username(username)?;
    let now = state.now();
    let mut tx = state.pool.begin().await?;
    let mut q = sqlx::query(stmt).bind(username);
    if let Some(x) = extra {
        q = q.bind(x);
    }
    let row = q.fetch_optional(&mut *tx).await?;
    if row.is_none() {
        return Err(ApiError::unknown_user(username));
    }
    let peer = peer.text();
    write_audit(
        &mut *tx,
        now,
        &Audit {
            username: Some(username),
            ..Audit::admin_ok(action, peer.as_deref())
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn update_user(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
    JsonBody(req): JsonBody<UpdateUser>,
) -> ApiResult<Json<User>> {
    check_username(&username)?;
    if let Some(disabled) = req.disabled {
        admin_user_change(
            &state,
            &peer,
            &username,
            "UPDATE users SET disabled = $2 WHERE username = $1 RETURNING id",
            Some(i64::from(disabled)),
            if disabled {
                "user.disable"
            } else {
                "user.enable"
            },
        )
        .await?;
    }
    Ok(Json(load_user(&state, &username).await?))
}

async fn delete_user(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
) -> ApiResult<StatusCode> {
    admin_user_change(
        &state,
        &peer,
        &username,
        "DELETE FROM users WHERE username = $1 RETURNING id",
        None,
        "user.delete",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unlock_user(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
) -> ApiResult<Json<User>> {
    admin_user_change(
        &state,
        &peer,
        &username,
        "UPDATE users SET locked_until = NULL, failure_count = 0, failure_window_start = NULL,
                          push_blocked_at = NULL
         WHERE username = $1 RETURNING id",
        None,
        "user.unlock",
    )
    .await?;
    Ok(Json(load_user(&state, &username).await?))
}

// ---- admin: methods -----------------------------------------------------------

async fn enrol_totp(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
    JsonBody(req): JsonBody<EnrolTotp>,
) -> ApiResult<(StatusCode, Json<TotpEnrolment>)> {
    check_username(&username)?;
    let label = req.label.unwrap_or_else(|| DEFAULT_TOTP_LABEL.to_owned());
    check_text("label", &label)?;
    let params = TotpParams {
        skew_steps: state.skew_steps,
        ..TotpParams::default()
    };
    let now = state.now();
    let mut tx = state.pool.begin().await?;
    // Write first (SQLite takes the write lock here); the first method
    // becomes the default.
    let row = sqlx::query(
        "INSERT INTO methods (user_id, kind, label, is_default, created_at, digits, step_seconds)
         SELECT u.id, 'totp', $2,
                CASE WHEN EXISTS (SELECT 1 FROM methods m WHERE m.user_id = u.id) THEN 0 ELSE 1 END,
                $3, $4, $5
         FROM users u WHERE u.username = $1
         RETURNING id, user_id",
    )
    .bind(&username)
    .bind(&label)
    .bind(now)
    .bind(i64::from(params.digits))
    .bind(params.step_seconds as i64)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::unknown_user(&username))?;
    let method_id: i64 = row.try_get("id")?;
    let user_id: i64 = row.try_get("user_id")?;
    let secret = zeroize::Zeroizing::new(totp::generate_secret());
    let sealed = state
        .secrets
        .seal(secret.as_ref(), &totp_aad(method_id, user_id))
        .map_err(ApiError::Secret)?;
    sqlx::query("UPDATE methods SET secret_sealed = $1 WHERE id = $2")
        .bind(hex::encode(sealed))
        .bind(method_id)
        .execute(&mut *tx)
        .await?;
    let peer = peer.text();
    write_audit(
        &mut *tx,
        now,
        &Audit {
            username: Some(&username),
            detail: Some(format!("method {method_id}")),
            ..Audit::admin_ok("totp.enrol", peer.as_deref())
        },
    )
    .await?;
    let method = method_from_row(
        &sqlx::query(&format!(
            "SELECT {METHOD_COLUMNS} FROM methods WHERE id = $1"
        ))
        .bind(method_id)
        .fetch_one(&mut *tx)
        .await?,
    )?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrolment {
            method,
            secret_base32: totp::secret_base32(secret.as_ref()),
            otpauth_uri: totp::otpauth_uri(&state.issuer, &username, secret.as_ref(), &params),
        }),
    ))
}

pub(crate) async fn user_id(state: &AppState, username: &str) -> ApiResult<i64> {
    check_username(username)?;
    let row = sqlx::query("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(&state.pool)
        .await?
        .ok_or_else(|| ApiError::unknown_user(username))?;
    Ok(row.try_get("id")?)
}

async fn delete_method(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs((username, id)): PathArgs<(String, i64)>,
) -> ApiResult<StatusCode> {
    let uid = user_id(&state, &username).await?;
    let now = state.now();
    let mut tx = state.pool.begin().await?;
    let deleted =
        sqlx::query("DELETE FROM methods WHERE id = $1 AND user_id = $2 RETURNING id, kind")
            .bind(id)
            .bind(uid)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(deleted) = deleted else {
        return Err(ApiError::not_found(
            "unknown_method",
            format!("user {username:?} has no method {id}"),
        ));
    };
    promote_default(&mut tx, uid).await?;
    let peer = peer.text();
    let cancelled = if deleted.try_get::<String, _>("kind")? == "push" {
        crate::push::cancel_open(&state, &mut tx, uid, peer.as_deref(), "device deleted").await?
    } else {
        Vec::new()
    };
    write_audit(
        &mut *tx,
        now,
        &Audit {
            username: Some(&username),
            detail: Some(format!("method {id}")),
            ..Audit::admin_ok("method.delete", peer.as_deref())
        },
    )
    .await?;
    tx.commit().await?;
    state.push.hub.finished(&cancelled);
    Ok(StatusCode::NO_CONTENT)
}

/// Makes the oldest remaining method the default when none is.
async fn promote_default(tx: &mut sqlx::Transaction<'_, Any>, uid: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE methods SET is_default = 1
         WHERE id = (SELECT MIN(id) FROM methods WHERE user_id = $1)
           AND NOT EXISTS (SELECT 1 FROM methods WHERE user_id = $1 AND is_default = 1)",
    )
    .bind(uid)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn reset_methods(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
) -> ApiResult<StatusCode> {
    let uid = user_id(&state, &username).await?;
    let now = state.now();
    let mut tx = state.pool.begin().await?;
    let n = sqlx::query("DELETE FROM methods WHERE user_id = $1")
        .bind(uid)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let peer = peer.text();
    let cancelled =
        crate::push::cancel_open(&state, &mut tx, uid, peer.as_deref(), "methods reset").await?;
    write_audit(
        &mut *tx,
        now,
        &Audit {
            username: Some(&username),
            detail: Some(format!("{n} methods deleted")),
            ..Audit::admin_ok("method.reset", peer.as_deref())
        },
    )
    .await?;
    tx.commit().await?;
    state.push.hub.finished(&cancelled);
    Ok(StatusCode::NO_CONTENT)
}

// ---- admin: hosts and audit -----------------------------------------------------

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
    validate_username(&req.name).map_err(|m| {
        ApiError::bad_request("invalid_host_name", m.replace("username", "host name"))
    })?;
    let key = new_host_key();
    let now = state.now();
    let mut tx = state.pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO hosts (name, kind, key_hash, created_at) VALUES ($1, $2, $3, $4)
         RETURNING name, kind, created_at, revoked_at",
    )
    .bind(&req.name)
    .bind(kind_str(req.kind))
    .bind(host_key_hash(key.as_bytes()))
    .bind(now)
    .fetch_one(&mut *tx)
    .await;
    if let Err(sqlx::Error::Database(d)) = &inserted {
        if d.kind() == sqlx::error::ErrorKind::UniqueViolation {
            return Err(ApiError::conflict(
                "host_exists",
                format!("host {:?} already exists", req.name),
            ));
        }
    }
    let host = host_from_row(&inserted?)?;
    let peer = peer.text();
    write_audit(
        &mut *tx,
        now,
        &Audit {
            host: Some(&req.name),
            detail: Some(format!("kind {}", kind_str(req.kind))),
            ..Audit::admin_ok("host.create", peer.as_deref())
        },
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(HostCreated {
            host,
            api_key: key.to_string(),
        }),
    ))
}

async fn list_hosts(State(state): State<Shared>, _admin: AdminAuth) -> ApiResult<Json<Vec<Host>>> {
    let rows = sqlx::query("SELECT name, kind, created_at, revoked_at FROM hosts ORDER BY name")
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
    let now = state.now();
    let mut tx = state.pool.begin().await?;
    // Revoking twice keeps the first revocation time.
    let row = sqlx::query(
        "UPDATE hosts SET revoked_at = COALESCE(revoked_at, $2) WHERE name = $1 RETURNING id",
    )
    .bind(&name)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    if row.is_none() {
        return Err(ApiError::not_found(
            "unknown_host",
            format!("no host {name:?}"),
        ));
    }
    let peer = peer.text();
    write_audit(
        &mut *tx,
        now,
        &Audit {
            host: Some(&name),
            ..Audit::admin_ok("host.revoke", peer.as_deref())
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
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

// ---- host ---------------------------------------------------------------------

async fn registrations(
    State(state): State<Shared>,
    _host: HostAuth,
    PathArgs(username): PathArgs<String>,
) -> ApiResult<Json<Registrations>> {
    check_username(&username)?;
    let user = load_user(&state, &username).await?;
    let status = if user.disabled {
        UserStatus::Disabled
    } else if user.locked_until.is_some() {
        UserStatus::Locked
    } else {
        UserStatus::Active
    };
    Ok(Json(Registrations {
        username: user.username,
        status,
        methods: user.methods,
    }))
}

async fn verify(
    State(state): State<Shared>,
    HostAuth(host): HostAuth,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> ApiResult<Json<VerifyResponse>> {
    Ok(Json(crate::verify::verify(&state, &host, &req).await?))
}

/// The one answer for a verification, with the user it concerned.
pub(crate) fn verdict(result: VerifyResult) -> VerifyResponse {
    VerifyResponse {
        result,
        method_id: None,
        locked_until: None,
    }
}
