//! A device's signed requests: the long-polled poll for open challenges
//! and the answer.
//!
//! A poll is accepted when its signature verifies against the device's
//! stored public key, its timestamp is within ±[`MAX_CLOCK_SKEW_SECS`] of
//! the registry's clock and its nonce was never seen from this device
//! (`push_seen_nonces`, kept until the timestamp leaves the window, then
//! pruned). An answer is bound by its signature to the challenge's id and
//! nonce; it is recorded by one `UPDATE ... WHERE status = 'pending' AND
//! expires_at > now` that also checks the user, the nonce, the device's
//! enabled flag and the number, so of two answers exactly one wins and a
//! replay finds the challenge closed. Every refusal of a known device is
//! audited with its error code.
//!
//! An approval (or wrong number) from a user who is locked out or
//! disabled when it arrives is refused: the same update ends the
//! challenge as `cancelled`, so the host sees `cancelled` (a refusal,
//! never `approved`), and the device gets 403 `device_disabled`. Deny
//! and fraud are recorded as usual. A lockout itself cancels the user's
//! open challenges in the transaction that sets it (`crate::verify`).

use super::challenge::expire_due;
use super::notify::{self, PushEvent};
use crate::audit::{write_audit, Audit};
use crate::error::{is_unique_violation, ApiError};
use crate::extract::{JsonBody, Peer};
use crate::state::{AppState, Shared};
use axum::extract::State;
use axum::Json;
use sqlx::Row;
use std::time::Duration;
use tokio::time::Instant;
use twostep_common::api::ApiErrorCode;
use twostep_common::push::{
    verify_answer, verify_poll, AnswerAccepted, Decision, DeviceAnswer, DevicePoll,
    PendingChallenge, PendingChallenges, PushContext, PushResult, MAX_CLOCK_SKEW_SECS,
    MAX_WAIT_SECS,
};

/// Longest nonce accepted, in characters.
pub const MAX_NONCE_CHARS: usize = 128;

/// A push device as stored.
struct Device {
    id: i64,
    user_id: i64,
    username: String,
    public_key: String,
    /// The method or its user is disabled.
    disabled: bool,
    /// The method itself is disabled.
    method_disabled: bool,
    /// Activated by the Security info page and not yet confirmed: it sees
    /// only the challenges addressed to it (its test notification).
    pending: bool,
}

/// The device with id `id`; 401 `unknown_device` when there is none.
async fn load_device(state: &AppState, id: i64) -> Result<Device, ApiError> {
    let row = sqlx::query(
        "SELECT m.id, m.user_id, m.public_key, m.disabled, m.pending, u.username, u.disabled AS user_disabled
         FROM methods m JOIN users u ON u.id = m.user_id
         WHERE m.id = $1 AND m.kind = 'push' AND m.public_key IS NOT NULL",
    )
    .bind(id)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| ApiError::new(ApiErrorCode::UnknownDevice, "no such device"))?;
    let method_disabled = row.try_get::<i64, _>("disabled")? != 0;
    Ok(Device {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        public_key: row.try_get("public_key")?,
        disabled: method_disabled || row.try_get::<i64, _>("user_disabled")? != 0,
        method_disabled,
        pending: row.try_get::<i64, _>("pending")? != 0,
    })
}

/// Audits `err` as the refusal of `action` from `dev`, and returns it.
async fn audit_refusal(
    state: &AppState,
    dev: &Device,
    action: &str,
    peer: Option<&str>,
    detail: Option<String>,
    err: ApiError,
) -> ApiError {
    let (_, code, _) = err.parts();
    let code = code.as_str();
    let actor = format!("device:{}", dev.id);
    let record = Audit {
        actor: &actor,
        action,
        username: Some(&dev.username),
        remote_addr: peer,
        result: Some(code),
        detail,
        ..Audit::default()
    };
    if let Err(e) = write_audit(&state.pool, state.now(), &record).await {
        tracing::error!(error = %twostep_common::error_chain(&e), action, code, "could not audit a refused device request");
    }
    err
}

