//! Challenges from the host's side: start (with the abuse limits), the
//! long-polled outcome handed out once to the host that started it,
//! cancel; and the admin's disable / enable of a method, which cancels
//! the user's open challenges at once.

use super::notify::{self, PushEvent};
use crate::audit::{write_audit, write_audits, AdminChange, Audit, AuditRow, Subject};
use crate::auth::{AdminAuth, HostAuth};
use crate::error::ApiError;
use crate::extract::{JsonBody, PathArgs, Peer, QueryArgs};
use crate::rows::{method_from_row, METHOD_COLUMNS};
use crate::state::{AppState, Shared};
use crate::validate::check_username;
use crate::write_conn::{fetch_texts, WriteConn};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use sqlx::{Any, AnyConnection, Row, Transaction};
use std::time::Duration;
use tokio::time::Instant;
use twostep_common::api::{ApiErrorCode, Method, MethodKind};
use twostep_common::push::{
    random_token, PushOutcome, PushResult, PushStarted, StartPush, StartResult, StartedChallenge,
    MAX_WAIT_SECS,
};

/// Random bytes of a challenge id and of its nonce (128 bits each).
pub const ID_BYTES: usize = 16;

/// The name of user `uid`, if it still exists.
pub(crate) async fn username_of(
    conn: &mut dyn WriteConn,
    uid: i64,
) -> Result<Option<String>, sqlx::Error> {
    let names = fetch_texts(
        conn,
        "SELECT username FROM users WHERE id = $1",
        &[uid.into()],
        "username",
    )
    .await?;
    Ok(names.into_iter().next())
}

/// Audits `result` of `action` on the challenge in `row` (its `user_id`
/// and `context` columns) as done for `host`, the host that started it.
async fn audit_for_host(
    conn: &mut AnyConnection,
    now: i64,
    host: &str,
    row: &sqlx::any::AnyRow,
    action: &str,
    result: PushResult,
    detail: String,
) -> Result<(), ApiError> {
    let username = username_of(conn, row.try_get("user_id")?).await?;
    let context: twostep_common::push::PushContext =
        serde_json::from_str(&row.try_get::<String, _>("context")?).unwrap_or_default();
    let actor = format!("host:{host}");
    write_audit(
        conn,
        now,
        &Audit {
            actor: &actor,
            action,
            username: username.as_deref(),
            host: Some(host),
            remote_addr: context.remote_addr.as_deref(),
            result: Some(result.as_str()),
            detail: Some(match super::claimed_host(host, &context) {
                Some(c) => format!("{detail} claimed_host={c:?}"),
                None => detail,
            }),
        },
    )
    .await?;
    Ok(())
}

/// The challenges [`expire_due`] looks at.
pub(crate) enum Due<'a> {
    /// One challenge.
    Challenge(&'a str),
    /// Every challenge of a user (row id).
    User(i64),
}

