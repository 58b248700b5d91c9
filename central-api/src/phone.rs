//! Text-message and phone-call codes ([`twostep_common::phone`]): phone
//! methods, the sent codes, and the gateways of `[api.sms]` /
//! `[api.voice]`.
//!
//! A phone method is a `methods` row of kind `sms` or `voice` whose
//! number is sealed in `phone_sealed` (XChaCha20-Poly1305 under the
//! secret key, bound to the user, as TOTP secrets are); its label is the
//! masked number (`+1 ••• ••• ••42`). Each send makes one row of `sent_codes`
//! (migration 13): an HMAC of a random salt and the 6-digit code under the
//! key derived from the secret key ([`crate::crypto::SecretBox::code_mac`]),
//! valid [`CODE_LIFETIME_SECS`], one use, [`CODE_MAX_TRIES`] wrong codes;
//! a new send voids the user's earlier open codes of the same purpose.
//! Sends are limited to [`MAX_SENDS_PER_WINDOW`] per user per hour, by one
//! conditional `INSERT`. A row is `sending` until the gateway answered:
//! a 2xx makes it `sent` (usable), anything else `failed` (never usable).
//! The code is never logged nor audited; the gateway's status is.
//!
//! Login codes (`purpose = 'login'`) are verified by [`crate::verify`]
//! beside the apps' codes; a page's proof of a new number (`purpose =
//! 'enrol'`, no method yet) and a password reset's proof of a registered
//! phone (`purpose = 'reset'`, [`crate::portal::reset`]) only by
//! [`check_page_code`], each for its own purpose.

use crate::app::Routes;
use crate::audit::{write_audit, AdminChange, Audit, Subject};
use crate::auth::{AdminAuth, HostAuth};
use crate::error::ApiError;
use crate::extract::{JsonBody, PathArgs, Peer};
use crate::rows::{method_from_row, UserRow, METHOD_COLUMNS};
use crate::state::{ApiResult, AppState, Shared};
use crate::validate::check_username;
use crate::write_conn::WriteConn;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sqlx::{AnyConnection, Row};
use std::time::Duration;
use twostep_common::api::{paths, ApiErrorCode, AuthContext, Method};
use twostep_common::phone::{
    self, Channel, CodeSent, EnrolPhone, Escape, SendCode, SendResult, CODE_LIFETIME_SECS,
    CODE_MAX_TRIES, MAX_SENDS_PER_WINDOW, SEND_WINDOW_SECS,
};
use twostep_config::{ApiConfig, GatewayConfig, GatewayMethod};
use zeroize::Zeroizing;

/// `POST /v1/host/users/{username}/otp/send` and `POST
/// /v1/admin/users/{username}/methods/phone`.
pub(crate) fn routes(r: Routes) -> Routes {
    r.post(paths::HOST_OTP_SEND, host_send)
        .post(paths::USER_PHONE, admin_enrol)
}

/// The additional data a phone number is sealed with: it opens only for
/// its user.
pub fn phone_aad(user_id: i64) -> Vec<u8> {
    format!("twostep phone v1 user {user_id}").into_bytes()
}

/// The configured gateways.
#[derive(Debug, Default)]
pub struct Gateways {
    sms: Option<Gateway>,
    voice: Option<Gateway>,
}

#[derive(Debug)]
struct Gateway {
    client: reqwest::Client,
    cfg: GatewayConfig,
    voice: bool,
}

/// Why a code did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Undelivered {
    /// No `[api.sms]` / `[api.voice]` for the channel.
    #[error("no gateway configured")]
    NotConfigured,
    /// The gateway answered with this HTTP status (not 2xx).
    #[error("the gateway answered HTTP {0}")]
    Status(u16),
    /// No answer (connection refused, DNS, timeout).
    #[error("the gateway could not be reached: {0}")]
    Unreachable(String),
    /// The request could not be made (the token file unreadable).
    #[error("the gateway request could not be made: {0}")]
    Setup(String),
}

