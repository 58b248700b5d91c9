//! "Add a method → Authenticator app": the guided steps users know.
//!
//! [`FlowStep::Start`] (get the app) → [`FlowStep::Account`] (add an
//! account in the app) → [`FlowStep::Qr`] (scan; *Can't scan image?*
//! shows what to type) → the try-out step, by the flow's [`FlowKind`]:
//!
//! - an app that shows codes: [`FlowStep::Try`], type the current code.
//!   The new secret is made when Next leaves the account step and lives
//!   only sealed in the page session's `flow_sealed` (AEAD, bound to the
//!   user): nothing is written to `methods` until the code proves the app
//!   holds the secret. The code that proved it is consumed (its time step
//!   recorded), so it cannot be used again at an SSH or VPN login.
//! - an app that approves notifications: the QR step shows a one-time
//!   activation code; the device that uses it is registered *pending*
//!   (no login reaches it, it sees only its own test notification); Next
//!   sends it a test notification ([`FlowStep::Notify`], *Resend
//!   notification*, a live wait); its approval makes it a method.
//!
//! Back and Next work at every step. Abandoning the flow (Cancel, a new
//! flow, or leaving it past [`FLOW_LIFETIME_SECS`]) leaves nothing that
//! counts, and never touches a working method.

use super::account::commit_method_change;
use super::pages::{render, AddMethodPage, Chrome, FlowPage};
use super::session::{self, CsrfForm, Session, Visit};
use super::signin::{csrf_of, fresh, query, Params};
use super::{Exit, PageResult, Portal};
use crate::crypto::totp_aad;
use crate::error::ApiError;
use crate::push::activation;
use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;
use sqlx::Row;
use std::sync::Arc;
use twostep_common::push::PushResult;
use twostep_common::totp::{self, TotpCheck, TotpParams};
use zeroize::Zeroizing;

/// A flow not finished within this many seconds starts over.
pub const FLOW_LIFETIME_SECS: i64 = 1800;

/// The steps of adding an authenticator app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowStep {
    /// "Start by getting the app".
    Start,
    /// "Set up your account".
    Account,
    /// "Scan the QR code".
    Qr,
    /// "Let's try it out": type the current code (an app that shows codes).
    Try,
    /// "Let's try it out": approve a test notification (an app that
    /// approves notifications).
    Notify,
}

impl FlowStep {
    /// Its path segment.
    pub fn segment(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Account => "account",
            Self::Qr => "qr",
            Self::Try => "try",
            Self::Notify => "notify",
        }
    }

    /// Whether the step needs the new secret (or activation code).
    fn needs_secret(self) -> bool {
        matches!(self, Self::Qr | Self::Try | Self::Notify)
    }
}

/// What kind of method a flow adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    /// An app that shows codes (TOTP).
    CodeApp,
    /// An app that approves notifications (a push device).
    PushApp,
}

impl FlowKind {
    const ALL: [FlowKind; 2] = [Self::CodeApp, Self::PushApp];

    fn as_str(self) -> &'static str {
        match self {
            Self::CodeApp => "code-app",
            Self::PushApp => "push-app",
        }
    }

    /// Its path segment under `/my/security-info/`.
    pub fn segment(self) -> &'static str {
        match self {
            Self::CodeApp => "app",
            Self::PushApp => "push",
        }
    }

    /// The flow named by a path segment.
    pub fn from_segment(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.segment() == s)
    }

    /// Its steps, in order.
    pub fn steps(self) -> [FlowStep; 4] {
        let last = match self {
            Self::CodeApp => FlowStep::Try,
            Self::PushApp => FlowStep::Notify,
        };
        [FlowStep::Start, FlowStep::Account, FlowStep::Qr, last]
    }

    /// Its step named by a path segment.
    pub fn step(self, segment: &str) -> Option<FlowStep> {
        self.steps().into_iter().find(|s| s.segment() == segment)
    }

    /// Where its steps live: `/my/security-info/app` or `…/push`.
    pub fn base(self) -> String {
        format!("/my/security-info/{}", self.segment())
    }
}

/// A flow in progress, as sealed in the session.
struct Flow {
    kind: FlowKind,
    started_at: i64,
    /// The new TOTP secret, or the push activation code (ASCII).
    secret: Option<Zeroizing<Vec<u8>>>,
    /// The test notification sent (push).
    challenge: Option<String>,
}

