//! Page sessions, cookies and CSRF tokens.
//!
//! A session id is 32 random bytes (hex) in an `HttpOnly`, `SameSite=Strict`
//! cookie (`Secure` and `__Host-` prefixed over TLS); the database keeps its
//! SHA-256 only, so a copy of the database opens no session. The id changes
//! at every step up (password accepted, second factor accepted, password
//! changed). Before sign-in a visitor carries a random "pre" cookie instead.
//!
//! A CSRF token is HMAC-SHA256 of the visitor's cookie value under a page
//! key (random, sealed with the registry's secret key in `settings`), so a
//! form is accepted only together with the cookie its page was made for,
//! on any node, with nothing more stored.

use super::{forbidden, Exit, Portal};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::net::SocketAddr;
use std::sync::Arc;
use twostep_common::api::ApiErrorCode;
use zeroize::Zeroizing;

/// Name of the `settings` row holding the sealed page key.
pub const PAGE_KEY_SETTING: &str = "portal_key";
const PAGE_KEY_AAD: &[u8] = b"twostep/portal-key/v1";
/// Life of a session waiting for its second factor, in seconds.
pub const SECOND_FACTOR_LIFETIME: i64 = 300;
/// Life of the "pre" cookie, in seconds.
const PRE_COOKIE_SECS: i64 = 3600;
/// `last_seen_at` is written at most this often, in seconds.
const TOUCH_EVERY: i64 = 30;

/// The key CSRF tokens are derived with.
pub struct PageKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for PageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageKey(<redacted>)")
    }
}

impl PageKey {
    /// Loads the sealed key from `settings`, creating it first when absent
    /// (insert-if-absent then read back, so nodes starting together agree).
    ///
    /// # Errors
    /// Database errors; [`ApiError::Secret`] when the stored key does not
    /// open with the secret key.
    pub async fn load_or_create(app: &AppState) -> Result<Self, ApiError> {
        let read = || async {
            sqlx::query("SELECT value FROM settings WHERE name = $1")
                .bind(PAGE_KEY_SETTING)
                .fetch_optional(&app.pool)
                .await
        };
        let row = match read().await? {
            Some(r) => r,
            None => {
                let fresh = crate::crypto::random_token();
                let sealed = app
                    .secrets
                    .seal(fresh.as_bytes(), PAGE_KEY_AAD)
                    .map_err(ApiError::Secret)?;
                sqlx::query(
                    "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                )
                .bind(PAGE_KEY_SETTING)
                .bind(hex::encode(sealed))
                .execute(&app.pool)
                .await?;
                read().await?.ok_or_else(|| {
                    ApiError::Secret("the page key vanished after it was written".into())
                })?
            }
        };
        let value: String = row.try_get("value")?;
        let sealed = hex::decode(value.trim())
            .map_err(|_| ApiError::Secret("the page key is not hex".into()))?;
        let opened = app
            .secrets
            .open(&sealed, PAGE_KEY_AAD)
            .map_err(|e| ApiError::Secret(format!("page key: {e}")))?;
        // The sealed value is 64 hex digits; the key is their SHA-256.
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&Sha256::digest(opened.as_slice()));
        Ok(Self(key))
    }

    fn mac(&self, cookie: &str) -> Hmac<Sha256> {
        // new_from_slice accepts any key length for HMAC.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(b"twostep/csrf/v1\0");
        m.update(cookie.as_bytes());
        m
    }

    /// The CSRF token of forms shown to the holder of `cookie`.
    pub fn csrf(&self, cookie: &str) -> String {
        hex::encode(self.mac(cookie).finalize().into_bytes())
    }

    /// Whether `token` is the CSRF token for `cookie` (constant time).
    pub fn check_csrf(&self, cookie: &str, token: &str) -> bool {
        match hex::decode(token) {
            Ok(t) => self.mac(cookie).verify_slice(&t).is_ok(),
            Err(_) => false,
        }
    }
}

/// SHA-256 of a cookie value or token, hex: what the database keeps.
pub fn token_hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Name of the session cookie.
pub fn session_cookie_name(tls: bool) -> &'static str {
    if tls {
        "__Host-twostep-session"
    } else {
        "twostep-session"
    }
}