fn disabled_error() -> ApiError {
    ApiError::new(
        ApiErrorCode::DeviceDisabled,
        "this device (or its user) is disabled",
    )
}

/// Checks a poll's signature, timestamp and nonce, recording the nonce.
async fn authenticate_poll(
    state: &AppState,
    req: &DevicePoll,
    peer: Option<&str>,
) -> Result<Device, ApiError> {
    let dev = load_device(state, req.device_id).await?;
    let fail = |err| audit_refusal(state, &dev, "push.poll", peer, None, err);
    if verify_poll(&dev.public_key, req).is_err() {
        return Err(fail(ApiError::new(
            ApiErrorCode::BadSignature,
            "the poll's signature does not verify with this device's key",
        ))
        .await);
    }
    let now = state.now();
    // abs_diff: any i64 pair, no overflow (a timestamp of i64::MIN).
    if now.abs_diff(req.timestamp) > MAX_CLOCK_SKEW_SECS.unsigned_abs() {
        return Err(fail(ApiError::new(
            ApiErrorCode::ClockSkew,
            format!(
                "the poll's timestamp {} is more than {MAX_CLOCK_SKEW_SECS} s from the registry's clock ({now}); set the device's clock",
                req.timestamp
            ),
        ))
        .await);
    }
    if req.nonce.is_empty() || req.nonce.chars().count() > MAX_NONCE_CHARS {
        return Err(fail(ApiError::new(
            ApiErrorCode::InvalidNonce,
            format!("the nonce must be 1 to {MAX_NONCE_CHARS} characters"),
        ))
        .await);
    }
    let mut tx = state.pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO push_seen_nonces (method_id, nonce, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(dev.id)
    .bind(&req.nonce)
    .bind(req.timestamp.saturating_add(MAX_CLOCK_SKEW_SECS + 1))
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            drop(tx);
            return Err(fail(ApiError::new(
                ApiErrorCode::ReplayedNonce,
                "this poll's nonce was used before",
            ))
            .await);
        }
        other => {
            other?;
        }
    }
    sqlx::query("DELETE FROM push_seen_nonces WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE methods SET last_seen_at = $1, last_seen_addr = $2 WHERE id = $3")
        .bind(now)
        .bind(peer)
        .bind(dev.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if dev.disabled {
        return Err(fail(disabled_error()).await);
    }
    Ok(dev)
}

/// The rule of which challenges a device sees and may answer, as SQL on
/// `push_challenges` with `$DEV` the device's id and `$PENDING` its
/// pending flag: its user's challenges addressed to no device in
/// particular (unless the device is pending), and those addressed to it.
const FOR_DEVICE: &str = "((device_id IS NULL AND $PENDING = 0) OR device_id = $DEV)";

/// The open challenges `dev` sees, oldest first.
async fn pending_for(state: &AppState, dev: &Device) -> Result<Vec<PendingChallenge>, ApiError> {
    let sql = format!(
        "SELECT id, host, nonce, number, context, created_at, expires_at FROM push_challenges
         WHERE user_id = $1 AND status = 'pending' AND expires_at > $2 AND {}
         ORDER BY created_at, id",
        FOR_DEVICE.replace("$DEV", "$3").replace("$PENDING", "$4")
    );
    let rows = sqlx::query(&sql)
        .bind(dev.user_id)
        .bind(state.now())
        .bind(dev.id)
        .bind(i64::from(dev.pending))
        .fetch_all(&state.pool)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let host: String = r.try_get("host")?;
        let mut context = serde_json::from_str::<PushContext>(&r.try_get::<String, _>("context")?)
            .unwrap_or_default();
        let claimed_host = super::claimed_host(&host, &context).map(str::to_owned);
        context.host = Some(host);
        out.push(PendingChallenge {
            challenge_id: r.try_get("id")?,
            nonce: r.try_get("nonce")?,
            username: dev.username.clone(),
            context,
            claimed_host,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
            number_matching: r.try_get::<Option<i64>, _>("number")?.is_some(),
        });
    }
    Ok(out)
}

