//! "Forgot password?": the page password reset by the user, with proofs
//! from their password-reset methods (a code emailed to the registered
//! address, the security questions) and from their two-step methods: a
//! typed code (through [`crate::verify::verify_as`], which also takes
//! temporary access and backup codes), an approved push, a code sent by
//! text message or call, a security key. Which proofs count, and as
//! which kind, is decided in [`twostep_common::reset`].
//!
//! Steps: username → choose a proof (the ways the user has,
//! [`twostep_common::reset::ways_left`]) → the proof → another one of
//! another kind when the user registered two kinds or more
//! ([`twostep_common::reset::proofs_needed`]) → the new password, which
//! ends every page session of the user, audited.
//!
//! A reset in progress is a `password_resets` row named by the SHA-256 of
//! its own cookie. An unknown name (or a disabled user, or one without a
//! page password) gets a row too, with no user: the same pages, the same
//! work, so the answers tell nothing about the account:
//!
//! - the choose page lists ways chosen from the name by the page key
//!   ([`twostep_common::reset::decoy_ways`]), the same at every visit;
//! - an emailed code is generated and hashed but sent nowhere;
//! - questions chosen from the name by the page key are checked against a
//!   dummy hash;
//! - a push shows a number and waits, and is never approved: it times out
//!   after the push challenge lifetime, as an unanswered one does;
//! - "code sent" to a phone sends nothing; the code typed is wrong, with
//!   the tries and the life of a real code;
//! - a security key is asked for credential ids `webauthn-rs` makes up
//!   from the name, and no answer passes.
//!
//! A real user's push or phone code that could not be sent (rate limit,
//! fraud block, gateway down) looks the same as a decoy's: it never
//! arrives; the audit says why. So does a push the user denied, reported
//! as fraud or answered with the wrong number: the page shows it waiting
//! until its expiry, then timed out; only an approval shows. Phone codes are sent, and checked, in the
//! background of the answer, so the time taken does not tell either.
//!
//! Every send (email, push, phone code) and every failed proof counts
//! toward the limit per name and per address with the sign-in limiter's
//! windows ([`super::throttle`], names of their own), and is audited. A
//! push for a reset names the service `portal-reset` and always carries a
//! number to match; a deny reported as fraud blocks the user's pushes as
//! everywhere.

use super::pages::{
    self, render, render_status, Chrome, PushPage, ResetChoosePage, ResetCodePage, ResetOption,
    ResetPasswordPage, ResetQuestionsPage, ResetStartPage, SecurityKeySignInPage,
};
use super::push::{self, Ask};
use super::reset_methods::{answers_of, email_of};
use super::security_key::{AnswerForm, Owner};
use super::session::{self, CsrfForm, Visit};
use super::signin::audit;
use super::throttle::Keys;
use super::{Exit, PageResult, Portal};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sqlx::Row;
use std::collections::BTreeSet;
use std::sync::Arc;
use twostep_common::api::{AuthContext, MethodKind, VerifyRequest, VerifyResult};
use twostep_common::phone::{Channel, SendResult, CODE_LIFETIME_SECS, CODE_MAX_TRIES};
use twostep_common::portal::check_password;
use twostep_common::push::PushResult;
use twostep_common::reset::{
    decoy_ways, email_code_usable, generate_email_code, kinds_of, normalise_answer,
    normalise_email_code, reset_complete, ways_left, ways_of, Available, ProofKind, ProofWay,
    Registered, EMAIL_CODE_LIFETIME_SECS, EMAIL_CODE_TRIES, QUESTIONS, QUESTIONS_NEEDED,
    RESET_LIFETIME_SECS,
};

/// The answer once a name or address has failed too often.
pub const TOO_MANY: &str = "Too many attempts. Wait 15 minutes, then try again.";
const WRONG_CODE: &str = "That code didn't work. Check it and try again.";
const CODE_GONE: &str =
    "That code has expired, was used already or had too many wrong tries. Send a new code.";
const WRONG_ANSWERS: &str =
    "Those answers don't match. Check them (capital letters and spaces don't matter) and try again.";
/// Longest username kept for a reset (longer ones cannot exist).
const MAX_NAME_CHARS: usize = 64;

/// Name of the cookie naming a reset in progress.
pub fn reset_cookie_name(tls: bool) -> &'static str {
    if tls {
        "__Host-twostep-reset"
    } else {
        "twostep-reset"
    }
}

/// The sign-in limiter's counters, under names of their own.
fn keys(username: &str, peer: Option<&str>) -> Keys {
    Keys::new(
        &format!("reset:{username}"),
        peer.map(|a| format!("reset:{a}")).as_deref(),
    )
}

/// A reset in progress.
#[derive(Debug, Clone)]
struct Reset {
    id_hash: String,
    username: String,
    /// `None` for a name that cannot be reset (unknown, disabled, no page
    /// password).
    user_id: Option<i64>,
    proofs: BTreeSet<ProofKind>,
    code_hash: Option<String>,
    code_expires_at: i64,
    code_tries_left: i64,
    /// The push challenge waited for (a real user's, when one was sent).
    push_challenge: Option<String>,
    /// The number and expiry shown when no challenge was sent.
    push_number: Option<i64>,
    push_expires_at: Option<i64>,
    /// The phone code sent (`sent_codes` row), when one went out.
    phone_sent_id: Option<i64>,
    /// The channel of the last phone send, and the life and tries of a
    /// code that was not sent.
    phone_channel: Option<Channel>,
    phone_expires_at: i64,
    phone_tries_left: i64,
}

impl Reset {
    fn keys(&self, v: &Visit) -> Keys {
        keys(&self.username, v.peer.as_deref())
    }

    fn owner(&self) -> Option<Owner<'_>> {
        self.user_id.map(|user_id| Owner {
            id_hash: &self.id_hash,
            user_id,
            username: &self.username,
        })
    }
}

