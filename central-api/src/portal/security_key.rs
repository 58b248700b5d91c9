//! Security keys (WebAuthn / FIDO2, with `webauthn-rs`): "Add method →
//! Security key" on Security info, and a key as the second factor of the
//! page's own sign-in and of the fresh second factor (`/my/verify`).
//! Security keys count on these pages only: PAM and RADIUS never reach
//! them.
//!
//! Registration: the user names the key → the registry makes the
//! creation options (the user's other keys excluded, user presence
//! always, user verification per `[api.portal.webauthn]
//! user_verification`) → `static/security-key.js` asks the browser and
//! posts the answer → `webauthn-rs` checks it against the ceremony
//! state → the key is saved (a `methods` row of kind `security_key` with
//! its credential id, unique across the registry, and the serialised
//! credential). A refusal stores nothing and says why on the page.
//!
//! Sign-in: the options list the user's keys; the answer's signature and
//! counter are checked (a counter that does not grow means a cloned key:
//! refused), the stored counter updated in the same statement that
//! checks it was not changed meanwhile.
//!
//! Ceremony state (the challenge) lives in `webauthn_ceremonies`, one row
//! per session and purpose, for [`CEREMONY_LIFETIME_SECS`], taken (deleted)
//! by the answer that uses it: one use.

use super::pages::{render, Chrome, SecurityKeyPage, SecurityKeySignInPage};
use super::session::{self, CsrfForm, Session, Stage, Visit};
use super::signin::{csrf_of, fresh, safe_next, signed_in};
use super::{Exit, PageResult, Portal};
use crate::error::ApiError;
use axum::extract::State;
use axum::response::Response;
use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::sync::Arc;
use twostep_common::security_key::{browser_refusal, check_label, Ceremony};
use twostep_config::webauthn::{RelyingParty, UserVerification, WebauthnConfig};
use webauthn_rs::prelude::{
    AuthenticationResult, CredentialID, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, SecurityKey, SecurityKeyAuthentication,
    SecurityKeyRegistration, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

/// A ceremony's state is kept this long, in seconds (the browser's own
/// timeout is the same).
pub const CEREMONY_LIFETIME_SECS: i64 = 300;

/// The `kind` of a security key's `methods` row.
pub const KIND: &str = "security_key";

/// The script, compiled in.
pub const SCRIPT: &str = include_str!("../../static/security-key.js");

/// `src` of the script, with a content version (cached a year).
pub fn script_src() -> &'static str {
    static SRC: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| super::versioned_src("/my/static/security-key.js", SCRIPT));
    &SRC
}

/// `GET /my/static/security-key.js`.
pub async fn script() -> Response {
    super::javascript(SCRIPT)
}

/// The relying party and its `webauthn-rs` instance.
#[derive(Debug, Clone)]
pub struct Keys {
    webauthn: Webauthn,
    /// User verification asked of keys.
    pub user_verification: UserVerification,
    /// The relying party.
    pub rp: RelyingParty,
}

impl Keys {
    /// From `[api.portal.webauthn]` and `[api.portal] public_url`;
    /// `Ok(None)` when no origin is configured.
    ///
    /// # Errors
    /// Why the configuration makes no relying party (one line).
    pub fn from_config(
        cfg: &WebauthnConfig,
        public_url: Option<&str>,
        issuer: &str,
    ) -> Result<Option<Self>, String> {
        let Some(rp) = cfg.relying_party(public_url).map_err(|p| p.message)? else {
            return Ok(None);
        };
        let origin = Url::parse(&rp.origin).map_err(|e| format!("origin {}: {e}", rp.origin))?;
        let builder = WebauthnBuilder::new(&rp.id, &origin)
            .map_err(|e| format!("relying party {} for {}: {e}", rp.id, rp.origin))?
            .rp_name(issuer)
            .timeout(std::time::Duration::from_secs(
                CEREMONY_LIFETIME_SECS.unsigned_abs(),
            ))
            .danger_set_user_presence_only_security_keys(
                cfg.user_verification == UserVerification::Discouraged,
            );
        let webauthn = builder
            .build()
            .map_err(|e| format!("relying party {}: {e}", rp.id))?;
        Ok(Some(Self {
            webauthn,
            user_verification: cfg.user_verification,
            rp,
        }))
    }

    fn uv_required(&self) -> bool {
        self.user_verification == UserVerification::Required
    }
}

/// A registration in progress: `webauthn-rs`'s security-key ceremony, or
/// its passkey ceremony when user verification is required (the one that
/// enforces it).
#[derive(Serialize, Deserialize)]
enum RegState {
    Key(SecurityKeyRegistration),
    Verified(PasskeyRegistration),
}

/// An authentication in progress, as [`RegState`].
#[derive(Serialize, Deserialize)]
enum AuthState {
    Key(SecurityKeyAuthentication),
    Verified(PasskeyAuthentication),
}

/// What a ceremony is for: the `purpose` of its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    SignIn,
    Verify,
    /// A proof of a password reset ([`super::reset`]).
    Reset,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SignIn => "sign_in",
            Self::Verify => "verify",
            Self::Reset => "reset",
        }
    }
}

/// Whose ceremony: a page session's, or a password reset's (its own
/// hash), for a user.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner<'a> {
    /// SHA-256 of the session id or of the reset's cookie.
    pub id_hash: &'a str,
    /// The user's row id.
    pub user_id: i64,
    /// The user's name (logs).
    pub username: &'a str,
}

