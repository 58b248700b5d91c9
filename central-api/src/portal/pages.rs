//! The pages' templates (`templates/*.html`, compiled in by askama, every
//! value HTML-escaped unless marked `safe`, which only our own icons and QR
//! SVG are) and what each one shows.

use super::session::Session;
use super::{css_href, enrol::FlowStep, Exit, Portal};
use crate::error::ApiError;
use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// Inline icons (24×24, `currentColor`, hidden from assistive technology).
pub mod icons {
    /// A house.
    pub const OVERVIEW: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M12 3 2 11.5h3V21h5.5v-6h3v6H19v-9.5h3z"/></svg>"#;
    /// A key.
    pub const KEY: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" fill-rule="evenodd" d="M7 7a5 5 0 1 0 4.58 7H15v3h3v-3h2v-4h-8.42A5 5 0 0 0 7 7m0 3a2 2 0 1 1 0 4 2 2 0 0 1 0-4"/></svg>"#;
    /// A phone and a laptop.
    pub const DEVICES: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M3 5h13v2H5v8h7v4H1v-2h2zm11 4h7a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1h-7a1 1 0 0 1-1-1V10a1 1 0 0 1 1-1m1 2v7h5v-7z"/></svg>"#;
    /// A padlock.
    pub const PASSWORD: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M12 2a5 5 0 0 1 5 5v3h1a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2v-8a2 2 0 0 1 2-2h1V7a5 5 0 0 1 5-5m0 2a3 3 0 0 0-3 3v3h6V7a3 3 0 0 0-3-3m0 9a2 2 0 0 0-1 3.73V19h2v-2.27A2 2 0 0 0 12 13"/></svg>"#;
    /// A shield.
    pub const PRIVACY: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M12 2 4 5v6c0 5 3.4 9.7 8 11 4.6-1.3 8-6 8-11V5zm0 2.2 6 2.25V11c0 3.9-2.5 7.6-6 8.9-3.5-1.3-6-5-6-8.9V6.45z"/></svg>"#;
    /// A phone showing a code.
    pub const APP: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M7 1h10a2 2 0 0 1 2 2v18a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V3a2 2 0 0 1 2-2m0 4v14h10V5zm2 5h6v2H9zm0 3h4v2H9z"/></svg>"#;
    /// An envelope.
    pub const MAIL: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M3 5h18a1 1 0 0 1 1 1v12a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V6a1 1 0 0 1 1-1m1 3.2V17h16V8.2l-8 5.3zM5.4 7l6.6 4.4L18.6 7z"/></svg>"#;
    /// A question mark in a speech bubble.
    pub const QUESTIONS: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2h-7l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2m7 11v2h2v-2zm1-9a3.5 3.5 0 0 0-3.5 3.5h2A1.5 1.5 0 1 1 12 10c-.8 0-1 .6-1 1.3V13h2v-1.2A3.5 3.5 0 0 0 12 5"/></svg>"#;
    /// A security key (a USB key with a button).
    pub const SECURITY_KEY: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" fill-rule="evenodd" d="M9 1h6v5h1a2 2 0 0 1 2 2v13a2 2 0 0 1-2 2H8a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h1zm2 2v3h2V3zM8 8v13h8V8zm4 3a2.5 2.5 0 1 1 0 5 2.5 2.5 0 0 1 0-5"/></svg>"#;
    /// A plus sign.
    pub const ADD: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M11 4h2v7h7v2h-7v7h-2v-7H4v-2h7z"/></svg>"#;
}

/// One entry of the left navigation.
pub struct NavItem {
    /// Link.
    pub href: &'static str,
    /// Text.
    pub label: &'static str,
    /// Icon SVG.
    pub icon: &'static str,
    /// This page.
    pub current: bool,
}

const NAV: [(&str, &str, &str, &str); 5] = [
    ("overview", "/my/", "Overview", icons::OVERVIEW),
    ("security", "/my/security-info", "Security info", icons::KEY),
    ("devices", "/my/devices", "Devices", icons::DEVICES),
    ("password", "/my/password", "Password", icons::PASSWORD),
    ("privacy", "/my/privacy", "Privacy", icons::PRIVACY),
];