fn proofs_text(proofs: &BTreeSet<ProofKind>) -> String {
    proofs
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

async fn load(p: &Portal, headers: &HeaderMap) -> Result<Option<Reset>, Exit> {
    let Some(id) = session::cookie(headers, reset_cookie_name(p.settings().tls)) else {
        return Ok(None);
    };
    let id_hash = session::token_hash(&id);
    let row = sqlx::query(
        "SELECT username, user_id, proofs, code_hash, code_expires_at, code_tries_left,
                push_challenge, push_number, push_expires_at, phone_sent_id, phone_channel,
                phone_expires_at, phone_tries_left
         FROM password_resets WHERE id_hash = $1 AND expires_at > $2",
    )
    .bind(&id_hash)
    .bind(p.now())
    .fetch_optional(&p.app.pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let proofs: String = r.try_get("proofs")?;
    Ok(Some(Reset {
        id_hash,
        username: r.try_get("username")?,
        user_id: r.try_get("user_id")?,
        proofs: proofs.split(',').filter_map(ProofKind::parse).collect(),
        code_hash: r.try_get("code_hash")?,
        code_expires_at: r.try_get::<Option<i64>, _>("code_expires_at")?.unwrap_or(0),
        code_tries_left: r.try_get("code_tries_left")?,
        push_challenge: r.try_get("push_challenge")?,
        push_number: r.try_get("push_number")?,
        push_expires_at: r.try_get("push_expires_at")?,
        phone_sent_id: r.try_get("phone_sent_id")?,
        phone_channel: r
            .try_get::<Option<String>, _>("phone_channel")?
            .as_deref()
            .and_then(Channel::from_name),
        phone_expires_at: r
            .try_get::<Option<i64>, _>("phone_expires_at")?
            .unwrap_or(0),
        phone_tries_left: r
            .try_get::<Option<i64>, _>("phone_tries_left")?
            .unwrap_or(0),
    }))
}

/// The reset of this visitor, or back to its first page.
async fn current(p: &Portal, headers: &HeaderMap) -> Result<Reset, Exit> {
    load(p, headers)
        .await?
        .ok_or_else(|| Exit::Redirect("/my/reset?done=expired".into()))
}

/// A page of the reset, for [`show`] and [`attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Choose,
    Email,
    Questions,
    App,
    Push,
    Phone,
    Key,
}

/// The page of `step` for `r`.
async fn step_page(
    p: &Portal,
    v: &Visit,
    r: &Reset,
    step: Step,
    status: StatusCode,
    error: Option<&'static str>,
) -> PageResult {
    match step {
        Step::Choose => choose_page(p, v, r, status, error).await,
        Step::Email => email_page(p, v, r, status, error).await,
        Step::Questions => questions_page(p, v, r, status, error).await,
        Step::App => app_page(p, v, r, status, error).await,
        Step::Push => push_page(p, v, r, status, error).await,
        Step::Phone => phone_page(p, v, r, status, error).await,
        Step::Key => key_page(p, v, r, status, error).await,
    }
}

/// `GET` of a step: the visitor's reset on the page of `step`.
async fn show(p: &Portal, v: &Visit, headers: &HeaderMap, step: Step) -> PageResult {
    let r = current(p, headers).await?;
    step_page(p, v, &r, step, StatusCode::OK, None).await
}

/// The visitor's reset for an attempt at `step` (a proof, or with
/// `Step::Choose` a send): `Err` with the page of `step` saying "Too many
/// attempts" (429) when the name or the address is throttled.
async fn attempt(
    p: &Portal,
    v: &Visit,
    headers: &HeaderMap,
    step: Step,
) -> Result<Reset, PageResult> {
    let r = current(p, headers).await.map_err(Err)?;
    match p.throttled(&r.keys(v)).await {
        Ok(false) => Ok(r),
        Ok(true) => Err(step_page(
            p,
            v,
            &r,
            step,
            StatusCode::TOO_MANY_REQUESTS,
            Some(TOO_MANY),
        )
        .await),
        Err(e) => Err(Err(e.into())),
    }
}

/// What this registry can send or check for a reset.
fn available(p: &Portal) -> Available {
    Available {
        email: p.app.mailer.is_some(),
        sms: p.app.gateways.has(Channel::Sms),
        voice: p.app.gateways.has(Channel::Voice),
        security_keys: p.settings().security_keys.is_some(),
    }
}

/// What `uid` registered that can prove them: their enabled, confirmed
/// methods that work (a TOTP secret, a push device's key, a phone number,
/// a key's credential), an open temporary access code or backup codes
/// beside a method, a proven email address, enough security questions.
async fn registered(p: &Portal, uid: i64) -> Result<Registered, Exit> {
    let methods = sqlx::query(
        "SELECT kind FROM methods WHERE user_id = $1 AND disabled = 0 AND pending = 0
         AND ((kind = 'totp' AND secret_sealed IS NOT NULL)
              OR (kind = 'push' AND public_key IS NOT NULL)
              OR (kind IN ('sms', 'voice') AND phone_sealed IS NOT NULL)
              OR (kind = 'security_key' AND credential IS NOT NULL))",
    )
    .bind(uid)
    .fetch_all(&p.app.pool)
    .await?
    .iter()
    .filter_map(|r| {
        r.try_get::<String, _>("kind")
            .ok()
            .and_then(|k| MethodKind::parse(&k))
    })
    .collect::<Vec<_>>();
    let any_method =
        sqlx::query("SELECT 1 FROM methods WHERE user_id = $1 AND pending = 0 LIMIT 1")
            .bind(uid)
            .fetch_optional(&p.app.pool)
            .await?
            .is_some();
    let recovery_code = crate::recovery::open_until(&p.app.pool, uid, p.now())
        .await?
        .is_some()
        || (any_method
            && crate::recovery::backup_codes_left(&p.app.pool, uid)
                .await?
                .unwrap_or(0)
                > 0);
    Ok(Registered {
        methods,
        recovery_code,
        email: email_of(p, uid).await?.is_some(),
        questions: answers_of(p, uid).await?.len() >= QUESTIONS_NEEDED,
    })
}

/// The page key's MAC of `what` and the name, as bytes: the same for a
/// name at every visit, unknown to anyone without the key.
async fn name_mac(p: &Portal, what: &str, username: &str) -> Result<Vec<u8>, Exit> {
    let mac = p
        .key()
        .await?
        .csrf(&format!("{what}\0{}", username.to_lowercase()));
    Ok(hex::decode(mac).unwrap_or_default())
}

/// The ways `r` can prove itself: the user's, or for a name that cannot
/// be reset (and a user with no way at all, who can never reset either)
/// the decoy ways of its name.
async fn ways(p: &Portal, r: &Reset) -> Result<BTreeSet<ProofWay>, Exit> {
    let own = match r.user_id {
        Some(uid) => ways_of(&registered(p, uid).await?, &available(p)),
        None => BTreeSet::new(),
    };
    if !own.is_empty() {
        return Ok(own);
    }
    Ok(decoy_ways(
        &name_mac(p, "reset-ways", &r.username).await?,
        &available(p),
    ))
}

/// The kinds of proof `user_id` registered (none without a user).
async fn kinds(p: &Portal, user_id: Option<i64>) -> Result<BTreeSet<ProofKind>, Exit> {
    let Some(uid) = user_id else {
        return Ok(BTreeSet::new());
    };
    Ok(kinds_of(&ways_of(
        &registered(p, uid).await?,
        &available(p),
    )))
}

// ---- the username --------------------------------------------------------------

async fn start_page(
    p: &Portal,
    v: &Visit,
    status: StatusCode,
    error: Option<&'static str>,
    username: &str,
) -> PageResult {
    let (csrf, set) = v.form_token(p).await?;
    let page = ResetStartPage {
        chrome: Chrome::new(p, "Reset your password", "", csrf, None),
        error,
        username: username.to_owned(),
    };
    Ok(pages::with_cookie(render_status(status, &page)?, set))
}

/// `GET /my/reset`: "Forgot password?".
pub async fn start(
    State(p): State<Arc<Portal>>,
    v: Visit,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> PageResult {
    let params: super::signin::Params = super::signin::query(q);
    let error = (params.done.as_deref() == Some("expired"))
        .then_some("That reset took too long. Start again.");
    start_page(&p, &v, StatusCode::OK, error, "").await
}

#[derive(Deserialize)]
pub struct UsernameForm {
    #[serde(default)]
    username: String,
}

/// `POST /my/reset`: starts a reset for the name typed, known or not.
pub async fn begin(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<UsernameForm>,
) -> PageResult {
    let username: String = f.username.trim().chars().take(MAX_NAME_CHARS).collect();
    if username.is_empty() {
        return start_page(&p, &v, StatusCode::OK, Some("Enter your username."), "").await;
    }
    let peer = v.peer.as_deref();
    if p.throttled(&keys(&username, peer)).await? {
        return start_page(
            &p,
            &v,
            StatusCode::TOO_MANY_REQUESTS,
            Some(TOO_MANY),
            &username,
        )
        .await;
    }
    let user = super::signin::login_row(&p, &username).await?;
    // Only an enabled user with a page password can be reset; the others
    // go through the same pages with no user behind them.
    let (user_id, result) = match &user {
        None => (None, "unknown_user"),
        Some(r) if r.try_get::<i64, _>("disabled")? != 0 => (None, "disabled"),
        Some(r) if r.try_get::<Option<String>, _>("password_hash")?.is_none() => {
            (None, "no_password")
        }
        Some(r) => (Some(r.try_get::<i64, _>("id")?), "started"),
    };
    let now = p.now();
    sqlx::query("DELETE FROM password_resets WHERE expires_at <= $1")
        .bind(now)
        .execute(&p.app.pool)
        .await?;
    let id = crate::crypto::random_token();
    sqlx::query(
        "INSERT INTO password_resets (id_hash, username, user_id, created_at, expires_at, remote_addr)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(session::token_hash(id.as_str()))
    .bind(&username)
    .bind(user_id)
    .bind(now)
    .bind(now + RESET_LIFETIME_SECS)
    .bind(peer)
    .execute(&p.app.pool)
    .await?;
    audit(
        &p.app.pool,
        &p,
        &username,
        "portal.reset",
        result,
        peer,
        None,
    )
    .await?;
    let tls = p.settings().tls;
    let cookie = session::set_cookie(
        reset_cookie_name(tls),
        id.as_str(),
        RESET_LIFETIME_SECS,
        tls,
    );
    Ok(pages::redirect_with("/my/reset/verify", [cookie]))
}

// ---- choose a proof ------------------------------------------------------------

async fn choose_page(
    p: &Portal,
    v: &Visit,
    r: &Reset,
    status: StatusCode,
    error: Option<&'static str>,
) -> PageResult {
    let (csrf, set) = v.form_token(p).await?;
    let page = ResetChoosePage {
        chrome: Chrome::new(p, "Prove it's you", "", csrf, None),
        username: r.username.clone(),
        done: r
            .proofs
            .iter()
            .map(|k| k.words())
            .collect::<Vec<_>>()
            .join(", "),
        error,
        options: ways_left(&ways(p, r).await?, &r.proofs)
            .into_iter()
            .map(option)
            .collect(),
    };
    Ok(pages::with_cookie(render_status(status, &page)?, set))
}

/// How the choose page offers `way`.
fn option(way: ProofWay) -> ResetOption {
    let (href, post, channel, title, text) = match way {
        ProofWay::AppPush => (
            "/my/reset/push/send",
            true,
            None,
            "Approve a request in my app",
            "We send a request to your authenticator app: approve it by choosing the number shown here.",
        ),
        ProofWay::AppCode => (
            "/my/reset/app",
            false,
            None,
            "Enter a code from my authenticator app",
            "Or a temporary access code from your help desk, or a backup code.",
        ),
        ProofWay::Text => (
            "/my/reset/phone/send",
            true,
            Some("sms"),
            "Text me a code",
            "A 6-digit code goes by text message to the phone registered for your account.",
        ),
        ProofWay::Call => (
            "/my/reset/phone/send",
            true,
            Some("voice"),
            "Call me with a code",
            "We call the phone registered for your account and read out a 6-digit code.",
        ),
        ProofWay::SecurityKey => (
            "/my/reset/security-key",
            false,
            None,
            "Use my security key",
            "The key you added on the Security info page.",
        ),
        ProofWay::Email => (
            "/my/reset/email/send",
            true,
            None,
            "Email me a code",
            "A 6-digit code goes to the email address registered for your account.",
        ),
        ProofWay::Questions => (
            "/my/reset/questions",
            false,
            None,
            "Answer my security questions",
            "The answers you gave on the Security info page.",
        ),
    };
    ResetOption {
        href,
        post,
        channel,
        title,
        text,
    }
}

/// `GET /my/reset/verify`.
pub async fn choose(State(p): State<Arc<Portal>>, v: Visit, headers: HeaderMap) -> PageResult {
    show(&p, &v, &headers, Step::Choose).await
}

/// After a proof passed: the new password when the reset is complete,
/// else another proof.
async fn after_proof(p: &Portal, r: &Reset, kind: ProofKind, peer: Option<&str>) -> PageResult {
    let mut proofs = r.proofs.clone();
    proofs.insert(kind);
    sqlx::query("UPDATE password_resets SET proofs = $2 WHERE id_hash = $1")
        .bind(&r.id_hash)
        .bind(proofs_text(&proofs))
        .execute(&p.app.pool)
        .await?;
    audit(
        &p.app.pool,
        p,
        &r.username,
        "portal.reset_proof",
        kind.as_str(),
        peer,
        None,
    )
    .await?;
    let complete = reset_complete(&kinds(p, r.user_id).await?, &proofs);
    Err(Exit::Redirect(
        if complete {
            "/my/reset/password"
        } else {
            "/my/reset/verify"
        }
        .into(),
    ))
}

/// Counts and audits a failed proof.
async fn failed(p: &Portal, v: &Visit, r: &Reset, result: &str) -> Result<(), Exit> {
    p.count_failure(&r.keys(v)).await?;
    audit(
        &p.app.pool,
        p,
        &r.username,
        "portal.reset_proof",
        result,
        v.peer.as_deref(),
        None,
    )
    .await?;
    Ok(())
}

// ---- emailed code --------------------------------------------------------------

async fn email_page(
    p: &Portal,
    v: &Visit,
    r: &Reset,
    status: StatusCode,
    error: Option<&'static str>,
) -> PageResult {
    let (csrf, set) = v.form_token(p).await?;
    let page = ResetCodePage {
        chrome: Chrome::new(p, "Enter the emailed code", "", csrf, None),
        username: r.username.clone(),
        heading: "Check your email",
        intro: "If your account has a registered email address, we've sent a 6-digit code to it. It works once, for 15 minutes.",
        label: "Code from the email",
        wide: false,
        action: "/my/reset/email",
        back: "/my/reset/verify",
        resend: Some("/my/reset/email/send"),
        error,
    };
    Ok(pages::with_cookie(render_status(status, &page)?, set))
}

/// `POST /my/reset/email/send`: a new code, sent to the registered
/// address when there is one; an earlier code stops working.
pub async fn email_send(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> PageResult {
    let Some(mailer) = p.app.mailer.clone() else {
        return Err(Exit::Redirect("/my/reset/verify".into()));
    };
    let r = match attempt(&p, &v, &headers, Step::Choose).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    // Every code sent counts toward the limit, so the page cannot be used
    // to flood a mailbox.
    p.count_failure(&r.keys(&v)).await?;
    let code = generate_email_code();
    let hash = p.hash_password(&code).await?;
    sqlx::query(
        "UPDATE password_resets SET code_hash = $2, code_expires_at = $3, code_tries_left = $4
         WHERE id_hash = $1",
    )
    .bind(&r.id_hash)
    .bind(&hash)
    .bind(p.now() + EMAIL_CODE_LIFETIME_SECS)
    .bind(EMAIL_CODE_TRIES)
    .execute(&p.app.pool)
    .await?;
    let to = match r.user_id {
        Some(uid) => email_of(&p, uid).await?,
        None => None,
    };
    let sent = if to.is_some() {
        "code_sent"
    } else {
        "no_address"
    };
    audit(
        &p.app.pool,
        &p,
        &r.username,
        "portal.reset_email",
        sent,
        v.peer.as_deref(),
        None,
    )
    .await?;
    if let Some(address) = to {
        // Sent in the background: the answer takes the same time whether
        // or not a message goes out.
        let username = r.username.clone();
        let body = format!(
            "Hello {username},\n\nYour code to reset your {issuer} password is:\n\n    {code}\n\nIt works once, for 15 minutes. If you didn't ask for it, someone may be trying to get into your account: don't share the code, and tell your administrator.\n",
            issuer = p.app.issuer,
        );
        tokio::spawn(async move {
            if let Err(e) = mailer
                .send(&address, "Your password reset code", body)
                .await
            {
                tracing::warn!(error = %e, username = %username, "could not send a password reset code");
            }
        });
    }
    Err(Exit::Redirect("/my/reset/email".into()))
}

/// `GET /my/reset/email`.
pub async fn email_page_get(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
) -> PageResult {
    show(&p, &v, &headers, Step::Email).await
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

/// `POST /my/reset/email`: the emailed code; right once, within 15
/// minutes, at most 5 tries.
pub async fn email_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
    CsrfForm(f): CsrfForm<CodeForm>,
) -> PageResult {
    let r = match attempt(&p, &v, &headers, Step::Email).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let Some(hash) = r
        .code_hash
        .clone()
        .filter(|_| email_code_usable(p.now(), r.code_expires_at, r.code_tries_left))
    else {
        failed(&p, &v, &r, "email_code_expired").await?;
        return email_page(&p, &v, &r, StatusCode::OK, Some(CODE_GONE)).await;
    };
    let typed = normalise_email_code(&f.code).unwrap_or_default();
    if !p.verify_password(Some(&hash), &typed).await? {
        sqlx::query(
            "UPDATE password_resets SET code_tries_left = code_tries_left - 1 WHERE id_hash = $1",
        )
        .bind(&r.id_hash)
        .execute(&p.app.pool)
        .await?;
        failed(&p, &v, &r, "wrong_email_code").await?;
        return email_page(&p, &v, &r, StatusCode::OK, Some(WRONG_CODE)).await;
    }
    // Used once: only the statement that clears it counts the proof.
    let n = sqlx::query(
        "UPDATE password_resets SET code_hash = NULL WHERE id_hash = $1 AND code_hash = $2",
    )
    .bind(&r.id_hash)
    .bind(&hash)
    .execute(&p.app.pool)
    .await?
    .rows_affected();
    if n == 0 {
        return email_page(&p, &v, &r, StatusCode::OK, Some(CODE_GONE)).await;
    }
    after_proof(&p, &r, ProofKind::Email, v.peer.as_deref()).await
}

// ---- security questions --------------------------------------------------------

/// The questions asked of `r`: the user's own when they registered
/// enough, else [`QUESTIONS_NEEDED`] chosen from the name with the page
/// key (the same ones at every visit, for any name), with no hashes.
async fn asked(p: &Portal, r: &Reset) -> Result<Vec<(usize, Option<String>)>, Exit> {
    if let Some(uid) = r.user_id {
        let own = answers_of(p, uid).await?;
        if own.len() >= QUESTIONS_NEEDED {
            return Ok(own
                .into_iter()
                .take(QUESTIONS_NEEDED)
                .map(|(q, h)| (q, Some(h)))
                .collect());
        }
    }
    let mac = p
        .key()
        .await?
        .csrf(&format!("reset-questions\0{}", r.username.to_lowercase()));
    let mut picked = Vec::with_capacity(QUESTIONS_NEEDED);
    for pair in mac.as_bytes().chunks(2) {
        let n = usize::from(
            u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("0"), 16).unwrap_or(0),
        );
        let q = n % QUESTIONS.len();
        if !picked.contains(&q) {
            picked.push(q);
        }
        if picked.len() == QUESTIONS_NEEDED {
            break;
        }
    }
    let mut q = 0;
    while picked.len() < QUESTIONS_NEEDED {
        if !picked.contains(&q) {
            picked.push(q);
        }
        q += 1;
    }
    Ok(picked.into_iter().map(|q| (q, None)).collect())
}

async fn questions_page(
    p: &Portal,
    v: &Visit,
    r: &Reset,
    status: StatusCode,
    error: Option<&'static str>,
) -> PageResult {
    let (csrf, set) = v.form_token(p).await?;
    let page = ResetQuestionsPage {
        chrome: Chrome::new(p, "Security questions", "", csrf, None),
        username: r.username.clone(),
        questions: asked(p, r)
            .await?
            .iter()
            .map(|(q, _)| QUESTIONS[*q])
            .collect(),
        error,
    };
    Ok(pages::with_cookie(render_status(status, &page)?, set))
}

/// `GET /my/reset/questions`.
pub async fn questions_get(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
) -> PageResult {
    show(&p, &v, &headers, Step::Questions).await
}

#[derive(Deserialize)]
pub struct AnswersForm {
    #[serde(default)]
    answer1: String,
    #[serde(default)]
    answer2: String,
    #[serde(default)]
    answer3: String,
}

/// `POST /my/reset/questions`: every answer must match.
pub async fn questions_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
    CsrfForm(f): CsrfForm<AnswersForm>,
) -> PageResult {
    let r = match attempt(&p, &v, &headers, Step::Questions).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let typed = [&f.answer1, &f.answer2, &f.answer3];
    let mut all = true;
    // Every answer is checked (a dummy hash where there is none), so the
    // time taken tells nothing.
    for ((_, hash), answer) in asked(&p, &r).await?.iter().zip(typed) {
        let a = normalise_answer(answer);
        let a: String = a
            .chars()
            .take(twostep_common::reset::MAX_ANSWER_BYTES)
            .collect();
        all &= p.verify_password(hash.as_deref(), &a).await?;
    }
    if !all {
        failed(&p, &v, &r, "wrong_answers").await?;
        return questions_page(&p, &v, &r, StatusCode::OK, Some(WRONG_ANSWERS)).await;
    }
    after_proof(&p, &r, ProofKind::Questions, v.peer.as_deref()).await
}

// ---- a code from a two-step method ---------------------------------------------

async fn app_page(
    p: &Portal,
    v: &Visit,
    r: &Reset,
    status: StatusCode,
    error: Option<&'static str>,
) -> PageResult {
    let (csrf, set) = v.form_token(p).await?;
    let page = ResetCodePage {
        chrome: Chrome::new(p, "Enter a code", "", csrf, None),
        username: r.username.clone(),
        heading: "Enter a code from your app",
        intro: "Enter the code your authenticator app shows, a temporary access code from your help desk, or one of your backup codes.",
        label: "Code",
        wide: true,
        action: "/my/reset/app",
        back: "/my/reset/verify",
        resend: None,
        error,
    };
    Ok(pages::with_cookie(render_status(status, &page)?, set))
}

/// `GET /my/reset/app`.
pub async fn app_get(State(p): State<Arc<Portal>>, v: Visit, headers: HeaderMap) -> PageResult {
    show(&p, &v, &headers, Step::App).await
}

/// `POST /my/reset/app`: the registry's verification (replay rule,
/// lockout, audit as for PAM and RADIUS); every refusal reads the same.
/// The proof is of the kind of the method that matched
/// ([`ProofKind::of_method`]).
pub async fn app_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
    CsrfForm(f): CsrfForm<CodeForm>,
) -> PageResult {
    let r = match attempt(&p, &v, &headers, Step::App).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let code = f.code.trim();
    // Every name goes through the verification (an unknown one answers
    // `unknown_user` there), so the time taken tells nothing; a code
    // accepted for a name that cannot be reset completes nothing
    // (`ready`).
    let verdict = if twostep_common::recovery::is_second_factor_format(code) {
        let req = VerifyRequest {
            username: r.username.clone(),
            code: code.to_owned(),
            context: AuthContext {
                service: Some("portal-reset".into()),
                host: None,
                remote_addr: v.peer.clone(),
                tty: None,
            },
        };
        let resp = crate::verify::verify_as(
            &p.app,
            "portal",
            None,
            twostep_common::methods::Place::Page,
            // A stranger can start a reset for any name: their wrong codes
            // must not lock the user out of logins (the limiter bounds them).
            crate::verify::Failures::NotCounted,
            &req,
        )
        .await?;
        (resp.result == VerifyResult::Accept).then_some(resp.method_id)
    } else {
        None
    };
    let Some(method) = verdict else {
        failed(&p, &v, &r, "wrong_code").await?;
        return app_page(&p, &v, &r, StatusCode::OK, Some(WRONG_CODE)).await;
    };
    // The kind of the device behind the code: a phone's login code typed
    // here proves the phone, not the app (one device never counts twice);
    // temporary access and backup codes are the app's kind.
    let kind = match method {
        Some(id) => sqlx::query("SELECT kind FROM methods WHERE id = $1")
            .bind(id)
            .fetch_optional(&p.app.pool)
            .await?
            .and_then(|row| row.try_get::<String, _>("kind").ok())
            .and_then(|k| MethodKind::parse(&k))
            .map_or(ProofKind::App, ProofKind::of_method),
        None => ProofKind::App,
    };
    after_proof(&p, &r, kind, v.peer.as_deref()).await
}

// ---- a push approved in the app -----------------------------------------------

const PUSH_PAGE: &str = "/my/reset/push";

/// The reset's push as it stands: its result as the page shows it, its
/// number and expiry, and its result as recorded. A request that was not
/// sent stays pending until its expiry, then expired, as an unanswered
/// one; so does a real user's denial, fraud report or wrong number
/// ([`shown_result`]).
async fn push_state(
    p: &Portal,
    r: &Reset,
) -> Result<Option<(PushResult, Option<u8>, i64, PushResult)>, Exit> {
    if let (Some(uid), Some(id)) = (r.user_id, &r.push_challenge) {
        if let Some(c) = push::current(p, uid, id).await? {
            let shown = shown_result(c.result, p.now() < c.expires_at);
            return Ok(Some((shown, c.number, c.expires_at, c.result)));
        }
    }
    Ok(r.push_expires_at.map(|t| {
        let result = shown_result(PushResult::Pending, p.now() < t);
        let number = r.push_number.and_then(|n| u8::try_from(n).ok());
        (result, number, t, result)
    }))
}

/// What the reset page shows of a push whose result is `result`, while
/// `running` (before its expiry) or after: only what a decoy's push
/// (never answered) could show too, and an approval. Whoever started the
/// reset may not be the user; a denial would tell them the account exists
/// and someone holds its phone. The audit keeps the real result.
fn shown_result(result: PushResult, running: bool) -> PushResult {
    match result {
        PushResult::Approved => PushResult::Approved,
        _ if running => PushResult::Pending,
        _ => PushResult::Expired,
    }
}

async fn push_page(
    p: &Portal,
    v: &Visit,
    r: &Reset,
    status: StatusCode,
    error: Option<&'static str>,
) -> PageResult {
    let (csrf, set) = v.form_token(p).await?;
    let (waiting, number, seconds, message) = match push_state(p, r).await? {
        Some((PushResult::Pending, n, t, _)) => (true, n, push::seconds_left(p, t), None),
        Some((result, _, _, _)) => (false, None, 0, Some(push::result_text(result))),
        None => (false, None, 0, None),
    };
    let heading = "Approve the request in your app";
    let page = PushPage {
        chrome: Chrome::new(p, heading, "", csrf, None),
        heading,
        action: PUSH_PAGE,
        resend_action: "/my/reset/push/send",
        next: None,
        error,
        waiting,
        number,
        seconds,
        // Never the devices' names: they would tell the account exists.
        devices: "your phone".to_owned(),
        message,
        can_send: true,
        code_alt: None,
        key_alt: None,
        username: r.username.clone(),
        script: push::script_src(),
        status_url: "/my/reset/push-status",
        back: Some("/my/reset/verify"),
    };
    Ok(pages::with_cookie(render_status(status, &page)?, set))
}

/// `POST /my/reset/push/send`: a request to the user's devices (the one
/// waited for before is cancelled), saying it is for a password reset
/// (`portal-reset`) with a number to match. Counted toward the limit.
pub async fn push_send(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> PageResult {
    let r = match attempt(&p, &v, &headers, Step::Choose).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    // Every request sent counts, so the page cannot be used to flood a
    // phone with requests.
    p.count_failure(&r.keys(&v)).await?;
    if let Some(old) = &r.push_challenge {
        push::cancel(&p, old).await?;
    }
    let (challenge, result) = match r.user_id {
        Some(_) => match push::send(&p, &r.username, Ask::Reset, None, v.peer.as_deref()).await? {
            Ok(c) => (Some(c.challenge_id), "sent"),
            Err(why) => (None, why.as_str()),
        },
        None => (None, "no_user"),
    };
    let number = {
        use rand::Rng;
        i64::from(rand::rngs::OsRng.gen_range(10u8..=99))
    };
    let lifetime = i64::try_from(p.app.push.config.challenge_lifetime).unwrap_or(60);
    sqlx::query(
        "UPDATE password_resets SET push_challenge = $2, push_number = $3, push_expires_at = $4
         WHERE id_hash = $1",
    )
    .bind(&r.id_hash)
    .bind(challenge)
    .bind(number)
    .bind(p.now() + lifetime)
    .execute(&p.app.pool)
    .await?;
    audit(
        &p.app.pool,
        &p,
        &r.username,
        "portal.reset_push",
        result,
        v.peer.as_deref(),
        None,
    )
    .await?;
    Err(Exit::Redirect(PUSH_PAGE.into()))
}

/// `GET /my/reset/push`: the request as it stands.
pub async fn push_get(State(p): State<Arc<Portal>>, v: Visit, headers: HeaderMap) -> PageResult {
    let r = current(&p, &headers).await?;
    if r.push_expires_at.is_none() {
        return Err(Exit::Redirect("/my/reset/verify".into()));
    }
    push_page(&p, &v, &r, StatusCode::OK, None).await
}

/// `GET /my/reset/push-status`: `{"status": "pending" | "approved" | …}`
/// of the reset's request (`none` when there is none), for
/// `push-wait.js`.
pub async fn push_status(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
) -> Result<Response, Exit> {
    let word = match load(&p, &headers).await? {
        Some(r) => match push_state(&p, &r).await? {
            Some((result, _, _, _)) => result.as_str(),
            None => "none",
        },
        None => "none",
    };
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"status\":\"{word}\"}}"),
    )
        .into_response())
}

