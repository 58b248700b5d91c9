//! Signing in (password, then the second factor), the fresh second factor
//! that Security info and every change ask for, setup links, signing out.
//!
//! Sign-in steps: password → the second factor [`next_step`] chooses
//! ([`SignInStep::Code`], or [`SignInStep::Push`]: approve a request sent
//! to the user's devices, when their default method is a push device or
//! they have no code method; or [`SignInStep::SecurityKey`], when it is
//! the default method or the only kind: [`super::security_key`]) → signed
//! in. The session id changes at each step. The fresh second factor
//! (`/my/verify`) offers the same.

use super::pages::{
    self, render, render_status, Chrome, CodePage, ConfirmPage, InvitePage, SignInPage, WelcomePage,
};
use super::session::{self, CsrfForm, NewSession, Session, Stage, Visit};
use super::throttle::Keys;
use super::{Exit, PageResult, Portal, FRESH_FACTOR_SECS};
use crate::audit::Audit;
use crate::error::ApiError;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sqlx::Row;
use std::sync::Arc;
use twostep_common::api::{validate_username, AuthContext, VerifyRequest, VerifyResult};
use twostep_common::phone::{self, Channel};
use twostep_common::portal::check_password;

/// The one answer for an unknown user and a wrong password.
pub const WRONG_PASSWORD: &str = "Your username or password is incorrect.";
/// The answer once a username or address has failed too often.
pub const TOO_MANY: &str = "Too many sign-in attempts. Wait 15 minutes, then try again.";
const WRONG_CODE: &str = "That code didn't work. Check the code in your app and try again.";
const CODE_FORMAT: &str = "Enter the 6-digit code shown in your app.";

/// Query parameters, leniently: unknown or malformed ones are ignored.
pub fn query<T: DeserializeOwned + Default>(raw: Option<String>) -> T {
    raw.and_then(|q| serde_urlencoded::from_str(&q).ok())
        .unwrap_or_default()
}

/// `?done=` and `?next=` of the pages.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// What just happened (a fixed word; never shown as it is).
    #[serde(default)]
    pub done: Option<String>,
    /// Where to go on to.
    #[serde(default)]
    pub next: Option<String>,
    /// The second factor asked for: `code`, `push` or `key` (else the
    /// user's default).
    #[serde(default)]
    pub with: Option<String>,
}

/// `next` when it is one of the pages' own paths, else `/my/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/my/")
                && n.len() <= 100
                && n.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'/' || b == b'-'
                }) =>
        {
            n.to_owned()
        }
        _ => "/my/".to_owned(),
    }
}

/// Writes a portal audit record for `username`.
pub(crate) async fn audit<'e, E>(
    exec: E,
    p: &Portal,
    username: &str,
    action: &str,
    result: &str,
    remote_addr: Option<&str>,
    detail: Option<String>,
) -> Result<(), ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    if action == "portal.sign_in" {
        p.app.metrics.page_sign_in(result);
    }
    crate::audit::write_audit(
        exec,
        p.now(),
        &Audit {
            actor: "portal",
            action,
            username: Some(username),
            host: None,
            remote_addr,
            result: Some(result),
            detail,
        },
    )
    .await?;
    Ok(())
}

/// The signed-in session of `v`, or the page to go to instead.
///
/// # Errors
/// [`Exit::Redirect`] to sign in, to the code step, or to "choose a password".
pub fn signed_in(v: &Visit) -> Result<&Session, Exit> {
    match &v.session {
        Some(s) if s.stage == Stage::SignedIn && s.set_password => {
            Err(Exit::Redirect("/my/welcome".into()))
        }
        Some(s) if s.stage == Stage::SignedIn => Ok(s),
        Some(_) => Err(Exit::Redirect("/my/sign-in/code".into())),
        None => Err(Exit::Redirect("/my/".into())),
    }
}

/// Whether the user has an enabled method that verifies codes.
///
/// # Errors
/// Database errors.
pub async fn has_code_method(p: &Portal, user_id: i64) -> Result<bool, ApiError> {
    Ok(sqlx::query(
        "SELECT 1 FROM methods WHERE user_id = $1 AND disabled = 0 AND pending = 0
         AND ((kind = 'totp' AND secret_sealed IS NOT NULL)
              OR (kind IN ('sms', 'voice') AND phone_sealed IS NOT NULL)) LIMIT 1",
    )
    .bind(user_id)
    .fetch_optional(&p.app.pool)
    .await?
    .is_some())
}

/// Whether the user has an enabled push device.
///
/// # Errors
/// Database errors.
pub async fn has_push_device(p: &Portal, user_id: i64) -> Result<bool, ApiError> {
    Ok(sqlx::query(
        "SELECT 1 FROM methods WHERE user_id = $1 AND kind = 'push' AND public_key IS NOT NULL
         AND disabled = 0 AND pending = 0 LIMIT 1",
    )
    .bind(user_id)
    .fetch_optional(&p.app.pool)
    .await?
    .is_some())
}

/// The signed-in session of `v` when its second factor is fresh (passed
/// within [`FRESH_FACTOR_SECS`], or the user has no method to pass); else
/// a redirect to verify again, then to `next`.
///
/// # Errors
/// As [`signed_in`], or [`Exit::Redirect`] to `/my/verify`.
pub async fn fresh<'v>(p: &Portal, v: &'v Visit, next: &str) -> Result<&'v Session, Exit> {
    let s = signed_in(v)?;
    let recent = s.factor_at.is_some_and(|t| p.now() - t < FRESH_FACTOR_SECS);
    if recent
        || matches!(
            next_step(p, s.user_id).await?,
            SignInStep::NoMethod | SignInStep::Unusable
        )
    {
        return Ok(s);
    }
    Err(Exit::Redirect(format!(
        "/my/verify?next={}",
        safe_next(Some(next))
    )))
}