impl Gateways {
    /// From `[api.sms]` and `[api.voice]`; a gateway whose HTTP client
    /// cannot be built is left out (logged as an error).
    pub fn new(api: &ApiConfig) -> Self {
        let build = |cfg: &Option<GatewayConfig>, voice: bool| {
            let cfg = cfg.as_ref()?;
            let timeout = Duration::from_secs(cfg.timeout);
            match reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(timeout)
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("twostep-api/", env!("CARGO_PKG_VERSION")))
                .build()
            {
                Ok(client) => Some(Gateway {
                    client,
                    cfg: cfg.clone(),
                    voice,
                }),
                Err(e) => {
                    tracing::error!(error = %twostep_common::error_chain(&e), voice, "gateway disabled: HTTP client setup failed");
                    None
                }
            }
        };
        Self {
            sms: build(&api.sms, false),
            voice: build(&api.voice, true),
        }
    }

    /// Whether `channel` has a gateway.
    pub fn has(&self, channel: Channel) -> bool {
        self.gateway(channel).is_some()
    }

    fn gateway(&self, channel: Channel) -> Option<&Gateway> {
        match channel {
            Channel::Sms => self.sms.as_ref(),
            Channel::Voice => self.voice.as_ref(),
        }
    }

    /// Hands `code` for `phone` to the gateway of `channel`; `Ok` when it
    /// answered 2xx within its timeout.
    ///
    /// # Errors
    /// [`Undelivered`]: why not.
    pub async fn deliver(
        &self,
        channel: Channel,
        phone: &str,
        code: &str,
    ) -> Result<(), Undelivered> {
        let g = self.gateway(channel).ok_or(Undelivered::NotConfigured)?;
        let message = phone::render_message(g.cfg.message_template(g.voice), code, g.voice);
        let token = match &g.cfg.token_file {
            Some(f) => {
                let secret = twostep_config::read_secret_file(f)
                    .map_err(|e| Undelivered::Setup(e.to_string()))?;
                let text = secret.expose_str().ok_or_else(|| {
                    Undelivered::Setup(format!("{}: not UTF-8 text", f.display()))
                })?;
                Some(Zeroizing::new(
                    text.lines().next().unwrap_or("").trim().to_owned(),
                ))
            }
            None => None,
        };
        let mut req = match g.cfg.method {
            GatewayMethod::Get => {
                let url = phone::render_request(&g.cfg.url, phone, &message, Escape::Form);
                g.client.get(url.as_str())
            }
            GatewayMethod::Post => {
                let escape = if g.cfg.is_json() {
                    Escape::Json
                } else {
                    Escape::Form
                };
                let body = phone::render_request(g.cfg.body_template(), phone, &message, escape);
                g.client
                    .post(&g.cfg.url)
                    .header(reqwest::header::CONTENT_TYPE, g.cfg.content_type.as_str())
                    .body(body.as_str().to_owned())
            }
        };
        for (name, value) in &g.cfg.headers {
            let v = phone::render_header(value, token.as_deref().map(String::as_str));
            req = req.header(name.as_str(), v.as_str());
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(Undelivered::Status(resp.status().as_u16())),
            // The URL of a GET holds the code: never in the message.
            Err(e) => Err(Undelivered::Unreachable(twostep_common::error_chain(
                &e.without_url(),
            ))),
        }
    }
}

/// What a sent code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A login's second factor, verified by [`crate::verify`].
    Login,
    /// The proof of a new number on the page ([`check_page_code`]).
    Enrol,
    /// A password reset's proof of a registered phone
    /// ([`check_page_code`]); never a second factor.
    Reset,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Enrol => "enrol",
            Self::Reset => "reset",
        }
    }
}

/// One send to make.
#[derive(Debug)]
pub struct Send<'a> {
    /// The user's row id.
    pub uid: i64,
    /// The user's name (audit).
    pub username: &'a str,
    /// Text message or call.
    pub channel: Channel,
    /// The number, E.164.
    pub phone: &'a str,
    /// The method the code is for (`None` for a number not yet saved).
    pub method_id: Option<i64>,
    /// What the code is for.
    pub purpose: Purpose,
    /// Audit actor: `host:NAME`, `portal`.
    pub actor: &'a str,
    /// Where the login comes from.
    pub context: &'a AuthContext,
}