/// `POST /my/reset/push`: Continue (the live wait submits it too). Only
/// an approval of the reset's own challenge, read back from the registry,
/// proves the app; it is used once.
pub async fn push_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> PageResult {
    let r = match attempt(&p, &v, &headers, Step::Push).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    match push_state(&p, &r).await? {
        Some((PushResult::Approved, _, _, _)) => {
            let n = sqlx::query(
                "UPDATE password_resets SET push_challenge = NULL, push_expires_at = NULL
                 WHERE id_hash = $1 AND push_challenge = $2",
            )
            .bind(&r.id_hash)
            .bind(r.push_challenge.as_deref())
            .execute(&p.app.pool)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(Exit::Redirect("/my/reset/verify".into()));
            }
            after_proof(&p, &r, ProofKind::App, v.peer.as_deref()).await
        }
        Some((PushResult::Pending, _, _, _)) => {
            let say = push::result_text(PushResult::Pending);
            push_page(&p, &v, &r, StatusCode::OK, Some(say)).await
        }
        Some((_, _, _, recorded)) => {
            failed(&p, &v, &r, &format!("push_{}", recorded.as_str())).await?;
            push_page(&p, &v, &r, StatusCode::OK, None).await
        }
        None => Err(Exit::Redirect("/my/reset/verify".into())),
    }
}

