//! Code verification: the core's TOTP check, the replay-safe record of the
//! matched time step, failure counting and lockout.
//!
//! Race-freedom comes from single statements whose `WHERE` clause is the
//! check, so SQLite (one writer at a time) and PostgreSQL (row lock, then
//! the `WHERE` re-evaluated on the newest row version) both let exactly one
//! of several concurrent submissions win:
//!
//! - accept: `UPDATE methods SET last_step = $s WHERE id = $id AND
//!   (last_step IS NULL OR last_step < $s) AND <user not locked>`; one row
//!   affected means this request consumed the code;
//! - failure: one `UPDATE users` that counts the failure inside the window
//!   and, on reaching `max_failures`, sets `locked_until` and clears the
//!   count; it only touches users that are not locked. The transaction
//!   that sets the lock also cancels the user's open push challenges
//!   ([`crate::push::challenge::cancel_open_as`]);
//! - replay: a code that matches a time step not newer than the method's
//!   `last_step` (seen at the read, or consumed meanwhile by a concurrent
//!   request, which the accept's `WHERE` tells) is answered `replay`. It is
//!   never a failure: NAS retransmissions with a new Identifier, clients
//!   that resend, and servers of a pool given the same request must not
//!   lock the user out. Replays are counted per user in their own window
//!   (`[api.lockout] max_replays` within `replay_window_seconds`, one
//!   `UPDATE users`); past the limit each one is logged at warning level as
//!   a possible attack and its audit record says so.
//!
//! A temporary access code ([`crate::recovery`]) is verified in the same
//! call: a typed answer of its shape is checked against the user's open
//! code (Argon2id) and, on a match, one use is taken
//! ([`crate::recovery::use_once`]); a wrong one counts as a failure like a
//! wrong code. Each use is logged at warning level and audited with the
//! uses left.
//!
//! A code sent by text message or phone call ([`crate::phone`]) is
//! verified in the same call, before the apps' codes: the user's open sent
//! code is used once (one `UPDATE … WHERE used_at IS NULL`); a used one is
//! a replay; a wrong code spends one of the open code's tries and counts
//! as a failure like any wrong code.
//!
//! Secrets are decrypted and codes checked before any write, on the pool
//! (on SQLite, WAL readers never wait for the writer). The writes of one
//! verification and its audit records then run as one job of
//! [`crate::writer`]: in a savepoint of the writer's batch transaction,
//! after the jobs queued before it, answered once the batch committed (on
//! PostgreSQL rows are always locked methods first, then users).

use crate::audit::{Audit, AuditRow};
use crate::crypto::totp_aad;
use crate::error::ApiError;
use crate::rows::{Standing, UserRow};
use crate::sqlite_reads::{Columns, FromRows};
use crate::state::AppState;
use crate::validate::check_username;
use crate::write_conn::{fetch_int, WriteConn, WriteRow};
use twostep_common::api::{ApiErrorCode, MethodKind, VerifyRequest, VerifyResponse, VerifyResult};
use twostep_common::methods::Place;
use twostep_common::recovery;
use twostep_common::totp::{self, TotpCheck, TotpParams, CODE_DIGITS};

/// Verifies `req` for the host named `host` and records the outcome (audit
/// table and log).
///
/// # Errors
/// 400 for a malformed username or code; 503 when the database fails (no
/// partial write: the changes and the audit record are one transaction);
/// 500 when a stored secret does not decrypt.
pub async fn verify(
    state: &AppState,
    host: &str,
    place: Place,
    req: &VerifyRequest,
) -> Result<VerifyResponse, ApiError> {
    verify_as(
        state,
        &format!("host:{host}"),
        Some(host),
        place,
        Failures::Counted,
        req,
    )
    .await
}