/// The signed-in user in the top bar.
pub struct UserBar {
    /// Display name or username.
    pub name: String,
    /// Up to two initials.
    pub initials: String,
}

/// What every page's frame shows.
pub struct Chrome {
    /// Page title (before " · issuer").
    pub title: String,
    /// The organisation: `[api] issuer`.
    pub brand: String,
    /// Its first letter, for the mark.
    pub brand_initial: String,
    /// Stylesheet link.
    pub css: &'static str,
    /// CSRF token for the forms of this page.
    pub csrf: String,
    /// Signed-in user, if any.
    pub user: Option<UserBar>,
    /// Key of the current navigation entry.
    pub nav: &'static str,
}

fn initials(name: &str) -> String {
    let mut words = name.split_whitespace();
    let first = words.next().and_then(|w| w.chars().next());
    let last = words.last().and_then(|w| w.chars().next());
    first
        .into_iter()
        .chain(last)
        .flat_map(char::to_uppercase)
        .collect()
}

impl Chrome {
    /// A frame for `title`, with the user of `session` (if any).
    pub fn new(
        p: &Portal,
        title: &str,
        nav: &'static str,
        csrf: String,
        session: Option<&Session>,
    ) -> Self {
        let brand = p.app.issuer.clone();
        Self {
            title: title.to_owned(),
            brand_initial: initials(&brand).chars().take(1).collect(),
            brand,
            css: css_href(),
            csrf,
            user: session.map(|s| UserBar {
                name: s.name().to_owned(),
                initials: initials(s.name()),
            }),
            nav,
        }
    }

    /// The left navigation.
    pub fn nav_items(&self) -> Vec<NavItem> {
        NAV.iter()
            .map(|&(key, href, label, icon)| NavItem {
                href,
                label,
                icon,
                current: key == self.nav,
            })
            .collect()
    }
}

/// Renders `t` as a 200 HTML answer.
///
/// # Errors
/// 500 when the template fails to render.
pub fn render<T: Template>(t: &T) -> Result<Response, Exit> {
    render_status(StatusCode::OK, t)
}

/// Renders `t` with `status`.
///
/// # Errors
/// 500 when the template fails to render.
pub fn render_status<T: Template>(status: StatusCode, t: &T) -> Result<Response, Exit> {
    let html = t.render().map_err(|e| {
        Exit::Error(ApiError::new(
            twostep_common::api::ApiErrorCode::Internal,
            format!("page template: {e}"),
        ))
    })?;
    Ok((status, Html(html)).into_response())
}

/// `resp` with `Set-Cookie: cookie` added.
pub fn with_cookie(mut resp: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// A 303 redirect to `to` that also sets `cookies`.
pub fn redirect_with(to: &str, cookies: impl IntoIterator<Item = HeaderValue>) -> Response {
    let mut r = axum::response::Redirect::to(to).into_response();
    for c in cookies {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// A message page without a signed-in frame.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// Frame.
    pub chrome: Chrome,
    /// Heading.
    pub heading: String,
    /// Text.
    pub text: String,
}

/// A plain HTML message page with `status` (used for errors, where no
/// portal state may be at hand).
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let page = MessagePage {
        chrome: Chrome {
            title: title.to_owned(),
            brand: String::new(),
            brand_initial: String::new(),
            css: css_href(),
            csrf: String::new(),
            user: None,
            nav: "",
        },
        heading: title.to_owned(),
        text: text.to_owned(),
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, title.to_owned()).into_response(),
    }
}

/// Sign in: username and password.
#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignInPage {
    /// Frame.
    pub chrome: Chrome,
    /// Why the last try failed.
    pub error: Option<&'static str>,
    /// A notice (signed out...).
    pub notice: Option<&'static str>,
    /// The username typed, shown again.
    pub username: String,
}