// ---- a code by text message or call --------------------------------------------

const PHONE_PAGE: &str = "/my/reset/phone";

async fn phone_page(
    p: &Portal,
    v: &Visit,
    r: &Reset,
    status: StatusCode,
    error: Option<&'static str>,
) -> PageResult {
    let (csrf, set) = v.form_token(p).await?;
    let (heading, intro) = match r.phone_channel {
        Some(Channel::Voice) => (
            "Answer your phone",
            "If your account has a phone registered for calls, we're calling it to read out a 6-digit code. It works once, for 5 minutes.",
        ),
        _ => (
            "Check your phone",
            "If your account has a phone registered for text messages, we've sent a 6-digit code to it. It works once, for 5 minutes.",
        ),
    };
    let page = ResetCodePage {
        chrome: Chrome::new(p, "Enter the code", "", csrf, None),
        username: r.username.clone(),
        heading,
        intro,
        label: "Code",
        wide: false,
        action: PHONE_PAGE,
        back: "/my/reset/verify",
        resend: Some("/my/reset/phone/resend"),
        error,
    };
    Ok(pages::with_cookie(render_status(status, &page)?, set))
}

#[derive(Deserialize)]
pub struct ChannelForm {
    #[serde(default)]
    channel: String,
}

/// Sends a code by `channel` to the user's phone for it: in the
/// background (the answer takes the same time whether or not a code goes
/// out), the code's row kept with the reset once it went out.
async fn phone_send_by(p: &Arc<Portal>, v: &Visit, r: &Reset, channel: Channel) -> PageResult {
    // Every code sent counts toward the limit, as emailed ones.
    p.count_failure(&r.keys(v)).await?;
    sqlx::query(
        "UPDATE password_resets SET phone_sent_id = NULL, phone_channel = $2,
           phone_expires_at = $3, phone_tries_left = $4
         WHERE id_hash = $1",
    )
    .bind(&r.id_hash)
    .bind(channel.as_str())
    .bind(p.now() + CODE_LIFETIME_SECS)
    .bind(CODE_MAX_TRIES)
    .execute(&p.app.pool)
    .await?;
    let (p2, r2, peer) = (Arc::clone(p), r.clone(), v.peer.clone());
    let send = tokio::spawn(async move {
        let result = match phone_send_now(&p2, &r2, channel, peer.as_deref()).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = ?e, username = %r2.username, "could not send a password reset phone code");
                "error"
            }
        };
        if let Err(e) = audit(
            &p2.app.pool,
            &p2,
            &r2.username,
            "portal.reset_phone",
            result,
            peer.as_deref(),
            Some(format!("channel={channel}")),
        )
        .await
        {
            tracing::warn!(error = ?e, "could not audit a password reset phone code");
        }
    });
    drop(send);
    Err(Exit::Redirect(PHONE_PAGE.into()))
}

