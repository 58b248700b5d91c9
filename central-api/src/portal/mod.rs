//! The Security info pages under `/my/`: users sign in with their page
//! password and a second factor, then register, change and delete their
//! verification methods themselves.
//!
//! Server-rendered HTML (askama templates compiled in from `templates/`),
//! one stylesheet (`static/portal.css`) and two small scripts
//! (`static/push-wait.js`, the live wait for a push approval, which every
//! page works without; `static/security-key.js`, the browser's WebAuthn
//! calls, which security keys need). Everything a page keeps
//! between requests is a row of the registry's database, so any node of a
//! PostgreSQL pool serves any session:
//!
//! - [`session`]: page sessions (only a SHA-256 of the id is stored),
//!   cookies, CSRF tokens;
//! - [`password`]: Argon2id page passwords;
//! - [`throttle`]: sign-in failures per username and per address;
//! - [`signin`]: sign-in, the second factor, setup links, sign-out;
//! - [`account`]: overview, Security info, Devices, Password, Privacy;
//! - [`enrol`]: the guided "Authenticator app" steps (codes or push);
//! - [`security_key`]: security keys (WebAuthn): adding one, signing in
//!   and verifying again with one;
//! - [`reset_methods`]: password-reset methods on Security info (an
//!   email address proven by a code, security questions);
//! - [`reset`]: "Forgot password?", the reset with those proofs;
//! - [`push`]: notifications sent by the pages, the live wait;
//! - [`admin`]: the admin API side (`user passwd`, `user invite`).
//!
//! Second factors at sign-in go through [`crate::verify::verify_as`], the
//! same verification, replay rule, lockout and audit as PAM and RADIUS.

pub mod account;
pub mod admin;
pub mod enrol;
pub mod pages;
pub mod password;
pub mod phone;
pub mod push;
pub mod qr;
pub mod reset;
pub mod reset_methods;
pub mod security_key;
pub mod session;
pub mod signin;
pub mod throttle;
pub mod time;

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use std::sync::Arc;
use twostep_common::api::ApiErrorCode;
use twostep_config::ApiConfig;

/// How long a second factor counts as fresh for opening Security info and
/// for changes, in seconds.
pub const FRESH_FACTOR_SECS: i64 = 600;
/// Largest form body the pages accept, in bytes.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// The `Content-Security-Policy` of every page: no inline script (the one
/// script, the push live wait, is a file of the registry's), styles,
/// images and fetches only from the registry itself, forms only to it.
pub const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `[api.portal]` as the pages use it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Serve the pages.
    pub enabled: bool,
    /// Served over TLS: cookies are `Secure` and `__Host-` prefixed.
    pub tls: bool,
    /// Longest life of a signed-in session, in seconds.
    pub session_lifetime: i64,
    /// Idle timeout, in seconds.
    pub idle_timeout: i64,
    /// Base of setup links, without a trailing `/`.
    pub public_url: Option<String>,
    /// Security keys (`[api.portal.webauthn]`), when an origin is
    /// configured.
    pub security_keys: Option<Arc<security_key::Keys>>,
}

impl Settings {
    /// From `[api]` and `[api.portal]`. Security keys stay off (with a
    /// line in the log) when no origin is configured or the one derived
    /// from `public_url` cannot be a relying party.
    pub fn from_api(api: &ApiConfig) -> Self {
        let p = &api.portal;
        let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
        let security_keys = match security_key::Keys::from_config(
            &p.webauthn,
            p.public_url.as_deref(),
            &api.issuer,
        ) {
            Ok(Some(k)) => {
                tracing::info!(rp_id = %k.rp.id, origin = %k.rp.origin, user_verification = k.user_verification.as_str(), "security keys on");
                if let Some(w) = p.webauthn.origin_mismatch(p.public_url.as_deref()) {
                    tracing::warn!("{w}");
                }
                Some(Arc::new(k))
            }
            Ok(None) => {
                tracing::info!("security keys off: set [api.portal] public_url or [api.portal.webauthn] origin to offer them");
                None
            }
            // Only a derived origin gets here (an explicit one is
            // checked with the config).
            Err(why) => {
                tracing::info!("security keys off: {why}");
                None
            }
        };
        Self {
            security_keys,
            enabled: p.enabled,
            tls: api.tls_cert_file.is_some() && api.tls_key_file.is_some(),
            session_lifetime: secs(p.session_lifetime),
            idle_timeout: secs(p.idle_timeout),
            public_url: p
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
        }
    }
}

/// The pages' state: the registry's, and the lazily loaded page key.
#[derive(Debug)]
pub struct Portal {
    /// The registry.
    pub app: Arc<AppState>,
    key: tokio::sync::OnceCell<session::PageKey>,
    /// Bounds concurrent Argon2id computations (19 MiB each).
    hashing: tokio::sync::Semaphore,
}

/// Concurrent password hashes at most.
const MAX_CONCURRENT_HASHES: usize = 4;