/// What a wrong code does to the user's failure count (`[api.lockout]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failures {
    /// Counted: `max_failures` of them in the window lock the user. Every
    /// login (hosts, the page's sign-in), where the code follows a
    /// password or a key.
    Counted,
    /// Not counted, and an open text-message code's tries not spent: the
    /// page's password reset, where whoever types knows no password, so
    /// counting would let anyone lock any user out of every login by
    /// name. The caller bounds the tries itself (the reset's limiter,
    /// [`crate::portal::throttle`]); a locked or disabled user is still
    /// refused, and the audit still records each wrong code.
    NotCounted,
}

/// [`verify`] on behalf of `actor` (the audit record's actor: `host:NAME`,
/// or `portal` for the Security info pages' sign-in), recording
/// `default_host` as the host when the request's context names none.
/// Every answer is counted here ([`crate::metrics::Metrics::verified`],
/// by result, with its latency), as is a lockout it sets.
///
/// # Errors
/// As [`verify`].
pub async fn verify_as(
    state: &AppState,
    actor: &str,
    default_host: Option<&str>,
    place: Place,
    failures: Failures,
    req: &VerifyRequest,
) -> Result<VerifyResponse, ApiError> {
    let started = std::time::Instant::now();
    let answer = decide_and_record(state, actor, default_host, place, failures, req).await;
    match &answer {
        Ok(resp) => state
            .metrics
            .verified(resp.result, actor, started.elapsed()),
        // A malformed request is no verification.
        Err(ApiError::Client { .. }) => {}
        Err(_) => state.metrics.verify_failed(started.elapsed()),
    }
    answer
}

/// The verification of [`verify_as`], without the counting.
async fn decide_and_record(
    state: &AppState,
    actor: &str,
    default_host: Option<&str>,
    place: Place,
    failures: Failures,
    req: &VerifyRequest,
) -> Result<VerifyResponse, ApiError> {
    check_username(&req.username)?;
    if !recovery::is_second_factor_format(&req.code) {
        return Err(ApiError::new(
            ApiErrorCode::InvalidCodeFormat,
            format!(
                "the code must be exactly {CODE_DIGITS} ASCII digits, or a temporary access code"
            ),
        ));
    }
    let now_u = state.clock.now();
    let now = i64::try_from(now_u).unwrap_or(i64::MAX);
    // Reads first, on the pool; then every write of this verification
    // (consume or count, audit) in one transaction whose first statement
    // writes, so a failure leaves nothing half-done.
    // `123 456` as some apps show it: the code without its spaces.
    let code = recovery::normalise_code(&req.code).unwrap_or_else(|| req.code.clone());
    let plan = plan(state, &req.username, &code, place, now_u, now).await?;
    let ctx = req.context.clone();
    let username = req.username.clone();
    let actor_owned = actor.to_owned();
    let audit_host = ctx.host.clone().or_else(|| default_host.map(str::to_owned));
    let record_host = audit_host.clone();
    // The writes, with the audit record, in the writer's next batch
    // (crate::writer): answered once that batch committed.
    let (applied, cancelled, over_replays) = state
        .writer
        .run(state, move |state, conn, audits| {
            // The writer may run this more than once (crate::writer): each
            // run takes its own copies.
            let plan = plan.clone();
            let ctx = ctx.clone();
            let username = username.clone();
            let actor_owned = actor_owned.clone();
            let record_host = record_host.clone();
            Box::pin(async move {
                let applied = apply(state, conn, plan, now, failures).await?;
                let (over_replays, record_detail) = verify_detail(state, &ctx, &applied);
                let record = Audit {
                    actor: &actor_owned,
                    action: "verify",
                    username: Some(&username),
                    host: record_host.as_deref(),
                    remote_addr: ctx.remote_addr.as_deref(),
                    result: Some(applied.resp.result.as_str()),
                    detail: record_detail,
                };
                audits.push(AuditRow::new(now, &record));
                let mut cancelled = Vec::new();
                if let Some((until, uid)) = applied.lockout {
                    let record = Audit {
                        action: "lockout",
                        result: Some("locked"),
                        detail: Some(format!(
                            "{} failures within {} s; locked until {}",
                            state.lockout.max_failures,
                            state.lockout.window_seconds,
                            humantime::format_rfc3339_seconds(
                                std::time::UNIX_EPOCH
                                    + std::time::Duration::from_secs(
                                        u64::try_from(until).unwrap_or(0)
                                    )
                            )
                        )),
                        ..record
                    };
                    audits.push(AuditRow::new(now, &record));
                    // A locked user's open pushes end with the lockout.
                    cancelled = crate::push::challenge::cancel_open_as(
                        state,
                        conn,
                        uid,
                        &actor_owned,
                        ctx.remote_addr.as_deref(),
                        "user locked out",
                    )
                    .await?;
                }
                Ok((applied, cancelled, over_replays))
            })
        })
        .await?;
    let Applied {
        resp, lockout, tap, ..
    } = applied;
    let ctx = &req.context;
    let lk = &state.lockout;
    let audit_host = audit_host.as_deref();
    state.push.hub.finished(&cancelled);
    if let Some(n) = over_replays {
        tracing::warn!(
            username = %req.username,
            host = audit_host.unwrap_or("-"),
            remote_addr = ctx.remote_addr.as_deref().unwrap_or("-"),
            replays = n,
            window_seconds = lk.replay_window_seconds,
            max_replays = lk.max_replays,
            "replayed codes over max_replays: a used code is being sent again and again (possible attack)"
        );
    }
    if let Some((id, left)) = tap {
        tracing::warn!(
            username = %req.username,
            host = audit_host.unwrap_or("-"),
            remote_addr = ctx.remote_addr.as_deref().unwrap_or("-"),
            code_id = id,
            uses_left = left,
            "temporary access code used"
        );
    }
    if let Some((until, _)) = lockout {
        state.metrics.locked_out();
        tracing::warn!(
            username = %req.username,
            host = audit_host.unwrap_or("-"),
            locked_until = until,
            "user locked out after too many failed verifications"
        );
    }
    Ok(resp)
}