/// The sign-in page with `error` or `notice`.
pub async fn sign_in_page(
    p: &Portal,
    v: &Visit,
    status: StatusCode,
    error: Option<&'static str>,
    notice: Option<&'static str>,
    username: &str,
) -> PageResult {
    let (csrf, set) = v.form_token(p).await?;
    let page = SignInPage {
        chrome: Chrome::new(p, "Sign in", "", csrf, None),
        error,
        notice,
        username: username.to_owned(),
    };
    Ok(pages::with_cookie(render_status(status, &page)?, set))
}

/// `POST /my/sign-in` form.
#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// What comes after a correct password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInStep {
    /// A code from an authenticator app.
    Code,
    /// Approve a request sent to the user's push devices.
    Push,
    /// Touch a security key (WebAuthn).
    SecurityKey,
    /// Nothing: the user has no method yet (goes to Security info).
    NoMethod,
    /// The user has methods but every one is disabled.
    Unusable,
}

/// Which second-factor step a user with row id `user_id` gets: their
/// default method's kind when they have several kinds, else the kind they
/// have.
///
/// # Errors
/// Database errors.
pub async fn next_step(p: &Portal, user_id: i64) -> Result<SignInStep, ApiError> {
    let code = has_code_method(p, user_id).await?;
    let push = has_push_device(p, user_id).await?;
    if super::security_key::has_security_key(p, user_id).await?
        && ((!code && !push) || default_is_security_key(p, user_id).await?)
    {
        return Ok(SignInStep::SecurityKey);
    }
    if code && push {
        let default_push = sqlx::query(
            "SELECT 1 FROM methods WHERE user_id = $1 AND is_default = 1 AND kind = 'push'
             AND disabled = 0 AND pending = 0",
        )
        .bind(user_id)
        .fetch_optional(&p.app.pool)
        .await?
        .is_some();
        return Ok(if default_push {
            SignInStep::Push
        } else {
            SignInStep::Code
        });
    }
    if code {
        return Ok(SignInStep::Code);
    }
    if push {
        return Ok(SignInStep::Push);
    }
    // A temporary access code from the help desk (a phone change): typed
    // where a code goes.
    if crate::recovery::open_until(&p.app.pool, user_id, p.now())
        .await?
        .is_some()
    {
        return Ok(SignInStep::Code);
    }
    let any = sqlx::query("SELECT 1 FROM methods WHERE user_id = $1 AND pending = 0 LIMIT 1")
        .bind(user_id)
        .fetch_optional(&p.app.pool)
        .await?;
    Ok(if any.is_some() {
        SignInStep::Unusable
    } else {
        SignInStep::NoMethod
    })
}

/// Whether the user's default method is an enabled security key.
async fn default_is_security_key(p: &Portal, user_id: i64) -> Result<bool, ApiError> {
    Ok(sqlx::query(
        "SELECT 1 FROM methods WHERE user_id = $1 AND is_default = 1 AND kind = 'security_key'
         AND disabled = 0 AND pending = 0",
    )
    .bind(user_id)
    .fetch_optional(&p.app.pool)
    .await?
    .is_some())
}