impl<'a> From<&'a Session> for Owner<'a> {
    fn from(s: &'a Session) -> Self {
        Owner {
            id_hash: &s.id_hash,
            user_id: s.user_id,
            username: &s.username,
        }
    }
}

/// Keeps `state` (and the key's name) for `s`, replacing its ceremony of
/// the same purpose; prunes expired ones.
async fn put_ceremony(
    p: &Portal,
    s: Owner<'_>,
    purpose: Purpose,
    state: &str,
    label: Option<&str>,
) -> Result<(), ApiError> {
    let now = p.now();
    let mut tx = p.app.pool.begin().await?;
    sqlx::query(
        "DELETE FROM webauthn_ceremonies WHERE expires_at <= $1 OR (session_hash = $2 AND purpose = $3)",
    )
    .bind(now)
    .bind(s.id_hash)
    .bind(purpose.as_str())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO webauthn_ceremonies (session_hash, purpose, user_id, state, label, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(s.id_hash)
    .bind(purpose.as_str())
    .bind(s.user_id)
    .bind(state)
    .bind(label)
    .bind(now)
    .bind(now + CEREMONY_LIFETIME_SECS)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Takes (deletes) the ceremony of `s` for `purpose`: its state and
/// the key's name, or `None` when there is none or it expired.
async fn take_ceremony(
    p: &Portal,
    s: Owner<'_>,
    purpose: Purpose,
) -> Result<Option<(String, Option<String>)>, ApiError> {
    let row = sqlx::query(
        "DELETE FROM webauthn_ceremonies
         WHERE session_hash = $1 AND purpose = $2 AND user_id = $3
         RETURNING state, label, expires_at",
    )
    .bind(s.id_hash)
    .bind(purpose.as_str())
    .bind(s.user_id)
    .fetch_optional(&p.app.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    if row.try_get::<i64, _>("expires_at")? <= p.now() {
        return Ok(None);
    }
    Ok(Some((row.try_get("state")?, row.try_get("label")?)))
}

/// One of a user's keys as stored.
struct StoredKey {
    label: String,
    credential: String,
}

/// The user's enabled security keys, default first.
async fn stored_keys(p: &Portal, user_id: i64) -> Result<Vec<StoredKey>, ApiError> {
    let rows = sqlx::query(
        "SELECT label, credential FROM methods
         WHERE user_id = $1 AND kind = 'security_key' AND credential IS NOT NULL
           AND disabled = 0 AND pending = 0
         ORDER BY is_default DESC, id",
    )
    .bind(user_id)
    .fetch_all(&p.app.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredKey {
                label: r.try_get("label")?,
                credential: r.try_get("credential")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ApiError::from)
}

/// Whether the user can sign in with a security key here: security keys
/// are configured and the user has an enabled one.
///
/// # Errors
/// Database errors.
pub async fn has_security_key(p: &Portal, user_id: i64) -> Result<bool, ApiError> {
    if p.settings().security_keys.is_none() {
        return Ok(false);
    }
    Ok(sqlx::query(
        "SELECT 1 FROM methods WHERE user_id = $1 AND kind = 'security_key'
         AND credential IS NOT NULL AND disabled = 0 AND pending = 0 LIMIT 1",
    )
    .bind(user_id)
    .fetch_optional(&p.app.pool)
    .await?
    .is_some())
}

/// The user's WebAuthn user handle (random, made at their first key).
async fn user_handle(p: &Portal, user_id: i64) -> Result<Uuid, ApiError> {
    let mut fresh = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut fresh);
    let row = sqlx::query(
        "UPDATE users SET webauthn_user_id = COALESCE(webauthn_user_id, $2) WHERE id = $1
         RETURNING webauthn_user_id",
    )
    .bind(user_id)
    .bind(Uuid::from_bytes(fresh).to_string())
    .fetch_one(&p.app.pool)
    .await?;
    let text: String = row.try_get("webauthn_user_id")?;
    Uuid::parse_str(&text).map_err(|e| {
        ApiError::new(
            twostep_common::api::ApiErrorCode::Internal,
            format!("stored WebAuthn user handle: {e}"),
        )
    })
}

fn keys_of(p: &Portal) -> Result<&Keys, Exit> {
    p.settings()
        .security_keys
        .as_deref()
        .ok_or_else(|| Exit::Redirect("/my/security-info/add".into()))
}

fn internal(what: &str, e: impl std::fmt::Display) -> Exit {
    Exit::Error(ApiError::new(
        twostep_common::api::ApiErrorCode::Internal,
        format!("security key {what}: {e}"),
    ))
}

/// The name of the browser's error from the form's `error` field
/// (`"Name: message"`, the message logged at info for the administrator).
fn browser_error<'a>(username: &str, error: &'a str) -> &'a str {
    let (name, message) = error.split_once(':').unwrap_or((error, ""));
    // The browser's words, as printable text only: they reach the log.
    let printable = |t: &str, n: usize| -> String {
        t.trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(n)
            .collect()
    };
    tracing::info!(
        username = %username,
        error = %printable(name, 40),
        message = %printable(message, 300),
        "the browser refused a security key ceremony"
    );
    name.trim()
}

/// What the page says when `webauthn-rs` refused an answer, and the word
/// for the audit trail.
fn refusal_words(e: &WebauthnError, ceremony: Ceremony) -> (&'static str, &'static str) {
    use WebauthnError as E;
    match e {
        E::UserNotVerified => (
            "user_not_verified",
            "This security key didn't verify you with a PIN or fingerprint, which your organisation requires. Set up a PIN on the key, or use another key.",
        ),
        E::UserNotPresent => (
            "user_not_present",
            "The key didn't report a touch. Touch your key when it blinks, and try again.",
        ),
        E::CredentialPossibleCompromise => (
            "possible_clone",
            "This security key's use counter went backwards, which can mean the key was copied. It was refused. Use another method and tell your administrator.",
        ),
        E::CredentialExcludedFromRequest | E::CredentialAlreadyExists => (
            "already_registered",
            "This security key is already registered to your account. Use another key, or delete the old entry first.",
        ),
        E::InvalidRPOrigin | E::InvalidRPIDHash | E::CredentialCrossOrigin => (
            "wrong_origin",
            "The key answered for another address than this page's. Open the page at the address your administrator gave you and try again.",
        ),
        E::CredentialNotFound => (
            "unknown_key",
            "That security key isn't registered to your account. Use one you added on Security info.",
        ),
        E::MismatchedChallenge | E::ChallengeNotFound => (
            "stale",
            "The key answered an older request. Try again.",
        ),
        _ if ceremony == Ceremony::Register => (
            "verification_failed",
            "The key's answer could not be verified, so it wasn't added. Try again, or use another key.",
        ),
        _ => (
            "verification_failed",
            "The key's answer could not be verified. Try again, or choose another way to sign in.",
        ),
    }
}

// ---- registration --------------------------------------------------------------

/// `POST /my/security-info/security-key`: the key's name.
#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    label: String,
}