/// The audit detail of a verification (`service=… tty=… method=…`) and
/// the replay count when it is over `max_replays`.
fn verify_detail(
    state: &AppState,
    ctx: &twostep_common::api::AuthContext,
    applied: &Applied,
) -> (Option<i64>, Option<String>) {
    let mut detail = Vec::new();
    if let Some(s) = &ctx.service {
        detail.push(format!("service={s}"));
    }
    if let Some(t) = &ctx.tty {
        detail.push(format!("tty={t}"));
    }
    if let Some(id) = applied.resp.method_id {
        detail.push(format!("method={id}"));
    }
    if let Some(via) = &applied.via {
        detail.push(format!("sent_code channel={via}"));
    }
    if let Some(left) = applied.backup_left {
        detail.push(format!("backup_code backup_codes_left={left}"));
    }
    if let Some((id, left)) = applied.tap {
        detail.push(format!("temporary_access_code={id} uses_left={left}"));
    }
    let lk = &state.lockout;
    let over_replays = applied.replays.filter(|n| *n > i64::from(lk.max_replays));
    if let Some(n) = applied.replays {
        detail.push(format!(
            "replays={n} within {} s (max_replays {})",
            lk.replay_window_seconds, lk.max_replays
        ));
    }
    if over_replays.is_some() {
        detail.push("over max_replays: possible attack".into());
    }
    (over_replays, (!detail.is_empty()).then(|| detail.join(" ")))
}

