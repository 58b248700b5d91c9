//! Push approvals on the pages: sign-in and the fresh second factor by a
//! notification to the user's devices, and the test notification that
//! confirms a device added in "Add a method" ([`super::enrol`]).
//!
//! Challenges go through [`crate::push::challenge::start_for`] with the
//! host [`PAGE_HOST`], so the page gets the same checks as PAM and RADIUS
//! (locked, disabled, fraud block, the rate limit) and the same audit.
//! The session (or the sealed flow) keeps the id of the challenge it
//! waits for; only an approval of that challenge, read back from the
//! registry, opens anything. With JavaScript on, `push-wait.js` polls
//! [`status`] and submits the page's Continue form once the challenge is
//! answered; without it, the user chooses Continue.

use super::session::Visit;
use super::{Exit, Portal};
use crate::error::ApiError;
use crate::push::challenge::{self, PageChallenge};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use twostep_common::push::{PushContext, PushResult, StartPush, StartResult, StartedChallenge};

pub use crate::push::challenge::PAGE_HOST;

/// The live-wait script, compiled in.
pub const SCRIPT: &str = include_str!("../../static/push-wait.js");

/// `src` of the live-wait script, with a content version (cached a year).
pub fn script_src() -> &'static str {
    static SRC: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| super::versioned_src("/my/static/push-wait.js", SCRIPT));
    &SRC
}

/// `GET /my/static/push-wait.js`.
pub async fn script() -> Response {
    super::javascript(SCRIPT)
}

/// What a page's notification is for: the service its challenge context
/// names on the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Sign-in or a fresh second factor (`security-info`).
    SignIn,
    /// The test notification of a device being added.
    Test,
    /// A proof of a password reset (`portal-reset`, always with number
    /// matching).
    Reset,
}

impl Ask {
    fn service(self) -> &'static str {
        match self {
            Self::SignIn => "security-info",
            Self::Test => "security-info (test notification)",
            Self::Reset => "portal-reset",
        }
    }
}

/// Sends a notification for user `username`, for `ask`: to all their
/// enabled devices, or with `device` to that one device only (pending or
/// not). `Err(result)` says why none was sent.
///
/// # Errors
/// The database's.
pub async fn send(
    p: &Portal,
    username: &str,
    ask: Ask,
    device: Option<i64>,
    peer: Option<&str>,
) -> Result<Result<StartedChallenge, StartResult>, ApiError> {
    let req = StartPush {
        username: username.to_owned(),
        context: PushContext {
            service: Some(ask.service().into()),
            host: None,
            remote_addr: peer.map(str::to_owned),
            tty: None,
            nas: None,
        },
    };
    let purpose = match ask {
        Ask::Reset => challenge::Purpose::Reset,
        Ask::SignIn | Ask::Test => challenge::Purpose::Login,
    };
    let started = challenge::start_for(&p.app, PAGE_HOST, &req, device, purpose).await?;
    Ok(started.challenge.ok_or(started.result))
}

/// The challenge `id` of user `uid` as it stands; `None` when there is
/// no such page challenge for them.
///
/// # Errors
/// The database's.
pub async fn current(p: &Portal, uid: i64, id: &str) -> Result<Option<PageChallenge>, ApiError> {
    match challenge::page_challenge(&p.app, uid, id).await {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.parts().1 == twostep_common::api::ApiErrorCode::UnknownChallenge => Ok(None),
        Err(e) => Err(e),
    }
}

/// Cancels the page challenge `id` if it is still open (a new one is
/// sent instead, or the flow was abandoned).
///
/// # Errors
/// The database's.
pub async fn cancel(p: &Portal, id: &str) -> Result<(), ApiError> {
    match challenge::cancel_for(&p.app, PAGE_HOST, id).await {
        Ok(_) => Ok(()),
        Err(e) if e.parts().1 == twostep_common::api::ApiErrorCode::UnknownChallenge => Ok(()),
        Err(e) => Err(e),
    }
}

/// What the page says when no notification could be sent.
pub fn refusal_text(r: StartResult) -> &'static str {
    match r {
        StartResult::Sent => "",
        StartResult::RateLimited => {
            "Too many requests were sent to your app just now. Wait a few minutes, then try again."
        }
        StartResult::Blocked => {
            "Sign-in requests to your app are blocked because one was reported as fraud. Contact your administrator."
        }
        StartResult::NotEnrolled => "You have no device that can approve requests.",
        StartResult::Locked => {
            "Your account is locked for a while after too many failed attempts. Try again later."
        }
        StartResult::Disabled | StartResult::UnknownUser => {
            "Your account is disabled. Contact your administrator."
        }
    }
}

/// What the page says about an answered (or unanswered) request.
pub fn result_text(r: PushResult) -> &'static str {
    match r {
        PushResult::Pending => {
            "We haven't received your answer yet. Approve the request in your app, then choose Continue."
        }
        PushResult::Approved => "Request approved.",
        PushResult::Denied => "You denied the request. Send another one to try again.",
        PushResult::Fraud => {
            "You reported the request as fraud: requests to your app are blocked until your administrator clears them."
        }
        PushResult::WrongNumber => {
            "The number chosen in the app didn't match. Send another request and choose the number shown here."
        }
        PushResult::Expired => "The request timed out. Send another one.",
        PushResult::Cancelled => "The request was cancelled. Send another one.",
    }
}

/// The challenge a visit waits for: the session's (sign-in, fresh factor)
/// or, failing that, the open "Add a method" flow's test notification.
async fn waited_for(p: &Portal, v: &Visit) -> Result<Option<PageChallenge>, ApiError> {
    let Some(s) = &v.session else { return Ok(None) };
    let id = match &s.push_challenge {
        Some(id) => Some(id.clone()),
        None => super::enrol::flow_challenge(p, s),
    };
    match id {
        Some(id) => current(p, s.user_id, &id).await,
        None => Ok(None),
    }
}

/// `GET /my/push-status`: `{"status": "pending" | "approved" | …}` of the
/// challenge the visitor's page waits for (`none` when it waits for
/// none), for `push-wait.js`. Says nothing else about the challenge.
pub async fn status(State(p): State<Arc<Portal>>, v: Visit) -> Result<Response, Exit> {
    let word = match waited_for(&p, &v).await? {
        Some(c) => c.result.as_str(),
        None => "none",
    };
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"status\":\"{word}\"}}"),
    )
        .into_response())
}

/// Seconds from now until `expires_at` (0 when past).
pub fn seconds_left(p: &Portal, expires_at: i64) -> i64 {
    expires_at.saturating_sub(p.now()).max(0)
}
