//! "Add a method → Authenticator app": the guided steps users know.
//!
//! [`FlowStep::Start`] (get the app) → [`FlowStep::Account`] (add an
//! account in the app) → [`FlowStep::Qr`] (scan; *Can't scan image?*
//! shows the key) → [`FlowStep::Try`] (type the current code). Back and
//! Next work at every step. The new secret is made when Next leaves the
//! account step and lives only sealed in the page session's `flow_sealed`
//! (AEAD, bound to the user): nothing is written to `methods` until the
//! code proves the app holds the secret, so abandoning the flow leaves
//! nothing behind and never touches a working method. The code that
//! proved it is consumed (its time step recorded), so it cannot be used
//! again at an SSH or VPN login.
//!
//! A push device (once push exists) is a second [`FlowKind`]: its QR step
//! shows the device activation code and its last step is a new
//! `FlowStep::Notify` ("Let's try it out": approve a test notification,
//! with *Resend notification* and a live wait), dispatched in
//! [`step_page`] and [`step_submit`] by the flow's kind.

use super::account::commit_method_change;
use super::pages::{render, AddMethodPage, Chrome, FlowPage};
use super::session::{self, CsrfForm, Session, Visit};
use super::signin::{csrf_of, fresh, query, Params};
use super::{Exit, PageResult, Portal};
use crate::crypto::totp_aad;
use crate::error::ApiError;
use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;
use sqlx::Row;
use std::sync::Arc;
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
    /// "Let's try it out": type the current code.
    Try,
}

impl FlowStep {
    const ALL: [FlowStep; 4] = [Self::Start, Self::Account, Self::Qr, Self::Try];

    /// The step named by a path segment.
    pub fn from_segment(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.segment() == s)
    }

    /// Its path segment.
    pub fn segment(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Account => "account",
            Self::Qr => "qr",
            Self::Try => "try",
        }
    }

    /// Its number, from 1.
    pub fn number(self) -> usize {
        Self::ALL
            .iter()
            .position(|s| *s == self)
            .map_or(1, |i| i + 1)
    }

    /// Whether the step needs the new secret.
    fn needs_secret(self) -> bool {
        matches!(self, Self::Qr | Self::Try)
    }
}

/// What kind of method a flow adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    /// An app that shows codes (TOTP).
    CodeApp,
}

impl FlowKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::CodeApp => "code-app",
        }
    }
}

/// A flow in progress, as sealed in the session.
struct Flow {
    kind: FlowKind,
    started_at: i64,
    secret: Option<Zeroizing<Vec<u8>>>,
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
            "v1 {} {} {}",
            self.kind.as_str(),
            self.started_at,
            secret.as_str()
        ));
        p.app
            .secrets
            .seal(text.as_bytes(), &flow_aad(user_id))
            .map(hex::encode)
            .map_err(ApiError::Secret)
    }

    /// The flow sealed in `s`, if any opens and has not expired.
    fn open(p: &Portal, s: &Session) -> Option<Self> {
        let sealed = hex::decode(s.flow_sealed.as_deref()?).ok()?;
        let text = p.app.secrets.open(&sealed, &flow_aad(s.user_id)).ok()?;
        let text = std::str::from_utf8(&text).ok()?;
        let mut parts = text.split(' ');
        if parts.next()? != "v1" || parts.next()? != FlowKind::CodeApp.as_str() {
            return None;
        }
        let started_at: i64 = parts.next()?.parse().ok()?;
        if p.now() - started_at > FLOW_LIFETIME_SECS {
            return None;
        }
        let secret = match parts.next()? {
            "-" => None,
            h => Some(Zeroizing::new(hex::decode(h).ok()?)),
        };
        Some(Self {
            kind: FlowKind::CodeApp,
            started_at,
            secret,
        })
    }
}

/// Starts a new "Authenticator app" flow in the session `id_hash`,
/// replacing any flow in progress there.
///
/// # Errors
/// Database errors.
pub async fn begin(p: &Portal, user_id: i64, id_hash: &str) -> Result<(), ApiError> {
    let flow = Flow {
        kind: FlowKind::CodeApp,
        started_at: p.now(),
        secret: None,
    };
    session::set_flow(p, id_hash, Some(&flow.seal(p, user_id)?)).await
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
    match f.method.as_str() {
        // Push devices plug in here with their own FlowKind.
        "app" => {
            begin(&p, s.user_id, &s.id_hash).await?;
            Err(Exit::Redirect("/my/security-info/app/start".into()))
        }
        _ => Err(Exit::Redirect("/my/security-info/add".into())),
    }
}

fn restart() -> Exit {
    Exit::Redirect("/my/security-info/add?done=expired".into())
}

