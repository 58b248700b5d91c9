//! Push approvals in the registry (wire types and route table in
//! [`twostep_common::push`]).
//!
//! - [`activation`]: one-time activation codes and device registration;
//! - [`challenge`]: hosts start, wait for and cancel challenges; admins
//!   disable and enable methods (which cancels open challenges);
//! - [`device`]: a device's signed, long-polled poll and its answer;
//! - [`notify`]: wake-ups of waiting long-polls, across processes on
//!   PostgreSQL (LISTEN/NOTIFY);
//! - [`webhook`]: the optional wake-up call to a site's relay.
//!
//! A challenge row moves from `pending` to one final state in exactly one
//! statement whose `WHERE` requires `status = 'pending'` and an unexpired
//! row (`expires_at > now`); an expired row stays `pending` in storage
//! until it is next looked at, which turns it into `expired` (and audits
//! that) in the same kind of statement. A final state is handed to the
//! host that started the challenge once (`collected`).
//!
//! The host a device is shown and the audit's `host` are the registered
//! name of the host that started the challenge (its API key's); the
//! name the host put in its context is at most shown as `claimed_host`
//! (in the audit detail as `claimed_host=`), when it differs.

pub mod activation;
pub mod challenge;
pub mod device;
pub mod notify;
pub mod openapi;
pub mod webhook;

pub use challenge::cancel_open;
pub use notify::{PushEvent, PushHub};

use crate::app::Routes;
use crate::db::Backend;
use crate::error::ApiError;
use twostep_common::api::{paths, ApiErrorCode};
use twostep_common::push::{PushContext, PushResult};
use twostep_config::{ApiConfig, PushConfig};

/// Longest value of a [`twostep_common::push::PushContext`] field, in characters.
pub const MAX_CONTEXT_CHARS: usize = 256;

/// Push settings and the event hub of one registry process.
#[derive(Debug)]
pub struct PushState {
    /// `[api.push]`.
    pub config: PushConfig,
    /// Base URL put in activation URIs.
    pub public_url: String,
    /// Wake-ups of long-polls.
    pub hub: PushHub,
    /// The wake-up webhook, when configured.
    pub webhook: webhook::Webhook,
}

impl PushState {
    /// From `[api]` (its `push` table, `listen` and TLS settings for the
    /// default public URL, `database` for the PostgreSQL listener).
    pub fn new(api: &ApiConfig, backend: Backend) -> Self {
        Self {
            config: api.push.clone(),
            public_url: public_url(api),
            hub: PushHub::new(backend, &api.database),
            webhook: webhook::Webhook::new(&api.push),
        }
    }
}

/// `[api.push] public_url`, or [`ApiConfig::local_url`].
fn public_url(api: &ApiConfig) -> String {
    api.push
        .public_url
        .as_ref()
        .map_or_else(|| api.local_url(), |u| u.trim_end_matches('/').to_owned())
}

/// The push routes ([`paths::USER_PUSH`], [`paths::METHOD_DISABLE`],
/// [`paths::METHOD_ENABLE`], `paths::DEVICE_*`, [`paths::HOST_PUSH`] and
/// [`paths::HOST_PUSH_CHALLENGE`]), one resource of [`crate::app`].
pub(crate) fn routes(r: Routes) -> Routes {
    r.post(paths::USER_PUSH, activation::create)
        .post(paths::METHOD_DISABLE, challenge::disable_method)
        .post(paths::METHOD_ENABLE, challenge::enable_method)
        .post(paths::DEVICE_ACTIVATE, activation::activate)
        .post(paths::DEVICE_POLL, device::poll)
        .post(paths::DEVICE_ANSWER, device::answer)
        .post(paths::HOST_PUSH, challenge::start)
        .get(paths::HOST_PUSH_CHALLENGE, challenge::outcome)
        .delete(paths::HOST_PUSH_CHALLENGE, challenge::cancel)
}

/// The state stored in `push_challenges.status`.
pub(crate) fn result_of(status: &str) -> PushResult {
    match status {
        "approved" => PushResult::Approved,
        "denied" => PushResult::Denied,
        "fraud" => PushResult::Fraud,
        "wrong_number" => PushResult::WrongNumber,
        "expired" => PushResult::Expired,
        "cancelled" => PushResult::Cancelled,
        _ => PushResult::Pending,
    }
}

/// The host name `ctx` claims, when it is not `registered` (the name of
/// the host's API key, the one shown to devices and audited as `host`).
pub(crate) fn claimed_host<'a>(registered: &str, ctx: &'a PushContext) -> Option<&'a str> {
    ctx.host.as_deref().filter(|h| *h != registered)
}

/// Refuses a context field that is too long or has control or
/// bidirectional formatting characters (shown on the device).
pub(crate) fn check_context_field(what: &str, value: Option<&str>) -> Result<(), ApiError> {
    match value {
        Some(v)
            if v.chars().count() > MAX_CONTEXT_CHARS
                || v.chars().any(crate::validate::is_unsafe_char) =>
        {
            Err(ApiError::new(
                ApiErrorCode::InvalidField,
                format!(
                    "context.{what} must be at most {MAX_CONTEXT_CHARS} characters without control or bidirectional formatting characters"
                ),
            ))
        }
        _ => Ok(()),
    }
}