/// The row (`id`, `disabled`, `password_hash`) of the user a sign-in or a
/// password reset names; `None` for an unknown or malformed name.
///
/// # Errors
/// Database errors.
pub(crate) async fn login_row(
    p: &Portal,
    username: &str,
) -> Result<Option<sqlx::any::AnyRow>, ApiError> {
    if validate_username(username).is_err() {
        return Ok(None);
    }
    Ok(
        sqlx::query("SELECT id, disabled, password_hash FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&p.app.pool)
            .await?,
    )
}

/// Ends the visitor's session, if any, and starts `new` with a new id;
/// the `Set-Cookie` value.
async fn replace_session(
    p: &Portal,
    v: &Visit,
    new: NewSession<'_>,
) -> Result<HeaderValue, ApiError> {
    if let Some(old) = &v.session {
        session::delete(p, &old.id_hash).await?;
    }
    session::create(p, new).await
}

/// `POST /my/sign-in`: username and password.
pub async fn sign_in(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<SignInForm>,
) -> PageResult {
    let username = f.username.trim().to_owned();
    let peer = v.peer.as_deref();
    let keys = Keys::new(&username, peer);
    if p.throttled(&keys).await? {
        audit(
            &p.app.pool,
            &p,
            &username,
            "portal.sign_in",
            "rate_limited",
            peer,
            None,
        )
        .await?;
        return sign_in_page(
            &p,
            &v,
            StatusCode::TOO_MANY_REQUESTS,
            Some(TOO_MANY),
            None,
            &username,
        )
        .await;
    }
    let user = login_row(&p, &username).await?;
    let phc: Option<String> = match &user {
        Some(u) => u.try_get("password_hash")?,
        None => None,
    };
    // Unknown users and users without a password check a dummy hash: the
    // same work, the same answer.
    if !p.verify_password(phc.as_deref(), &f.password).await? {
        p.count_failure(&keys).await?;
        let why = if user.is_some() {
            "wrong_password"
        } else {
            "unknown_user"
        };
        audit(
            &p.app.pool,
            &p,
            &username,
            "portal.sign_in",
            why,
            peer,
            None,
        )
        .await?;
        return sign_in_page(
            &p,
            &v,
            StatusCode::OK,
            Some(WRONG_PASSWORD),
            None,
            &username,
        )
        .await;
    }
    let Some(user) = user else {
        return Err(super::not_found());
    };
    p.clear_failures(&keys).await?;
    let uid: i64 = user.try_get("id")?;
    if user.try_get::<i64, _>("disabled")? != 0 {
        audit(
            &p.app.pool,
            &p,
            &username,
            "portal.sign_in",
            "disabled",
            peer,
            None,
        )
        .await?;
        return sign_in_page(
            &p,
            &v,
            StatusCode::FORBIDDEN,
            Some("Your account is disabled. Contact your administrator."),
            None,
            &username,
        )
        .await;
    }
    let (stage, to) = match next_step(&p, uid).await? {
        SignInStep::Code => (Stage::SecondFactor, "/my/sign-in/code"),
        SignInStep::Push => (Stage::SecondFactor, "/my/sign-in/push"),
        SignInStep::SecurityKey => (Stage::SecondFactor, "/my/sign-in/security-key"),
        SignInStep::NoMethod => (Stage::SignedIn, "/my/security-info"),
        SignInStep::Unusable => {
            return sign_in_page(
                &p,
                &v,
                StatusCode::FORBIDDEN,
                Some("Your sign-in methods are disabled. Ask your administrator to enable one, or for a setup link."),
                None,
                &username,
            )
            .await;
        }
    };
    audit(
        &p.app.pool,
        &p,
        &username,
        "portal.sign_in",
        "password_ok",
        peer,
        None,
    )
    .await?;
    let cookie = replace_session(
        &p,
        &v,
        NewSession {
            user_id: uid,
            stage,
            factor_at: None,
            set_password: false,
            remote_addr: peer,
        },
    )
    .await?;
    let tls = p.settings().tls;
    let clear_pre = session::set_cookie(session::pre_cookie_name(tls), "", 0, tls);
    Ok(pages::redirect_with(to, [cookie, clear_pre]))
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
    /// `backup` when the form asked for a backup code.
    #[serde(default)]
    with: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

async fn render_code(
    p: &Portal,
    s: &Session,
    fresh_check: Option<String>,
    error: Option<String>,
    backup: bool,
) -> PageResult {
    render_code_with(p, s, fresh_check, error, backup, None).await
}

/// The user's usable phone method the registry can send to, default
/// first: (its channel, whether it is what sign-in offers first: the
/// default, or the user has no app).
async fn sign_in_phone(p: &Portal, user_id: i64) -> Result<Option<(Channel, bool)>, ApiError> {
    let rows = sqlx::query(
        "SELECT kind, is_default FROM methods WHERE user_id = $1 AND kind IN ('sms', 'voice')
         AND phone_sealed IS NOT NULL AND disabled = 0 AND pending = 0
         ORDER BY is_default DESC, id",
    )
    .bind(user_id)
    .fetch_all(&p.app.pool)
    .await?;
    let has_app = sqlx::query(
        "SELECT 1 FROM methods WHERE user_id = $1 AND kind IN ('totp', 'push') AND disabled = 0 AND pending = 0 LIMIT 1",
    )
    .bind(user_id)
    .fetch_optional(&p.app.pool)
    .await?
    .is_some();
    for r in rows {
        let Some(channel) = Channel::from_name(&r.try_get::<String, _>("kind")?) else {
            continue;
        };
        if p.app.gateways.has(channel) {
            let first = r.try_get::<i64, _>("is_default")? == 1 || !has_app;
            return Ok(Some((channel, first)));
        }
    }
    Ok(None)
}

/// The button's words once a code was sent.
const RESEND: &str = "Send a new code";

/// The words of the button that sends a code to the user's phone.
async fn phone_button(p: &Portal, user_id: i64) -> Result<Option<&'static str>, ApiError> {
    Ok(sign_in_phone(p, user_id).await?.map(|(c, _)| match c {
        Channel::Sms => "Text me a code",
        Channel::Voice => "Call me with a code",
    }))
}

/// At the sign-in's code step: a user whose phone is what sign-in offers
/// first gets a code sent (once while one is open) and is told where;
/// others get the button.
async fn phone_at_sign_in(
    p: &Portal,
    s: &Session,
) -> Result<(Option<String>, Option<&'static str>), ApiError> {
    let Some((channel, first)) = sign_in_phone(p, s.user_id).await? else {
        return Ok((None, None));
    };
    let button = phone_button(p, s.user_id).await?;
    if !first {
        return Ok((None, button));
    }
    let button = button.map(|_| RESEND);
    let open = sqlx::query(
        "SELECT 1 FROM sent_codes WHERE user_id = $1 AND purpose = 'login' AND status = 'sent'
         AND used_at IS NULL AND tries_left > 0 AND expires_at > $2 LIMIT 1",
    )
    .bind(s.user_id)
    .bind(p.now())
    .fetch_optional(&p.app.pool)
    .await?
    .is_some();
    if open {
        return Ok((Some(phone_sent_words(p, s.user_id, channel).await?), button));
    }
    Ok((Some(send_to_phone(p, s, channel).await?), button))
}

/// "We texted a code to +1 ••• ••• ••42." for the user's phone method of
/// `channel`.
async fn phone_sent_words(p: &Portal, user_id: i64, channel: Channel) -> Result<String, ApiError> {
    let number = match crate::phone::method_for(&p.app, user_id, channel).await? {
        Some(id) => crate::phone::number_of(&p.app, user_id, id).await?,
        None => None,
    };
    let to = number.map_or_else(|| "your phone".to_owned(), |n| phone::mask(&n));
    Ok(match channel {
        Channel::Sms => format!("We texted a code to {to}. Enter it here."),
        Channel::Voice => format!("We called {to} and read out a code. Enter it here."),
    })
}

/// Sends a sign-in code to the user's phone: what the page says then.
async fn send_to_phone(p: &Portal, s: &Session, channel: Channel) -> Result<String, ApiError> {
    let context = twostep_common::api::AuthContext {
        service: Some("portal".into()),
        ..Default::default()
    };
    let sent =
        crate::phone::send_login_code(&p.app, "portal", &s.username, channel, &context).await?;
    Ok(match phone::send_refusal(sent.result, channel) {
        None => phone_sent_words(p, s.user_id, channel).await?,
        Some(why) => format!("{why}."),
    })
}

/// `POST /my/sign-in/code/send`: "Text me a code" at the sign-in's code
/// step.
pub async fn code_send(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(_): CsrfForm<SendForm>,
) -> PageResult {
    let s = second_factor_session(&v)?;
    let said = match sign_in_phone(&p, s.user_id).await? {
        Some((channel, _)) => send_to_phone(&p, s, channel).await?,
        None => return Err(Exit::Redirect("/my/sign-in/code".into())),
    };
    render_code_with(&p, s, None, None, false, Some(said)).await
}

/// The (empty) form of [`code_send`].
#[derive(Deserialize)]
pub struct SendForm {}

async fn render_code_with(
    p: &Portal,
    s: &Session,
    fresh_check: Option<String>,
    error: Option<String>,
    backup: bool,
    phone_said: Option<String>,
) -> PageResult {
    let key = csrf_of(p, s).await?;
    let (action, heading, intro) = match fresh_check {
        Some(_) => (
            "/my/verify",
            "Verify your identity",
            "Enter the code from your authenticator app to go on. Security info asks for it again after 10 minutes.",
        ),
        None => (
            "/my/sign-in/code",
            "Enter code",
            "Enter the code shown in the authenticator app on your phone.",
        ),
    };
    let push_alt = if has_push_device(p, s.user_id).await? {
        Some(match &fresh_check {
            Some(next) => format!("/my/verify?next={next}&with=push"),
            None => "/my/sign-in/push".to_owned(),
        })
    } else {
        None
    };
    let key_alt = key_alt(p, s, fresh_check.as_deref()).await?;
    let tap = crate::recovery::open_until(&p.app.pool, s.user_id, p.now())
        .await?
        .is_some();
    let backup_offer = fresh_check.is_none()
        && crate::recovery::backup_codes_left(&p.app.pool, s.user_id)
            .await?
            .is_some_and(|n| n > 0);
    let backup = backup && backup_offer;
    let intro = if backup {
        "Enter one of the backup codes you printed or wrote down. Each works once."
    } else if tap {
        "Enter the temporary access code your help desk gave you, or a code from your authenticator app."
    } else {
        intro
    };
    let (phone_said, phone_offer) = match (&fresh_check, phone_said) {
        (None, Some(said)) => (
            Some(said),
            phone_button(p, s.user_id).await?.map(|_| RESEND),
        ),
        (None, None) => phone_at_sign_in(p, s).await?,
        (Some(_), _) => (None, None),
    };
    let page = CodePage {
        phone_said,
        phone_offer,
        chrome: Chrome::new(p, heading, "", key, None),
        tap,
        backup,
        backup_offer,
        action,
        heading,
        intro,
        next: fresh_check,
        error,
        username: s.username.clone(),
        push_alt,
        key_alt,
    };
    render(&page)
}

/// Where "Use my security key instead" goes (sign-in, or a fresh factor
/// before `next`), when the user has a usable key.
async fn key_alt(p: &Portal, s: &Session, next: Option<&str>) -> Result<Option<String>, ApiError> {
    if !super::security_key::has_security_key(p, s.user_id).await? {
        return Ok(None);
    }
    Ok(Some(match next {
        Some(n) => format!("/my/verify?next={n}&with=key"),
        None => "/my/sign-in/security-key".to_owned(),
    }))
}

/// The CSRF token of forms shown to the holder of `s`.
///
/// # Errors
/// When the page key cannot be loaded.
pub async fn csrf_of(p: &Portal, s: &Session) -> Result<String, ApiError> {
    Ok(p.key().await?.csrf(&s.cookie))
}

/// Checks `code` for the session's user with the registry's verification
/// (replay, lockout and audit as for PAM and RADIUS). `Ok(None)` when
/// accepted, else the message to show.
async fn check_code(
    p: &Portal,
    s: &Session,
    code: &str,
    peer: Option<&str>,
) -> Result<Result<(), CodeRefusal>, Exit> {
    let code = code.trim();
    if !twostep_common::recovery::is_second_factor_format(code) {
        return Ok(Err(CodeRefusal::Again(CODE_FORMAT.into())));
    }
    let req = VerifyRequest {
        username: s.username.clone(),
        code: code.to_owned(),
        context: AuthContext {
            service: Some("portal".into()),
            host: None,
            remote_addr: peer.map(str::to_owned),
            tty: None,
        },
    };
    let resp = crate::verify::verify_as(
        &p.app,
        "portal",
        None,
        twostep_common::methods::Place::Page,
        crate::verify::Failures::Counted,
        &req,
    )
    .await?;
    Ok(match resp.result {
        VerifyResult::Accept => Ok(()),
        VerifyResult::NotEnrolled => Err(CodeRefusal::NoMethod),
        VerifyResult::Reject => Err(CodeRefusal::Again(WRONG_CODE.into())),
        VerifyResult::Replay => Err(CodeRefusal::Again(
            twostep_common::decision::REPLAY_MESSAGE.into(),
        )),
        VerifyResult::Locked => Err(CodeRefusal::Again(format!(
            "Too many wrong codes. Try again after {}.",
            super::time::date_time(resp.locked_until.unwrap_or_else(|| p.now()))
        ))),
        VerifyResult::Disabled | VerifyResult::UnknownUser => Err(CodeRefusal::End),
    })
}

enum CodeRefusal {
    /// Show the message and ask again.
    Again(String),
    /// The user has no code method any more.
    NoMethod,
    /// The user was disabled or deleted: end the session.
    End,
}

async fn end_session(p: &Portal, s: &Session) -> PageResult {
    session::delete(p, &s.id_hash).await?;
    Ok(pages::redirect_with("/my/", [session::clear_cookie(p)]))
}

fn second_factor_session(v: &Visit) -> Result<&Session, Exit> {
    match &v.session {
        Some(s) if s.stage == Stage::SecondFactor => Ok(s),
        Some(_) => Err(Exit::Redirect("/my/".into())),
        None => Err(Exit::Redirect("/my/".into())),
    }
}

/// `GET /my/sign-in/code`.
pub async fn code_page(
    State(p): State<Arc<Portal>>,
    v: Visit,
    RawQuery(q): RawQuery,
) -> PageResult {
    let s = second_factor_session(&v)?;
    let params: Params = query(q);
    let backup = params.with.as_deref() == Some("backup");
    // A user whose only way in is a security key (no code method, no
    // temporary access code) goes to the key, not to a code field.
    if !backup
        && !has_code_method(&p, s.user_id).await?
        && crate::recovery::open_until(&p.app.pool, s.user_id, p.now())
            .await?
            .is_none()
        && super::security_key::has_security_key(&p, s.user_id).await?
    {
        return Err(Exit::Redirect("/my/sign-in/security-key".into()));
    }
    render_code(&p, s, None, None, backup).await
}

/// `POST /my/sign-in/code`: the second factor at sign-in.
pub async fn code_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<CodeForm>,
) -> PageResult {
    let s = second_factor_session(&v)?;
    match check_code(&p, s, &f.code, v.peer.as_deref()).await? {
        Ok(()) => {
            let (cookie, _) = session::rotate(&p, s, Stage::SignedIn, Some(p.now())).await?;
            // Signed in with a temporary access code and nothing else (a
            // phone change): straight to adding the new phone.
            let to = match next_step(&p, s.user_id).await? {
                SignInStep::NoMethod => "/my/security-info",
                SignInStep::Code if !has_code_method(&p, s.user_id).await? => "/my/security-info",
                _ => "/my/",
            };
            Ok(pages::redirect_with(to, [cookie]))
        }
        Err(CodeRefusal::Again(m)) => {
            let backup = f.with.as_deref() == Some("backup");
            render_code(&p, s, None, Some(m), backup).await
        }
        Err(CodeRefusal::NoMethod) => {
            let (cookie, _) = session::rotate(&p, s, Stage::SignedIn, None).await?;
            Ok(pages::redirect_with("/my/security-info", [cookie]))
        }
        Err(CodeRefusal::End) => end_session(&p, s).await,
    }
}