/// The send itself: the audit word.
async fn phone_send_now(
    p: &Portal,
    r: &Reset,
    channel: Channel,
    peer: Option<&str>,
) -> Result<&'static str, Exit> {
    let Some(uid) = r.user_id else {
        return Ok("no_user");
    };
    let Some(method) = crate::phone::method_for(&p.app, uid, channel).await? else {
        return Ok("no_phone");
    };
    let Some(number) = crate::phone::number_of(&p.app, uid, method).await? else {
        return Ok("no_phone");
    };
    let context = AuthContext {
        service: Some("portal-reset".into()),
        host: None,
        remote_addr: peer.map(str::to_owned),
        tty: None,
    };
    let (sent, id) = crate::phone::send(
        &p.app,
        &crate::phone::Send {
            uid,
            username: &r.username,
            channel,
            phone: &number,
            method_id: Some(method),
            purpose: crate::phone::Purpose::Reset,
            actor: "portal",
            context: &context,
        },
    )
    .await?;
    if let Some(id) = id.filter(|_| sent.result == SendResult::Sent) {
        sqlx::query("UPDATE password_resets SET phone_sent_id = $2 WHERE id_hash = $1")
            .bind(&r.id_hash)
            .bind(id)
            .execute(&p.app.pool)
            .await?;
    }
    Ok(sent.result.as_str())
}