/// The form `static/security-key.js` posts: the browser's answer or its
/// refusal.
#[derive(Deserialize)]
pub struct AnswerForm {
    /// The browser's answer, as JSON.
    #[serde(default)]
    credential: String,
    /// The browser's error, `"Name: message"`, when it refused.
    #[serde(default)]
    error: String,
    /// Where to go on to, for a fresh factor.
    #[serde(default)]
    next: Option<String>,
}

async fn name_page(
    p: &Portal,
    s: &Session,
    label: &str,
    error: Option<&'static str>,
    options: Option<String>,
) -> PageResult {
    let keys = keys_of(p)?;
    let page = SecurityKeyPage {
        chrome: Chrome::new(p, "Security key", "security", csrf_of(p, s).await?, Some(s)),
        label: label.to_owned(),
        error,
        options,
        uv_required: keys.uv_required(),
        script: script_src(),
    };
    render(&page)
}

/// `GET /my/security-info/security-key`: name the key.
pub async fn add_page(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info/security-key").await?;
    name_page(&p, s, "", None, None).await
}

/// `POST /my/security-info/security-key`: the name; makes the creation
/// options and shows the "use your key" step.
pub async fn add_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<NameForm>,
) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info/security-key").await?;
    let keys = keys_of(&p)?;
    let label = match check_label(&f.label) {
        Ok(l) => l,
        Err(why) => return name_page(&p, s, &f.label, Some(why), None).await,
    };
    let handle = user_handle(&p, s.user_id).await?;
    // Every key of the user's, disabled ones too: the authenticator
    // refuses to make a second credential for this account.
    let exclude = sqlx::query(
        "SELECT credential FROM methods WHERE user_id = $1 AND kind = 'security_key' AND credential IS NOT NULL",
    )
    .bind(s.user_id)
    .fetch_all(&p.app.pool)
    .await?
    .iter()
    .map(|r| {
        let json: String = r.try_get("credential")?;
        Ok(serde_json::from_str::<SecurityKey>(&json)
            .map(|k| k.cred_id().clone())
            .ok())
    })
    .collect::<Result<Vec<Option<CredentialID>>, sqlx::Error>>()?
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    let exclude = (!exclude.is_empty()).then_some(exclude);
    let display = s.name().to_owned();
    let (options, state) = if keys.uv_required() {
        let (ccr, st) = keys
            .webauthn
            .start_passkey_registration(handle, &s.username, &display, exclude)
            .map_err(|e| internal("registration options", e))?;
        (ccr_json(&ccr)?, RegState::Verified(st))
    } else {
        let (mut ccr, st) = keys
            .webauthn
            .start_securitykey_registration(handle, &s.username, &display, exclude, None, None)
            .map_err(|e| internal("registration options", e))?;
        // webauthn-rs asks for credProtect "user verification required"
        // (not enforced) here; Chromium refuses that level unless the whole
        // request requires user verification ("protection policy is
        // inconsistent"). Without it the key applies no protection level,
        // which the registration state accepts (the extension is optional).
        if let Some(ext) = ccr.public_key.extensions.as_mut() {
            ext.cred_protect = None;
        }
        (ccr_json(&ccr)?, RegState::Key(st))
    };
    let state = serde_json::to_string(&state).map_err(|e| internal("registration state", e))?;
    put_ceremony(&p, s.into(), Purpose::Register, &state, Some(&label)).await?;
    name_page(&p, s, &label, None, Some(options)).await
}

fn ccr_json<T: Serialize>(t: &T) -> Result<String, Exit> {
    serde_json::to_string(t).map_err(|e| internal("options", e))
}

/// Writes a security-key audit record (`actor` the user on the page).
async fn audit_key<'e, E>(
    exec: E,
    p: &Portal,
    s: &Session,
    action: &str,
    result: &str,
    peer: Option<&str>,
    detail: String,
) -> Result<(), ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let actor = format!("user:{}", s.username);
    crate::audit::write_audit(
        exec,
        p.now(),
        &crate::audit::Audit {
            actor: &actor,
            action,
            username: Some(&s.username),
            host: None,
            remote_addr: peer,
            result: Some(result),
            detail: Some(detail),
        },
    )
    .await?;
    Ok(())
}

