//! Security info → Add a method → Phone: a number (E.164) and how to get
//! codes (text message or call); a code is sent to it and the method is
//! saved only once that code comes back (nothing is written to `methods`
//! before). The number waits, sealed, in `phone_proofs` (one row per page
//! session); the code is a `sent_codes` row of purpose `enrol`
//! ([`crate::phone`]), with its life, tries and the hourly send limit.
//! Each send (sent or not) and the new method are audited with the user as
//! actor (`portal`).

use super::pages::{render, Chrome, PhoneMethodPage};
use super::session::{CsrfForm, Session, Visit};
use super::signin::{audit, csrf_of, fresh};
use super::{Exit, PageResult, Portal};
use crate::phone::{check_page_code, phone_aad, save_method, PageCheck, Purpose, Send};
use axum::extract::State;
use serde::Deserialize;
use sqlx::Row;
use std::sync::Arc;
use twostep_common::api::AuthContext;
use twostep_common::phone::{self, Channel, SendResult};

const START: &str = "/my/security-info/phone";
const CODE: &str = "/my/security-info/phone/code";

/// The channels the registry can send by, text message first.
fn offered(p: &Portal) -> Vec<Channel> {
    [Channel::Sms, Channel::Voice]
        .into_iter()
        .filter(|c| p.app.gateways.has(*c))
        .collect()
}

async fn page(
    p: &Portal,
    s: &Session,
    number: String,
    channel: Channel,
    sent_to: Option<String>,
    error: Option<String>,
) -> PageResult {
    let channels = offered(p);
    let page = PhoneMethodPage {
        chrome: Chrome::new(p, "Phone", "security", csrf_of(p, s).await?, Some(s)),
        number,
        sms: channels.contains(&Channel::Sms),
        voice: channels.contains(&Channel::Voice),
        call: channel == Channel::Voice,
        sent_to,
        error,
    };
    render(&page)
}

/// What the page says for a number the user has already for `channel`.
fn already_yours(channel: Channel, number: &str) -> String {
    let by = match channel {
        Channel::Sms => "text messages",
        Channel::Voice => "calls",
    };
    format!(
        "{} is already on your Security info for {by}.",
        phone::mask(number)
    )
}

/// `GET /my/security-info/phone`: the number to add.
pub async fn start(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    let s = fresh(&p, &v, START).await?;
    let Some(first) = offered(&p).first().copied() else {
        return Err(Exit::Redirect("/my/security-info/add".into()));
    };
    page(&p, s, String::new(), first, None, None).await
}

#[derive(Deserialize)]
pub struct NumberForm {
    #[serde(default)]
    number: String,
    #[serde(default)]
    channel: String,
}

/// `POST /my/security-info/phone`: sends a code to the number; it is
/// saved only once that code comes back.
pub async fn send(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<NumberForm>,
) -> PageResult {
    let s = fresh(&p, &v, START).await?;
    let channel = Channel::from_name(&f.channel)
        .filter(|c| p.app.gateways.has(*c))
        .or_else(|| offered(&p).first().copied());
    let Some(channel) = channel else {
        return Err(Exit::Redirect("/my/security-info/add".into()));
    };
    let typed = f.number.trim().chars().take(40).collect::<String>();
    let number = match phone::parse_e164(&typed) {
        Ok(n) => n,
        Err(why) => {
            let e = format!("That is not a phone number we can use: {why}.");
            return page(&p, s, typed, channel, None, Some(e)).await;
        }
    };
    let mut conn = p.app.pool.acquire().await?;
    let had = crate::phone_dupes::existing(&p.app, &mut conn, s.user_id, channel, &number).await?;
    drop(conn);
    if had.is_some() {
        let e = already_yours(channel, &number);
        return page(&p, s, typed, channel, None, Some(e)).await;
    }
    let context = AuthContext {
        service: Some("portal".into()),
        host: None,
        remote_addr: v.peer.clone(),
        tty: None,
    };
    let (sent, sent_id) = crate::phone::send(
        &p.app,
        &Send {
            uid: s.user_id,
            username: &s.username,
            channel,
            phone: &number,
            method_id: None,
            purpose: Purpose::Enrol,
            actor: "portal",
            context: &context,
        },
    )
    .await?;
    let Some(sent_id) = sent_id.filter(|_| sent.result == SendResult::Sent) else {
        let why = phone::send_refusal(sent.result, channel).unwrap_or("The code was not sent.");
        return page(&p, s, typed, channel, None, Some(format!("{why}."))).await;
    };
    let sealed = p
        .app
        .secrets
        .seal(number.as_bytes(), &phone_aad(s.user_id))
        .map_err(crate::error::ApiError::Secret)?;
    sqlx::query(
        "INSERT INTO phone_proofs (session_hash, user_id, sent_id, channel, phone_sealed, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (session_hash) DO UPDATE SET sent_id = excluded.sent_id,
           channel = excluded.channel, phone_sealed = excluded.phone_sealed,
           created_at = excluded.created_at",
    )
    .bind(&s.id_hash)
    .bind(s.user_id)
    .bind(sent_id)
    .bind(channel.as_str())
    .bind(hex::encode(sealed))
    .bind(p.now())
    .execute(&p.app.pool)
    .await?;
    Err(Exit::Redirect(CODE.into()))
}