/// Makes and sends one code; the answer as hosts get it, and the id of
/// the `sent_codes` row when the code went out.
///
/// # Errors
/// 503 when the database fails.
pub async fn send(state: &AppState, s: &Send<'_>) -> Result<(CodeSent, Option<i64>), ApiError> {
    let now = state.now();
    let sent_to = Some(phone::hint(s.phone));
    let answer = |result| CodeSent {
        result,
        sent_to: sent_to.clone(),
        expires_at: None,
    };
    let audit = |result: &'static str, detail: String| Audit {
        actor: s.actor,
        action: "otp.send",
        username: Some(s.username),
        host: s.context.host.as_deref(),
        remote_addr: s.context.remote_addr.as_deref(),
        result: Some(result),
        detail: Some(detail),
    };
    let what = format!(
        "channel={} {} to={}",
        s.channel,
        match s.method_id {
            Some(id) => format!("method={id}"),
            None => "new number".into(),
        },
        phone::mask(s.phone)
    );
    if !state.gateways.has(s.channel) {
        write_audit(&state.pool, now, &audit("not_configured", what)).await?;
        return Ok((answer(SendResult::NotConfigured), None));
    }
    let code = phone::generate_code();
    let salt: [u8; 16] = rand::random();
    let hash = state.secrets.code_mac(&salt, &code);
    let expires_at = now.saturating_add(CODE_LIFETIME_SECS);
    // One statement: the limit and the insert together.
    let row = sqlx::query(
        "INSERT INTO sent_codes (user_id, method_id, channel, purpose, salt, code_hash,
                                 created_at, expires_at, tries_left, status)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 'sending'
         WHERE (SELECT COUNT(*) FROM sent_codes
                WHERE user_id = $1 AND created_at > $10 AND status <> 'failed') < $11
         RETURNING id",
    )
    .bind(s.uid)
    .bind(s.method_id)
    .bind(s.channel.as_str())
    .bind(s.purpose.as_str())
    .bind(hex::encode(salt))
    .bind(&hash)
    .bind(now)
    .bind(expires_at)
    .bind(CODE_MAX_TRIES)
    .bind(now.saturating_sub(SEND_WINDOW_SECS))
    .bind(MAX_SENDS_PER_WINDOW)
    .fetch_optional(&state.pool)
    .await?;
    let Some(row) = row else {
        tracing::warn!(username = s.username, channel = %s.channel, "code not sent: {} within an hour", MAX_SENDS_PER_WINDOW);
        write_audit(
            &state.pool,
            now,
            &audit(
                "rate_limited",
                format!("{what}; {MAX_SENDS_PER_WINDOW} codes within {SEND_WINDOW_SECS} s"),
            ),
        )
        .await?;
        return Ok((answer(SendResult::RateLimited), None));
    };
    let id: i64 = row.try_get("id")?;
    sqlx::query(
        "UPDATE sent_codes SET tries_left = 0
         WHERE user_id = $1 AND purpose = $2 AND id <> $3 AND used_at IS NULL AND tries_left > 0",
    )
    .bind(s.uid)
    .bind(s.purpose.as_str())
    .bind(id)
    .execute(&state.pool)
    .await?;
    let delivered = state.gateways.deliver(s.channel, s.phone, &code).await;
    drop(code);
    let status = if delivered.is_ok() { "sent" } else { "failed" };
    sqlx::query("UPDATE sent_codes SET status = $1 WHERE id = $2")
        .bind(status)
        .bind(id)
        .execute(&state.pool)
        .await?;
    match delivered {
        Ok(()) => {
            write_audit(&state.pool, now, &audit("sent", what)).await?;
            Ok((
                CodeSent {
                    result: SendResult::Sent,
                    sent_to,
                    expires_at: Some(expires_at),
                },
                Some(id),
            ))
        }
        Err(why) => {
            tracing::warn!(username = s.username, channel = %s.channel, error = %why, "code could not be sent");
            write_audit(
                &state.pool,
                now,
                &audit("could_not_send", format!("{what}; {why}")),
            )
            .await?;
            Ok((answer(SendResult::CouldNotSend), None))
        }
    }
}

/// What [`find_sent`] found for a typed code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SentMatch {
    /// The user's open login code `sent_id` (for `method_id`, by `channel`).
    Open {
        /// The row.
        sent_id: i64,
        /// Its method.
        method_id: i64,
        /// How it was sent.
        channel: String,
    },
    /// A login code used already (still within its life): a replay.
    Used {
        /// Its method.
        method_id: i64,
    },
    /// Not a sent code; the open ones (whose tries a wrong code uses up).
    NoMatch {
        /// Ids of the user's open login codes.
        open: Vec<i64>,
    },
}