/// What a verification does, decided from reads alone.
#[derive(Clone)]
enum Plan {
    /// Answer without changing anything but the audit table.
    Answer(VerifyResponse),
    /// The code matched `step` of `method_id`: consume it if still fresh.
    Consume {
        /// The user's row id.
        uid: i64,
        /// The matching method.
        method_id: i64,
        /// The matched time step.
        step: i64,
        /// Whether the user has failures to clear on an accept.
        clear: bool,
    },
    /// The answer is the user's open temporary access code `tap_id`: use
    /// it once if it still works.
    UseTap {
        /// The user's row id.
        uid: i64,
        /// The code's row id.
        tap_id: i64,
    },
    /// The answer is unused backup code `code_id` of the user's current
    /// set: use it if it still is.
    UseBackup {
        /// The user's row id.
        uid: i64,
        /// The backup code's row id.
        code_id: i64,
    },
    /// The answer is the user's open sent code `sent_id` (text message
    /// or call, [`crate::phone`]): use it if it still works.
    UseSent {
        /// The user's row id.
        uid: i64,
        /// The sent code's row id.
        sent_id: i64,
        /// Its phone method.
        method_id: i64,
        /// How it was sent (`sms`, `voice`), for the audit.
        channel: String,
    },
    /// Wrong code while sent codes are open: a try off each, and a failure.
    FailSent {
        /// The user's row id.
        uid: i64,
        /// The open sent codes.
        open: Vec<i64>,
    },
    /// Wrong or expired code: count a failure.
    Fail {
        /// The user's row id.
        uid: i64,
    },
    /// The code matched a time step of `method_id` used already: count a
    /// replay.
    Replay {
        /// The user's row id.
        uid: i64,
        /// The matching method.
        method_id: i64,
    },
}

/// What [`apply`] did.
struct Applied {
    /// The answer.
    resp: VerifyResponse,
    /// `Some((locked_until, user id))` when this request set a lockout.
    lockout: Option<(i64, i64)>,
    /// On `replay`: the user's replays in the window, this one included.
    replays: Option<i64>,
    /// A temporary access code used: its id and the uses left.
    tap: Option<(i64, i64)>,
    /// A backup code used: the unused codes of its set left.
    backup_left: Option<i64>,
    /// A sent code used: how it was sent (`sms`, `voice`).
    via: Option<String>,
}

impl Applied {
    fn answer(resp: VerifyResponse) -> Self {
        Self {
            resp,
            lockout: None,
            replays: None,
            tap: None,
            backup_left: None,
            via: None,
        }
    }
}

/// What [`plan`] reads of a user, in one statement: the user row, the
/// failure count, how many sent codes are open, and every method that is
/// not pending (in the order codes are tried: default first).
struct Reads {
    user: UserRow,
    failure_count: i64,
    sent_open: i64,
    methods: Vec<MethodRead>,
}

/// One method of [`Reads`].
struct MethodRead {
    id: i64,
    kind: String,
    /// Hex of the sealed TOTP secret; `None` for other kinds.
    secret_sealed: Option<String>,
    digits: i64,
    step_seconds: i64,
    last_step: Option<i64>,
    disabled: bool,
}

impl Reads {
    /// The reads for `username` at `now` (Unix seconds); `None` for an
    /// unknown user. One statement: on SQLite each statement is a hand-off
    /// to a connection's thread, the cost that dominates a verification.
    async fn load(state: &AppState, username: &str, now: i64) -> Result<Option<Self>, ApiError> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        // The sent-code condition is crate::phone::find_sent's.
        let sql = SQL.get_or_init(|| {
            format!(
                "SELECT {}, u.failure_count,
                    (SELECT COUNT(*) FROM sent_codes s
                     WHERE s.user_id = u.id AND s.purpose = 'login' AND s.status = 'sent'
                       AND s.expires_at > $2 AND s.method_id IS NOT NULL
                       AND (s.used_at IS NOT NULL OR s.tries_left > 0)) AS sent_open,
                    m.id AS m_id, m.kind AS m_kind, m.secret_sealed AS m_secret,
                    m.digits AS m_digits, m.step_seconds AS m_step, m.last_step AS m_last,
                    m.disabled AS m_disabled
             FROM users u LEFT JOIN methods m ON m.user_id = u.id AND m.pending = 0
             WHERE u.username = $1
             ORDER BY m.is_default DESC, m.id",
                crate::rows::qualified(crate::rows::USER_COLUMNS, "u", None)
            )
        });
        let mut found = None;
        crate::sqlite_reads::by_user_at(state, sql, username, now, &mut found).await?;
        Ok(found)
    }
}