/// `POST /my/security-info/security-key/finish`: the browser's answer (or
/// its refusal); a verified key is saved, anything else is said on the
/// page and stores nothing.
pub async fn add_finish(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<AnswerForm>,
) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info/security-key").await?;
    let keys = keys_of(&p)?;
    let peer = v.peer.as_deref();
    let Some((state, label)) = take_ceremony(&p, s.into(), Purpose::Register).await? else {
        return name_page(
            &p,
            s,
            "",
            Some("That took too long or the page was used twice. Start again."),
            None,
        )
        .await;
    };
    let label = label.unwrap_or_default();
    let refuse = |word: &'static str, text: &'static str| {
        let p = &p;
        let label = &label;
        async move {
            audit_key(
                &p.app.pool,
                p,
                s,
                "security_key.enrol",
                word,
                peer,
                format!("label {label:?}; nothing stored"),
            )
            .await?;
            name_page(p, s, label, Some(text), None).await
        }
    };
    if !f.error.is_empty() || f.credential.is_empty() {
        let name = browser_error(&s.username, &f.error);
        let (word, text) = browser_refusal(name, Ceremony::Register, keys.uv_required());
        return refuse(word, text).await;
    }
    let Ok(answer) = serde_json::from_str::<RegisterPublicKeyCredential>(&f.credential) else {
        return refuse(
            "unreadable",
            "The answer from your browser couldn't be read. Try again.",
        )
        .await;
    };
    let state: RegState =
        serde_json::from_str(&state).map_err(|e| internal("registration state", e))?;
    let verified = match &state {
        RegState::Key(st) => keys
            .webauthn
            .finish_securitykey_registration(&answer, st)
            .map(|k| serde_json::to_string(&k).map(|j| (k.cred_id().clone(), j))),
        RegState::Verified(st) => keys
            .webauthn
            .finish_passkey_registration(&answer, st)
            .map(|k| serde_json::to_string(&k).map(|j| (k.cred_id().clone(), j))),
    };
    let (cred_id, json) = match verified {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return Err(internal("credential", e)),
        Err(e) => {
            tracing::info!(username = %s.username, error = %e, "security key registration refused");
            let (word, text) = refusal_words(&e, Ceremony::Register);
            return refuse(word, text).await;
        }
    };
    let cred_text = BASE64URL_NOPAD.encode(cred_id.as_ref());
    match save(&p, s, &label, &cred_text, &json, peer).await? {
        Saved::Yes => Err(Exit::Redirect(
            "/my/security-info?done=added-key".into(),
        )),
        Saved::Duplicate => {
            refuse(
                "already_registered",
                "This security key is already registered. Use another key, or delete the old entry first.",
            )
            .await
        }
    }
}

enum Saved {
    Yes,
    Duplicate,
}

/// Inserts the verified key (the default when it is the user's first
/// method) and audits, in one transaction; a credential id registered
/// already (to anyone) is refused by its unique index and stores nothing.
async fn save(
    p: &Portal,
    s: &Session,
    label: &str,
    cred_id: &str,
    credential: &str,
    peer: Option<&str>,
) -> Result<Saved, Exit> {
    let mut tx = p.app.pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO methods (user_id, kind, label, is_default, created_at, credential_id, credential)
         SELECT $1, 'security_key', $2,
                CASE WHEN EXISTS (SELECT 1 FROM methods m WHERE m.user_id = $1 AND m.pending = 0) THEN 0 ELSE 1 END,
                $3, $4, $5
         WHERE NOT EXISTS (SELECT 1 FROM methods WHERE credential_id = $4)
         RETURNING id",
    )
    .bind(s.user_id)
    .bind(label)
    .bind(p.now())
    .bind(cred_id)
    .bind(credential)
    .fetch_optional(&mut *tx)
    .await;
    let id: i64 = match inserted {
        Ok(Some(row)) => row.try_get("id")?,
        Ok(None) => {
            tx.rollback().await?;
            return Ok(Saved::Duplicate);
        }
        Err(sqlx::Error::Database(d)) if d.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            tx.rollback().await?;
            return Ok(Saved::Duplicate);
        }
        Err(e) => return Err(e.into()),
    };
    // The key just proved itself (a touch and a signature checked): the
    // session's second factor is fresh, as after a sign-in with it.
    sqlx::query("UPDATE portal_sessions SET factor_at = $2 WHERE id_hash = $1")
        .bind(&s.id_hash)
        .bind(p.now())
        .execute(&mut *tx)
        .await?;
    audit_key(
        &mut *tx,
        p,
        s,
        "security_key.enrol",
        "ok",
        peer,
        format!("method {id} label {label:?}"),
    )
    .await?;
    tx.commit().await?;
    Ok(Saved::Yes)
}