/// Turns the matching challenges that are `pending` past their expiry
/// into `expired` and audits each once (the statement that changes the
/// row is the one that decides the audit).
pub(crate) async fn expire_due(state: &AppState, due: Due<'_>) -> Result<(), ApiError> {
    let now = state.now();
    let sql = |column: &str| {
        format!(
            "UPDATE push_challenges SET status = 'expired'
             WHERE {column} = $1 AND status = 'pending' AND expires_at <= $2
             RETURNING id, user_id, host, context"
        )
    };
    let (by_id, by_user) = (sql("id"), sql("user_id"));
    let q = match due {
        Due::Challenge(id) => sqlx::query(&by_id).bind(id.to_owned()),
        Due::User(uid) => sqlx::query(&by_user).bind(uid),
    };
    let mut tx = state.pool.begin().await?;
    let rows = q.bind(now).fetch_all(&mut *tx).await?;
    for r in &rows {
        let id: String = r.try_get("id")?;
        let host: String = r.try_get("host")?;
        let detail = format!("challenge {id}");
        audit_for_host(
            &mut tx,
            now,
            &host,
            r,
            "push.expire",
            PushResult::Expired,
            detail,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Cancels the open challenges of user `uid` in the transaction on `conn`
/// (a device disabled or deleted, methods reset, the user disabled or
/// locked out) and audits each; returns
/// their ids, for [`super::PushHub::finished`] after the commit.
///
/// # Errors
/// The database's.
pub async fn cancel_open(
    state: &AppState,
    conn: &mut AnyConnection,
    uid: i64,
    peer: Option<&str>,
    why: &str,
) -> Result<Vec<String>, ApiError> {
    cancel_open_as(state, conn, uid, "admin", peer, why).await
}

/// [`cancel_open`] audited as done by `actor` (`admin`, or the host whose
/// failed verification locked the user out).
///
/// # Errors
/// The database's.
pub async fn cancel_open_as(
    state: &AppState,
    conn: &mut dyn WriteConn,
    uid: i64,
    actor: &str,
    peer: Option<&str>,
    why: &str,
) -> Result<Vec<String>, ApiError> {
    let now = state.now();
    let ids = fetch_texts(
        conn,
        "UPDATE push_challenges SET status = 'cancelled', answered_at = $2
         WHERE user_id = $1 AND status = 'pending' AND expires_at > $2
         RETURNING id",
        &[uid.into(), now.into()],
        "id",
    )
    .await?;
    if ids.is_empty() {
        return Ok(ids);
    }
    let username = username_of(conn, uid).await?;
    let records: Vec<AuditRow> = ids
        .iter()
        .map(|id| {
            AuditRow::new(
                now,
                &Audit {
                    actor,
                    action: "push.cancel",
                    username: username.as_deref(),
                    remote_addr: peer,
                    result: Some(PushResult::Cancelled.as_str()),
                    detail: Some(format!("challenge {id}: {why}")),
                    ..Audit::default()
                },
            )
        })
        .collect();
    write_audits(conn, &records).await?;
    for id in &ids {
        let event = PushEvent::Finished {
            challenge_id: id.clone(),
        };
        state.push.hub.announce(conn, &event).await?;
    }
    Ok(ids)
}

/// What a start decided, with the new challenge when sent.
struct Started {
    result: StartResult,
    uid: Option<i64>,
    challenge: Option<StartedChallenge>,
    devices: Vec<i64>,
}

/// `POST /v1/host/push`.
pub(crate) async fn start(
    State(state): State<Shared>,
    HostAuth(host, _): HostAuth,
    JsonBody(req): JsonBody<StartPush>,
) -> Result<Json<PushStarted>, ApiError> {
    start_for(&state, &host, &req, None, Purpose::Login)
        .await
        .map(Json)
}

/// The name challenges started by the Security info page carry as their
/// host (it cannot be a registered host's name: those have no spaces).
pub const PAGE_HOST: &str = "Security info page";

/// What a challenge is for: each purpose has its own count against
/// `[api.push] max_challenges` per `rate_window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A login (hosts) or the page's sign-in and test notification.
    Login,
    /// A password reset's proof, which anyone can start by name: always
    /// with a number to match (even where `[api.push] number_matching` is
    /// off), and counted apart, so a stranger's resets cannot use up the
    /// pushes the user's own logins need.
    Reset,
}

impl Purpose {
    /// The `push_challenges.purpose` value.
    fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Reset => "reset",
        }
    }
}