/// `GET /my/verify?next=PATH`: a fresh second factor.
pub async fn verify_page(
    State(p): State<Arc<Portal>>,
    v: Visit,
    RawQuery(q): RawQuery,
) -> PageResult {
    let params: Params = query(q);
    let next = safe_next(params.next.as_deref());
    let s = signed_in(&v)?;
    if fresh(&p, &v, &next).await.is_ok() {
        return Err(Exit::Redirect(next));
    }
    let step = next_step(&p, s.user_id).await?;
    let key = match params.with.as_deref() {
        Some("key") => super::security_key::has_security_key(&p, s.user_id).await?,
        Some(_) => false,
        None => step == SignInStep::SecurityKey,
    };
    if key {
        let purpose = super::security_key::KeyFor::Verify(next);
        return super::security_key::show_sign_in(&p, s, &purpose, None).await;
    }
    let push = match params.with.as_deref() {
        Some("code") => !has_code_method(&p, s.user_id).await?,
        Some("push") => has_push_device(&p, s.user_id).await?,
        _ => step == SignInStep::Push,
    };
    if push {
        return push_get(&p, s, PushFor::Verify(next), v.peer.as_deref()).await;
    }
    render_code(&p, s, Some(next), None, false).await
}

/// `POST /my/verify`.
pub async fn verify_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<CodeForm>,
) -> PageResult {
    let s = signed_in(&v)?;
    let next = safe_next(f.next.as_deref());
    match check_code(&p, s, &f.code, v.peer.as_deref()).await? {
        Ok(()) => {
            sqlx::query("UPDATE portal_sessions SET factor_at = $2 WHERE id_hash = $1")
                .bind(&s.id_hash)
                .bind(p.now())
                .execute(&p.app.pool)
                .await?;
            Err(Exit::Redirect(next))
        }
        Err(CodeRefusal::Again(m)) => render_code(&p, s, Some(next), Some(m), false).await,
        Err(CodeRefusal::NoMethod) => Err(Exit::Redirect(next)),
        Err(CodeRefusal::End) => end_session(&p, s).await,
    }
}