impl Portal {
    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.app.portal
    }

    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        i64::try_from(self.app.clock.now()).unwrap_or(i64::MAX)
    }

    /// The key CSRF tokens are derived with (created once per database).
    ///
    /// # Errors
    /// When the database fails or the stored key does not open.
    pub async fn key(&self) -> Result<&session::PageKey, ApiError> {
        self.key
            .get_or_try_init(|| session::PageKey::load_or_create(&self.app))
            .await
    }
}

/// A page's answer: a response, or a redirect / error page to show instead.
pub type PageResult = Result<Response, Exit>;

/// What ends a page handler early.
#[derive(Debug)]
pub enum Exit {
    /// 303 See Other to this local path.
    Redirect(String),
    /// An error shown as an HTML page.
    Error(ApiError),
    /// A ready response.
    Page(Box<Response>),
}

impl From<ApiError> for Exit {
    fn from(e: ApiError) -> Self {
        Self::Error(e)
    }
}

impl From<sqlx::Error> for Exit {
    fn from(e: sqlx::Error) -> Self {
        Self::Error(ApiError::Db(e))
    }
}

impl IntoResponse for Exit {
    fn into_response(self) -> Response {
        match self {
            Self::Redirect(to) => Redirect::to(&to).into_response(),
            Self::Page(r) => *r,
            Self::Error(e) => {
                let (status, _, message) = e.parts();
                if status.is_server_error() {
                    tracing::error!(error = %e, reason = %message, "page request failed");
                }
                let (title, text) = match status {
                    StatusCode::FORBIDDEN => (
                        "This form has expired",
                        "The page you sent it from was out of date. Go back, reload the page and try again.",
                    ),
                    StatusCode::NOT_FOUND => (
                        "Page not found",
                        "There is no such page. Use the links below to go on.",
                    ),
                    StatusCode::PAYLOAD_TOO_LARGE | StatusCode::BAD_REQUEST => (
                        "Something is wrong with that form",
                        "The form could not be read. Go back, reload the page and try again.",
                    ),
                    _ => (
                        "Something went wrong",
                        "The registry could not finish this. Try again in a moment; if it keeps happening, tell your administrator.",
                    ),
                };
                e.mark(pages::message(status, title, text))
            }
        }
    }
}

/// 403 for a form without the right CSRF token.
pub fn forbidden() -> Exit {
    Exit::Error(ApiError::new(
        ApiErrorCode::FormExpired,
        "missing or wrong form token",
    ))
}

/// 404 page.
pub fn not_found() -> Exit {
    Exit::Error(ApiError::new(ApiErrorCode::NotFound, "no such page"))
}

/// The stylesheet, compiled in.
pub const CSS: &str = include_str!("../../static/portal.css");

/// `href` of the stylesheet: its path with a content version, so it can be
/// cached for a year and still change with a new build.
pub fn css_href() -> &'static str {
    static HREF: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use sha2::{Digest, Sha256};
        let v = hex::encode(&Sha256::digest(CSS.as_bytes())[..6]);
        format!("/my/static/portal.css?v={v}")
    });
    &HREF
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        CSS,
    )
        .into_response()
}

/// Adds the security headers every page answer carries; pages (not the
/// stylesheet) are never cached.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    resp
}

async fn page_not_found() -> Exit {
    not_found()
}

/// The GET side of a path that only takes a form's POST: a 303 to `page`,
/// the page that shows that form, so an address left in the bar (after a
/// wrong password, say), reloaded or bookmarked, lands on a page rather
/// than a blank 405.
fn form_at(page: &'static str) -> MethodRouter<Arc<Portal>> {
    get(move || async move { Redirect::to(page) })
}