/// The second factor: a code from the app.
#[derive(Template)]
#[template(path = "code.html")]
pub struct CodePage {
    /// Frame.
    pub chrome: Chrome,
    /// Where the form goes.
    pub action: &'static str,
    /// Heading.
    pub heading: &'static str,
    /// One sentence under it.
    pub intro: &'static str,
    /// Local path to go on to, for a fresh factor.
    pub next: Option<String>,
    /// Why the last code failed.
    pub error: Option<String>,
    /// Who is signing in.
    pub username: String,
    /// The user has an open temporary access code: the field takes one.
    pub tap: bool,
    /// The field takes a backup code (`?with=backup`).
    pub backup: bool,
    /// The user has unused backup codes: offer "Use a backup code".
    pub backup_offer: bool,
    /// Where "Send a request to my app instead" goes, when the user has a
    /// push device.
    pub push_alt: Option<String>,
    /// Where "Use my security key instead" goes, when the user has one.
    pub key_alt: Option<String>,
    /// Said instead of `intro` once a code went to the user's phone ("We
    /// texted a code to +1 ••• ••• ••42."), or why it did not.
    pub phone_said: Option<String>,
    /// The button that sends a code to the user's phone ("Text me a
    /// code"), when they have one at sign-in.
    pub phone_offer: Option<&'static str>,
}

/// Approve a push request: at sign-in, or for a fresh second factor.
#[derive(Template)]
#[template(path = "push_wait.html")]
pub struct PushPage {
    /// Frame.
    pub chrome: Chrome,
    /// Heading.
    pub heading: &'static str,
    /// Where Continue goes.
    pub action: &'static str,
    /// Where "Send another request" goes.
    pub resend_action: &'static str,
    /// Local path to go on to, for a fresh factor.
    pub next: Option<String>,
    /// Why nothing was sent, or the last request failed.
    pub error: Option<&'static str>,
    /// A request is open: show its number and wait.
    pub waiting: bool,
    /// The number to choose in the app, under number matching.
    pub number: Option<u8>,
    /// Seconds until the open request expires.
    pub seconds: i64,
    /// The names of the devices it went to.
    pub devices: String,
    /// What happened to the last request, when not waiting.
    pub message: Option<&'static str>,
    /// A new request may be sent (the user has an enabled device).
    pub can_send: bool,
    /// Where "Use a verification code instead" goes, when the user has one.
    pub code_alt: Option<String>,
    /// Where "Use my security key instead" goes, when the user has one.
    pub key_alt: Option<String>,
    /// Who is signing in.
    pub username: String,
    /// `src` of the live-wait script.
    pub script: &'static str,
    /// What the live-wait script polls (`/my/push-status`).
    pub status_url: &'static str,
    /// Where "Choose another way" goes, for a password reset (instead of
    /// signing out).
    pub back: Option<&'static str>,
}

/// The landing page of a setup link.
#[derive(Template)]
#[template(path = "invite.html")]
pub struct InvitePage {
    /// Frame.
    pub chrome: Chrome,
    /// The link's token, posted back.
    pub token: String,
    /// For whom.
    pub username: String,
}

/// Choose a password (after a setup link).
#[derive(Template)]
#[template(path = "welcome.html")]
pub struct WelcomePage {
    /// Frame.
    pub chrome: Chrome,
    /// For whom.
    pub username: String,
    /// Why the last try failed.
    pub error: Option<&'static str>,
}

/// My Profile: name, username and the cards.
#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    /// Frame.
    pub chrome: Chrome,
    /// Display name or username.
    pub name: String,
    /// Login name.
    pub username: String,
    /// Initials for the avatar.
    pub initials: String,
    /// A notice (password changed...).
    pub notice: Option<&'static str>,
}

/// One method as the pages list it.
pub struct MethodRow {
    /// Method id.
    pub id: i64,
    /// What it is, e.g. "Authenticator app".
    pub kind: &'static str,
    /// How it signs in: "code", "notification" or "WebAuthn".
    pub mode: &'static str,
    /// Its icon (our own SVG).
    pub icon: &'static str,
    /// Its label.
    pub label: String,
    /// "4 May 2026".
    pub added: String,
    /// "4 May 2026, 14:03 UTC" or "Never".
    pub last_used: String,
    /// Default method.
    pub is_default: bool,
    /// Disabled (a lost device).
    pub disabled: bool,
    /// A push device's last poll: "4 May 2026, 14:03 UTC from 192.0.2.7"
    /// or "Never".
    pub last_seen: String,
    /// Where it counts: "Page, SSH, VPN", "Page only"
    /// ([`twostep_common::methods::UseRow::places_text`]).
    pub works: String,
}