/// Compares `code` (one MAC per row, constant time) with the user's login
/// codes sent within their life.
///
/// # Errors
/// Database errors; a stored salt that is not hex as an internal error.
pub(crate) async fn find_sent(
    state: &AppState,
    uid: i64,
    code: &str,
    now: i64,
) -> Result<SentMatch, ApiError> {
    let rows = sqlx::query(
        "SELECT id, method_id, channel, salt, code_hash, used_at, tries_left FROM sent_codes
         WHERE user_id = $1 AND purpose = 'login' AND status = 'sent' AND expires_at > $2
           AND method_id IS NOT NULL AND (used_at IS NOT NULL OR tries_left > 0)
         ORDER BY id DESC",
    )
    .bind(uid)
    .bind(now)
    .fetch_all(&state.pool)
    .await?;
    let mut open = Vec::new();
    let mut used = None;
    for r in &rows {
        let id: i64 = r.try_get("id")?;
        let salt = hex::decode(r.try_get::<String, _>("salt")?)
            .map_err(|_| ApiError::new(ApiErrorCode::Internal, "sent code salt is not hex"))?;
        let stored: String = r.try_get("code_hash")?;
        let matches = bool::from(subtle::ConstantTimeEq::ct_eq(
            stored.as_bytes(),
            state.secrets.code_mac(&salt, code).as_bytes(),
        ));
        let used_at: Option<i64> = r.try_get("used_at")?;
        let method_id: i64 = r.try_get("method_id")?;
        match (matches, used_at) {
            (true, None) => {
                return Ok(SentMatch::Open {
                    sent_id: id,
                    method_id,
                    channel: r.try_get("channel")?,
                })
            }
            (true, Some(_)) => used = used.or(Some(method_id)),
            (false, None) => open.push(id),
            (false, Some(_)) => {}
        }
    }
    Ok(match used {
        Some(method_id) => SentMatch::Used { method_id },
        None => SentMatch::NoMatch { open },
    })
}

/// Uses sent code `id` in `conn`, unless used, voided, expired or its user
/// locked meanwhile: whether it was.
///
/// # Errors
/// Database errors.
pub(crate) async fn use_sent(
    conn: &mut dyn WriteConn,
    id: i64,
    uid: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = conn
        .execute(
            "UPDATE sent_codes SET used_at = $2
         WHERE id = $1 AND used_at IS NULL AND tries_left > 0 AND expires_at > $2 AND status = 'sent'
           AND NOT EXISTS (SELECT 1 FROM users
                           WHERE id = $3 AND locked_until IS NOT NULL AND locked_until > $2)",
            &[id.into(), now.into(), uid.into()],
        )
        .await?;
    Ok(n == 1)
}

/// One wrong try off each of the open codes `ids`.
///
/// # Errors
/// Database errors.
pub(crate) async fn spend_tries(conn: &mut dyn WriteConn, ids: &[i64]) -> Result<(), sqlx::Error> {
    for id in ids {
        conn.execute(
            "UPDATE sent_codes SET tries_left = tries_left - 1 WHERE id = $1 AND tries_left > 0",
            &[(*id).into()],
        )
        .await?;
    }
    Ok(())
}

/// How a page's code (a new number's proof, a reset's) went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCheck {
    /// The code is right; it is used now.
    Proven,
    /// Wrong; tries remain.
    Wrong,
    /// Expired, used up or voided by a newer send: send another.
    Gone,
}