/// Starts a challenge for `req` as `host`, with the same checks and limits
/// for every caller: to all the user's enabled devices, or, with `device`
/// (the page's test notification), to that one device only, pending or
/// not; for `purpose` (its number matching and its rate count).
///
/// # Errors
/// 400 for a malformed username or context field; the database's.
pub(crate) async fn start_for(
    state: &AppState,
    host: &str,
    req: &StartPush,
    device: Option<i64>,
    purpose: Purpose,
) -> Result<PushStarted, ApiError> {
    check_username(&req.username)?;
    let ctx = &req.context;
    for (what, v) in [
        ("service", &ctx.service),
        ("host", &ctx.host),
        ("remote_addr", &ctx.remote_addr),
        ("tty", &ctx.tty),
        ("nas", &ctx.nas),
    ] {
        super::check_context_field(what, v.as_deref())?;
    }
    let now = state.now();
    if let Some(row) = sqlx::query("SELECT id FROM users WHERE username = $1")
        .bind(&req.username)
        .fetch_optional(&state.pool)
        .await?
    {
        // Expired challenges of this user get their audit record first.
        expire_due(state, Due::User(row.try_get("id")?)).await?;
    }
    let mut tx = state.pool.begin().await?;
    let started = decide(state, &mut tx, host, req, device, purpose, now).await?;
    let actor = format!("host:{host}");
    let mut detail = Vec::new();
    if let Some(s) = &ctx.service {
        detail.push(format!("service={s}"));
    }
    if let Some(n) = &ctx.nas {
        detail.push(format!("nas={n}"));
    }
    if let Some(c) = super::claimed_host(host, ctx) {
        detail.push(format!("claimed_host={c:?}"));
    }
    if let Some(c) = &started.challenge {
        detail.push(format!("challenge={}", c.challenge_id));
        let ids: Vec<String> = started.devices.iter().map(i64::to_string).collect();
        detail.push(format!("devices={}", ids.join(",")));
    }
    write_audit(
        &mut *tx,
        now,
        &Audit {
            actor: &actor,
            action: "push.start",
            username: Some(&req.username),
            host: Some(host),
            remote_addr: ctx.remote_addr.as_deref(),
            result: Some(started.result.as_str()),
            detail: (!detail.is_empty()).then(|| detail.join(" ")),
        },
    )
    .await?;
    let event = started.uid.map(|user_id| PushEvent::Created { user_id });
    if let (Some(e), Some(_)) = (&event, &started.challenge) {
        state.push.hub.announce(&mut *tx, e).await?;
    }
    tx.commit().await?;
    if let (Some(e), Some(c)) = (event, &started.challenge) {
        state.push.hub.publish(e);
        state
            .push
            .webhook
            .fire(&req.username, &started.devices, &c.challenge_id);
    }
    Ok(PushStarted {
        result: started.result,
        challenge: started.challenge,
    })
}

/// Checks the user and the limits and, when all pass, creates the
/// challenge; the first statement locks the user's row, so concurrent
/// starts for one user are counted one after the other.
async fn decide(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    host: &str,
    req: &StartPush,
    device: Option<i64>,
    purpose: Purpose,
    now: i64,
) -> Result<Started, ApiError> {
    let refused = |result, uid| Started {
        result,
        uid,
        challenge: None,
        devices: Vec::new(),
    };
    let Some(user) = sqlx::query(
        "UPDATE users SET push_blocked_at = push_blocked_at WHERE username = $1
         RETURNING id, disabled, locked_until, push_blocked_at",
    )
    .bind(&req.username)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(refused(StartResult::UnknownUser, None));
    };
    let uid: i64 = user.try_get("id")?;
    if user.try_get::<i64, _>("disabled")? != 0 {
        return Ok(refused(StartResult::Disabled, Some(uid)));
    }
    if user
        .try_get::<Option<i64>, _>("locked_until")?
        .is_some_and(|t| t > now)
    {
        return Ok(refused(StartResult::Locked, Some(uid)));
    }
    if user.try_get::<Option<i64>, _>("push_blocked_at")?.is_some() {
        return Ok(refused(StartResult::Blocked, Some(uid)));
    }
    let devices = sqlx::query(
        "SELECT id, label FROM methods
         WHERE user_id = $1 AND kind = 'push' AND disabled = 0 AND public_key IS NOT NULL
           AND (($2 IS NULL AND pending = 0) OR id = $2)
         ORDER BY is_default DESC, id",
    )
    .bind(uid)
    .bind(device)
    .fetch_all(&mut **tx)
    .await?;
    if devices.is_empty() {
        return Ok(refused(StartResult::NotEnrolled, Some(uid)));
    }
    let cfg = &state.push.config;
    let window = i64::try_from(cfg.rate_window).unwrap_or(i64::MAX);
    let recent: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM push_challenges
         WHERE user_id = $1 AND created_at > $2 AND purpose = $3",
    )
    .bind(uid)
    .bind(now.saturating_sub(window))
    .bind(purpose.as_str())
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    if recent >= i64::from(cfg.max_challenges) {
        return Ok(refused(StartResult::RateLimited, Some(uid)));
    }
    let id = random_token(ID_BYTES);
    let nonce = random_token(ID_BYTES);
    let number = (cfg.number_matching || purpose == Purpose::Reset).then(|| {
        use rand::Rng;
        rand::rngs::OsRng.gen_range(10u8..=99)
    });
    let expires_at = now.saturating_add(i64::try_from(cfg.challenge_lifetime).unwrap_or(60));
    let context = serde_json::to_string(&req.context).unwrap_or_else(|_| "{}".into());
    sqlx::query(
        "INSERT INTO push_challenges (id, user_id, host, nonce, number, context, status, created_at, expires_at, device_id, purpose)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(uid)
    .bind(host)
    .bind(&nonce)
    .bind(number.map(i64::from))
    .bind(&context)
    .bind(now)
    .bind(expires_at)
    .bind(device)
    .bind(purpose.as_str())
    .execute(&mut **tx)
    .await?;
    let mut labels = Vec::new();
    let mut ids = Vec::new();
    for d in &devices {
        ids.push(d.try_get::<i64, _>("id")?);
        labels.push(d.try_get::<String, _>("label")?);
    }
    Ok(Started {
        result: StartResult::Sent,
        uid: Some(uid),
        challenge: Some(StartedChallenge {
            challenge_id: id,
            number,
            expires_at,
            device_label: labels.join(", "),
        }),
        devices: ids,
    })
}