fn flow_aad(user_id: i64) -> Vec<u8> {
    format!("twostep/portal-flow/v1/user/{user_id}").into_bytes()
}

impl Flow {
    fn seal(&self, p: &Portal, user_id: i64) -> Result<String, ApiError> {
        let secret = self.secret.as_ref().map_or_else(
            || Zeroizing::new("-".to_owned()),
            |s| Zeroizing::new(hex::encode(s.as_slice())),
        );
        let text = Zeroizing::new(format!(
            "v1 {} {} {} {}",
            self.kind.as_str(),
            self.started_at,
            secret.as_str(),
            self.challenge.as_deref().unwrap_or("-")
        ));
        p.app
            .secrets
            .seal(text.as_bytes(), &flow_aad(user_id))
            .map(hex::encode)
            .map_err(ApiError::Secret)
    }

    /// The flow sealed in `s`, if any opens (expired or not).
    fn open_any(p: &Portal, s: &Session) -> Option<Self> {
        let sealed = hex::decode(s.flow_sealed.as_deref()?).ok()?;
        let text = p.app.secrets.open(&sealed, &flow_aad(s.user_id)).ok()?;
        let text = Zeroizing::new(String::from_utf8(text.to_vec()).ok()?);
        let mut parts = text.split(' ');
        if parts.next()? != "v1" {
            return None;
        }
        let kind = parts.next()?;
        let kind = FlowKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
        let started_at: i64 = parts.next()?.parse().ok()?;
        let secret = match parts.next()? {
            "-" => None,
            h => Some(Zeroizing::new(hex::decode(h).ok()?)),
        };
        let challenge = match parts.next()? {
            "-" => None,
            c => Some(c.to_owned()),
        };
        Some(Self {
            kind,
            started_at,
            secret,
            challenge,
        })
    }

    /// The flow sealed in `s`, if any opens and has not expired.
    fn open(p: &Portal, s: &Session) -> Option<Self> {
        Self::open_any(p, s).filter(|f| p.now() - f.started_at <= FLOW_LIFETIME_SECS)
    }

    /// The push activation code, as text.
    fn activation_code(&self) -> Option<&str> {
        match self.kind {
            FlowKind::PushApp => std::str::from_utf8(self.secret.as_deref()?).ok(),
            FlowKind::CodeApp => None,
        }
    }
}

/// The test notification of the flow open in `s`, if any.
pub fn flow_challenge(p: &Portal, s: &Session) -> Option<String> {
    Flow::open(p, s)?.challenge
}

/// Forgets what the flow open in `s` left behind: a pending device and
/// its activation code, an open test notification.
async fn discard(p: &Portal, s: &Session) -> Result<(), ApiError> {
    let Some(flow) = Flow::open_any(p, s) else {
        return Ok(());
    };
    if let Some(c) = &flow.challenge {
        super::push::cancel(p, c).await?;
    }
    if let Some(code) = flow.activation_code() {
        let mut conn = p.app.pool.acquire().await?;
        activation::discard_pending(&mut conn, s.user_id, code).await?;
    }
    Ok(())
}

/// Starts a new flow of `kind` in the session of `s` (now named by
/// `id_hash`: its id may have just changed), replacing and discarding any
/// flow in progress there.
///
/// # Errors
/// Database errors.
pub async fn begin(p: &Portal, s: &Session, id_hash: &str, kind: FlowKind) -> Result<(), ApiError> {
    discard(p, s).await?;
    let flow = Flow {
        kind,
        started_at: p.now(),
        secret: None,
        challenge: None,
    };
    session::set_flow(p, id_hash, Some(&flow.seal(p, s.user_id)?)).await
}

/// `GET /my/security-info/add`: which method.
pub async fn add_page(State(p): State<Arc<Portal>>, v: Visit, RawQuery(q): RawQuery) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info/add").await?;
    let params: Params = query(q);
    let page = AddMethodPage {
        chrome: Chrome::new(
            &p,
            "Add a method",
            "security",
            csrf_of(&p, s).await?,
            Some(s),
        ),
        smtp: p.app.mailer.is_some(),
        security_keys: p.settings().security_keys.is_some(),
        phone: p.app.gateways.has(twostep_common::phone::Channel::Sms)
            || p.app.gateways.has(twostep_common::phone::Channel::Voice),
        notice: (params.done.as_deref() == Some("expired"))
            .then_some("That setup took too long or was cancelled. Start again."),
    };
    render(&page)
}

