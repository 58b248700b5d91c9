//! The signed-in pages: My Profile overview, Security info (methods,
//! default, delete), Devices (push devices: disable a lost one, enable,
//! remove), Password, Privacy.

use super::pages::{
    render, BackupCodesPage, Chrome, ConfirmPage, DefaultPage, DevicesPage, EventRow, MethodRow,
    OverviewPage, PasswordPage, PrivacyPage, SecurityInfoPage, UseLine,
};
use super::session::{self, CsrfForm, Session, Stage, Visit};
use super::signin::{
    audit, csrf_of, fresh, new_password_problem, query, signed_in, signed_out_home, store_password,
    NewPasswordForm, Params,
};
use super::throttle::Keys;
use super::time::{date, date_time};
use super::{not_found, Exit, PageResult, Portal};
use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;
use sqlx::Row;
use std::sync::Arc;
use twostep_common::api::{Method, MethodKind};
use twostep_common::methods::{self, Place};

/// One of the user's methods, as stored.
#[derive(Debug, Clone)]
pub struct MethodInfo {
    /// Row id.
    pub id: i64,
    /// `totp` or `push`.
    pub kind: String,
    /// Label.
    pub label: String,
    /// Default method.
    pub is_default: bool,
    /// Unix seconds of registration.
    pub created_at: i64,
    /// Unix seconds of the last sign-in it passed (code accepted, push
    /// approved), if any.
    pub last_used: Option<i64>,
    /// Disabled (a lost device).
    pub disabled: bool,
    /// A push device's last poll: Unix seconds and the address it came
    /// from.
    pub last_seen: Option<(i64, Option<String>)>,
}

impl MethodInfo {
    /// As the registry's wire type; `None` for a kind this build does not
    /// know.
    pub fn as_method(&self) -> Option<Method> {
        Some(Method {
            id: self.id,
            kind: MethodKind::parse(&self.kind)?,
            label: self.label.clone(),
            is_default: self.is_default,
            created_at: self.created_at,
            last_used_at: self.last_used,
            disabled: self.disabled,
        })
    }

    /// "Authenticator app", and "code" or "notification".
    pub fn kind_words(&self) -> (&'static str, &'static str) {
        match self.kind.as_str() {
            "totp" => ("Authenticator app", "code"),
            "push" => ("Authenticator app", "notification"),
            "security_key" => ("Security key", "WebAuthn"),
            "sms" => ("Phone", "text message"),
            "voice" => ("Phone", "call"),
            _ => ("Other method", "other"),
        }
    }

    fn row(&self) -> MethodRow {
        let (kind, mode) = self.kind_words();
        MethodRow {
            id: self.id,
            kind,
            mode,
            icon: match self.kind.as_str() {
                "security_key" => super::pages::icons::SECURITY_KEY,
                _ => super::pages::icons::APP,
            },
            label: self.label.clone(),
            added: date(self.created_at),
            last_used: self.last_used.map_or_else(|| "Never".to_owned(), date_time),
            is_default: self.is_default,
            disabled: self.disabled,
            last_seen: match &self.last_seen {
                Some((t, Some(addr))) => format!("{} from {addr}", date_time(*t)),
                Some((t, None)) => date_time(*t),
                None => "Never".to_owned(),
            },
            works: self.as_method().map_or_else(
                || "Nowhere".to_owned(),
                |m| methods::uses_of(&[m], &[])[0].places_text(),
            ),
        }
    }
}

