//! "Forgot password?": the page password reset by the user, with proofs
//! from their password-reset methods (a code emailed to the registered
//! address, the security questions) or a code from a two-step method
//! (through [`crate::verify::verify_as`], which also takes temporary
//! access and backup codes).
//!
//! Steps: username → choose a proof → the proof (emailed code, answers,
//! app code) → another one when the user registered two kinds or more
//! ([`twostep_common::reset::proofs_needed`]) → the new password, which
//! ends every page session of the user, audited.
//!
//! A reset in progress is a `password_resets` row named by the SHA-256 of
//! its own cookie. An unknown name (or a disabled user, or one without a
//! page password) gets a row too, with no user: the same pages, the same
//! hashing (an emailed code is generated and hashed but sent nowhere;
//! questions chosen from the name by the page key are checked against a
//! dummy hash), so the answers tell nothing about the account. Failed
//! proofs and emailed codes are counted per name and per address with
//! the sign-in limiter's windows ([`super::throttle`], names of their
//! own).

use super::pages::{
    self, render, render_status, Chrome, ResetChoosePage, ResetCodePage, ResetPasswordPage,
    ResetQuestionsPage, ResetStartPage,
};
use super::reset_methods::{answers_of, email_of};
use super::session::{self, CsrfForm, Visit};
use super::signin::{audit, has_code_method};
use super::throttle::Keys;
use super::{Exit, PageResult, Portal};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use sqlx::Row;
use std::collections::BTreeSet;
use std::sync::Arc;
use twostep_common::api::{AuthContext, VerifyRequest, VerifyResult};
use twostep_common::portal::check_password;
use twostep_common::reset::{
    email_code_usable, generate_email_code, normalise_answer, normalise_email_code, reset_complete,
    ProofKind, EMAIL_CODE_LIFETIME_SECS, EMAIL_CODE_TRIES, QUESTIONS, QUESTIONS_NEEDED,
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
}

impl Reset {
    fn keys(&self, v: &Visit) -> Keys {
        keys(&self.username, v.peer.as_deref())
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
        "SELECT username, user_id, proofs, code_hash, code_expires_at, code_tries_left
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
    }))
}

/// The reset of this visitor, or back to its first page.
async fn current(p: &Portal, headers: &HeaderMap) -> Result<Reset, Exit> {
    load(p, headers)
        .await?
        .ok_or_else(|| Exit::Redirect("/my/reset?done=expired".into()))
}

/// The kinds of proof `user_id` registered: an email address (when
/// `[api.smtp]` is set), at least [`QUESTIONS_NEEDED`] security questions,
/// a two-step method that takes a typed code (an authenticator app's
/// codes, an open temporary access code, or backup codes beside a method).
async fn kinds(p: &Portal, user_id: Option<i64>) -> Result<BTreeSet<ProofKind>, Exit> {
    let mut k = BTreeSet::new();
    let Some(uid) = user_id else { return Ok(k) };
    if p.app.mailer.is_some() && email_of(p, uid).await?.is_some() {
        k.insert(ProofKind::Email);
    }
    if answers_of(p, uid).await?.len() >= QUESTIONS_NEEDED {
        k.insert(ProofKind::Questions);
    }
    let now = p.now();
    let any_method =
        sqlx::query("SELECT 1 FROM methods WHERE user_id = $1 AND pending = 0 LIMIT 1")
            .bind(uid)
            .fetch_optional(&p.app.pool)
            .await?
            .is_some();
    if has_code_method(p, uid).await?
        || crate::recovery::open_until(&p.app.pool, uid, now)
            .await?
            .is_some()
        || (any_method
            && crate::recovery::backup_codes_left(&p.app.pool, uid)
                .await?
                .unwrap_or(0)
                > 0)
    {
        k.insert(ProofKind::App);
    }
    Ok(k)
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
    let words = |k: &ProofKind| match k {
        ProofKind::Email => "emailed code",
        ProofKind::Questions => "security questions",
        ProofKind::App => "code from your app",
    };
    let page = ResetChoosePage {
        chrome: Chrome::new(p, "Prove it's you", "", csrf, None),
        username: r.username.clone(),
        done: r.proofs.iter().map(words).collect::<Vec<_>>().join(", "),
        error,
        offer_email: p.app.mailer.is_some() && !r.proofs.contains(&ProofKind::Email),
        offer_questions: !r.proofs.contains(&ProofKind::Questions),
        offer_app: !r.proofs.contains(&ProofKind::App),
    };
    Ok(pages::with_cookie(render_status(status, &page)?, set))
}

/// `GET /my/reset/verify`.
pub async fn choose(State(p): State<Arc<Portal>>, v: Visit, headers: HeaderMap) -> PageResult {
    let r = current(&p, &headers).await?;
    choose_page(&p, &v, &r, StatusCode::OK, None).await
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
    let r = current(&p, &headers).await?;
    let Some(mailer) = p.app.mailer.clone() else {
        return Err(Exit::Redirect("/my/reset/verify".into()));
    };
    if p.throttled(&r.keys(&v)).await? {
        return choose_page(&p, &v, &r, StatusCode::TOO_MANY_REQUESTS, Some(TOO_MANY)).await;
    }
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
    let r = current(&p, &headers).await?;
    email_page(&p, &v, &r, StatusCode::OK, None).await
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
    let r = current(&p, &headers).await?;
    if p.throttled(&r.keys(&v)).await? {
        return email_page(&p, &v, &r, StatusCode::TOO_MANY_REQUESTS, Some(TOO_MANY)).await;
    }
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
    let r = current(&p, &headers).await?;
    questions_page(&p, &v, &r, StatusCode::OK, None).await
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
    let r = current(&p, &headers).await?;
    if p.throttled(&r.keys(&v)).await? {
        return questions_page(&p, &v, &r, StatusCode::TOO_MANY_REQUESTS, Some(TOO_MANY)).await;
    }
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
    let r = current(&p, &headers).await?;
    app_page(&p, &v, &r, StatusCode::OK, None).await
}

/// `POST /my/reset/app`: the registry's verification (replay rule,
/// lockout, audit as for PAM and RADIUS); every refusal reads the same.
pub async fn app_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    headers: HeaderMap,
    CsrfForm(f): CsrfForm<CodeForm>,
) -> PageResult {
    let r = current(&p, &headers).await?;
    if p.throttled(&r.keys(&v)).await? {
        return app_page(&p, &v, &r, StatusCode::TOO_MANY_REQUESTS, Some(TOO_MANY)).await;
    }
    let code = f.code.trim();
    // Every name goes through the verification (an unknown one answers
    // `unknown_user` there), so the time taken tells nothing; a code
    // accepted for a name that cannot be reset completes nothing
    // (`ready`).
    let accepted = if twostep_common::recovery::is_second_factor_format(code) {
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
        crate::verify::verify_as(
            &p.app,
            "portal",
            None,
            twostep_common::methods::Place::Page,
            &req,
        )
        .await?
        .result
            == VerifyResult::Accept
    } else {
        false
    };
    if !accepted {
        failed(&p, &v, &r, "wrong_code").await?;
        return app_page(&p, &v, &r, StatusCode::OK, Some(WRONG_CODE)).await;
    }
    after_proof(&p, &r, ProofKind::App, v.peer.as_deref()).await
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