/// The pages' router, to be nested at [`twostep_common::portal::PORTAL_PATH`].
/// When `[api.portal] enabled = false` every path answers 404.
pub fn router(app: Arc<AppState>) -> Router {
    let enabled = app.portal.enabled;
    let portal = Arc::new(Portal {
        app,
        key: tokio::sync::OnceCell::new(),
        hashing: tokio::sync::Semaphore::new(MAX_CONCURRENT_HASHES),
    });
    if !enabled {
        return Router::new().fallback(page_not_found);
    }
    Router::new()
        .route("/", get(account::overview))
        .route("/static/portal.css", get(stylesheet))
        .route("/sign-in", form_at("/my/").post(signin::sign_in))
        .route(
            "/sign-in/code",
            get(signin::code_page).post(signin::code_submit),
        )
        .route(
            "/sign-in/push",
            get(signin::push_page).post(signin::push_submit),
        )
        .route(
            "/sign-in/push/resend",
            form_at("/my/sign-in/push").post(signin::push_resend),
        )
        .route(
            "/sign-in/code/send",
            form_at("/my/sign-in/code").post(signin::code_send),
        )
        .route(
            "/verify",
            get(signin::verify_page).post(signin::verify_submit),
        )
        .route(
            "/verify/push",
            form_at("/my/verify").post(signin::verify_push_submit),
        )
        .route(
            "/sign-in/security-key",
            get(security_key::sign_in_page).post(security_key::sign_in_submit),
        )
        .route(
            "/verify/security-key",
            form_at("/my/verify").post(security_key::verify_submit),
        )
        .route(
            "/security-info/security-key",
            get(security_key::add_page).post(security_key::add_submit),
        )
        .route(
            "/security-info/security-key/finish",
            form_at("/my/security-info/security-key").post(security_key::add_finish),
        )
        .route("/static/security-key.js", get(security_key::script))
        .route(
            "/verify/push/resend",
            form_at("/my/verify").post(signin::verify_push_resend),
        )
        .route("/invite/{token}", get(signin::invite_page))
        .route("/invite", form_at("/my/").post(signin::invite_accept))
        .route(
            "/welcome",
            get(signin::welcome_page).post(signin::welcome_submit),
        )
        .route("/reset", get(reset::start).post(reset::begin))
        .route("/reset/verify", get(reset::choose))
        .route(
            "/reset/email/send",
            form_at("/my/reset/email").post(reset::email_send),
        )
        .route(
            "/reset/email",
            get(reset::email_page_get).post(reset::email_submit),
        )
        .route(
            "/reset/questions",
            get(reset::questions_get).post(reset::questions_submit),
        )
        .route("/reset/app", get(reset::app_get).post(reset::app_submit))
        .route(
            "/reset/push/send",
            form_at("/my/reset/verify").post(reset::push_send),
        )
        .route("/reset/push", get(reset::push_get).post(reset::push_submit))
        .route("/reset/push-status", get(reset::push_status))
        .route(
            "/reset/phone/send",
            form_at("/my/reset/verify").post(reset::phone_send),
        )
        .route(
            "/reset/phone/resend",
            form_at("/my/reset/phone").post(reset::phone_resend),
        )
        .route(
            "/reset/phone",
            get(reset::phone_get).post(reset::phone_submit),
        )
        .route(
            "/reset/security-key",
            get(reset::key_get).post(reset::key_submit),
        )
        .route(
            "/reset/password",
            get(reset::password_get).post(reset::password_submit),
        )
        .route(
            "/security-info/email",
            get(reset_methods::email_start).post(reset_methods::email_send),
        )
        .route("/security-info/phone", get(phone::start).post(phone::send))
        .route(
            "/security-info/phone/code",
            get(phone::code_page).post(phone::code_submit),
        )
        .route(
            "/security-info/email/code",
            get(reset_methods::email_code_page).post(reset_methods::email_code_submit),
        )
        .route(
            "/security-info/email/delete",
            get(reset_methods::email_delete_page).post(reset_methods::email_delete),
        )
        .route(
            "/security-info/questions",
            get(reset_methods::questions_start).post(reset_methods::questions_submit),
        )
        .route(
            "/security-info/questions/delete",
            get(reset_methods::questions_delete_page).post(reset_methods::questions_delete),
        )
        .route("/sign-out", form_at("/my/").post(signin::sign_out))
        .route(
            "/sign-out-everywhere",
            get(signin::sign_out_everywhere_page).post(signin::sign_out_everywhere),
        )
        .route("/security-info", get(account::security_info))
        .route(
            "/security-info/backup-codes",
            form_at("/my/security-info").post(account::backup_codes_submit),
        )
        .route(
            "/security-info/add",
            get(enrol::add_page).post(enrol::add_submit),
        )
        .route(
            "/security-info/{kind}/{step}",
            get(enrol::step_page).post(enrol::step_submit),
        )
        .route("/push-status", get(push::status))
        .route("/static/push-wait.js", get(push::script))
        .route(
            "/security-info/default",
            get(account::default_page).post(account::default_submit),
        )
        .route(
            "/security-info/methods/{id}/delete",
            get(account::delete_page).post(account::delete_submit),
        )
        .route("/devices", get(account::devices))
        .route(
            "/devices/{id}/{action}",
            form_at("/my/devices").post(account::device_action),
        )
        .route(
            "/devices/{id}/remove",
            get(account::device_remove_page).post(account::device_remove),
        )
        .route(
            "/password",
            get(account::password_page).post(account::password_submit),
        )
        .route("/privacy", get(account::privacy))
        .route(
            "/privacy/not-me",
            get(account::not_me_page).post(account::not_me_submit),
        )
        .fallback(page_not_found)
        .layer(axum::middleware::map_response(security_headers))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(portal)
}

/// `path?v=VERSION` of a compiled-in script: the version is the first 6
/// bytes of its SHA-256 in hex, so a new build's script is fetched anew.
pub(crate) fn versioned_src(path: &str, script: &str) -> String {
    use sha2::{Digest, Sha256};
    let v = hex::encode(&Sha256::digest(script.as_bytes())[..6]);
    format!("{path}?v={v}")
}

/// A compiled-in script as the answer, cached a year (its `src` carries
/// its version: [`versioned_src`]).
pub(crate) fn javascript(script: &'static str) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        script,
    )
        .into_response()
}