/// The user's methods, oldest first.
///
/// # Errors
/// Database errors.
pub async fn methods(p: &Portal, user_id: i64) -> Result<Vec<MethodInfo>, Exit> {
    let rows = sqlx::query(
        "SELECT id, kind, label, is_default, created_at, last_used_at, disabled, last_seen_at,
                last_seen_addr
         FROM methods WHERE user_id = $1 AND pending = 0 ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(&p.app.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(MethodInfo {
            id: r.try_get("id")?,
            kind: r.try_get("kind")?,
            label: r.try_get("label")?,
            is_default: r.try_get::<i64, _>("is_default")? != 0,
            created_at: r.try_get("created_at")?,
            last_used: r.try_get("last_used_at")?,
            disabled: r.try_get::<i64, _>("disabled")? != 0,
            last_seen: r
                .try_get::<Option<i64>, _>("last_seen_at")?
                .map(|t| Ok::<_, sqlx::Error>((t, r.try_get("last_seen_addr")?)))
                .transpose()?,
        });
    }
    Ok(out)
}

async fn chrome(p: &Portal, s: &Session, title: &str, nav: &'static str) -> Result<Chrome, Exit> {
    Ok(Chrome::new(p, title, nav, csrf_of(p, s).await?, Some(s)))
}

fn parse_id(id: &str) -> Result<i64, Exit> {
    id.parse().map_err(|_| not_found())
}

/// `GET /my/`: My Profile when signed in, else sign in.
pub async fn overview(State(p): State<Arc<Portal>>, v: Visit, RawQuery(q): RawQuery) -> PageResult {
    let params: Params = query(q);
    let s = match &v.session {
        Some(s) if s.stage == Stage::SignedIn => signed_in(&v)?,
        Some(_) => return Err(Exit::Redirect("/my/sign-in/code".into())),
        None => return signed_out_home(&p, &v, params.done.as_deref()).await,
    };
    let page = OverviewPage {
        chrome: chrome(&p, s, "My Profile", "overview").await?,
        name: s.name().to_owned(),
        username: s.username.clone(),
        initials: Chrome::new(&p, "", "", String::new(), Some(s))
            .user
            .map(|u| u.initials)
            .unwrap_or_default(),
        notice: (params.done.as_deref() == Some("password"))
            .then_some("Your password was changed. You were signed out of every other browser."),
    };
    render(&page)
}

/// `GET /my/security-info`.
pub async fn security_info(
    State(p): State<Arc<Portal>>,
    v: Visit,
    RawQuery(q): RawQuery,
) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info").await?;
    let params: Params = query(q);
    let all = methods(&p, s.user_id).await?;
    let default_line = all.iter().find(|m| m.is_default).map(|m| {
        let (kind, mode) = m.kind_words();
        format!("{kind} – {mode}")
    });
    let as_methods: Vec<Method> = all.iter().filter_map(MethodInfo::as_method).collect();
    let reset_kinds = crate::rows::reset_kinds_of(&p.app.pool, s.user_id).await?;
    let yes = |b: bool| if b { "Yes" } else { "No" };
    let uses = methods::uses_of(&as_methods, &reset_kinds)
        .into_iter()
        .map(|r| UseLine {
            kind: r.kind,
            works: r.places_text(),
            two_step: yes(r.two_step),
            password_reset: yes(r.password_reset),
            label: r.label,
        })
        .collect();
    let enrolled = methods::enrolled_places(&as_methods);
    let missing: Vec<Place> = [Place::Pam, Place::Radius]
        .into_iter()
        .filter(|p| !enrolled.contains(p))
        .collect();
    let not_enrolled_for =
        (!as_methods.is_empty() && !missing.is_empty()).then(|| methods::join_places(&missing));
    let page = SecurityInfoPage {
        chrome: chrome(&p, s, "Security info", "security").await?,
        methods: all.iter().map(MethodInfo::row).collect(),
        uses,
        not_enrolled_for,
        default_line,
        reset_email: super::reset_methods::email_row(&p, s.user_id).await?,
        questions: super::reset_methods::questions_row(&p, s.user_id).await?,
        notice: match params.done.as_deref() {
            Some("added") => {
                Some("Authenticator app added. SSH and VPN sign-ins now accept its codes.")
            }
            Some("added-key") => Some(
                "Security key added. You can use it to sign in to this page; SSH and VPN logins still need an authenticator app.",
            ),
            Some("added-push") => Some(
                "Notification approved. Your authenticator app is set up: SSH and VPN sign-ins can now send it requests to approve.",
            ),
            Some("deleted") => Some("The method was deleted."),
            Some("default") => Some("Your default sign-in method was changed."),
            Some("backup-codes") => Some(
                "New backup codes are ready. Your earlier backup codes no longer work.",
            ),
            Some("email") => Some(
                "Email address saved. You can use it to reset your password; it is not a sign-in method.",
            ),
            Some("email-deleted") => Some("The email address was deleted."),
            Some("phone") => Some(
                "Phone number added. SSH and VPN sign-ins can now send you a code: type sms (or call) at the code prompt.",
            ),
            Some("questions") => Some(
                "Security questions saved. You can use them to reset your password; they are not a sign-in method.",
            ),
            Some("questions-deleted") => Some("Your security questions were deleted."),
            _ => None,
        },
        backup_left: crate::recovery::backup_codes_left(&p.app.pool, s.user_id).await?,
        tap_until: crate::recovery::open_until(&p.app.pool, s.user_id, p.now())
            .await?
            .map(date_time),
    };
    render(&page)
}