/// The number waiting for its code in `s`'s page session: (number,
/// channel, sent code id).
async fn pending(p: &Portal, s: &Session) -> Result<Option<(String, Channel, i64)>, Exit> {
    let Some(r) = sqlx::query(
        "SELECT sent_id, channel, phone_sealed FROM phone_proofs
         WHERE session_hash = $1 AND user_id = $2",
    )
    .bind(&s.id_hash)
    .bind(s.user_id)
    .fetch_optional(&p.app.pool)
    .await?
    else {
        return Ok(None);
    };
    let sealed = hex::decode(r.try_get::<String, _>("phone_sealed")?)
        .map_err(|_| crate::error::ApiError::Secret("pending number is not hex".into()))?;
    let plain = p
        .app
        .secrets
        .open(&sealed, &phone_aad(s.user_id))
        .map_err(crate::error::ApiError::Secret)?;
    let channel = Channel::from_name(&r.try_get::<String, _>("channel")?).unwrap_or(Channel::Sms);
    Ok(Some((
        String::from_utf8_lossy(&plain).into_owned(),
        channel,
        r.try_get("sent_id")?,
    )))
}

/// `GET /my/security-info/phone/code`.
pub async fn code_page(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    let s = fresh(&p, &v, START).await?;
    match pending(&p, s).await? {
        Some((number, channel, _)) => {
            page(
                &p,
                s,
                String::new(),
                channel,
                Some(phone::mask(&number)),
                None,
            )
            .await
        }
        None => Err(Exit::Redirect(START.into())),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

/// `POST /my/security-info/phone/code`: saves the method when the code is
/// the one sent to the number (once, within 5 minutes, at most 3 tries).
pub async fn code_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<CodeForm>,
) -> PageResult {
    let s = fresh(&p, &v, START).await?;
    let Some((number, channel, sent_id)) = pending(&p, s).await? else {
        return Err(Exit::Redirect(START.into()));
    };
    let typed: String = f.code.chars().filter(|c| !c.is_whitespace()).collect();
    let masked = phone::mask(&number);
    match check_page_code(&p.app, s.user_id, sent_id, Purpose::Enrol, &typed).await? {
        PageCheck::Proven => {}
        PageCheck::Wrong => {
            let e = match channel {
                Channel::Sms => {
                    "That code didn't work. Check the text message we sent and try again."
                }
                Channel::Voice => {
                    "That code didn't work. Check the code we read out and try again."
                }
            };
            return page(&p, s, String::new(), channel, Some(masked), Some(e.into())).await;
        }
        PageCheck::Gone => {
            return page(
                &p,
                s,
                String::new(),
                channel,
                Some(masked),
                Some("That code has expired or had too many wrong tries. Go back and send a new one.".into()),
            )
            .await;
        }
    }
    let mut tx = p.app.pool.begin().await?;
    // Only the statement that removes the proof saves the method.
    let gone = sqlx::query("DELETE FROM phone_proofs WHERE session_hash = $1 AND sent_id = $2")
        .bind(&s.id_hash)
        .bind(sent_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(Exit::Redirect(START.into()));
    }
    // Added meanwhile (another tab, an admin): nothing saved twice.
    if crate::phone_dupes::existing(&p.app, &mut tx, s.user_id, channel, &number)
        .await?
        .is_some()
    {
        tx.commit().await?;
        let e = already_yours(channel, &number);
        return page(&p, s, String::new(), channel, None, Some(e)).await;
    }
    let method = save_method(&p.app, &mut tx, s.user_id, channel, &number, false, p.now()).await?;
    audit(
        &mut *tx,
        &p,
        &s.username,
        "portal.phone",
        "added",
        v.peer.as_deref(),
        Some(format!(
            "method {} channel={channel} number={masked}",
            method.id
        )),
    )
    .await?;
    tx.commit().await?;
    Err(Exit::Redirect("/my/security-info?done=phone".into()))
}