/// What [`Reads::load`]'s rows build.
impl FromRows for Option<Reads> {
    fn add(&mut self, r: &impl Columns) -> Result<(), sqlx::Error> {
        let reads = match self {
            Some(f) => f,
            None => self.insert(Reads {
                user: UserRow::from_row(r)?,
                failure_count: r.col("failure_count")?,
                sent_open: r.col("sent_open")?,
                methods: Vec::new(),
            }),
        };
        let Some(id) = r.col::<Option<i64>>("m_id")? else {
            return Ok(());
        };
        reads.methods.push(MethodRead {
            id,
            kind: r.col("m_kind")?,
            secret_sealed: r.col("m_secret")?,
            digits: r.col::<Option<i64>>("m_digits")?.unwrap_or(6),
            step_seconds: r.col::<Option<i64>>("m_step")?.unwrap_or(30),
            last_step: r.col("m_last")?,
            disabled: r.col::<Option<i64>>("m_disabled")?.unwrap_or(0) != 0,
        });
        Ok(())
    }
}

impl Reads {
    /// Whether the user has something to pass a second factor with in
    /// `place`: a method (a disabled one included) that counts there, or
    /// an open temporary access code.
    async fn enrolment(
        &self,
        state: &AppState,
        now: i64,
        place: Place,
    ) -> Result<Enrolment, ApiError> {
        let known = || {
            self.methods
                .iter()
                .filter_map(|m| MethodKind::parse(&m.kind))
        };
        if known().any(|k| k.counts_in(place))
            || crate::recovery::open_until(&state.pool, self.user.id, now)
                .await?
                .is_some()
        {
            Ok(Enrolment::Here)
        } else if known().next().is_some() {
            Ok(Enrolment::Elsewhere)
        } else {
            Ok(Enrolment::Nowhere)
        }
    }
}