/// `POST /my/security-info/backup-codes`: a new set of backup codes
/// (the old set void), shown once; needs a fresh second factor like any
/// change here.
pub async fn backup_codes_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info").await?;
    let mut tx = p.app.pool.begin().await?;
    let codes = crate::recovery::create_backup_set(&p.app, &mut tx, s.user_id, p.now()).await?;
    super::signin::audit(
        &mut *tx,
        &p,
        &s.username,
        "backup_codes.create",
        "ok",
        v.peer.as_deref(),
        Some(format!("{} codes; the earlier set void", codes.len())),
    )
    .await?;
    tx.commit().await?;
    let page = BackupCodesPage {
        chrome: chrome(&p, s, "Backup codes", "security").await?,
        codes,
    };
    render(&page)
}

/// `GET /my/security-info/default`.
pub async fn default_page(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info/default").await?;
    let all = methods(&p, s.user_id).await?;
    if all.is_empty() {
        return Err(Exit::Redirect("/my/security-info".into()));
    }
    let page = DefaultPage {
        chrome: chrome(&p, s, "Change default method", "security").await?,
        methods: all.iter().map(MethodInfo::row).collect(),
        has_key: all.iter().any(|m| m.kind == super::security_key::KIND),
    };
    render(&page)
}

#[derive(Deserialize)]
pub struct DefaultForm {
    #[serde(default)]
    method_id: String,
}

/// `POST /my/security-info/default`.
pub async fn default_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<DefaultForm>,
) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info/default").await?;
    let id = parse_id(&f.method_id)?;
    let mut tx = p.app.pool.begin().await?;
    let n = sqlx::query(
        "UPDATE methods SET is_default = CASE WHEN id = $1 THEN 1 ELSE 0 END
         WHERE user_id = $2 AND EXISTS (SELECT 1 FROM methods m WHERE m.id = $1 AND m.user_id = $2 AND m.pending = 0)",
    )
    .bind(id)
    .bind(s.user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(not_found());
    }
    commit_method_change(tx, &p, s, "method.default", id, v.peer.as_deref()).await?;
    Err(Exit::Redirect("/my/security-info?done=default".into()))
}