#[derive(Deserialize)]
pub(crate) struct WaitQuery {
    #[serde(default)]
    wait: u64,
}

fn unknown_challenge() -> ApiError {
    ApiError::new(
        ApiErrorCode::UnknownChallenge,
        "no such challenge for this host (or its result was handed out already)",
    )
}

/// `GET /v1/host/push/{id}?wait=SECONDS`.
pub(crate) async fn outcome(
    State(state): State<Shared>,
    HostAuth(host, _): HostAuth,
    PathArgs(id): PathArgs<String>,
    QueryArgs(q): QueryArgs<WaitQuery>,
) -> Result<Json<PushOutcome>, ApiError> {
    let until = Instant::now() + Duration::from_secs(q.wait.min(MAX_WAIT_SECS));
    let mut rx = state.push.hub.subscribe();
    loop {
        expire_due(&state, Due::Challenge(&id)).await?;
        let collected = sqlx::query(
            "UPDATE push_challenges SET collected = 1
             WHERE id = $1 AND host = $2 AND collected = 0 AND status <> 'pending'
             RETURNING status",
        )
        .bind(&id)
        .bind(&host)
        .fetch_optional(&state.pool)
        .await?;
        if let Some(row) = collected {
            let status: String = row.try_get("status")?;
            return Ok(Json(PushOutcome {
                result: super::result_of(&status),
            }));
        }
        let pending = sqlx::query(
            "SELECT expires_at FROM push_challenges WHERE id = $1 AND host = $2 AND collected = 0",
        )
        .bind(&id)
        .bind(&host)
        .fetch_optional(&state.pool)
        .await?
        .ok_or_else(unknown_challenge)?;
        let now = Instant::now();
        if now >= until {
            return Ok(Json(PushOutcome {
                result: PushResult::Pending,
            }));
        }
        let left = pending
            .try_get::<i64, _>("expires_at")?
            .saturating_sub(state.now());
        let wake = until.min(now + Duration::from_secs(u64::try_from(left).unwrap_or(0)));
        notify::wait(
            &mut rx,
            wake,
            |e| matches!(e, PushEvent::Finished { challenge_id } if *challenge_id == id),
        )
        .await;
    }
}

/// `DELETE /v1/host/push/{id}`: cancels the challenge if still open;
/// either way its result is no longer handed out.
pub(crate) async fn cancel(
    State(state): State<Shared>,
    HostAuth(host, _): HostAuth,
    PathArgs(id): PathArgs<String>,
) -> Result<StatusCode, ApiError> {
    cancel_for(&state, &host, &id).await
}

/// A challenge the Security info page started, as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageChallenge {
    /// `Pending` until answered (or expired, cancelled).
    pub result: PushResult,
    /// The number to show, under number matching.
    pub number: Option<u8>,
    /// Unix seconds it expires at.
    pub expires_at: i64,
}