/// Deletes security key `id` of `s`'s user (a new default promoted when
/// it was the default) and audits `security_key.delete`, in one
/// transaction. Its ceremonies in progress fail at their answer: the key
/// is looked up again there.
///
/// # Errors
/// 404 when the user has no such key; database errors.
pub async fn delete(p: &Portal, s: &Session, id: i64, peer: Option<&str>) -> Result<(), Exit> {
    let mut tx = p.app.pool.begin().await?;
    let row = sqlx::query(
        "DELETE FROM methods WHERE id = $1 AND user_id = $2 AND kind = 'security_key' AND pending = 0
         RETURNING label, credential_id",
    )
    .bind(id)
    .bind(s.user_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(super::not_found)?;
    let label: String = row.try_get("label")?;
    crate::routes::methods::promote_default(&mut tx, s.user_id).await?;
    audit_key(
        &mut *tx,
        p,
        s,
        "security_key.delete",
        "ok",
        peer,
        format!("method {id} label {label:?}"),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---- sign-in and the fresh second factor -----------------------------------------

/// What a key's sign-in page is for.
#[derive(Debug, Clone)]
pub enum KeyFor {
    /// The second factor at sign-in.
    SignIn,
    /// A fresh second factor, then on to the path.
    Verify(String),
}

impl KeyFor {
    fn purpose(&self) -> Purpose {
        match self {
            Self::SignIn => Purpose::SignIn,
            Self::Verify(_) => Purpose::Verify,
        }
    }
}

/// Starts an authentication with the keys of `s`'s user for `purpose`
/// (its state kept as the ceremony of `s`): the request options as JSON
/// for `security-key.js` (`None` when the user has no usable key) and the
/// keys' names.
async fn start_authentication(
    p: &Portal,
    s: Owner<'_>,
    purpose: Purpose,
) -> Result<(Option<String>, Vec<String>), Exit> {
    let keys = keys_of(p)?;
    let stored = stored_keys(p, s.user_id).await?;
    let options = if stored.is_empty() {
        None
    } else {
        let (options, state) = if keys.uv_required() {
            let creds = stored
                .iter()
                .map(|k| serde_json::from_str::<Passkey>(&k.credential))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| internal("stored credential", e))?;
            let (rcr, st) = keys
                .webauthn
                .start_passkey_authentication(&creds)
                .map_err(|e| internal("sign-in options", e))?;
            (ccr_json(&rcr)?, AuthState::Verified(st))
        } else {
            let creds = stored
                .iter()
                .map(|k| serde_json::from_str::<SecurityKey>(&k.credential))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| internal("stored credential", e))?;
            let (rcr, st) = keys
                .webauthn
                .start_securitykey_authentication(&creds)
                .map_err(|e| internal("sign-in options", e))?;
            (ccr_json(&rcr)?, AuthState::Key(st))
        };
        let state = serde_json::to_string(&state).map_err(|e| internal("sign-in state", e))?;
        put_ceremony(p, s, purpose, &state, None).await?;
        Some(options)
    };
    Ok((options, stored.into_iter().map(|k| k.label).collect()))
}

/// Starts a reset's authentication with the keys of `s`'s user (its
/// state kept under the reset's hash): as [`start_authentication`].
///
/// # Errors
/// [`Exit::Redirect`] when security keys are not configured; the
/// database's.
pub(crate) async fn start_reset(
    p: &Portal,
    s: Owner<'_>,
) -> Result<(Option<String>, Vec<String>), Exit> {
    start_authentication(p, s, Purpose::Reset).await
}

/// Request options for keys nobody has, for a password reset of a name
/// that cannot be reset or of a user without a key: credential ids made
/// by `webauthn-rs`'s fake generator (keyed by `hmac_key`, seeded by the
/// name, so the same name gets the same ids), with a fresh challenge, in
/// the shape of a real request; `None` when the generator gives no id
/// (a user without keys looks the same). No ceremony is kept: no answer
/// can pass.
///
/// # Errors
/// [`Exit::Redirect`] when security keys are not configured; an internal
/// error when `webauthn-rs` fails.
pub(crate) fn decoy_options(
    p: &Portal,
    hmac_key: &[u8],
    username: &str,
) -> Result<Option<String>, Exit> {
    use webauthn_rs::fake::{FakePasskeyDistribution, WebauthnFakeCredentialGenerator};
    let keys = keys_of(p)?;
    let ids = WebauthnFakeCredentialGenerator::<FakePasskeyDistribution>::new(hmac_key)
        .and_then(|g| g.generate(username.to_lowercase().as_bytes()))
        .map_err(|e| internal("decoy ids", e))?;
    if ids.is_empty() {
        return Ok(None);
    }
    let rcr = if keys.uv_required() {
        keys.webauthn
            .start_passkey_authentication(&[])
            .map(|(r, _)| r)
    } else {
        keys.webauthn
            .start_securitykey_authentication(&[])
            .map(|(r, _)| r)
    }
    .map_err(|e| internal("decoy options", e))?;
    let mut options = serde_json::to_value(&rcr).map_err(|e| internal("decoy options", e))?;
    options["publicKey"]["allowCredentials"] = ids
        .iter()
        .map(|id| serde_json::json!({"type": "public-key", "id": id}))
        .collect();
    Ok(Some(ccr_json(&options)?))
}

/// Checks a reset's key answer `f` for `s`: as [`check_answer`]. With no
/// `s` (a name that cannot be reset, a user without a key: the page had
/// [`decoy_options`]) the answer is refused as a real one for an unknown
/// key would be: the browser's refusal in its words, else "not
/// registered".
///
/// # Errors
/// As [`check_answer`].
pub(crate) async fn check_reset(
    p: &Portal,
    s: Option<Owner<'_>>,
    username: &str,
    f: &AnswerForm,
) -> Result<Result<i64, (&'static str, &'static str)>, Exit> {
    let keys = keys_of(p)?;
    match s {
        Some(s) => check_answer(p, s, Purpose::Reset, f).await,
        None if !f.error.is_empty() || f.credential.is_empty() => Ok(Err(browser_refusal(
            browser_error(username, &f.error),
            Ceremony::Authenticate,
            keys.uv_required(),
        ))),
        None => Ok(Err(refusal_words(
            &WebauthnError::CredentialNotFound,
            Ceremony::Authenticate,
        ))),
    }
}

/// Starts an authentication with the user's keys for `s` and shows the
/// page (with `error` when the last try failed).
pub async fn show_sign_in(
    p: &Portal,
    s: &Session,
    purpose: &KeyFor,
    error: Option<&'static str>,
) -> PageResult {
    let (options, labels) = start_authentication(p, s.into(), purpose.purpose()).await?;
    let (heading, intro, action, next) = match purpose {
        KeyFor::SignIn => (
            "Use your security key",
            "Insert your security key, choose the button, then touch the key when it blinks.",
            "/my/sign-in/security-key",
            None,
        ),
        KeyFor::Verify(n) => (
            "Verify your identity",
            "Use your security key to go on. Security info asks again after 10 minutes.",
            "/my/verify/security-key",
            Some(n.clone()),
        ),
    };
    let code = super::signin::has_code_method(p, s.user_id).await?
        || crate::recovery::open_until(&p.app.pool, s.user_id, p.now())
            .await?
            .is_some();
    let push = super::signin::has_push_device(p, s.user_id).await?;
    let (code_alt, push_alt) = match purpose {
        KeyFor::SignIn => (
            code.then(|| "/my/sign-in/code".to_owned()),
            push.then(|| "/my/sign-in/push".to_owned()),
        ),
        KeyFor::Verify(n) => (
            code.then(|| format!("/my/verify?next={n}&with=code")),
            push.then(|| format!("/my/verify?next={n}&with=push")),
        ),
    };
    let backup_alt = match purpose {
        KeyFor::SignIn
            if crate::recovery::backup_codes_left(&p.app.pool, s.user_id)
                .await?
                .is_some_and(|n| n > 0) =>
        {
            Some("/my/sign-in/code?with=backup".to_owned())
        }
        _ => None,
    };
    let page = SecurityKeySignInPage {
        backup_alt,
        chrome: Chrome::new(p, heading, "", csrf_of(p, s).await?, None),
        heading,
        intro,
        action,
        next,
        error,
        keys: labels.join(", "),
        back: None,
        options,
        code_alt,
        push_alt,
        username: s.username.clone(),
        script: script_src(),
    };
    render(&page)
}

/// The answer checked: `Ok(method id)` of the key that signed, or what to
/// say and the audit word.
async fn check_answer(
    p: &Portal,
    s: Owner<'_>,
    purpose: Purpose,
    f: &AnswerForm,
) -> Result<Result<i64, (&'static str, &'static str)>, Exit> {
    let keys = keys_of(p)?;
    // A user locked after wrong codes is locked for every second factor,
    // as for pushes (the lock ends by itself or with `twostep user unlock`).
    let locked: Option<i64> = sqlx::query("SELECT locked_until FROM users WHERE id = $1")
        .bind(s.user_id)
        .fetch_one(&p.app.pool)
        .await?
        .try_get("locked_until")?;
    if locked.is_some_and(|t| t > p.now()) {
        return Ok(Err((
            "locked",
            "Your account is locked for a while after too many wrong codes. Try again later, or ask your administrator to unlock it.",
        )));
    }
    let Some((state, _)) = take_ceremony(p, s, purpose).await? else {
        return Ok(Err((
            "expired",
            "That took too long or the page was used twice. Try again.",
        )));
    };
    if !f.error.is_empty() || f.credential.is_empty() {
        return Ok(Err(browser_refusal(
            browser_error(s.username, &f.error),
            Ceremony::Authenticate,
            keys.uv_required(),
        )));
    }
    let Ok(answer) = serde_json::from_str::<PublicKeyCredential>(&f.credential) else {
        return Ok(Err((
            "unreadable",
            "The answer from your browser couldn't be read. Try again.",
        )));
    };
    let state: AuthState =
        serde_json::from_str(&state).map_err(|e| internal("sign-in state", e))?;
    let result: Result<AuthenticationResult, WebauthnError> = match &state {
        AuthState::Key(st) => keys.webauthn.finish_securitykey_authentication(&answer, st),
        AuthState::Verified(st) => keys.webauthn.finish_passkey_authentication(&answer, st),
    };
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            if matches!(e, WebauthnError::CredentialPossibleCompromise) {
                tracing::warn!(username = %s.username, "security key refused: its counter did not grow (a cloned key?)");
            }
            return Ok(Err(refusal_words(&e, Ceremony::Authenticate)));
        }
    };
    let cred_text = BASE64URL_NOPAD.encode(result.cred_id().as_ref());
    let Some(row) = sqlx::query(
        "SELECT id, credential FROM methods WHERE user_id = $1 AND kind = 'security_key'
         AND credential_id = $2 AND disabled = 0 AND pending = 0",
    )
    .bind(s.user_id)
    .bind(&cred_text)
    .fetch_optional(&p.app.pool)
    .await?
    else {
        // Deleted between the options and the answer.
        return Ok(Err(refusal_words(
            &WebauthnError::CredentialNotFound,
            Ceremony::Authenticate,
        )));
    };
    let id: i64 = row.try_get("id")?;
    let old: String = row.try_get("credential")?;
    let mut key: SecurityKey =
        serde_json::from_str(&old).map_err(|e| internal("stored credential", e))?;
    key.update_credential(&result);
    let new = serde_json::to_string(&key).map_err(|e| internal("credential", e))?;
    // The counter moves forward only from the value this check read: of
    // two answers racing with one key only one passes.
    let n = sqlx::query(
        "UPDATE methods SET credential = $3, last_used_at = $4 WHERE id = $1 AND user_id = $2 AND credential = $5",
    )
    .bind(id)
    .bind(s.user_id)
    .bind(&new)
    .bind(p.now())
    .bind(&old)
    .execute(&p.app.pool)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(Err((
            "stale",
            "The key was used by another sign-in at the same moment. Try again.",
        )));
    }
    Ok(Ok(id))
}