#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    method: String,
}

/// `POST /my/security-info/add`: starts the flow of the chosen kind.
pub async fn add_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<AddForm>,
) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info/add").await?;
    let kind = match f.method.as_str() {
        "push" => FlowKind::PushApp,
        "app" => FlowKind::CodeApp,
        // Password-reset methods: their own pages, not a flow.
        "email" => return Err(Exit::Redirect("/my/security-info/email".into())),
        "phone" => return Err(Exit::Redirect("/my/security-info/phone".into())),
        "questions" => return Err(Exit::Redirect("/my/security-info/questions".into())),
        // A security key: its own page (the browser does the ceremony).
        "security-key" => return Err(Exit::Redirect("/my/security-info/security-key".into())),
        _ => return Err(Exit::Redirect("/my/security-info/add".into())),
    };
    begin(&p, s, &s.id_hash, kind).await?;
    Err(Exit::Redirect(format!("{}/start", kind.base())))
}

fn restart() -> Exit {
    Exit::Redirect("/my/security-info/add?done=expired".into())
}

/// `text` in groups of four characters, for reading out and typing.
fn groups_of_four(text: &str) -> String {
    text.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the "Let's try it out" step of a push flow says.
#[derive(Debug, Default)]
pub struct NotifyView {
    /// The number to choose in the app, under number matching.
    pub number: Option<u8>,
    /// Still waiting for the answer.
    pub waiting: bool,
    /// Seconds until the notification expires.
    pub seconds: i64,
    /// The device's name.
    pub device: String,
    /// What happened to the last notification, when not waiting.
    pub message: Option<&'static str>,
}

async fn show(
    p: &Portal,
    s: &Session,
    step: FlowStep,
    flow: &Flow,
    error: Option<&'static str>,
) -> PageResult {
    let kind = flow.kind;
    let steps = kind.steps();
    let mut page = FlowPage {
        chrome: Chrome::new(
            p,
            "Authenticator app",
            "security",
            csrf_of(p, s).await?,
            Some(s),
        ),
        step,
        push: kind == FlowKind::PushApp,
        base: kind.base(),
        number: steps.iter().position(|x| *x == step).map_or(1, |i| i + 1),
        total: steps.len(),
        error,
        qr_svg: String::new(),
        key_groups: String::new(),
        manual_uri: String::new(),
        registry: p.app.push.public_url.clone(),
        account: s.username.clone(),
        issuer: p.app.issuer.clone(),
        notify: NotifyView::default(),
        script: super::push::script_src(),
    };
    if step == FlowStep::Qr {
        let secret = flow.secret.as_ref().ok_or_else(restart)?;
        let (uri, alt) = match flow.activation_code() {
            Some(code) => {
                page.key_groups = groups_of_four(code);
                let uri =
                    twostep_common::push::activation_uri(&p.app.push.public_url, code, &s.username);
                page.manual_uri = uri.clone();
                (
                    Zeroizing::new(uri),
                    "QR code to scan with your authenticator app: it adds this device for sign-in notifications",
                )
            }
            None => {
                page.key_groups = groups_of_four(&totp::secret_base32(secret));
                (
                    Zeroizing::new(totp::otpauth_uri(
                        &p.app.issuer,
                        &s.username,
                        secret,
                        &params(p),
                    )),
                    "QR code to scan with your authenticator app",
                )
            }
        };
        page.qr_svg = super::qr::svg(&uri, alt).ok_or_else(|| {
            Exit::Error(ApiError::new(
                twostep_common::api::ApiErrorCode::InvalidField,
                "the account name is too long for a QR code",
            ))
        })?;
    }
    if step == FlowStep::Notify {
        page.notify = notify_view(p, s, flow).await?;
    }
    let resp = render(&page);
    // The page held the secret; drop our copies now.
    page.qr_svg.clear();
    page.key_groups.clear();
    page.manual_uri.clear();
    resp
}

/// The device and the test notification of a push flow, as they stand.
async fn notify_view(p: &Portal, s: &Session, flow: &Flow) -> Result<NotifyView, Exit> {
    let code = flow.activation_code().ok_or_else(restart)?;
    let Some((_, device)) = activation::pending_device(&p.app, s.user_id, code).await? else {
        return Err(Exit::Redirect(format!("{}/qr", flow.kind.base())));
    };
    let mut view = NotifyView {
        device,
        ..NotifyView::default()
    };
    let current = match &flow.challenge {
        Some(c) => super::push::current(p, s.user_id, c).await?,
        None => None,
    };
    match current {
        Some(c) if c.result == PushResult::Pending => {
            view.waiting = true;
            view.number = c.number;
            view.seconds = super::push::seconds_left(p, c.expires_at);
        }
        Some(c) => view.message = Some(super::push::result_text(c.result)),
        None => view.message = Some("Choose Resend notification to send a test notification."),
    }
    Ok(view)
}

fn params(p: &Portal) -> TotpParams {
    TotpParams {
        skew_steps: p.app.skew_steps,
        ..TotpParams::default()
    }
}

/// The flow of kind `kind` open in `s`, or the page to go to instead.
fn open_flow(p: &Portal, s: &Session, kind: FlowKind) -> Result<Flow, Exit> {
    match Flow::open(p, s) {
        Some(f) if f.kind == kind => Ok(f),
        Some(f) => Err(Exit::Redirect(format!("{}/start", f.kind.base()))),
        None => Err(restart()),
    }
}

/// `GET /my/security-info/{app,push}/{step}`.
pub async fn step_page(
    State(p): State<Arc<Portal>>,
    v: Visit,
    Path((kind, step)): Path<(String, String)>,
) -> PageResult {
    let kind = FlowKind::from_segment(&kind).ok_or_else(super::not_found)?;
    let step = kind.step(&step).ok_or_else(super::not_found)?;
    let s = fresh(&p, &v, &format!("{}/{}", kind.base(), step.segment())).await?;
    let mut flow = open_flow(&p, s, kind)?;
    if step.needs_secret() && flow.secret.is_none() {
        return Err(Exit::Redirect(format!("{}/account", kind.base())));
    }
    // An activation code that expired before the app used it is replaced
    // by a new one, so a slow user is not stuck with a dead QR code.
    if step == FlowStep::Qr {
        if let Some(code) = flow.activation_code().map(str::to_owned) {
            if !activation::pending_code_live(&p.app, s.user_id, &code).await? {
                flow.secret = Some(new_activation(&p, s).await?);
                session::set_flow(&p, &s.id_hash, Some(&flow.seal(&p, s.user_id)?)).await?;
                let mut conn = p.app.pool.acquire().await?;
                activation::discard_pending(&mut conn, s.user_id, &code).await?;
            }
        }
    }
    show(&p, s, step, &flow, None).await
}

#[derive(Deserialize)]
pub struct StepForm {
    #[serde(default)]
    code: String,
}

/// `POST /my/security-info/{app,push}/{account,qr,try,notify,resend,cancel}`:
/// Next from the account step (makes the secret or activation code), Next
/// from the QR step (push: sends the test notification), the code of the
/// last step, Continue after the notification, Resend, Cancel.
pub async fn step_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    Path((kind, step)): Path<(String, String)>,
    CsrfForm(f): CsrfForm<StepForm>,
) -> PageResult {
    let kind = FlowKind::from_segment(&kind).ok_or_else(super::not_found)?;
    if step == "cancel" {
        let s = super::signin::signed_in(&v)?;
        discard(&p, s).await?;
        session::set_flow(&p, &s.id_hash, None).await?;
        return Err(Exit::Redirect("/my/security-info".into()));
    }
    let resend = step == "resend";
    let step = if resend {
        FlowStep::Notify
    } else {
        kind.step(&step).ok_or_else(super::not_found)?
    };
    let s = fresh(&p, &v, &format!("{}/{}", kind.base(), step.segment())).await?;
    let mut flow = open_flow(&p, s, kind)?;
    let peer = v.peer.as_deref();
    match (kind, step) {
        (_, FlowStep::Account) => {
            // Going Back and Next again keeps the secret already scanned.
            if flow.secret.is_none() {
                flow.secret = Some(match kind {
                    FlowKind::CodeApp => Zeroizing::new(totp::generate_secret().to_vec()),
                    FlowKind::PushApp => new_activation(&p, s).await?,
                });
                session::set_flow(&p, &s.id_hash, Some(&flow.seal(&p, s.user_id)?)).await?;
            }
            Err(Exit::Redirect(format!("{}/qr", kind.base())))
        }
        (FlowKind::PushApp, FlowStep::Qr) => {
            let code = flow.activation_code().ok_or_else(restart)?;
            let Some((device, _)) = activation::pending_device(&p.app, s.user_id, code).await?
            else {
                return show(&p, s, FlowStep::Qr, &flow, Some("Your app hasn't been added yet. Scan the QR code with the app, wait until it says the account was added, then choose Next.")).await;
            };
            if flow.challenge.is_none() {
                send_test(&p, s, &mut flow, device, peer).await?;
            }
            Err(Exit::Redirect(format!("{}/notify", kind.base())))
        }
        (FlowKind::PushApp, FlowStep::Notify) => {
            let code = flow.activation_code().ok_or_else(restart)?;
            let Some((device, _)) = activation::pending_device(&p.app, s.user_id, code).await?
            else {
                return Err(Exit::Redirect(format!("{}/qr", kind.base())));
            };
            if resend {
                if let Some(old) = flow.challenge.take() {
                    super::push::cancel(&p, &old).await?;
                }
                if let Some(refused) = send_test(&p, s, &mut flow, device, peer).await? {
                    return show(&p, s, step, &flow, Some(refused)).await;
                }
                return Err(Exit::Redirect(format!("{}/notify", kind.base())));
            }
            let result = match &flow.challenge {
                Some(c) => super::push::current(&p, s.user_id, c)
                    .await?
                    .map(|c| c.result),
                None => None,
            };
            match result {
                Some(PushResult::Approved) => {}
                Some(PushResult::Pending) => {
                    let say = super::push::result_text(PushResult::Pending);
                    return show(&p, s, step, &flow, Some(say)).await;
                }
                _ => return show(&p, s, step, &flow, None).await,
            }
            save_device(&p, s, device, peer).await?;
            Err(Exit::Redirect("/my/security-info?done=added-push".into()))
        }
        (FlowKind::CodeApp, FlowStep::Try) => {
            let code = f.code.trim();
            let Some(secret) = flow.secret.as_ref() else {
                return Err(Exit::Redirect(format!("{}/account", kind.base())));
            };
            if !totp::is_code_format(code) {
                return show(
                    &p,
                    s,
                    step,
                    &flow,
                    Some("Enter the 6-digit code shown in the app."),
                )
                .await;
            }
            let now = u64::try_from(p.now()).unwrap_or(0);
            match totp::check(secret, code, now, None, &params(&p)) {
                TotpCheck::Match { step: matched } => {
                    save(&p, s, secret, matched, peer).await?;
                    Err(Exit::Redirect("/my/security-info?done=added".into()))
                }
                TotpCheck::Replay | TotpCheck::NoMatch => {
                    show(&p, s, step, &flow, Some("That code didn't work. Check that the app shows this account, and enter the code it shows now.")).await
                }
            }
        }
        _ => Err(super::not_found()),
    }
}