/// One row of Security info's "what your methods are used for" table
/// ([`twostep_common::methods::uses_of`]).
pub struct UseLine {
    /// "Text message", "Security key".
    pub kind: &'static str,
    /// The user's label; empty for reset methods.
    pub label: String,
    /// "Yes" / "No".
    pub two_step: &'static str,
    /// "Yes" / "No".
    pub password_reset: &'static str,
    /// "Page, SSH, VPN", "Page only", "Password reset only".
    pub works: String,
}

/// Security info: the methods.
#[derive(Template)]
#[template(path = "security_info.html")]
pub struct SecurityInfoPage {
    /// Frame.
    pub chrome: Chrome,
    /// The methods.
    pub methods: Vec<MethodRow>,
    /// "Authenticator app – code".
    pub default_line: Option<String>,
    /// The password-reset email address, when registered.
    pub reset_email: Option<ResetMethodRow>,
    /// The security questions, when registered.
    pub questions: Option<ResetMethodRow>,
    /// A notice (method added...).
    pub notice: Option<&'static str>,
    /// Unused backup codes of the current set, if the user has a set.
    pub backup_left: Option<u32>,
    /// Until when the user's open temporary access code works, shown.
    pub tap_until: Option<String>,
    /// What each method is used for and where it counts.
    pub uses: Vec<UseLine>,
    /// "SSH and VPN" when the user has methods, none of which counts
    /// there (security keys only).
    pub not_enrolled_for: Option<String>,
}

/// A new set of backup codes, shown once.
#[derive(Template)]
#[template(path = "backup_codes.html")]
pub struct BackupCodesPage {
    /// Frame.
    pub chrome: Chrome,
    /// The codes as shown (`1234 5678`).
    pub codes: Vec<String>,
}

/// A password-reset method as Security info lists it.
pub struct ResetMethodRow {
    /// The address, or "3 questions answered".
    pub label: String,
    /// "4 May 2026".
    pub added: String,
}

/// Add a method: which kind.
#[derive(Template)]
#[template(path = "add_method.html")]
pub struct AddMethodPage {
    /// Frame.
    pub chrome: Chrome,
    /// `[api.smtp]` is set: the Email method is offered.
    pub smtp: bool,
    /// Security keys are configured: the Security key method is offered.
    pub security_keys: bool,
    /// `[api.sms]` or `[api.voice]` is set: the Phone method is offered.
    pub phone: bool,
    /// A notice (setup expired...).
    pub notice: Option<&'static str>,
}

/// One step of the "Authenticator app" flow.
#[derive(Template)]
#[template(path = "app_flow.html")]
pub struct FlowPage {
    /// Frame.
    pub chrome: Chrome,
    /// Which step.
    pub step: FlowStep,
    /// The flow adds a device that approves notifications (else an app
    /// that shows codes).
    pub push: bool,
    /// Where the flow's steps live (`/my/security-info/app`, `…/push`).
    pub base: String,
    /// Its number, from 1.
    pub number: usize,
    /// Steps in all.
    pub total: usize,
    /// Why the last code failed.
    pub error: Option<&'static str>,
    /// The QR code (step "qr" only): our own SVG.
    pub qr_svg: String,
    /// The TOTP key, or the push activation code, in groups of four
    /// (step "qr" only).
    pub key_groups: String,
    /// The activation link to paste into the app (push, step "qr" only).
    pub manual_uri: String,
    /// The registry's public URL (push).
    pub registry: String,
    /// The test notification (push, step "notify" only).
    pub notify: crate::portal::enrol::NotifyView,
    /// `src` of the live-wait script.
    pub script: &'static str,
    /// Account name in the app.
    pub account: String,
    /// Issuer in the app.
    pub issuer: String,
}

/// Change the default method.
#[derive(Template)]
#[template(path = "change_default.html")]
pub struct DefaultPage {
    /// Frame.
    pub chrome: Chrome,
    /// The methods to choose from.
    pub methods: Vec<MethodRow>,
    /// One of them is a security key (the default on this page only).
    pub has_key: bool,
}