fn second_factor_session(v: &Visit) -> Result<&Session, Exit> {
    match &v.session {
        Some(s) if s.stage == Stage::SecondFactor => Ok(s),
        _ => Err(Exit::Redirect("/my/".into())),
    }
}

/// `GET /my/sign-in/security-key`.
pub async fn sign_in_page(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    let s = second_factor_session(&v)?;
    show_sign_in(&p, s, &KeyFor::SignIn, None).await
}

/// `POST /my/sign-in/security-key`: the key's answer at sign-in.
pub async fn sign_in_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<AnswerForm>,
) -> PageResult {
    let s = second_factor_session(&v)?;
    let peer = v.peer.as_deref();
    match check_answer(&p, s.into(), Purpose::SignIn, &f).await? {
        Ok(id) => {
            audit_key(
                &p.app.pool,
                &p,
                s,
                "portal.sign_in",
                "security_key",
                peer,
                format!("method {id}"),
            )
            .await?;
            p.app.metrics.page_sign_in("security_key");
            let (cookie, _) = session::rotate(&p, s, Stage::SignedIn, Some(p.now())).await?;
            Ok(super::pages::redirect_with("/my/", [cookie]))
        }
        Err((word, text)) => {
            audit_key(
                &p.app.pool,
                &p,
                s,
                "portal.sign_in",
                "security_key_refused",
                peer,
                word.to_owned(),
            )
            .await?;
            p.app.metrics.page_sign_in("security_key_refused");
            show_sign_in(&p, s, &KeyFor::SignIn, Some(text)).await
        }
    }
}