/// What a push approval on the pages is for.
#[derive(Debug, Clone)]
pub enum PushFor {
    /// The second factor at sign-in.
    SignIn,
    /// A fresh second factor, then on to the path.
    Verify(String),
}

impl PushFor {
    fn action(&self) -> &'static str {
        match self {
            Self::SignIn => "/my/sign-in/push",
            Self::Verify(_) => "/my/verify/push",
        }
    }

    fn resend_action(&self) -> &'static str {
        match self {
            Self::SignIn => "/my/sign-in/push/resend",
            Self::Verify(_) => "/my/verify/push/resend",
        }
    }

    fn next(&self) -> Option<String> {
        match self {
            Self::SignIn => None,
            Self::Verify(n) => Some(n.clone()),
        }
    }
}

/// The push page for `s`, showing the request the session waits for.
async fn render_push(
    p: &Portal,
    s: &Session,
    purpose: &PushFor,
    error: Option<&'static str>,
) -> PageResult {
    use super::push;
    let current = match &s.push_challenge {
        Some(id) => push::current(p, s.user_id, id).await?,
        None => None,
    };
    let (waiting, number, seconds, message) = match current {
        Some(c) if c.result == twostep_common::push::PushResult::Pending => {
            (true, c.number, push::seconds_left(p, c.expires_at), None)
        }
        Some(c) => (false, None, 0, Some(push::result_text(c.result))),
        None => (false, None, 0, None),
    };
    let devices = sqlx::query(
        "SELECT label FROM methods WHERE user_id = $1 AND kind = 'push' AND disabled = 0
         AND pending = 0 ORDER BY is_default DESC, id",
    )
    .bind(s.user_id)
    .fetch_all(&p.app.pool)
    .await?
    .iter()
    .map(|r| r.try_get::<String, _>("label"))
    .collect::<Result<Vec<_>, _>>()?;
    let code_alt = if has_code_method(p, s.user_id).await? {
        Some(match purpose {
            PushFor::SignIn => "/my/sign-in/code".to_owned(),
            PushFor::Verify(n) => format!("/my/verify?next={n}&with=code"),
        })
    } else {
        None
    };
    let key_alt = key_alt(
        p,
        s,
        match purpose {
            PushFor::SignIn => None,
            PushFor::Verify(n) => Some(n.as_str()),
        },
    )
    .await?;
    let heading = match purpose {
        PushFor::SignIn => "Approve sign-in request",
        PushFor::Verify(_) => "Verify your identity",
    };
    let page = pages::PushPage {
        chrome: Chrome::new(p, heading, "", csrf_of(p, s).await?, None),
        heading,
        action: purpose.action(),
        resend_action: purpose.resend_action(),
        next: purpose.next(),
        error,
        waiting,
        number,
        seconds,
        can_send: !devices.is_empty(),
        devices: if devices.is_empty() {
            "your device".to_owned()
        } else {
            devices.join(", ")
        },
        message,
        code_alt,
        key_alt,
        username: s.username.clone(),
        script: push::script_src(),
        status_url: "/my/push-status",
        back: None,
    };
    render(&page)
}