/// `POST /my/reset/phone/send`: a code by the channel chosen (`sms`,
/// `voice`) to the user's phone for it.
pub async fn phone_send(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
    CsrfForm(f): CsrfForm<ChannelForm>,
) -> PageResult {
    let r = match attempt(&p, &v, &headers, Step::Choose).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let Some(channel) = Channel::from_name(&f.channel).filter(|c| p.app.gateways.has(*c)) else {
        return Err(Exit::Redirect("/my/reset/verify".into()));
    };
    phone_send_by(&p, &v, &r, channel).await
}

/// `POST /my/reset/phone/resend`: a new code by the same channel; the
/// earlier one stops working.
pub async fn phone_resend(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> PageResult {
    let r = match attempt(&p, &v, &headers, Step::Choose).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let Some(channel) = r.phone_channel.filter(|c| p.app.gateways.has(*c)) else {
        return Err(Exit::Redirect("/my/reset/verify".into()));
    };
    phone_send_by(&p, &v, &r, channel).await
}

/// `GET /my/reset/phone`.
pub async fn phone_get(State(p): State<Arc<Portal>>, v: Visit, headers: HeaderMap) -> PageResult {
    let r = current(&p, &headers).await?;
    if r.phone_channel.is_none() {
        return Err(Exit::Redirect("/my/reset/verify".into()));
    }
    phone_page(&p, &v, &r, StatusCode::OK, None).await
}

/// `POST /my/reset/phone`: the code sent; once, within its life, with
/// its tries ([`crate::phone::check_page_code`], purpose `reset`).
pub async fn phone_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
    CsrfForm(f): CsrfForm<CodeForm>,
) -> PageResult {
    use crate::phone::PageCheck;
    let r = match attempt(&p, &v, &headers, Step::Phone).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    if r.phone_channel.is_none() {
        return Err(Exit::Redirect("/my/reset/verify".into()));
    }
    let typed: String = f.code.chars().filter(|c| !c.is_whitespace()).collect();
    let check = match (r.user_id, r.phone_sent_id) {
        (Some(uid), Some(id)) => {
            crate::phone::check_page_code(&p.app, uid, id, crate::phone::Purpose::Reset, &typed)
                .await?
        }
        // No code went out: wrong, with the tries and life of a real one.
        _ if p.now() >= r.phone_expires_at || r.phone_tries_left <= 0 => PageCheck::Gone,
        _ => {
            sqlx::query(
                "UPDATE password_resets SET phone_tries_left = phone_tries_left - 1
                 WHERE id_hash = $1",
            )
            .bind(&r.id_hash)
            .execute(&p.app.pool)
            .await?;
            if r.phone_tries_left > 1 {
                PageCheck::Wrong
            } else {
                PageCheck::Gone
            }
        }
    };
    match check {
        PageCheck::Proven => after_proof(&p, &r, ProofKind::Phone, v.peer.as_deref()).await,
        PageCheck::Wrong => {
            failed(&p, &v, &r, "wrong_phone_code").await?;
            phone_page(&p, &v, &r, StatusCode::OK, Some(WRONG_CODE)).await
        }
        PageCheck::Gone => {
            failed(&p, &v, &r, "phone_code_gone").await?;
            phone_page(&p, &v, &r, StatusCode::OK, Some(CODE_GONE)).await
        }
    }
}