/// Checks `code` against the page's code `sent_id` of user `uid` sent
/// for `purpose` (`Enrol` or `Reset`; a login code is never taken here):
/// used on a match, one try spent otherwise.
///
/// # Errors
/// Database errors.
pub async fn check_page_code(
    state: &AppState,
    uid: i64,
    sent_id: i64,
    purpose: Purpose,
    code: &str,
) -> Result<PageCheck, ApiError> {
    if purpose == Purpose::Login {
        return Ok(PageCheck::Gone);
    }
    let now = state.now();
    let Some(r) = sqlx::query(
        "SELECT salt, code_hash FROM sent_codes
         WHERE id = $1 AND user_id = $2 AND purpose = $4 AND status = 'sent'
           AND used_at IS NULL AND tries_left > 0 AND expires_at > $3",
    )
    .bind(sent_id)
    .bind(uid)
    .bind(now)
    .bind(purpose.as_str())
    .fetch_optional(&state.pool)
    .await?
    else {
        return Ok(PageCheck::Gone);
    };
    let salt = hex::decode(r.try_get::<String, _>("salt")?)
        .map_err(|_| ApiError::new(ApiErrorCode::Internal, "sent code salt is not hex"))?;
    let stored: String = r.try_get("code_hash")?;
    let matches = twostep_common::totp::is_code_format(code)
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            stored.as_bytes(),
            state.secrets.code_mac(&salt, code).as_bytes(),
        ));
    let mut conn = state.pool.acquire().await?;
    if matches {
        if use_sent(&mut *conn, sent_id, uid, now).await? {
            return Ok(PageCheck::Proven);
        }
        return Ok(PageCheck::Gone);
    }
    spend_tries(&mut *conn, &[sent_id]).await?;
    let left: Option<i64> = sqlx::query("SELECT tries_left FROM sent_codes WHERE id = $1")
        .bind(sent_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get("tries_left"))
        .transpose()?;
    Ok(if left.unwrap_or(0) > 0 {
        PageCheck::Wrong
    } else {
        PageCheck::Gone
    })
}