/// Sends a request to the user's devices for session `s` (cancelling the
/// one it waited for, if still open) and shows it; or shows why none was
/// sent.
async fn push_send(p: &Portal, s: &Session, purpose: &PushFor, peer: Option<&str>) -> PageResult {
    use super::push;
    if let Some(old) = &s.push_challenge {
        push::cancel(p, old).await?;
    }
    match push::send(p, &s.username, push::Ask::SignIn, None, peer).await? {
        Ok(c) => {
            session::set_push_challenge(p, &s.id_hash, Some(&c.challenge_id)).await?;
            let mut s = s.clone();
            s.push_challenge = Some(c.challenge_id);
            render_push(p, &s, purpose, None).await
        }
        Err(r) => {
            session::set_push_challenge(p, &s.id_hash, None).await?;
            let mut s = s.clone();
            s.push_challenge = None;
            render_push(p, &s, purpose, Some(push::refusal_text(r))).await
        }
    }
}

/// `GET` of a push step: the first visit sends the request; reloads show
/// it as it stands (Resend sends another).
async fn push_get(p: &Portal, s: &Session, purpose: PushFor, peer: Option<&str>) -> PageResult {
    if s.push_challenge.is_none() {
        return push_send(p, s, &purpose, peer).await;
    }
    render_push(p, s, &purpose, None).await
}

/// Whether the request session `s` waits for was approved: `Ok(())`, or
/// what to say on the page shown again (a reminder while it is pending).
async fn push_approved(
    p: &Portal,
    s: &Session,
) -> Result<Result<(), Option<&'static str>>, ApiError> {
    use twostep_common::push::PushResult;
    let current = match &s.push_challenge {
        Some(id) => super::push::current(p, s.user_id, id).await?,
        None => None,
    };
    Ok(match current.map(|c| c.result) {
        Some(PushResult::Approved) => Ok(()),
        Some(PushResult::Pending) => Err(Some(super::push::result_text(PushResult::Pending))),
        _ => Err(None),
    })
}