/// Name of the cookie a visitor carries before signing in.
pub fn pre_cookie_name(tls: bool) -> &'static str {
    if tls {
        "__Host-twostep-pre"
    } else {
        "twostep-pre"
    }
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure`
/// over TLS; `max_age` 0 removes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: i64, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    let text =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&text)
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
}

/// The value of cookie `name` when it has the shape of ours (64 hex digits).
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// How far a session has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Password accepted; the second factor is still to come.
    SecondFactor,
    /// Signed in.
    SignedIn,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Self::SecondFactor => "second_factor",
            Self::SignedIn => "signed_in",
        }
    }
}

/// A live page session and its user.
#[derive(Debug, Clone)]
pub struct Session {
    /// SHA-256 of the session id.
    pub id_hash: String,
    /// The cookie value (the session id), for CSRF tokens.
    pub cookie: String,
    /// The user's row id.
    pub user_id: i64,
    /// Login name.
    pub username: String,
    /// Full name, if set.
    pub display_name: Option<String>,
    /// How far it has come.
    pub stage: Stage,
    /// Unix seconds of the last second factor passed in this session.
    pub factor_at: Option<i64>,
    /// Came in through a setup link: a password must be chosen first.
    pub set_password: bool,
    /// The sealed state of an "Add method" flow in progress.
    pub flow_sealed: Option<String>,
    /// The push challenge this session waits for (sign-in or a fresh
    /// second factor by notification), until the session id changes.
    pub push_challenge: Option<String>,
    /// Unix seconds the session began.
    pub created_at: i64,
}

impl Session {
    /// The name to greet the user with.
    pub fn name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.username)
    }
}

/// Who is asking: their session (if any and live), their pre cookie and
/// their address.
#[derive(Debug)]
pub struct Visit {
    /// The live session, if the session cookie names one.
    pub session: Option<Session>,
    /// The pre cookie's value, if any.
    pub pre: Option<String>,
    /// The peer's IP address as text.
    pub peer: Option<String>,
    /// A session cookie was sent but names no live session.
    pub ended: bool,
}

impl FromRequestParts<Arc<Portal>> for Visit {
    type Rejection = Exit;

    async fn from_request_parts(parts: &mut Parts, p: &Arc<Portal>) -> Result<Self, Exit> {
        let tls = p.settings().tls;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let pre = cookie(&parts.headers, pre_cookie_name(tls));
        let sent = cookie(&parts.headers, session_cookie_name(tls));
        let session = match &sent {
            Some(id) => load(p, id).await?,
            None => None,
        };
        Ok(Self {
            ended: sent.is_some() && session.is_none(),
            session,
            pre,
            peer,
        })
    }
}

impl Visit {
    /// The CSRF token for forms on this answer and, when the visitor has
    /// neither a session nor a pre cookie yet, the `Set-Cookie` that gives
    /// them one.
    ///
    /// # Errors
    /// When the page key cannot be loaded.
    pub async fn form_token(&self, p: &Portal) -> Result<(String, Option<HeaderValue>), ApiError> {
        let key = p.key().await?;
        if let Some(s) = &self.session {
            return Ok((key.csrf(&s.cookie), None));
        }
        if let Some(pre) = &self.pre {
            return Ok((key.csrf(pre), None));
        }
        let fresh = crate::crypto::random_token();
        let set = set_cookie(
            pre_cookie_name(p.settings().tls),
            fresh.as_str(),
            PRE_COOKIE_SECS,
            p.settings().tls,
        );
        Ok((key.csrf(fresh.as_str()), Some(set)))
    }
}

/// A url-encoded form whose `csrf` field matches the sender's session or
/// pre cookie; 403 otherwise (before the fields are looked at), 400 when
/// the fields do not parse, 413 over [`super::MAX_FORM_BYTES`].
pub struct CsrfForm<T>(pub T);

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<Arc<Portal>> for CsrfForm<T> {
    type Rejection = Exit;

    async fn from_request(req: Request, p: &Arc<Portal>) -> Result<Self, Exit> {
        let tls = p.settings().tls;
        let cookies: Vec<String> = [session_cookie_name(tls), pre_cookie_name(tls)]
            .iter()
            .filter_map(|n| cookie(req.headers(), n))
            .collect();
        let body = axum::body::Bytes::from_request(req, p).await.map_err(|e| {
            let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiErrorCode::BodyTooLarge
            } else {
                ApiErrorCode::InvalidField
            };
            Exit::Error(ApiError::new(code, "the form body could not be read"))
        })?;
        let token = serde_urlencoded::from_bytes::<CsrfField>(&body)
            .map(|f| f.csrf)
            .unwrap_or_default();
        let key = p.key().await?;
        if token.is_empty() || !cookies.iter().any(|c| key.check_csrf(c, &token)) {
            return Err(forbidden());
        }
        serde_urlencoded::from_bytes::<T>(&body)
            .map(Self)
            .map_err(|_| {
                Exit::Error(ApiError::new(
                    ApiErrorCode::InvalidField,
                    "unexpected form fields",
                ))
            })
    }
}

/// The live session named by cookie value `id`: unexpired, not idle past
/// the timeout, its user not disabled. Refreshes `last_seen_at`.
///
/// # Errors
/// Database errors.
pub async fn load(p: &Portal, id: &str) -> Result<Option<Session>, ApiError> {
    let now = p.now();
    let id_hash = token_hash(id);
    let row = sqlx::query(
        "SELECT s.user_id, s.stage, s.created_at, s.last_seen_at, s.factor_at, s.set_password,
                s.flow_sealed, s.push_challenge, u.username, u.display_name, u.disabled
         FROM portal_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3",
    )
    .bind(&id_hash)
    .bind(now)
    .bind(now.saturating_sub(p.settings().idle_timeout))
    .fetch_optional(&p.app.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    if row.try_get::<i64, _>("disabled")? != 0 {
        delete(p, &id_hash).await?;
        return Ok(None);
    }
    let last_seen: i64 = row.try_get("last_seen_at")?;
    if now - last_seen >= TOUCH_EVERY {
        sqlx::query("UPDATE portal_sessions SET last_seen_at = $2 WHERE id_hash = $1")
            .bind(&id_hash)
            .bind(now)
            .execute(&p.app.pool)
            .await?;
    }
    let stage: String = row.try_get("stage")?;
    Ok(Some(Session {
        id_hash,
        cookie: id.to_owned(),
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        stage: if stage == Stage::SignedIn.as_str() {
            Stage::SignedIn
        } else {
            Stage::SecondFactor
        },
        factor_at: row.try_get("factor_at")?,
        set_password: row.try_get::<i64, _>("set_password")? != 0,
        flow_sealed: row.try_get("flow_sealed")?,
        push_challenge: row.try_get("push_challenge")?,
        created_at: row.try_get("created_at")?,
    }))
}

/// What a new session starts with.
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    /// The user's row id.
    pub user_id: i64,
    /// Stage.
    pub stage: Stage,
    /// A second factor passed just now (Unix seconds).
    pub factor_at: Option<i64>,
    /// Came through a setup link.
    pub set_password: bool,
    /// The browser's address.
    pub remote_addr: Option<&'a str>,
}

fn expiry(p: &Portal, stage: Stage, now: i64) -> i64 {
    match stage {
        Stage::SecondFactor => now + SECOND_FACTOR_LIFETIME,
        Stage::SignedIn => now.saturating_add(p.settings().session_lifetime),
    }
}

/// Creates a session (and removes ended ones); returns the `Set-Cookie`
/// value carrying its new id.
///
/// # Errors
/// Database errors.
pub async fn create(p: &Portal, new: NewSession<'_>) -> Result<HeaderValue, ApiError> {
    let now = p.now();
    sqlx::query("DELETE FROM portal_sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
        .bind(now)
        .bind(now.saturating_sub(p.settings().idle_timeout))
        .execute(&p.app.pool)
        .await?;
    let id = crate::crypto::random_token();
    sqlx::query(
        "INSERT INTO portal_sessions (id_hash, user_id, stage, created_at, last_seen_at,
                                      expires_at, factor_at, set_password, remote_addr)
         VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8)",
    )
    .bind(token_hash(&id))
    .bind(new.user_id)
    .bind(new.stage.as_str())
    .bind(now)
    .bind(expiry(p, new.stage, now))
    .bind(new.factor_at)
    .bind(i64::from(new.set_password))
    .bind(new.remote_addr)
    .execute(&p.app.pool)
    .await?;
    Ok(cookie_for(p, &id))
}

fn cookie_for(p: &Portal, id: &str) -> HeaderValue {
    let tls = p.settings().tls;
    set_cookie(
        session_cookie_name(tls),
        id,
        p.settings().session_lifetime,
        tls,
    )
}

/// Gives `s` a new id (and `stage`, and `factor_at` when `Some`); returns
/// the `Set-Cookie` value and the new id's hash. The old id stops working
/// at once.
///
/// # Errors
/// Database errors; 404 when the session ended meanwhile.
pub async fn rotate(
    p: &Portal,
    s: &Session,
    stage: Stage,
    factor_at: Option<i64>,
) -> Result<(HeaderValue, String), ApiError> {
    let now = p.now();
    let id = crate::crypto::random_token();
    let new_hash = token_hash(&id);
    let expires = if stage == s.stage {
        // Same stage: keep the session's own end.
        s.created_at.saturating_add(match stage {
            Stage::SecondFactor => SECOND_FACTOR_LIFETIME,
            Stage::SignedIn => p.settings().session_lifetime,
        })
    } else {
        expiry(p, stage, now)
    };
    let n = sqlx::query(
        "UPDATE portal_sessions SET id_hash = $2, stage = $3, expires_at = $4,
                factor_at = COALESCE($5, factor_at), last_seen_at = $6, push_challenge = NULL
         WHERE id_hash = $1",
    )
    .bind(&s.id_hash)
    .bind(&new_hash)
    .bind(stage.as_str())
    .bind(expires)
    .bind(factor_at)
    .bind(now)
    .execute(&p.app.pool)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::new(ApiErrorCode::NotFound, "the session ended"));
    }
    Ok((cookie_for(p, &id), new_hash))
}

/// Ends one session.
///
/// # Errors
/// Database errors.
pub async fn delete(p: &Portal, id_hash: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM portal_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(&p.app.pool)
        .await?;
    Ok(())
}

/// Ends every session of `user_id` but `keep` (a session id hash).
///
/// # Errors
/// Database errors.
pub async fn delete_all<'e, E>(
    exec: E,
    user_id: i64,
    keep: Option<&str>,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    Ok(
        sqlx::query("DELETE FROM portal_sessions WHERE user_id = $1 AND id_hash <> $2")
            .bind(user_id)
            .bind(keep.unwrap_or(""))
            .execute(exec)
            .await?
            .rows_affected(),
    )
}

/// The `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(p: &Portal) -> HeaderValue {
    let tls = p.settings().tls;
    set_cookie(session_cookie_name(tls), "", 0, tls)
}