async fn plan(
    state: &AppState,
    username: &str,
    code: &str,
    place: Place,
    now_u: u64,
    now: i64,
) -> Result<Plan, ApiError> {
    let Some(reads) = Reads::load(state, username, now).await? else {
        return Ok(Plan::Answer(verdict(VerifyResult::UnknownUser)));
    };
    let uid = reads.user.id;
    // An accept clears the failure count; none to clear, no statement. (A
    // failure recorded meanwhile then stays counted: stricter, never
    // laxer.)
    let clear = reads.failure_count != 0;
    match reads.user.standing(now) {
        Standing::Disabled => return Ok(Plan::Answer(verdict(VerifyResult::Disabled))),
        Standing::Locked { until } => return Ok(Plan::Answer(locked(until))),
        Standing::Active => {}
    }
    if let Some(backup) = recovery::normalise_backup_code(code) {
        return Ok(
            match crate::recovery::find_backup(state, uid, &backup).await? {
                Some(code_id) => Plan::UseBackup { uid, code_id },
                None => match reads.enrolment(state, now, place).await? {
                    Enrolment::Here => Plan::Fail { uid },
                    e => Plan::Answer(not_enrolled(e, place)),
                },
            },
        );
    }
    if let Some(tap) = recovery::normalise_tap(code) {
        return Ok(match crate::recovery::find(state, uid, &tap, now).await? {
            Some(tap_id) => Plan::UseTap { uid, tap_id },
            None => match reads.enrolment(state, now, place).await? {
                Enrolment::Here => Plan::Fail { uid },
                e => Plan::Answer(not_enrolled(e, place)),
            },
        });
    }
    // A code sent by text message or call (crate::phone), looked up only
    // when one is open.
    let sent = if reads.sent_open > 0 {
        crate::phone::find_sent(state, uid, code, now).await?
    } else {
        crate::phone::SentMatch::NoMatch { open: Vec::new() }
    };
    let sent = match sent {
        crate::phone::SentMatch::Open {
            sent_id,
            method_id,
            channel,
        } => {
            return Ok(Plan::UseSent {
                uid,
                sent_id,
                method_id,
                channel,
            })
        }
        other => other,
    };
    let no_app_match = |sent: crate::phone::SentMatch| match sent {
        crate::phone::SentMatch::Used { method_id } => Some(Plan::Replay { uid, method_id }),
        crate::phone::SentMatch::NoMatch { open } if !open.is_empty() => {
            Some(Plan::FailSent { uid, open })
        }
        _ => None,
    };
    let apps: Vec<&MethodRead> = reads
        .methods
        .iter()
        .filter(|m| m.kind == MethodKind::Totp.as_str() && !m.disabled && m.secret_sealed.is_some())
        .collect();
    if apps.is_empty() {
        if let Some(p) = no_app_match(sent) {
            return Ok(p);
        }
        // A user whose methods are all push devices or disabled, or who
        // has only a temporary access code, is enrolled: a code is wrong
        // for them, never "not enrolled" (which the `ignore` policy would
        // let through).
        return Ok(match reads.enrolment(state, now, place).await? {
            Enrolment::Here => Plan::Fail { uid },
            e => Plan::Answer(not_enrolled(e, place)),
        });
    }
    // A fresh match on any method wins over a replay on another.
    let mut replayed = None;
    for m in apps {
        let id = m.id;
        let sealed_hex = m.secret_sealed.as_deref().unwrap_or_default();
        let sealed = hex::decode(sealed_hex)
            .map_err(|_| ApiError::Secret(format!("method {id}: stored secret is not hex")))?;
        let secret = state
            .secrets
            .open(&sealed, &totp_aad(id, uid))
            .map_err(|e| ApiError::Secret(format!("method {id}: {e}")))?;
        let params = TotpParams {
            digits: u32::try_from(m.digits).unwrap_or(6),
            step_seconds: u64::try_from(m.step_seconds).unwrap_or(30),
            t0: 0,
            skew_steps: state.skew_steps,
        };
        let last = m.last_step.and_then(|l| u64::try_from(l).ok());
        match totp::check(&secret, code, now_u, last, &params) {
            TotpCheck::Match { step } => {
                return Ok(Plan::Consume {
                    uid,
                    method_id: id,
                    step: i64::try_from(step).unwrap_or(i64::MAX),
                    clear,
                })
            }
            TotpCheck::Replay => replayed = replayed.or(Some(id)),
            TotpCheck::NoMatch => {}
        }
    }
    Ok(match replayed {
        Some(method_id) => Plan::Replay { uid, method_id },
        None => no_app_match(sent).unwrap_or(Plan::Fail { uid }),
    })
}

/// Whether a user can pass a second factor in a place
/// ([`twostep_common::methods`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enrolment {
    /// A method (enabled or disabled: a wrong code is wrong, not "not
    /// enrolled", which the `ignore` policy would let through) that counts
    /// there, or an open temporary access code.
    Here,
    /// Methods, none of which counts there (a security key, at a VPN).
    Elsewhere,
    /// No method at all.
    Nowhere,
}

/// The `not_enrolled` answer, naming `place` for [`Enrolment::Elsewhere`].
fn not_enrolled(e: Enrolment, place: Place) -> VerifyResponse {
    VerifyResponse {
        not_set_up_for: (e == Enrolment::Elsewhere).then_some(place),
        ..verdict(VerifyResult::NotEnrolled)
    }
}