/// `GET /my/sign-in/push`.
pub async fn push_page(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    let s = second_factor_session(&v)?;
    push_get(&p, s, PushFor::SignIn, v.peer.as_deref()).await
}

/// `POST /my/sign-in/push`: Continue (the live wait submits it too).
pub async fn push_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> PageResult {
    let s = second_factor_session(&v)?;
    if let Err(say) = push_approved(&p, s).await? {
        return render_push(&p, s, &PushFor::SignIn, say).await;
    }
    audit(
        &p.app.pool,
        &p,
        &s.username,
        "portal.sign_in",
        "push_approved",
        v.peer.as_deref(),
        None,
    )
    .await?;
    let (cookie, _) = session::rotate(&p, s, Stage::SignedIn, Some(p.now())).await?;
    Ok(pages::redirect_with("/my/", [cookie]))
}

/// `POST /my/sign-in/push/resend`.
pub async fn push_resend(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> PageResult {
    let s = second_factor_session(&v)?;
    push_send(&p, s, &PushFor::SignIn, v.peer.as_deref()).await
}

#[derive(Deserialize)]
pub struct NextForm {
    #[serde(default)]
    next: Option<String>,
}

/// `POST /my/verify/push`: Continue for a fresh second factor.
pub async fn verify_push_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<NextForm>,
) -> PageResult {
    let s = signed_in(&v)?;
    let next = safe_next(f.next.as_deref());
    if let Err(say) = push_approved(&p, s).await? {
        return render_push(&p, s, &PushFor::Verify(next), say).await;
    }
    sqlx::query(
        "UPDATE portal_sessions SET factor_at = $2, push_challenge = NULL WHERE id_hash = $1",
    )
    .bind(&s.id_hash)
    .bind(p.now())
    .execute(&p.app.pool)
    .await?;
    Err(Exit::Redirect(next))
}

/// `POST /my/verify/push/resend`.
pub async fn verify_push_resend(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<NextForm>,
) -> PageResult {
    let s = signed_in(&v)?;
    let purpose = PushFor::Verify(safe_next(f.next.as_deref()));
    push_send(&p, s, &purpose, v.peer.as_deref()).await
}

fn bad_link() -> Exit {
    Exit::Page(Box::new(pages::message(
        StatusCode::NOT_FOUND,
        "This setup link doesn't work",
        "It has expired, was used already, or was replaced by a newer one. Ask your administrator for a new link.",
    )))
}

fn token_shape(t: &str) -> bool {
    t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `GET /my/invite/{token}`: what the link is for, and a button to go on
/// (a link preview fetching the page does not use the link up).
pub async fn invite_page(
    State(p): State<Arc<Portal>>,
    v: Visit,
    Path(token): Path<String>,
) -> PageResult {
    if !token_shape(&token) {
        return Err(bad_link());
    }
    let row = sqlx::query(
        "SELECT u.username FROM portal_invites i JOIN users u ON u.id = i.user_id
         WHERE i.token_hash = $1 AND i.used_at IS NULL AND i.expires_at > $2 AND u.disabled = 0",
    )
    .bind(session::token_hash(&token))
    .bind(p.now())
    .fetch_optional(&p.app.pool)
    .await?
    .ok_or_else(bad_link)?;
    let (csrf, set) = v.form_token(&p).await?;
    let page = InvitePage {
        chrome: Chrome::new(&p, "Set up your security info", "", csrf, None),
        token,
        username: row.try_get("username")?,
    };
    Ok(pages::with_cookie(render(&page)?, set))
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    token: String,
}

/// `POST /my/invite`: uses the link up (one statement, so only one of two
/// concurrent uses wins) and starts a session that must choose a password.
pub async fn invite_accept(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<InviteForm>,
) -> PageResult {
    if !token_shape(&f.token) {
        return Err(bad_link());
    }
    let now = p.now();
    let row = sqlx::query(
        "UPDATE portal_invites SET used_at = $2
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
           AND user_id IN (SELECT id FROM users WHERE disabled = 0)
         RETURNING user_id",
    )
    .bind(session::token_hash(&f.token))
    .bind(now)
    .fetch_optional(&p.app.pool)
    .await?
    .ok_or_else(bad_link)?;
    let uid: i64 = row.try_get("user_id")?;
    let username: String = sqlx::query("SELECT username FROM users WHERE id = $1")
        .bind(uid)
        .fetch_one(&p.app.pool)
        .await?
        .try_get("username")?;
    audit(
        &p.app.pool,
        &p,
        &username,
        "portal.invite_used",
        "ok",
        v.peer.as_deref(),
        None,
    )
    .await?;
    // The link, made by an admin for this user, stands in for the second
    // factor of this session's first minutes.
    let cookie = replace_session(
        &p,
        &v,
        NewSession {
            user_id: uid,
            stage: Stage::SignedIn,
            factor_at: Some(now),
            set_password: true,
            remote_addr: v.peer.as_deref(),
        },
    )
    .await?;
    Ok(pages::redirect_with("/my/welcome", [cookie]))
}

fn welcome_session(v: &Visit) -> Result<&Session, Exit> {
    match &v.session {
        Some(s) if s.stage == Stage::SignedIn && s.set_password => Ok(s),
        _ => Err(Exit::Redirect("/my/".into())),
    }
}

async fn welcome(p: &Portal, s: &Session, error: Option<&'static str>) -> PageResult {
    let page = WelcomePage {
        chrome: Chrome::new(p, "Choose a password", "", csrf_of(p, s).await?, None),
        username: s.username.clone(),
        error,
    };
    render(&page)
}

/// `GET /my/welcome`: choose a password.
pub async fn welcome_page(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    let s = welcome_session(&v)?;
    welcome(&p, s, None).await
}

#[derive(Deserialize)]
pub struct NewPasswordForm {
    #[serde(default)]
    pub(crate) new_password: String,
    #[serde(default)]
    pub(crate) confirm_password: String,
}

/// Checks a new password and its confirmation; the message to show, if any.
pub(crate) fn new_password_problem(s: &Session, f: &NewPasswordForm) -> Option<&'static str> {
    if f.new_password != f.confirm_password {
        return Some("The new passwords don't match.");
    }
    check_password(&f.new_password, &s.username, s.display_name.as_deref()).err()
}