/// "Are you sure?" before a change that cannot be undone.
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    /// Frame.
    pub chrome: Chrome,
    /// Heading.
    pub heading: &'static str,
    /// What will happen.
    pub text: String,
    /// What it means for SSH and VPN, when it matters.
    pub warning: Option<String>,
    /// Where the form goes.
    pub action: String,
    /// The button.
    pub button: &'static str,
    /// Where Cancel goes.
    pub cancel: &'static str,
}

/// Devices: push devices.
#[derive(Template)]
#[template(path = "devices.html")]
pub struct DevicesPage {
    /// Frame.
    pub chrome: Chrome,
    /// Push methods.
    pub devices: Vec<MethodRow>,
    /// A notice (device disabled...).
    pub notice: Option<&'static str>,
}

/// Change password.
#[derive(Template)]
#[template(path = "password.html")]
pub struct PasswordPage {
    /// Frame.
    pub chrome: Chrome,
    /// Why the last try failed.
    pub error: Option<&'static str>,
}

/// One audit record on the Privacy page.
pub struct EventRow {
    /// When.
    pub at: String,
    /// What, in words.
    pub action: String,
    /// Result.
    pub result: String,
    /// From where.
    pub remote_addr: String,
}

/// Privacy: what the registry keeps.
#[derive(Template)]
#[template(path = "privacy.html")]
pub struct PrivacyPage {
    /// Frame.
    pub chrome: Chrome,
    /// Login name.
    pub username: String,
    /// Full name or "not set".
    pub display_name: String,
    /// Account created.
    pub created: String,
    /// A page password is set.
    pub has_password: bool,
    /// Registered methods.
    pub method_count: usize,
    /// Live page sessions.
    pub session_count: i64,
    /// The password-reset address, if registered.
    pub reset_email: Option<String>,
    /// Security questions answered.
    pub questions: usize,
    /// The newest audit records about the user.
    pub events: Vec<EventRow>,
    /// After "This wasn't me".
    pub notice: Option<&'static str>,
}

/// Forgot password: the username.
#[derive(Template)]
#[template(path = "reset_start.html")]
pub struct ResetStartPage {
    /// Frame.
    pub chrome: Chrome,
    /// Why the last try failed.
    pub error: Option<&'static str>,
    /// The username typed, shown again.
    pub username: String,
}

/// Forgot password: choose a proof. The same for every username, known
/// or not, but for the kinds already proven.
#[derive(Template)]
#[template(path = "reset_choose.html")]
pub struct ResetChoosePage {
    /// Frame.
    pub chrome: Chrome,
    /// The username typed.
    pub username: String,
    /// The proofs passed so far, in words ("" for none).
    pub done: String,
    /// Why the last try failed.
    pub error: Option<&'static str>,
    /// The ways offered, in order ([`twostep_common::reset::ways_left`]).
    pub options: Vec<ResetOption>,
}

/// One way to prove it's you on the choose page.
#[derive(Debug, Clone)]
pub struct ResetOption {
    /// Where it goes: a link, or with `post` a form's action.
    pub href: &'static str,
    /// Posted (sends a code or a request) rather than followed.
    pub post: bool,
    /// The channel posted with it (`sms`, `voice`), for a phone code.
    pub channel: Option<&'static str>,
    /// Its title.
    pub title: &'static str,
    /// One sentence under it.
    pub text: &'static str,
}

/// Forgot password: a code (emailed, or from the app).
#[derive(Template)]
#[template(path = "reset_code.html")]
pub struct ResetCodePage {
    /// Frame.
    pub chrome: Chrome,
    /// The username typed.
    pub username: String,
    /// Heading.
    pub heading: &'static str,
    /// One sentence under it.
    pub intro: &'static str,
    /// The field's label.
    pub label: &'static str,
    /// The field takes longer codes (temporary access, backup codes).
    pub wide: bool,
    /// Where the form goes.
    pub action: &'static str,
    /// Where Back goes.
    pub back: &'static str,
    /// Where "Send a new code" posts, for an emailed code.
    pub resend: Option<&'static str>,
    /// Why the last try failed.
    pub error: Option<&'static str>,
}

/// Forgot password: the security questions.
#[derive(Template)]
#[template(path = "reset_questions.html")]
pub struct ResetQuestionsPage {
    /// Frame.
    pub chrome: Chrome,
    /// The username typed.
    pub username: String,
    /// The questions asked.
    pub questions: Vec<&'static str>,
    /// Why the last try failed.
    pub error: Option<&'static str>,
}