/// Sets the push challenge session `id_hash` waits for (`None` clears it).
///
/// # Errors
/// Database errors.
pub async fn set_push_challenge(
    p: &Portal,
    id_hash: &str,
    challenge: Option<&str>,
) -> Result<(), ApiError> {
    sqlx::query("UPDATE portal_sessions SET push_challenge = $2 WHERE id_hash = $1")
        .bind(id_hash)
        .bind(challenge)
        .execute(&p.app.pool)
        .await?;
    Ok(())
}

/// Sets `flow_sealed` of a session (`None` clears it).
///
/// # Errors
/// Database errors.
pub async fn set_flow(p: &Portal, id_hash: &str, sealed: Option<&str>) -> Result<(), ApiError> {
    sqlx::query("UPDATE portal_sessions SET flow_sealed = $2 WHERE id_hash = $1")
        .bind(id_hash)
        .bind(sealed)
        .execute(&p.app.pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_token_belongs_to_its_cookie_and_key() {
        let key = PageKey(Zeroizing::new([7u8; 32]));
        let other_key = PageKey(Zeroizing::new([8u8; 32]));
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let t = key.csrf(&a);
        assert_eq!(t.len(), 64);
        assert!(key.check_csrf(&a, &t));
        assert!(!key.check_csrf(&b, &t));
        assert!(!other_key.check_csrf(&a, &t));
        assert!(!key.check_csrf(&a, ""));
        assert!(!key.check_csrf(&a, "not hex"));
        assert!(!key.check_csrf(&a, &t[..62]));
    }

    #[test]
    fn cookies_are_parsed_strictly_and_set_with_every_flag() {
        let mut h = HeaderMap::new();
        let id = "c".repeat(64);
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; twostep-session={id}")).unwrap(),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("twostep-pre=short"),
        );
        assert_eq!(cookie(&h, "twostep-session"), Some(id));
        assert_eq!(cookie(&h, "twostep-pre"), None, "not our shape");
        let set = set_cookie("__Host-twostep-session", "v", 60, true);
        assert_eq!(
            set.to_str().unwrap(),
            "__Host-twostep-session=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert!(!set_cookie("twostep-session", "v", 0, false)
            .to_str()
            .unwrap()
            .contains("Secure"));
    }
}