/// `POST /v1/device/poll`: the device's open challenges, held open up to
/// `wait` seconds (at most [`MAX_WAIT_SECS`]) until one is created.
pub(crate) async fn poll(
    State(state): State<Shared>,
    peer: Peer,
    JsonBody(req): JsonBody<DevicePoll>,
) -> Result<Json<PendingChallenges>, ApiError> {
    let peer = peer.text();
    let dev = authenticate_poll(&state, &req, peer.as_deref()).await?;
    let until = Instant::now() + Duration::from_secs(req.wait.min(MAX_WAIT_SECS));
    let mut rx = state.push.hub.subscribe();
    loop {
        let challenges = pending_for(&state, &dev).await?;
        if !challenges.is_empty() || Instant::now() >= until {
            return Ok(Json(PendingChallenges { challenges }));
        }
        let uid = dev.user_id;
        if !notify::wait(&mut rx, until, |e| {
            *e == PushEvent::Created { user_id: uid }
        })
        .await
        {
            let challenges = pending_for(&state, &dev).await?;
            return Ok(Json(PendingChallenges { challenges }));
        }
    }
}

/// `POST /v1/device/answer`.
pub(crate) async fn answer(
    State(state): State<Shared>,
    peer: Peer,
    JsonBody(req): JsonBody<DeviceAnswer>,
) -> Result<Json<AnswerAccepted>, ApiError> {
    let peer = peer.text();
    let peer = peer.as_deref();
    let dev = load_device(&state, req.device_id).await?;
    let detail = Some(format!("challenge {}", req.challenge_id));
    let fail = |err| audit_refusal(&state, &dev, "push.answer", peer, detail.clone(), err);
    if verify_answer(&dev.public_key, &req).is_err() {
        return Err(fail(ApiError::new(
            ApiErrorCode::BadSignature,
            "the answer's signature does not verify with this device's key",
        ))
        .await);
    }
    // A disabled user's answer goes on to the update, which ends the
    // challenge as `cancelled`.
    if dev.method_disabled {
        return Err(fail(disabled_error()).await);
    }
    if req.decision == Decision::Approve && req.number.is_none() {
        let needs = sqlx::query(
            "SELECT number FROM push_challenges WHERE id = $1 AND user_id = $2 AND number IS NOT NULL",
        )
        .bind(&req.challenge_id)
        .bind(dev.user_id)
        .fetch_optional(&state.pool)
        .await?;
        if needs.is_some() {
            return Err(fail(ApiError::new(
                ApiErrorCode::NumberRequired,
                "approving this challenge needs the number shown at the login",
            ))
            .await);
        }
    }
    let now = state.now();
    let mut tx = state.pool.begin().await?;
    let sql = format!(
        "UPDATE push_challenges SET
            status = CASE WHEN $1 = 'deny' THEN 'denied'
                          WHEN $1 = 'fraud' THEN 'fraud'
                          WHEN EXISTS (SELECT 1 FROM users u WHERE u.id = $6
                                       AND (u.disabled <> 0 OR u.locked_until > $3))
                               THEN 'cancelled'
                          WHEN number IS NULL OR number = $2 THEN 'approved'
                          ELSE 'wrong_number' END,
            answered_at = $3, answered_by = $4
         WHERE id = $5 AND user_id = $6 AND nonce = $7
           AND status = 'pending' AND expires_at > $3
           AND EXISTS (SELECT 1 FROM methods WHERE id = $4 AND disabled = 0) AND {}
         RETURNING status, host, context",
        FOR_DEVICE.replace("$DEV", "$4").replace("$PENDING", "$8")
    );
    let row = sqlx::query(&sql)
        .bind(req.decision.as_str())
        .bind(req.number.map(i64::from))
        .bind(now)
        .bind(dev.id)
        .bind(&req.challenge_id)
        .bind(dev.user_id)
        .bind(&req.nonce)
        .bind(i64::from(dev.pending))
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        let err = why_not_answered(&state, &dev, &req, now).await?;
        return Err(fail(err).await);
    };
    let status: String = row.try_get("status")?;
    let result = super::result_of(&status);
    let refused = result == PushResult::Cancelled;
    sqlx::query("UPDATE methods SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(dev.id)
        .execute(&mut *tx)
        .await?;
    if result == PushResult::Fraud {
        sqlx::query("UPDATE users SET push_blocked_at = $1 WHERE id = $2")
            .bind(now)
            .bind(dev.user_id)
            .execute(&mut *tx)
            .await?;
    }
    let context: PushContext =
        serde_json::from_str(&row.try_get::<String, _>("context")?).unwrap_or_default();
    let host: String = row.try_get("host")?;
    let mut detail = detail.clone();
    if let (Some(d), Some(c)) = (&mut detail, super::claimed_host(&host, &context)) {
        d.push_str(&format!(" claimed_host={c:?}"));
    }
    let actor = format!("device:{}", dev.id);
    write_audit(
        &mut *tx,
        now,
        &Audit {
            actor: &actor,
            action: "push.answer",
            username: Some(&dev.username),
            host: Some(&host),
            remote_addr: context.remote_addr.as_deref(),
            result: Some(result.as_str()),
            detail: if refused {
                detail.map(|d| format!("{d}: the user is locked or disabled"))
            } else {
                detail
            },
        },
    )
    .await?;
    let event = PushEvent::Finished {
        challenge_id: req.challenge_id.clone(),
    };
    state.push.hub.announce(&mut *tx, &event).await?;
    tx.commit().await?;
    state.push.hub.publish(event);
    if refused {
        return Err(ApiError::new(
            ApiErrorCode::DeviceDisabled,
            "the user is locked or disabled: the answer is refused and the challenge cancelled",
        ));
    }
    if result == PushResult::Fraud {
        tracing::warn!(
            username = %dev.username,
            device = dev.id,
            challenge_id = %req.challenge_id,
            host = %host,
            remote_addr = context.remote_addr.as_deref(),
            "push reported as fraud: new pushes to this user are blocked until an admin runs `twostep user unlock`"
        );
        state.push.webhook.alert(
            "push_fraud",
            &dev.username,
            now,
            context.remote_addr.as_deref(),
        );
    }
    Ok(Json(AnswerAccepted { result }))
}