/// Writes the audit record of `action` on method `id` of `s`'s user and
/// commits `tx`.
///
/// # Errors
/// Database errors (nothing is changed then).
pub(crate) async fn commit_method_change(
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    p: &Portal,
    s: &Session,
    action: &str,
    id: i64,
    peer: Option<&str>,
) -> Result<(), Exit> {
    // The user on the page did it: the actor names them, as `admin` names
    // the admin for the same changes made with the CLI.
    let actor = format!("user:{}", s.username);
    crate::audit::write_audit(
        &mut *tx,
        p.now(),
        &crate::audit::Audit {
            actor: &actor,
            action,
            username: Some(&s.username),
            host: None,
            remote_addr: peer,
            result: Some("ok"),
            detail: Some(format!("method {id}")),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What deleting the last method means, said before it happens.
pub const LAST_METHOD_WARNING: &str = "This is your only two-step verification method. Once it is deleted, SSH and VPN logins that require two-step verification will refuse you until you add a new method here, or your administrator sends you a new setup link.";

/// What deleting method `id` of `all` means, said before it happens:
/// `None` when every place keeps a method that counts there
/// ([`methods::places_lost`]).
fn loss_warning(all: &[MethodInfo], id: i64) -> Option<String> {
    let ms: Vec<Method> = all.iter().filter_map(MethodInfo::as_method).collect();
    let lost = methods::places_lost(&ms, id);
    if lost.is_empty() {
        None
    } else if lost == [Place::Page] {
        // A security key, the user's only method: SSH and VPN never took it.
        Some("This is your only two-step verification method, and it works on this page only. Once it is deleted, this page signs you in with your password alone until you add a method here. SSH and VPN logins never accepted it.".to_owned())
    } else if lost.contains(&Place::Page) {
        Some(LAST_METHOD_WARNING.to_owned())
    } else {
        let places = methods::join_places(&lost);
        Some(format!(
            "This is your only method that works for {places}. Your other methods work on this page only, so once it is deleted, {places} logins that require two-step verification will refuse you until you add an authenticator app or a phone number here."
        ))
    }
}

/// Method `id` of `s`'s user (of `kind` when given), and what deleting it
/// means ([`loss_warning`]).
async fn find_method(
    p: &Portal,
    s: &Session,
    id: i64,
    kind: Option<&str>,
) -> Result<(MethodInfo, Option<String>), Exit> {
    let all = methods(p, s.user_id).await?;
    let warning = loss_warning(&all, id);
    let m = all
        .into_iter()
        .find(|m| m.id == id && kind.is_none_or(|k| m.kind == k))
        .ok_or_else(not_found)?;
    Ok((m, warning))
}

/// `GET /my/security-info/methods/{id}/delete`: are you sure?
pub async fn delete_page(
    State(p): State<Arc<Portal>>,
    v: Visit,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id(&id)?;
    let s = fresh(&p, &v, &format!("/my/security-info/methods/{id}/delete")).await?;
    let (m, warning) = find_method(&p, s, id, None).await?;
    let (kind, mode) = m.kind_words();
    let page = ConfirmPage {
        chrome: chrome(&p, s, "Delete method", "security").await?,
        heading: "Delete this method?",
        text: format!(
            "Delete \u{201c}{}\u{201d} ({kind} – {mode}), added {}? {}",
            m.label,
            date(m.created_at),
            if m.kind == super::security_key::KIND {
                "The key itself keeps working elsewhere, but this page will no longer accept it."
            } else if m.kind == "sms" || m.kind == "voice" {
                "Sign-ins will no longer send codes to this number."
            } else {
                "The app on your phone may still show codes for this account, but they will no longer be accepted."
            }
        ),
        warning,
        action: format!("/my/security-info/methods/{id}/delete"),
        button: "Delete",
        cancel: "/my/security-info",
    };
    render(&page)
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

/// Deletes method `id` of `s`'s user (of `kind` when given), promotes a
/// new default and audits `action`, in one transaction.
async fn delete_method(
    p: &Portal,
    s: &Session,
    id: i64,
    kind: Option<&str>,
    action: &str,
    peer: Option<&str>,
) -> Result<(), Exit> {
    let mut tx = p.app.pool.begin().await?;
    let deleted = sqlx::query(
        "DELETE FROM methods WHERE id = $1 AND user_id = $2 AND pending = 0 AND ($3 = '' OR kind = $3) RETURNING id",
    )
    .bind(id)
    .bind(s.user_id)
    .bind(kind.unwrap_or(""))
    .fetch_optional(&mut *tx)
    .await?;
    if deleted.is_none() {
        return Err(not_found());
    }
    crate::routes::methods::promote_default(&mut tx, s.user_id).await?;
    let cancelled = if kind == Some("push") {
        crate::push::challenge::cancel_open(&p.app, &mut tx, s.user_id, peer, "device removed")
            .await?
    } else {
        Vec::new()
    };
    commit_method_change(tx, p, s, action, id, peer).await?;
    p.app.push.hub.finished(&cancelled);
    Ok(())
}

/// `POST /my/security-info/methods/{id}/delete`.
pub async fn delete_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    Path(id): Path<String>,
    CsrfForm(f): CsrfForm<ConfirmForm>,
) -> PageResult {
    let id = parse_id(&id)?;
    let back = format!("/my/security-info/methods/{id}/delete");
    let s = fresh(&p, &v, &back).await?;
    if f.confirm != "yes" {
        return Err(Exit::Redirect(back));
    }
    let (m, _) = find_method(&p, s, id, None).await?;
    if m.kind == super::security_key::KIND {
        super::security_key::delete(&p, s, id, v.peer.as_deref()).await?;
    } else {
        delete_method(&p, s, id, None, "method.delete", v.peer.as_deref()).await?;
    }
    Err(Exit::Redirect("/my/security-info?done=deleted".into()))
}

/// `GET /my/devices`: push devices.
pub async fn devices(State(p): State<Arc<Portal>>, v: Visit, RawQuery(q): RawQuery) -> PageResult {
    let s = fresh(&p, &v, "/my/devices").await?;
    let params: Params = query(q);
    let all = methods(&p, s.user_id).await?;
    let page = DevicesPage {
        chrome: chrome(&p, s, "Devices", "devices").await?,
        devices: all
            .iter()
            .filter(|m| m.kind == "push")
            .map(MethodInfo::row)
            .collect(),
        notice: match params.done.as_deref() {
            Some("disabled") => Some(
                "The device is disabled: it gets no sign-in requests and its answers are refused.",
            ),
            Some("enabled") => Some("The device is enabled again."),
            Some("removed") => Some("The device was removed."),
            _ => None,
        },
    };
    render(&page)
}

/// Disables or enables push device `id` of `s`'s user; disabling cancels
/// the user's open push challenges in the same transaction.
async fn set_device_disabled(
    p: &Portal,
    s: &Session,
    id: i64,
    disabled: bool,
    peer: Option<&str>,
) -> Result<(), Exit> {
    let mut tx = p.app.pool.begin().await?;
    let n = sqlx::query(
        "UPDATE methods SET disabled = $3 WHERE id = $1 AND user_id = $2 AND kind = 'push' AND pending = 0",
    )
    .bind(id)
    .bind(s.user_id)
    .bind(i64::from(disabled))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(not_found());
    }
    // Open sign-in requests die with the device: none can be approved on it.
    let cancelled = if disabled {
        crate::push::challenge::cancel_open(&p.app, &mut tx, s.user_id, peer, "device disabled")
            .await?
    } else {
        Vec::new()
    };
    let action = if disabled {
        "device.disable"
    } else {
        "device.enable"
    };
    commit_method_change(tx, p, s, action, id, peer).await?;
    p.app.push.hub.finished(&cancelled);
    Ok(())
}

/// `POST /my/devices/{id}/{disable,enable}`.
pub async fn device_action(
    State(p): State<Arc<Portal>>,
    v: Visit,
    Path((id, action)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> PageResult {
    let id = parse_id(&id)?;
    let s = fresh(&p, &v, "/my/devices").await?;
    let disabled = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return Err(not_found()),
    };
    set_device_disabled(&p, s, id, disabled, v.peer.as_deref()).await?;
    Err(Exit::Redirect(format!("/my/devices?done={action}d")))
}

/// `GET /my/devices/{id}/remove`: are you sure?
pub async fn device_remove_page(
    State(p): State<Arc<Portal>>,
    v: Visit,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id(&id)?;
    let s = fresh(&p, &v, "/my/devices").await?;
    let (m, warning) = find_method(&p, s, id, Some("push")).await?;
    let page = ConfirmPage {
        chrome: chrome(&p, s, "Remove device", "devices").await?,
        heading: "Remove this device?",
        text: format!(
            "Remove \u{201c}{}\u{201d}, added {}? It will no longer get sign-in requests. To use it again you would set it up anew.",
            m.label,
            date(m.created_at)
        ),
        warning,
        action: format!("/my/devices/{id}/remove"),
        button: "Remove",
        cancel: "/my/devices",
    };
    render(&page)
}

/// `POST /my/devices/{id}/remove`.
pub async fn device_remove(
    State(p): State<Arc<Portal>>,
    v: Visit,
    Path(id): Path<String>,
    CsrfForm(f): CsrfForm<ConfirmForm>,
) -> PageResult {
    let id = parse_id(&id)?;
    let s = fresh(&p, &v, "/my/devices").await?;
    if f.confirm != "yes" {
        return Err(Exit::Redirect(format!("/my/devices/{id}/remove")));
    }
    delete_method(&p, s, id, Some("push"), "device.remove", v.peer.as_deref()).await?;
    Err(Exit::Redirect("/my/devices?done=removed".into()))
}

async fn password_form(p: &Portal, s: &Session, error: Option<&'static str>) -> PageResult {
    let page = PasswordPage {
        chrome: chrome(p, s, "Change password", "password").await?,
        error,
    };
    render(&page)
}

/// `GET /my/password`.
pub async fn password_page(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    let s = fresh(&p, &v, "/my/password").await?;
    password_form(&p, s, None).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(flatten)]
    new: NewPasswordForm,
}

/// `POST /my/password`: old and new password; ends the other sessions and
/// gives this one a new id.
pub async fn password_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<PasswordForm>,
) -> PageResult {
    let s = fresh(&p, &v, "/my/password").await?;
    let keys = Keys::new(&s.username, v.peer.as_deref());
    if p.throttled(&keys).await? {
        return password_form(&p, s, Some(super::signin::TOO_MANY)).await;
    }
    let phc: Option<String> = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
        .bind(s.user_id)
        .fetch_one(&p.app.pool)
        .await?
        .try_get("password_hash")?;
    if !p
        .verify_password(phc.as_deref(), &f.current_password)
        .await?
    {
        p.count_failure(&keys).await?;
        return password_form(&p, s, Some("Your current password is incorrect.")).await;
    }
    if let Some(problem) = new_password_problem(s, &f.new) {
        return password_form(&p, s, Some(problem)).await;
    }
    let new_phc = p.hash_password(&f.new.new_password).await?;
    store_password(&p, s, &new_phc, v.peer.as_deref()).await?;
    let (cookie, _) = session::rotate(&p, s, Stage::SignedIn, None).await?;
    Ok(super::pages::redirect_with("/my/?done=password", [cookie]))
}

/// The words the Privacy page shows for an audit record: what happened
/// (`action`, worded by its `result` where a refusal changes the meaning:
/// a security key the browser or the registry refused was not added),
/// with the service and host of a login. An action this list does not
/// know yet is shown with its dots and underscores as spaces, never as a
/// raw name.
fn action_words(
    action: &str,
    result: Option<&str>,
    host: Option<&str>,
    detail: Option<&str>,
) -> String {
    let word = |key: &str| {
        detail.and_then(|d| {
            d.split_whitespace()
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        })
    };
    // Enrolment records are written for refusals too (result other than
    // "ok"/"added"): their words must not say the method was added.
    let refused = !matches!(result, None | Some("ok") | Some("added"));
    let by_phone = word("channel") == Some("voice");
    let base = match action {
        "portal.sign_in" => "Sign-in to this page",
        "portal.invite_used" => "Setup link used",
        "portal.password" => "Page password set",
        "portal.sign_out_everywhere" => "Signed out everywhere",
        "portal.reset" => "Password reset started",
        "portal.reset_proof" => "Password reset: proof",
        "portal.reset_email" => "Password reset email",
        "portal.reset_push" => "Password reset: request sent to your phone",
        "portal.reset_phone" if by_phone => "Password reset: code by phone call",
        "portal.reset_phone" => "Password reset: code by text message",
        "portal.password_reset" => "Page password reset",
        "portal.security_questions" => "Security questions",
        "portal.phone" if refused => "Phone number not added",
        "portal.phone" if by_phone => "Phone number added for calls",
        "portal.phone" => "Phone number added for text messages",
        "phone.enrol" if refused => "Phone number not added by an administrator",
        "phone.enrol" => "Phone number added by an administrator",
        "otp.send" if by_phone => "Code read out by phone call",
        "otp.send" => "Code sent by text message",
        "verify" => "Code checked",
        "lockout" => "Locked out after wrong codes",
        "totp.enrol" if refused => "Authenticator app not added",
        "totp.enrol" => "Authenticator app added",
        "push.enrol" if refused => "Push device not added",
        "push.enrol" => "Push device added",
        "security_key.enrol" if refused => "Security key not added",
        "security_key.enrol" => "Security key added",
        "security_key.delete" => "Security key deleted",
        "portal.verify" => "Identity verified again on this page",
        "method.delete" => "Method deleted",
        "method.default" => "Default method changed",
        "method.disable" => "Method disabled",
        "method.enable" => "Method enabled",
        "method.reset" => "All methods deleted by an administrator",
        "device.disable" => "Device disabled",
        "device.enable" => "Device enabled",
        "device.remove" => "Device removed",
        "user.create" => "Account created",
        "user.disable" => "Account disabled by an administrator",
        "user.enable" => "Account enabled by an administrator",
        "user.password" => "Page password set by an administrator",
        "user.invite" => "Setup link created by an administrator",
        "user.unlock" => "Unlocked by an administrator",
        "user.report" => "Reported: this wasn't me",
        "lookup" => "Sign-in refused before a code was asked",
        "push.start" => "Sign-in request sent to your phone",
        "push.activation" => "Push device activation started",
        "push.activate" => "Push device activated",
        "push.answer" => "Sign-in request answered on your phone",
        "push.cancel" => "Sign-in request cancelled",
        "push.expire" => "Sign-in request not answered in time",
        "push.poll" => "Your phone checked for requests",
        "tap.issue" => "Temporary access code issued by an administrator",
        "tap.revoke" => "Temporary access code revoked by an administrator",
        "backup_codes.create" => "Backup codes created",
        other => return plain_words(other, host, word("service")),
    };
    plain_words(base, host, word("service"))
}

/// `what`, with the service and host of a login in brackets; a raw
/// action name's dots and underscores become spaces, its first letter a
/// capital.
fn plain_words(what: &str, host: Option<&str>, service: Option<&str>) -> String {
    let mut base: String = what
        .chars()
        .map(|c| if c == '.' || c == '_' { ' ' } else { c })
        .collect();
    if let Some(first) = base.get(..1) {
        base = first.to_uppercase() + &base[1..];
    }
    match (host, service) {
        (Some(h), Some(svc)) => format!("{base} ({svc} on {h})"),
        (Some(h), None) => format!("{base} ({h})"),
        (None, Some(svc)) => format!("{base} ({svc})"),
        (None, None) => base,
    }
}

/// `GET /my/privacy/not-me`: confirm "This wasn't me".
pub async fn not_me_page(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    let s = signed_in(&v)?;
    let page = ConfirmPage {
        chrome: chrome(&p, s, "This wasn't me", "privacy").await?,
        heading: "Report sign-ins you don't recognise?",
        text: "New sign-in requests to your phone will be refused and any open one cancelled, and your administrators are told, until they have looked into it. Then change your password if someone else may know it.".into(),
        warning: None,
        action: "/my/privacy/not-me".into(),
        button: "This wasn't me",
        cancel: "/my/privacy",
    };
    render(&page)
}

/// `POST /my/privacy/not-me`: the user reports activity they don't
/// recognise: pushes to them blocked (as a push reported as fraud; `twostep
/// user unlock` clears it), open challenges cancelled, audited
/// (`user.report`, `not_me`), logged at warning, and the alert webhook
/// called when configured.
pub async fn not_me_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<ConfirmForm>,
) -> PageResult {
    let s = signed_in(&v)?;
    if f.confirm != "yes" {
        return Err(Exit::Redirect("/my/privacy/not-me".into()));
    }
    let now = p.now();
    let peer = v.peer.as_deref();
    let mut tx = p.app.pool.begin().await?;
    sqlx::query("UPDATE users SET push_blocked_at = $1 WHERE id = $2")
        .bind(now)
        .bind(s.user_id)
        .execute(&mut *tx)
        .await?;
    let cancelled = crate::push::challenge::cancel_open_as(
        &p.app,
        &mut *tx,
        s.user_id,
        "portal",
        peer,
        "the user reported sign-ins they don't recognise",
    )
    .await?;
    audit(
        &mut *tx,
        &p,
        &s.username,
        "user.report",
        "not_me",
        peer,
        Some("pushes blocked until an admin runs `twostep user unlock`".into()),
    )
    .await?;
    tx.commit().await?;
    p.app.push.hub.finished(&cancelled);
    tracing::warn!(
        username = %s.username,
        remote_addr = peer.unwrap_or("-"),
        "the user reported sign-ins they don't recognise (This wasn't me): pushes to them are blocked until an admin runs `twostep user unlock`"
    );
    p.app
        .push
        .webhook
        .alert("user_report", &s.username, now, peer);
    Err(Exit::Redirect("/my/privacy?done=reported".into()))
}