// ---- a security key ---------------------------------------------------------------

const KEY_PAGE: &str = "/my/reset/security-key";

/// The reset's user when they have a usable security key (else the key
/// page shows made-up keys, for a user as for an unknown name).
async fn key_owner<'r>(p: &Portal, r: &'r Reset) -> Result<Option<Owner<'r>>, Exit> {
    Ok(match r.owner() {
        Some(o) if super::security_key::has_security_key(p, o.user_id).await? => Some(o),
        _ => None,
    })
}

/// The key page: request options for the user's keys (a new ceremony
/// under the reset's hash), or for made-up ones when there are none.
async fn key_page(
    p: &Portal,
    v: &Visit,
    r: &Reset,
    status: StatusCode,
    error: Option<&'static str>,
) -> PageResult {
    if p.settings().security_keys.is_none() {
        return Err(Exit::Redirect("/my/reset/verify".into()));
    }
    let real = match key_owner(p, r).await? {
        Some(o) => super::security_key::start_reset(p, o).await?.0,
        None => None,
    };
    let options = match real {
        Some(o) => Some(o),
        None => {
            let key = name_mac(p, "reset-key-ids", "").await?;
            super::security_key::decoy_options(p, &key, &r.username)?
        }
    };
    let (csrf, set) = v.form_token(p).await?;
    let heading = "Use your security key";
    let page = SecurityKeySignInPage {
        chrome: Chrome::new(p, heading, "", csrf, None),
        heading,
        intro: "Insert the security key you added on the Security info page, choose the button, then touch the key when it blinks.",
        action: KEY_PAGE,
        next: None,
        error,
        // Never the keys' names: they would tell the account exists.
        keys: String::new(),
        options,
        code_alt: None,
        push_alt: None,
        backup_alt: None,
        back: Some("/my/reset/verify"),
        username: r.username.clone(),
        script: super::security_key::script_src(),
    };
    Ok(pages::with_cookie(render_status(status, &page)?, set))
}