fn key_groups(secret: &[u8]) -> String {
    let b32 = totp::secret_base32(secret);
    b32.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn show(
    p: &Portal,
    s: &Session,
    step: FlowStep,
    flow: &Flow,
    error: Option<&'static str>,
) -> PageResult {
    let mut page = FlowPage {
        chrome: Chrome::new(
            p,
            "Authenticator app",
            "security",
            csrf_of(p, s).await?,
            Some(s),
        ),
        step,
        number: step.number(),
        total: FlowStep::ALL.len(),
        error,
        qr_svg: String::new(),
        key_groups: String::new(),
        account: s.username.clone(),
        issuer: p.app.issuer.clone(),
    };
    if step == FlowStep::Qr {
        let secret = flow.secret.as_ref().ok_or_else(restart)?;
        let uri = Zeroizing::new(totp::otpauth_uri(
            &p.app.issuer,
            &s.username,
            secret,
            &params(p),
        ));
        page.qr_svg = super::qr::svg(&uri, "QR code to scan with your authenticator app")
            .ok_or_else(|| {
                Exit::Error(ApiError::new(
                    twostep_common::api::ApiErrorCode::InvalidField,
                    "the account name is too long for a QR code",
                ))
            })?;
        page.key_groups = key_groups(secret);
    }
    let resp = render(&page);
    // The page held the secret; drop our copies now.
    page.qr_svg.clear();
    page.key_groups.clear();
    resp
}

fn params(p: &Portal) -> TotpParams {
    TotpParams {
        skew_steps: p.app.skew_steps,
        ..TotpParams::default()
    }
}

/// `GET /my/security-info/app/{step}`.
pub async fn step_page(
    State(p): State<Arc<Portal>>,
    v: Visit,
    Path(step): Path<String>,
) -> PageResult {
    let step = FlowStep::from_segment(&step).ok_or_else(super::not_found)?;
    let s = fresh(&p, &v, &format!("/my/security-info/app/{}", step.segment())).await?;
    let flow = Flow::open(&p, s).ok_or_else(restart)?;
    if step.needs_secret() && flow.secret.is_none() {
        return Err(Exit::Redirect("/my/security-info/app/account".into()));
    }
    show(&p, s, step, &flow, None).await
}

#[derive(Deserialize)]
pub struct StepForm {
    #[serde(default)]
    code: String,
}

/// `POST /my/security-info/app/{account,try,cancel}`: Next from the
/// account step (makes the secret), the code of the last step, Cancel.
pub async fn step_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    Path(step): Path<String>,
    CsrfForm(f): CsrfForm<StepForm>,
) -> PageResult {
    if step == "cancel" {
        let s = super::signin::signed_in(&v)?;
        session::set_flow(&p, &s.id_hash, None).await?;
        return Err(Exit::Redirect("/my/security-info".into()));
    }
    let step = FlowStep::from_segment(&step).ok_or_else(super::not_found)?;
    let s = fresh(&p, &v, &format!("/my/security-info/app/{}", step.segment())).await?;
    let mut flow = Flow::open(&p, s).ok_or_else(restart)?;
    match step {
        FlowStep::Account => {
            // Going Back and Next again keeps the secret already scanned.
            if flow.secret.is_none() {
                flow.secret = Some(Zeroizing::new(totp::generate_secret().to_vec()));
                session::set_flow(&p, &s.id_hash, Some(&flow.seal(&p, s.user_id)?)).await?;
            }
            Err(Exit::Redirect("/my/security-info/app/qr".into()))
        }
        FlowStep::Try => {
            let code = f.code.trim();
            let Some(secret) = flow.secret.as_ref() else {
                return Err(Exit::Redirect("/my/security-info/app/account".into()));
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
                    save(&p, s, secret, matched, v.peer.as_deref()).await?;
                    Err(Exit::Redirect("/my/security-info?done=added".into()))
                }
                TotpCheck::Replay | TotpCheck::NoMatch => {
                    show(&p, s, step, &flow, Some("That code didn't work. Check that the app shows this account, and enter the code it shows now.")).await
                }
            }
        }
        FlowStep::Start | FlowStep::Qr => Err(super::not_found()),
    }
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
    let ended = sqlx::query(
        "UPDATE portal_sessions SET flow_sealed = NULL WHERE id_hash = $1 AND flow_sealed = $2",
    )
    .bind(&s.id_hash)
    .bind(s.flow_sealed.as_deref())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if ended == 0 {
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
                 CASE WHEN EXISTS (SELECT 1 FROM methods m WHERE m.user_id = $1) THEN 0 ELSE 1 END,
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