/// `GET /my/privacy`: what the registry keeps, and the user's own recent
/// sign-ins and other audit records.
pub async fn privacy(State(p): State<Arc<Portal>>, v: Visit, RawQuery(q): RawQuery) -> PageResult {
    let s = signed_in(&v)?;
    let params: Params = query(q);
    let user = sqlx::query("SELECT created_at, password_hash FROM users WHERE id = $1")
        .bind(s.user_id)
        .fetch_one(&p.app.pool)
        .await?;
    let has_password = user
        .try_get::<Option<String>, _>("password_hash")?
        .is_some();
    let sessions: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM portal_sessions WHERE user_id = $1 AND expires_at > $2",
    )
    .bind(s.user_id)
    .bind(p.now())
    .fetch_one(&p.app.pool)
    .await?
    .try_get("n")?;
    let rows = sqlx::query(
        "SELECT at, action, host, remote_addr, result, detail FROM audit
         WHERE username = $1 ORDER BY id DESC LIMIT 20",
    )
    .bind(&s.username)
    .fetch_all(&p.app.pool)
    .await?;
    let mut events = Vec::with_capacity(rows.len());
    for r in rows {
        let host: Option<String> = r.try_get("host")?;
        let detail: Option<String> = r.try_get("detail")?;
        let result: Option<String> = r.try_get("result")?;
        events.push(EventRow {
            at: date_time(r.try_get("at")?),
            action: action_words(
                &r.try_get::<String, _>("action")?,
                result.as_deref(),
                host.as_deref(),
                detail.as_deref(),
            ),
            result: result.unwrap_or_default().replace('_', " "),
            remote_addr: r
                .try_get::<Option<String>, _>("remote_addr")?
                .unwrap_or_else(|| "—".into()),
        });
    }
    let page = PrivacyPage {
        chrome: chrome(&p, s, "Privacy", "privacy").await?,
        username: s.username.clone(),
        display_name: s.display_name.clone().unwrap_or_else(|| "Not set".into()),
        created: date(user.try_get("created_at")?),
        has_password,
        method_count: methods(&p, s.user_id).await?.len(),
        session_count: sessions,
        reset_email: super::reset_methods::email_of(&p, s.user_id).await?,
        questions: super::reset_methods::answers_of(&p, s.user_id).await?.len(),
        events,
        notice: (params.done.as_deref() == Some("reported")).then_some(
            "Thank you. New sign-in requests to your phone are refused and your administrators were told. Change your password if someone else may know it.",
        ),
    };
    render(&page)
}

#[cfg(test)]
mod tests {
    use super::action_words;

    #[test]
    fn a_refused_enrolment_is_not_worded_as_added() {
        assert_eq!(
            action_words("security_key.enrol", Some("ok"), None, None),
            "Security key added"
        );
        assert_eq!(
            action_words("security_key.enrol", Some("already_registered"), None, None),
            "Security key not added"
        );
        assert_eq!(
            action_words(
                "portal.phone",
                Some("added"),
                None,
                Some("method 3 channel=voice")
            ),
            "Phone number added for calls"
        );
    }

    #[test]
    fn logins_name_service_and_host_and_unknown_actions_are_plain_words() {
        assert_eq!(
            action_words(
                "verify",
                Some("accept"),
                Some("web1"),
                Some("service=sshd kind=pam")
            ),
            "Code checked (sshd on web1)"
        );
        assert_eq!(
            action_words(
                "otp.send",
                Some("sent"),
                Some("vpn"),
                Some("channel=sms method=4")
            ),
            "Code sent by text message (vpn)"
        );
        assert_eq!(action_words("admin.token", None, None, None), "Admin token");
    }
}