/// Why the answer's update matched no row.
async fn why_not_answered(
    state: &AppState,
    dev: &Device,
    req: &DeviceAnswer,
    now: i64,
) -> Result<ApiError, ApiError> {
    let row = sqlx::query(
        "SELECT user_id, nonce, status, expires_at, device_id FROM push_challenges WHERE id = $1",
    )
    .bind(&req.challenge_id)
    .fetch_optional(&state.pool)
    .await?;
    let unknown = || {
        ApiError::new(
            ApiErrorCode::UnknownChallenge,
            "no such challenge for this device's user",
        )
    };
    let Some(row) = row else { return Ok(unknown()) };
    if row.try_get::<i64, _>("user_id")? != dev.user_id {
        return Ok(unknown());
    }
    let addressed: Option<i64> = row.try_get("device_id")?;
    if addressed.map_or(dev.pending, |d| d != dev.id) {
        return Ok(unknown());
    }
    let status: String = row.try_get("status")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    let expired = || {
        ApiError::new(
            ApiErrorCode::ChallengeExpired,
            format!("the challenge expired at {expires_at}"),
        )
    };
    if status == "pending" && expires_at <= now {
        expire_due(state, super::challenge::Due::Challenge(&req.challenge_id)).await?;
        return Ok(expired());
    }
    if status == "expired" {
        return Ok(expired());
    }
    if status != "pending" {
        return Ok(ApiError::new(
            ApiErrorCode::ChallengeClosed,
            format!("the challenge is closed already ({status})"),
        ));
    }
    if row.try_get::<String, _>("nonce")? != req.nonce {
        return Ok(ApiError::new(
            ApiErrorCode::NonceMismatch,
            "the answer's nonce is not the challenge's",
        ));
    }
    // The device was disabled between the first check and the update.
    Ok(disabled_error())
}