/// Carries out `plan` in `tx`, counting a failure as `failures` says.
async fn apply(
    state: &AppState,
    conn: &mut dyn WriteConn,
    plan: Plan,
    now: i64,
    failures: Failures,
) -> Result<Applied, ApiError> {
    let uid = match plan {
        Plan::Answer(resp) => return Ok(Applied::answer(resp)),
        Plan::Fail { uid } => uid,
        Plan::UseBackup { uid, code_id } => {
            match crate::recovery::use_backup(conn, code_id, now).await? {
                Some(left) => {
                    clear_failures(conn, uid).await?;
                    return Ok(Applied {
                        backup_left: Some(left),
                        ..Applied::answer(verdict(VerifyResult::Accept))
                    });
                }
                None => uid,
            }
        }
        Plan::UseTap { uid, tap_id } => match crate::recovery::use_once(conn, tap_id, now).await? {
            Some(left) => {
                clear_failures(conn, uid).await?;
                return Ok(Applied {
                    tap: Some((tap_id, left)),
                    ..Applied::answer(verdict(VerifyResult::Accept))
                });
            }
            // Used up, revoked or expired since it was found.
            None => uid,
        },
        Plan::Replay { uid, method_id } => {
            return record_replay(state, conn, uid, method_id, now).await
        }
        Plan::FailSent { uid, open } => {
            if failures == Failures::Counted {
                crate::phone::spend_tries(conn, &open).await?;
            }
            uid
        }
        Plan::UseSent {
            uid,
            sent_id,
            method_id,
            channel,
        } => {
            if crate::phone::use_sent(conn, sent_id, uid, now).await? {
                conn.execute(
                    "UPDATE methods SET last_used_at = $1 WHERE id = $2",
                    &[now.into(), method_id.into()],
                )
                .await?;
                clear_failures(conn, uid).await?;
                return Ok(Applied {
                    via: Some(channel),
                    ..Applied::answer(VerifyResponse {
                        result: VerifyResult::Accept,
                        method_id: Some(method_id),
                        locked_until: None,
                        not_set_up_for: None,
                    })
                });
            }
            // Used by a concurrent request first: a replay. Otherwise it
            // expired, or the user was locked meanwhile.
            let used = fetch_int(
                conn,
                "SELECT used_at FROM sent_codes WHERE id = $1",
                &[sent_id.into()],
                "used_at",
            )
            .await?
            .flatten()
            .is_some();
            if used {
                return record_replay(state, conn, uid, method_id, now).await;
            }
            uid
        }
        Plan::Consume {
            uid,
            method_id,
            step,
            clear,
        } => {
            let consumed = conn
                .execute(
                    "UPDATE methods SET last_step = $1, last_used_at = $4
                 WHERE id = $2 AND (last_step IS NULL OR last_step < $1)
                   AND NOT EXISTS (SELECT 1 FROM users
                                   WHERE id = $3 AND locked_until IS NOT NULL AND locked_until > $4)",
                    &[step.into(), method_id.into(), uid.into(), now.into()],
                )
                .await?;
            if consumed == 1 {
                if clear {
                    clear_failures(conn, uid).await?;
                }
                return Ok(Applied::answer(VerifyResponse {
                    result: VerifyResult::Accept,
                    method_id: Some(method_id),
                    locked_until: None,
                    not_set_up_for: None,
                }));
            }
            // Another request consumed this step (or a newer one) first: a
            // replay. Otherwise the user was locked meanwhile, which
            // `record_failure` answers with `locked`.
            let last = fetch_int(
                conn,
                "SELECT last_step FROM methods WHERE id = $1",
                &[method_id.into()],
                "last_step",
            )
            .await?
            .flatten();
            if last.is_some_and(|l| l >= step) {
                return record_replay(state, conn, uid, method_id, now).await;
            }
            uid
        }
    };
    match failures {
        Failures::Counted => record_failure(state, conn, uid, now).await,
        Failures::NotCounted => Ok(Applied::answer(verdict(VerifyResult::Reject))),
    }
}

/// Clears user `uid`'s failure count after an accepted code.
async fn clear_failures(conn: &mut dyn WriteConn, uid: i64) -> Result<(), sqlx::Error> {
    conn.execute(
        "UPDATE users SET failure_count = 0, failure_window_start = NULL WHERE id = $1",
        &[uid.into()],
    )
    .await?;
    Ok(())
}