/// `GET /my/reset/security-key`.
pub async fn key_get(State(p): State<Arc<Portal>>, v: Visit, headers: HeaderMap) -> PageResult {
    show(&p, &v, &headers, Step::Key).await
}

/// `POST /my/reset/security-key`: the key's answer, checked as at
/// sign-in (signature, counter, one use of the ceremony).
pub async fn key_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
    CsrfForm(f): CsrfForm<AnswerForm>,
) -> PageResult {
    let r = match attempt(&p, &v, &headers, Step::Key).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let owner = key_owner(&p, &r).await?;
    let checked = super::security_key::check_reset(&p, owner, &r.username, &f).await?;
    match checked {
        Ok(_) => after_proof(&p, &r, ProofKind::SecurityKey, v.peer.as_deref()).await,
        Err((word, text)) => {
            failed(&p, &v, &r, &format!("security_key_{word}")).await?;
            key_page(&p, &v, &r, StatusCode::OK, Some(text)).await
        }
    }
}

// ---- the new password ----------------------------------------------------------

/// The reset's user when its proofs are complete.
async fn ready(p: &Portal, r: &Reset) -> Result<Option<i64>, Exit> {
    Ok(match r.user_id {
        Some(uid) if reset_complete(&kinds(p, Some(uid)).await?, &r.proofs) => Some(uid),
        _ => None,
    })
}

async fn password_page(
    p: &Portal,
    v: &Visit,
    r: &Reset,
    error: Option<&'static str>,
) -> PageResult {
    let (csrf, set) = v.form_token(p).await?;
    let page = ResetPasswordPage {
        chrome: Chrome::new(p, "Choose a new password", "", csrf, None),
        username: r.username.clone(),
        error,
    };
    Ok(pages::with_cookie(render(&page)?, set))
}

/// `GET /my/reset/password`.
pub async fn password_get(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
) -> PageResult {
    let r = current(&p, &headers).await?;
    if ready(&p, &r).await?.is_none() {
        return Err(Exit::Redirect("/my/reset/verify".into()));
    }
    password_page(&p, &v, &r, None).await
}

#[derive(Deserialize)]
pub struct NewPasswordForm {
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

/// `POST /my/reset/password`: stores the new password, ends every page
/// session of the user and the reset, in one transaction with the audit
/// record.
pub async fn password_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
    CsrfForm(f): CsrfForm<NewPasswordForm>,
) -> PageResult {
    let r = current(&p, &headers).await?;
    let Some(uid) = ready(&p, &r).await? else {
        return Err(Exit::Redirect("/my/reset/verify".into()));
    };
    let display: Option<String> = sqlx::query("SELECT display_name FROM users WHERE id = $1")
        .bind(uid)
        .fetch_one(&p.app.pool)
        .await?
        .try_get("display_name")?;
    if f.new_password != f.confirm_password {
        return password_page(&p, &v, &r, Some("The new passwords don't match.")).await;
    }
    if let Err(problem) = check_password(&f.new_password, &r.username, display.as_deref()) {
        return password_page(&p, &v, &r, Some(problem)).await;
    }
    let phc = p.hash_password(&f.new_password).await?;
    let mut tx = p.app.pool.begin().await?;
    // A user disabled meanwhile keeps the old password.
    let n = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1 AND disabled = 0")
        .bind(uid)
        .bind(&phc)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        tx.rollback().await?;
        return Err(Exit::Redirect("/my/reset/verify".into()));
    }
    let ended = session::delete_all(&mut *tx, uid, None).await?;
    sqlx::query("DELETE FROM password_resets WHERE id_hash = $1 OR user_id = $2")
        .bind(&r.id_hash)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
    audit(
        &mut *tx,
        &p,
        &r.username,
        "portal.password_reset",
        "ok",
        v.peer.as_deref(),
        Some(format!(
            "proofs={}; {ended} sessions ended",
            proofs_text(&r.proofs)
        )),
    )
    .await?;
    tx.commit().await?;
    p.clear_failures(&r.keys(&v)).await?;
    p.clear_failures(&Keys::new(&r.username, None)).await?;
    if let (Some(mailer), Some(address)) = (p.app.mailer.clone(), email_of(&p, uid).await?) {
        let body = format!(
            "Hello {},\n\nThe password of your {} security info page was just reset. If that wasn't you, tell your administrator now.\n",
            r.username, p.app.issuer
        );
        let username = r.username.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&address, "Your password was reset", body).await {
                tracing::warn!(error = %e, username = %username, "could not send the password reset notice");
            }
        });
    }
    let tls = p.settings().tls;
    let clear: HeaderValue = session::set_cookie(reset_cookie_name(tls), "", 0, tls);
    Ok(pages::redirect_with(
        "/my/?done=reset",
        [clear, session::clear_cookie(&p)],
    ))
}