/// `POST /my/verify/security-key`: the key's answer for a fresh second
/// factor.
pub async fn verify_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<AnswerForm>,
) -> PageResult {
    let s = signed_in(&v)?;
    let next = safe_next(f.next.as_deref());
    let purpose = KeyFor::Verify(next.clone());
    let peer = v.peer.as_deref();
    match check_answer(&p, s.into(), purpose.purpose(), &f).await? {
        Ok(id) => {
            audit_key(
                &p.app.pool,
                &p,
                s,
                "portal.verify",
                "security_key",
                peer,
                format!("method {id}"),
            )
            .await?;
            sqlx::query("UPDATE portal_sessions SET factor_at = $2 WHERE id_hash = $1")
                .bind(&s.id_hash)
                .bind(p.now())
                .execute(&p.app.pool)
                .await?;
            Err(Exit::Redirect(next))
        }
        Err((word, text)) => {
            audit_key(
                &p.app.pool,
                &p,
                s,
                "portal.verify",
                "security_key_refused",
                peer,
                word.to_owned(),
            )
            .await?;
            show_sign_in(&p, s, &purpose, Some(text)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(origin: &str, uv: UserVerification) -> WebauthnConfig {
        WebauthnConfig {
            rp_id: None,
            origin: Some(origin.into()),
            user_verification: uv,
        }
    }

    #[test]
    fn relying_parties_with_ports_build_and_make_options() {
        let keys = Keys::from_config(
            &config(
                "https://registry.example.com:8443",
                UserVerification::Preferred,
            ),
            None,
            "Example",
        )
        .unwrap()
        .unwrap();
        assert_eq!(keys.rp.origin, "https://registry.example.com:8443");
        let (ccr, _) = keys
            .webauthn
            .start_securitykey_registration(Uuid::nil(), "alice", "Alice", None, None, None)
            .unwrap();
        let json: serde_json::Value = serde_json::to_value(&ccr).unwrap();
        let pk = &json["publicKey"];
        assert_eq!(pk["rp"]["id"], "registry.example.com");
        assert_eq!(pk["rp"]["name"], "Example");
        assert_eq!(
            pk["authenticatorSelection"]["userVerification"],
            "preferred"
        );
        assert_eq!(pk["timeout"], 300_000);
        // Discouraged asks for a touch only; required uses the ceremony that
        // enforces verification.
        let d = Keys::from_config(
            &config(
                "https://registry.example.com",
                UserVerification::Discouraged,
            ),
            None,
            "Example",
        )
        .unwrap()
        .unwrap();
        let (ccr, _) = d
            .webauthn
            .start_securitykey_registration(Uuid::nil(), "alice", "Alice", None, None, None)
            .unwrap();
        let json = serde_json::to_value(&ccr).unwrap();
        assert_eq!(
            json["publicKey"]["authenticatorSelection"]["userVerification"],
            "discouraged"
        );
        let r = Keys::from_config(
            &config("https://registry.example.com", UserVerification::Required),
            None,
            "Example",
        )
        .unwrap()
        .unwrap();
        let (ccr, _) = r
            .webauthn
            .start_passkey_registration(Uuid::nil(), "alice", "Alice", None)
            .unwrap();
        let json = serde_json::to_value(&ccr).unwrap();
        assert_eq!(
            json["publicKey"]["authenticatorSelection"]["userVerification"],
            "required"
        );
        assert!(Keys::from_config(&WebauthnConfig::default(), None, "x")
            .unwrap()
            .is_none());
    }

    /// A portal on a fresh SQLite file, its clock, and a signed-in
    /// session for each of `users`.
    async fn portal(
        users: &[&str],
    ) -> (
        tempfile::TempDir,
        Portal,
        crate::clock::FixedClock,
        Vec<Session>,
    ) {
        let (dir, app, clock) = crate::server::test_state(
            "[api.portal.webauthn]\norigin = \"https://id.example.com:8443\"\n",
        )
        .await;
        let p = Portal {
            app,
            key: tokio::sync::OnceCell::new(),
            hashing: tokio::sync::Semaphore::new(1),
        };
        assert!(p.settings().security_keys.is_some());
        let mut sessions = Vec::new();
        for (i, name) in users.iter().enumerate() {
            let uid: i64 =
                sqlx::query("INSERT INTO users (username, created_at) VALUES ($1, 1) RETURNING id")
                    .bind(*name)
                    .fetch_one(&p.app.pool)
                    .await
                    .unwrap()
                    .try_get("id")
                    .unwrap();
            sessions.push(Session {
                id_hash: format!("{i:064}"),
                cookie: String::new(),
                user_id: uid,
                username: (*name).to_owned(),
                display_name: None,
                stage: Stage::SignedIn,
                factor_at: None,
                set_password: false,
                flow_sealed: None,
                push_challenge: None,
                created_at: 1,
            });
        }
        (dir, p, clock, sessions)
    }

    #[tokio::test]
    async fn a_credential_id_is_saved_once_in_the_registry() {
        let (_dir, p, _, s) = portal(&["alice", "bob"]).await;
        let saved = save(&p, &s[0], "YubiKey 5", "Y3JlZA", "{}", None).await;
        assert!(matches!(saved, Ok(Saved::Yes)));
        // The same credential id again, for the same user or another one:
        // refused, nothing stored.
        for who in [&s[0], &s[1]] {
            let again = save(&p, who, "Copy", "Y3JlZA", "{}", None).await;
            assert!(matches!(again, Ok(Saved::Duplicate)));
        }
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM methods")
            .fetch_one(&p.app.pool)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        assert_eq!(n, 1);
        let row = sqlx::query("SELECT kind, label, is_default FROM methods")
            .fetch_one(&p.app.pool)
            .await
            .unwrap();
        assert_eq!(row.try_get::<String, _>("kind").unwrap(), KIND);
        assert_eq!(row.try_get::<String, _>("label").unwrap(), "YubiKey 5");
        assert_eq!(
            row.try_get::<i64, _>("is_default").unwrap(),
            1,
            "the first method"
        );
        // The unique index holds even without the registry's own check.
        let raw = sqlx::query(
            "INSERT INTO methods (user_id, kind, label, created_at, credential_id) VALUES ($1, 'security_key', 'x', 1, 'Y3JlZA')",
        )
        .bind(s[1].user_id)
        .execute(&p.app.pool)
        .await;
        assert!(raw.is_err());
    }

    #[tokio::test]
    async fn a_ceremony_belongs_to_its_session_is_taken_once_and_expires() {
        let (_dir, p, clock, s) = portal(&["alice", "bob"]).await;
        put_ceremony(
            &p,
            (&s[0]).into(),
            Purpose::Register,
            "state-1",
            Some("Key"),
        )
        .await
        .unwrap();
        // Another session (another user) finds nothing; nor another purpose.
        assert!(take_ceremony(&p, (&s[1]).into(), Purpose::Register)
            .await
            .unwrap()
            .is_none());
        assert!(take_ceremony(&p, (&s[0]).into(), Purpose::SignIn)
            .await
            .unwrap()
            .is_none());
        let got = take_ceremony(&p, (&s[0]).into(), Purpose::Register)
            .await
            .unwrap();
        assert_eq!(got, Some(("state-1".to_owned(), Some("Key".to_owned()))));
        assert!(
            take_ceremony(&p, (&s[0]).into(), Purpose::Register)
                .await
                .unwrap()
                .is_none(),
            "one use"
        );
        // A new ceremony replaces the session's old one of that purpose.
        put_ceremony(&p, (&s[0]).into(), Purpose::SignIn, "old", None)
            .await
            .unwrap();
        put_ceremony(&p, (&s[0]).into(), Purpose::SignIn, "new", None)
            .await
            .unwrap();
        let got = take_ceremony(&p, (&s[0]).into(), Purpose::SignIn)
            .await
            .unwrap();
        assert_eq!(got.map(|g| g.0).as_deref(), Some("new"));
        // Past its life it is gone (and taking it used it up anyway).
        put_ceremony(&p, (&s[0]).into(), Purpose::Verify, "late", None)
            .await
            .unwrap();
        clock.advance(CEREMONY_LIFETIME_SECS.unsigned_abs());
        assert!(take_ceremony(&p, (&s[0]).into(), Purpose::Verify)
            .await
            .unwrap()
            .is_none());
    }

    #[test]
    fn refusals_have_words_and_sentences() {
        let (w, t) = refusal_words(&WebauthnError::UserNotVerified, Ceremony::Register);
        assert_eq!(w, "user_not_verified");
        assert!(t.contains("PIN"));
        let (w, _) = refusal_words(
            &WebauthnError::CredentialPossibleCompromise,
            Ceremony::Authenticate,
        );
        assert_eq!(w, "possible_clone");
        let (w, _) = refusal_words(
            &WebauthnError::CredentialExcludedFromRequest,
            Ceremony::Register,
        );
        assert_eq!(w, "already_registered");
    }
}