/// Counts one replay of a code of `method_id` in the user's replay window
/// (never a failure): `replay`, with the count in the window.
async fn record_replay(
    state: &AppState,
    conn: &mut dyn WriteConn,
    uid: i64,
    method_id: i64,
    now: i64,
) -> Result<Applied, ApiError> {
    let window = i64::try_from(state.lockout.replay_window_seconds).unwrap_or(i64::MAX);
    let in_window = "(replay_window_start IS NOT NULL AND replay_window_start > $2)";
    let sql = format!(
        "UPDATE users SET
            replay_count = CASE WHEN {in_window} THEN replay_count + 1 ELSE 1 END,
            replay_window_start = CASE WHEN {in_window} THEN replay_window_start ELSE $3 END
         WHERE id = $1
         RETURNING replay_count"
    );
    let count = fetch_int(
        conn,
        &sql,
        &[uid.into(), now.saturating_sub(window).into(), now.into()],
        "replay_count",
    )
    .await?
    .flatten();
    Ok(Applied {
        resp: VerifyResponse {
            result: VerifyResult::Replay,
            method_id: Some(method_id),
            locked_until: None,
            not_set_up_for: None,
        },
        lockout: None,
        replays: count,
        tap: None,
        backup_left: None,
        via: None,
    })
}

/// The answer `result`, with no method and no lockout time.
fn verdict(result: VerifyResult) -> VerifyResponse {
    VerifyResponse {
        result,
        method_id: None,
        locked_until: None,
        not_set_up_for: None,
    }
}

/// The answer `locked` until `until` (Unix seconds).
fn locked(until: i64) -> VerifyResponse {
    VerifyResponse {
        result: VerifyResult::Locked,
        method_id: None,
        locked_until: Some(until),
        not_set_up_for: None,
    }
}

/// Counts one failure; `reject`, or `locked` when this failure set the
/// lock (then `Some((locked_until, uid))` too) or a concurrent request
/// locked the user already.
async fn record_failure(
    state: &AppState,
    conn: &mut dyn WriteConn,
    uid: i64,
    now: i64,
) -> Result<Applied, ApiError> {
    let lk = &state.lockout;
    let window = i64::try_from(lk.window_seconds).unwrap_or(i64::MAX);
    let lock = i64::try_from(lk.lock_seconds).unwrap_or(i64::MAX);
    let until = now.saturating_add(lock);
    // `in_window`: the running count still applies. `new`: the count with
    // this failure. All right-hand sides see the row's old values.
    let in_window = "(failure_window_start IS NOT NULL AND failure_window_start > $2)";
    let new = format!("(CASE WHEN {in_window} THEN failure_count + 1 ELSE 1 END)");
    let sql = format!(
        "UPDATE users SET
            failure_count = CASE WHEN {new} >= $4 THEN 0 ELSE {new} END,
            failure_window_start = CASE WHEN {new} >= $4 THEN NULL
                                        WHEN {in_window} THEN failure_window_start ELSE $3 END,
            locked_until = CASE WHEN {new} >= $4 THEN $5 ELSE locked_until END
         WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $3)
         RETURNING failure_count, locked_until"
    );
    let mut row = None;
    let mut each = |r: &dyn WriteRow| {
        row = Some((r.int("failure_count")?, r.int("locked_until")?));
        Ok(())
    };
    conn.fetch(
        &sql,
        &[
            uid.into(),
            now.saturating_sub(window).into(),
            now.into(),
            i64::from(lk.max_failures).into(),
            until.into(),
        ],
        &mut each,
    )
    .await?;
    match row {
        Some((count, locked_until)) => {
            let count = count.unwrap_or(0);
            let just_locked = count == 0 && locked_until == Some(until);
            Ok(Applied {
                // The failure that sets the lock answers `locked` at once,
                // so the user is told now rather than at the next try.
                resp: if just_locked {
                    locked(until)
                } else {
                    verdict(VerifyResult::Reject)
                },
                lockout: just_locked.then_some((until, uid)),
                replays: None,
                tap: None,
                backup_left: None,
                via: None,
            })
        }
        None => {
            // Locked (or deleted) since we looked.
            let until = fetch_int(
                conn,
                "SELECT locked_until FROM users WHERE id = $1",
                &[uid.into()],
                "locked_until",
            )
            .await?
            .flatten();
            Ok(Applied::answer(match until {
                Some(t) if t > now => locked(t),
                _ => verdict(VerifyResult::UnknownUser),
            }))
        }
    }
}