/// A new pending activation code for the user of `s` (after pruning
/// their pending devices left by abandoned flows), as flow secret bytes.
async fn new_activation(p: &Portal, s: &Session) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let mut conn = p.app.pool.acquire().await?;
    activation::prune_pending(&mut conn, s.user_id, p.now(), FLOW_LIFETIME_SECS).await?;
    let (code, _) =
        activation::create_pending(&p.app, &mut conn, s.user_id, &s.username, p.now()).await?;
    Ok(Zeroizing::new(code.into_bytes()))
}

/// Sends the test notification of a push flow to `device` and records it
/// in the flow; `Some(text)` says why none was sent.
async fn send_test(
    p: &Portal,
    s: &Session,
    flow: &mut Flow,
    device: i64,
    peer: Option<&str>,
) -> Result<Option<&'static str>, Exit> {
    match super::push::send(p, &s.username, super::push::Ask::Test, Some(device), peer).await? {
        Ok(c) => {
            flow.challenge = Some(c.challenge_id);
            session::set_flow(p, &s.id_hash, Some(&flow.seal(p, s.user_id)?)).await?;
            Ok(None)
        }
        Err(r) => Ok(Some(super::push::refusal_text(r))),
    }
}

/// Ends the flow of `s` in `tx` if it is still the one the request saw
/// (so of two submits of one flow only the first saves); whether it was.
async fn end_flow(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    s: &Session,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE portal_sessions SET flow_sealed = NULL WHERE id_hash = $1 AND flow_sealed = $2",
    )
    .bind(&s.id_hash)
    .bind(s.flow_sealed.as_deref())
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1)
}