/// Forgot password: the new password.
#[derive(Template)]
#[template(path = "reset_password.html")]
pub struct ResetPasswordPage {
    /// Frame.
    pub chrome: Chrome,
    /// Whose.
    pub username: String,
    /// Why the last try failed.
    pub error: Option<&'static str>,
}

/// Security info → Email: the address, then the code sent to it.
#[derive(Template)]
#[template(path = "email_method.html")]
pub struct EmailMethodPage {
    /// Frame.
    pub chrome: Chrome,
    /// The address typed, shown again.
    pub address: String,
    /// The address a code went to: the code step.
    pub sent_to: Option<String>,
    /// Why the last try failed.
    pub error: Option<&'static str>,
}

/// Security info → Phone: the number and how codes go, then the code
/// sent to it.
#[derive(Template)]
#[template(path = "phone_method.html")]
pub struct PhoneMethodPage {
    /// Frame.
    pub chrome: Chrome,
    /// The number typed, shown again.
    pub number: String,
    /// Text messages can be sent (`[api.sms]`).
    pub sms: bool,
    /// Calls can be made (`[api.voice]`).
    pub voice: bool,
    /// The chosen channel is a call.
    pub call: bool,
    /// The masked number a code went to: the code step.
    pub sent_to: Option<String>,
    /// Why the last try failed.
    pub error: Option<String>,
}

/// One question slot of the security questions form.
pub struct QuestionSlot {
    /// The question chosen, by index into the list.
    pub chosen: Option<usize>,
}

impl QuestionSlot {
    /// Whether question `i` is the one chosen.
    pub fn is(&self, i: impl std::borrow::Borrow<usize>) -> bool {
        self.chosen == Some(*i.borrow())
    }
}

/// Security info → Security questions.
#[derive(Template)]
#[template(path = "questions_method.html")]
pub struct QuestionsMethodPage {
    /// Frame.
    pub chrome: Chrome,
    /// How many to answer.
    pub needed: usize,
    /// The fixed list.
    pub questions: &'static [&'static str],
    /// The slots, with the questions chosen before.
    pub slots: Vec<QuestionSlot>,
    /// Why the last try failed.
    pub error: Option<&'static str>,
}

/// Security info → Security key: name the key, then use it.
#[derive(Template)]
#[template(path = "security_key.html")]
pub struct SecurityKeyPage {
    /// Frame.
    pub chrome: Chrome,
    /// The name typed, shown again (or the name being registered).
    pub label: String,
    /// Why the last try failed.
    pub error: Option<&'static str>,
    /// The "use your key" step: the registry's creation options, as JSON
    /// for `static/security-key.js`.
    pub options: Option<String>,
    /// Keys must verify the user (a PIN or fingerprint).
    pub uv_required: bool,
    /// `src` of the security-key script.
    pub script: &'static str,
}

/// Sign in (or verify again) with a security key.
#[derive(Template)]
#[template(path = "security_key_sign_in.html")]
pub struct SecurityKeySignInPage {
    /// Frame.
    pub chrome: Chrome,
    /// Heading.
    pub heading: &'static str,
    /// One sentence under it.
    pub intro: &'static str,
    /// Where the answer is posted.
    pub action: &'static str,
    /// Local path to go on to, for a fresh factor.
    pub next: Option<String>,
    /// Why the last try failed.
    pub error: Option<&'static str>,
    /// The names of the user's keys ("" on a reset: not shown).
    pub keys: String,
    /// The registry's request options, as JSON for the script; `None`
    /// when the user has no usable key.
    pub options: Option<String>,
    /// Where "Use a verification code instead" goes, when the user has one.
    pub code_alt: Option<String>,
    /// Where "Send a request to my app instead" goes, when the user has a
    /// push device.
    pub push_alt: Option<String>,
    /// Where "Use a backup code" goes, at sign-in when the user has some.
    pub backup_alt: Option<String>,
    /// Where "Choose another way" goes, for a password reset (instead of
    /// signing out).
    pub back: Option<&'static str>,
    /// Who is signing in.
    pub username: String,
    /// `src` of the security-key script.
    pub script: &'static str,
}