/// The page's challenge `id` for user `uid` (read as often as the user
/// reloads; the page, not a host, decides what an approval opens).
///
/// # Errors
/// 404 `unknown_challenge` when the page started no such challenge for
/// the user; the database's.
pub(crate) async fn page_challenge(
    state: &AppState,
    uid: i64,
    id: &str,
) -> Result<PageChallenge, ApiError> {
    expire_due(state, Due::Challenge(id)).await?;
    let row = sqlx::query(
        "SELECT status, number, expires_at FROM push_challenges
         WHERE id = $1 AND user_id = $2 AND host = $3",
    )
    .bind(id)
    .bind(uid)
    .bind(PAGE_HOST)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(unknown_challenge)?;
    Ok(PageChallenge {
        result: super::result_of(&row.try_get::<String, _>("status")?),
        number: row
            .try_get::<Option<i64>, _>("number")?
            .and_then(|n| u8::try_from(n).ok()),
        expires_at: row.try_get("expires_at")?,
    })
}

/// Cancels challenge `id` started by `host` if it is still open (its
/// result is no longer handed out either way); 204, or 404 when `host`
/// has no such challenge.
///
/// # Errors
/// 404 `unknown_challenge`; the database's.
pub(crate) async fn cancel_for(
    state: &AppState,
    host: &str,
    id: &str,
) -> Result<StatusCode, ApiError> {
    let (host, id) = (host.to_owned(), id.to_owned());
    expire_due(state, Due::Challenge(&id)).await?;
    let now = state.now();
    let mut tx = state.pool.begin().await?;
    let cancelled = sqlx::query(
        "UPDATE push_challenges SET status = 'cancelled', answered_at = $3, collected = 1
         WHERE id = $1 AND host = $2 AND collected = 0 AND status = 'pending' AND expires_at > $3
         RETURNING context, user_id",
    )
    .bind(&id)
    .bind(&host)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = cancelled else {
        let closed = sqlx::query(
            "UPDATE push_challenges SET collected = 1 WHERE id = $1 AND host = $2 AND collected = 0
             RETURNING id",
        )
        .bind(&id)
        .bind(&host)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        return closed
            .map(|_| StatusCode::NO_CONTENT)
            .ok_or_else(unknown_challenge);
    };
    let detail = format!("challenge {id}: cancelled by the host");
    let cancelled = PushResult::Cancelled;
    audit_for_host(&mut tx, now, &host, &row, "push.cancel", cancelled, detail).await?;
    let event = PushEvent::Finished {
        challenge_id: id.clone(),
    };
    state.push.hub.announce(&mut *tx, &event).await?;
    tx.commit().await?;
    state.push.hub.publish(event);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/admin/methods/{id}/disable`.
pub(crate) async fn disable_method(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(id): PathArgs<i64>,
) -> Result<Json<Method>, ApiError> {
    set_disabled(&state, &peer, id, true).await.map(Json)
}

/// `POST /v1/admin/methods/{id}/enable`.
pub(crate) async fn enable_method(
    State(state): State<Shared>,
    _admin: AdminAuth,
    peer: Peer,
    PathArgs(id): PathArgs<i64>,
) -> Result<Json<Method>, ApiError> {
    set_disabled(&state, &peer, id, false).await.map(Json)
}

async fn set_disabled(
    state: &AppState,
    peer: &Peer,
    id: i64,
    disabled: bool,
) -> Result<Method, ApiError> {
    let mut change = AdminChange::begin(state, peer).await?;
    let row = sqlx::query(&format!(
        "UPDATE methods SET disabled = $2 WHERE id = $1 RETURNING {METHOD_COLUMNS}"
    ))
    .bind(id)
    .bind(i64::from(disabled))
    .fetch_optional(change.conn())
    .await?
    .ok_or_else(|| ApiError::new(ApiErrorCode::UnknownMethod, format!("no method {id}")))?;
    let method = method_from_row(&row, "")?;
    let uid: i64 = row.try_get("user_id")?;
    let cancelled = if disabled && method.kind == MethodKind::Push {
        let peer = peer.text();
        cancel_open(
            state,
            change.conn(),
            uid,
            peer.as_deref(),
            "device disabled",
        )
        .await?
    } else {
        Vec::new()
    };
    let username = username_of(change.conn(), uid).await?;
    let action = if disabled {
        "method.disable"
    } else {
        "method.enable"
    };
    change
        .commit(
            action,
            Subject {
                username: username.as_deref(),
                ..Subject::default()
            }
            .detail(format!("method {id}")),
        )
        .await?;
    state.push.hub.finished(&cancelled);
    Ok(method)
}