/// Makes the pending push `device` a method (the default when it is the
/// user's first) and ends the flow, only if it is still the one proven so
/// a double submit saves once; audits; one transaction.
async fn save_device(p: &Portal, s: &Session, device: i64, peer: Option<&str>) -> Result<(), Exit> {
    let mut tx = p.app.pool.begin().await?;
    let ended = end_flow(&mut tx, s).await?;
    let confirmed = if !ended {
        0
    } else {
        sqlx::query(
            "UPDATE methods SET pending = 0,
                is_default = CASE WHEN EXISTS (SELECT 1 FROM methods m
                                   WHERE m.user_id = $2 AND m.pending = 0 AND m.id <> $1)
                                  THEN 0 ELSE 1 END
             WHERE id = $1 AND user_id = $2 AND pending = 1 AND disabled = 0",
        )
        .bind(device)
        .bind(s.user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    };
    if confirmed == 0 {
        tx.rollback().await?;
        return Err(Exit::Redirect("/my/security-info".into()));
    }
    sqlx::query("UPDATE push_activations SET pending = 0 WHERE method_id = $1")
        .bind(device)
        .execute(&mut *tx)
        .await?;
    commit_method_change(tx, p, s, "push.enrol", device, peer).await?;
    Ok(())
}

/// Saves the proven secret as a new TOTP method: ends the flow (only if it
/// is still the one proven, so a double submit saves once), inserts the
/// method with the proving step as its last accepted step (the default
/// when it is the user's first), seals the secret to its row, audits; one
/// transaction.
async fn save(
    p: &Portal,
    s: &Session,
    secret: &[u8],
    step: u64,
    peer: Option<&str>,
) -> Result<(), Exit> {
    let params = params(p);
    let mut tx = p.app.pool.begin().await?;
    let ended = end_flow(&mut tx, s).await?;
    if !ended {
        tx.rollback().await?;
        return Err(Exit::Redirect("/my/security-info".into()));
    }
    let existing: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM methods WHERE user_id = $1 AND kind = 'totp'")
            .bind(s.user_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
    let label = match existing {
        0 => crate::routes::methods::DEFAULT_TOTP_LABEL.to_owned(),
        n => format!("{} {}", crate::routes::methods::DEFAULT_TOTP_LABEL, n + 1),
    };
    let row = sqlx::query(
        "INSERT INTO methods (user_id, kind, label, is_default, created_at, digits, step_seconds, last_step)
         VALUES ($1, 'totp', $2,
                 CASE WHEN EXISTS (SELECT 1 FROM methods m WHERE m.user_id = $1 AND m.pending = 0) THEN 0 ELSE 1 END,
                 $3, $4, $5, $6)
         RETURNING id",
    )
    .bind(s.user_id)
    .bind(&label)
    .bind(p.now())
    .bind(i64::from(params.digits))
    .bind(params.step_seconds as i64)
    .bind(i64::try_from(step).unwrap_or(i64::MAX))
    .fetch_one(&mut *tx)
    .await?;
    let id: i64 = row.try_get("id")?;
    let sealed = p
        .app
        .secrets
        .seal(secret, &totp_aad(id, s.user_id))
        .map_err(ApiError::Secret)?;
    sqlx::query("UPDATE methods SET secret_sealed = $1 WHERE id = $2")
        .bind(hex::encode(sealed))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    commit_method_change(tx, p, s, "totp.enrol", id, peer).await?;
    Ok(())
}