/// Saves a phone method for user `uid` in `conn` (the first method, or
/// with `make_default`, becomes the default): the method.
///
/// # Errors
/// Database errors; a number that does not seal as a secret error.
pub async fn save_method(
    state: &AppState,
    conn: &mut AnyConnection,
    uid: i64,
    channel: Channel,
    e164: &str,
    make_default: bool,
    now: i64,
) -> Result<Method, ApiError> {
    let sealed = state
        .secrets
        .seal(e164.as_bytes(), &phone_aad(uid))
        .map_err(ApiError::Secret)?;
    let label = phone::mask(e164);
    let row = sqlx::query(
        "INSERT INTO methods (user_id, kind, label, is_default, created_at, phone_sealed)
         SELECT $1, $2, $3,
                CASE WHEN $5 = 1 OR NOT EXISTS (SELECT 1 FROM methods m WHERE m.user_id = $1 AND m.pending = 0) THEN 1 ELSE 0 END,
                $4, $6
         RETURNING id, is_default",
    )
    .bind(uid)
    .bind(channel.as_str())
    .bind(&label)
    .bind(now)
    .bind(i64::from(make_default))
    .bind(hex::encode(sealed))
    .fetch_one(&mut *conn)
    .await?;
    let id: i64 = row.try_get("id")?;
    if row.try_get::<i64, _>("is_default")? == 1 {
        sqlx::query("UPDATE methods SET is_default = 0 WHERE user_id = $1 AND id <> $2")
            .bind(uid)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(method_from_row(
        &sqlx::query(&format!(
            "SELECT {METHOD_COLUMNS} FROM methods WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(&mut *conn)
        .await?,
        "",
    )?)
}

/// The number of phone method `method_id` of user `uid`.
///
/// # Errors
/// 500 when it does not decrypt; database errors.
pub async fn number_of(
    state: &AppState,
    uid: i64,
    method_id: i64,
) -> Result<Option<String>, ApiError> {
    let Some(r) = sqlx::query("SELECT phone_sealed FROM methods WHERE id = $1 AND user_id = $2")
        .bind(method_id)
        .bind(uid)
        .fetch_optional(&state.pool)
        .await?
    else {
        return Ok(None);
    };
    let Some(hex_sealed) = r.try_get::<Option<String>, _>("phone_sealed")? else {
        return Ok(None);
    };
    let sealed = hex::decode(hex_sealed)
        .map_err(|_| ApiError::Secret(format!("method {method_id}: stored number is not hex")))?;
    let plain = state
        .secrets
        .open(&sealed, &phone_aad(uid))
        .map_err(|e| ApiError::Secret(format!("method {method_id}: {e}")))?;
    Ok(Some(String::from_utf8_lossy(&plain).into_owned()))
}

/// The user's usable phone method for `channel` (default first): its id.
///
/// # Errors
/// Database errors.
pub async fn method_for(
    state: &AppState,
    uid: i64,
    channel: Channel,
) -> Result<Option<i64>, ApiError> {
    Ok(sqlx::query(
        "SELECT id FROM methods
         WHERE user_id = $1 AND kind = $2 AND disabled = 0 AND pending = 0 AND phone_sealed IS NOT NULL
         ORDER BY is_default DESC, id LIMIT 1",
    )
    .bind(uid)
    .bind(channel.as_str())
    .fetch_optional(&state.pool)
    .await?
    .map(|r| r.try_get::<i64, _>("id"))
    .transpose()?)
}

/// Sends a login code to `username`'s phone method for `channel`, on
/// behalf of `actor`.
///
/// # Errors
/// 400 for a malformed username; 503 when the database fails; 500 when
/// the stored number does not decrypt.
pub async fn send_login_code(
    state: &AppState,
    actor: &str,
    username: &str,
    channel: Channel,
    context: &AuthContext,
) -> Result<CodeSent, ApiError> {
    check_username(username)?;
    let refused = |result| CodeSent {
        result,
        sent_to: None,
        expires_at: None,
    };
    let Some(user) = UserRow::find(&state.pool, username).await? else {
        return Ok(refused(SendResult::UnknownUser));
    };
    match user.standing(state.now()) {
        crate::rows::Standing::Disabled => return Ok(refused(SendResult::Disabled)),
        crate::rows::Standing::Locked { .. } => return Ok(refused(SendResult::Locked)),
        crate::rows::Standing::Active => {}
    }
    let Some(method_id) = method_for(state, user.id, channel).await? else {
        return Ok(refused(SendResult::NotEnrolled));
    };
    let Some(number) = number_of(state, user.id, method_id).await? else {
        return Ok(refused(SendResult::NotEnrolled));
    };
    let (sent, _) = send(
        state,
        &Send {
            uid: user.id,
            username,
            channel,
            phone: &number,
            method_id: Some(method_id),
            purpose: Purpose::Login,
            actor,
            context,
        },
    )
    .await?;
    Ok(sent)
}

async fn host_send(
    State(state): State<Shared>,
    HostAuth(host, _): HostAuth,
    PathArgs(username): PathArgs<String>,
    JsonBody(req): JsonBody<SendCode>,
) -> ApiResult<Json<CodeSent>> {
    crate::routes::host::check_context(&req.context)?;
    let mut context = req.context.clone();
    context.host = context.host.or_else(|| Some(host.clone()));
    // A task of its own: a host that stops waiting (its timeout, shorter
    // than the gateway's) does not cancel the send half-way, so the code's
    // row and its audit record are always written.
    let task = tokio::spawn(async move {
        send_login_code(
            &state,
            &format!("host:{host}"),
            &username,
            req.channel,
            &context,
        )
        .await
    });
    let sent = task.await.map_err(|e| {
        ApiError::new(ApiErrorCode::Internal, format!("the code send failed: {e}"))
    })??;
    Ok(Json(sent))
}

async fn admin_enrol(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(username): PathArgs<String>,
    JsonBody(req): JsonBody<EnrolPhone>,
) -> ApiResult<(StatusCode, Json<Method>)> {
    let uid = crate::routes::methods::user_id(&state, &username).await?;
    let number = phone::parse_e164(&req.number)
        .map_err(|why| ApiError::new(ApiErrorCode::InvalidField, format!("number: {why}")))?;
    let mut change = AdminChange::begin(&state, &peer).await?;
    let now = change.now();
    if let Some(id) =
        crate::phone_dupes::existing(&state, change.conn(), uid, req.channel, &number).await?
    {
        return Err(crate::phone_dupes::duplicate_error(
            &username,
            req.channel,
            &number,
            id,
        ));
    }
    let method = save_method(
        &state,
        change.conn(),
        uid,
        req.channel,
        &number,
        req.default,
        now,
    )
    .await?;
    change
        .commit(
            "phone.enrol",
            Subject::user(&username).detail(format!(
                "method {} channel={} number={}",
                method.id,
                req.channel,
                phone::mask(&number)
            )),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(method)))
}