/// Stores `phc` as the user's password and ends their other sessions, in
/// one transaction with the audit record.
pub(crate) async fn store_password(
    p: &Portal,
    s: &Session,
    phc: &str,
    peer: Option<&str>,
) -> Result<(), ApiError> {
    let mut tx = p.app.pool.begin().await?;
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(s.user_id)
        .bind(phc)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE portal_sessions SET set_password = 0 WHERE id_hash = $1")
        .bind(&s.id_hash)
        .execute(&mut *tx)
        .await?;
    let ended = session::delete_all(&mut *tx, s.user_id, Some(&s.id_hash)).await?;
    audit(
        &mut *tx,
        p,
        &s.username,
        "portal.password",
        "ok",
        peer,
        Some(format!("{ended} other sessions ended")),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `POST /my/welcome`: sets the password, then straight on to adding an
/// authenticator app (or to Security info when the user has methods).
pub async fn welcome_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<NewPasswordForm>,
) -> PageResult {
    let s = welcome_session(&v)?;
    if let Some(problem) = new_password_problem(s, &f) {
        return welcome(&p, s, Some(problem)).await;
    }
    let phc = p.hash_password(&f.new_password).await?;
    store_password(&p, s, &phc, v.peer.as_deref()).await?;
    let (cookie, id_hash) = session::rotate(&p, s, Stage::SignedIn, None).await?;
    let has_methods =
        sqlx::query("SELECT 1 FROM methods WHERE user_id = $1 AND pending = 0 LIMIT 1")
            .bind(s.user_id)
            .fetch_optional(&p.app.pool)
            .await?
            .is_some();
    let to = if has_methods {
        "/my/security-info"
    } else {
        super::enrol::begin(&p, s, &id_hash, super::enrol::FlowKind::CodeApp).await?;
        "/my/security-info/app/start"
    };
    Ok(pages::redirect_with(to, [cookie]))
}

/// `POST /my/sign-out`: ends this session.
pub async fn sign_out(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> PageResult {
    if let Some(s) = &v.session {
        session::delete(&p, &s.id_hash).await?;
    }
    Ok(pages::redirect_with(
        "/my/?done=signed-out",
        [session::clear_cookie(&p)],
    ))
}

/// `GET /my/sign-out-everywhere`: are you sure?
pub async fn sign_out_everywhere_page(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    let s = signed_in(&v)?;
    let (csrf, _) = v.form_token(&p).await?;
    let page = ConfirmPage {
        chrome: Chrome::new(&p, "Sign out everywhere", "overview", csrf, Some(s)),
        heading: "Sign out everywhere?",
        text: "This signs you out of this page in every browser and on every device, this one included. SSH and VPN connections that are already open stay open.".into(),
        warning: None,
        action: "/my/sign-out-everywhere".into(),
        button: "Sign out everywhere",
        cancel: "/my/",
    };
    render(&page)
}

/// `POST /my/sign-out-everywhere`: ends every session of the user.
pub async fn sign_out_everywhere(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> PageResult {
    let s = signed_in(&v)?;
    let mut tx = p.app.pool.begin().await?;
    let n = session::delete_all(&mut *tx, s.user_id, None).await?;
    audit(
        &mut *tx,
        &p,
        &s.username,
        "portal.sign_out_everywhere",
        "ok",
        v.peer.as_deref(),
        Some(format!("{n} sessions ended")),
    )
    .await?;
    tx.commit().await?;
    Ok(pages::redirect_with(
        "/my/?done=everywhere",
        [session::clear_cookie(&p)],
    ))
}

/// The sign-in page for a visitor without a session (`GET /my/`).
pub async fn signed_out_home(p: &Portal, v: &Visit, done: Option<&str>) -> PageResult {
    let notice = match done {
        Some("signed-out") => Some("You've signed out."),
        Some("everywhere") => Some("You've been signed out everywhere."),
        Some("reset") => Some("Your password was reset. Sign in with your new password."),
        _ if v.ended => Some("Your session ended. Sign in again."),
        _ => None,
    };
    sign_in_page(p, v, StatusCode::OK, None, notice, "").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_one_of_the_pages_own_paths() {
        assert_eq!(safe_next(Some("/my/security-info")), "/my/security-info");
        assert_eq!(
            safe_next(Some("/my/devices/3/remove")),
            "/my/devices/3/remove"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/my/",
            "/my/../v1/admin",
            "/my/x?next=y",
            "/v1/admin/users",
            "/my/\\evil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/my/", "{bad}");
        }
        assert_eq!(safe_next(None), "/my/");
    }
}
