//! The push routes and schemas of the OpenAPI document
//! ([`crate::openapi`]), from the wire types in [`twostep_common::push`].

use crate::openapi::{
    array_of, int64, nullable, object, schema_ref, string, Op, E400, E401, E403, E404, E409, E413,
    E503,
};
use serde_json::{json, Value};
use twostep_common::api::paths;
use twostep_common::push::MAX_WAIT_SECS;

const E410: (&str, &str) = ("410", "the activation code or challenge has expired");

/// The refusals of a device's signed poll.
const DEVICE_ERRS: &[(&str, &str)] = &[
    E400,
    (
        "401",
        "unknown device, bad signature, replayed nonce or timestamp out of the ±60 s window",
    ),
    ("403", "the device or its user is disabled"),
    E413,
    E503,
];

/// The query parameter `wait` of [`paths::HOST_PUSH_CHALLENGE`].
pub(crate) fn wait_param() -> Value {
    json!({ "name": "wait", "in": "query", "required": false,
        "description": format!("seconds to wait for an answer (0 to {MAX_WAIT_SECS}, default 0)"),
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECS} })
}

/// The push operations: path, method (lower case) and what it does.
#[rustfmt::skip]
pub(crate) fn operations() -> Vec<(&'static str, &'static str, Op<'static>)> {
    let admin = Some("admin");
    let host = Some("host");
    vec![
        (paths::USER_PUSH, "post", Op {
            summary: "Create a one-time device activation; the answer holds the code, once",
            auth: admin, body: Some("CreateActivation"),
            ok: ("201", Some(schema_ref("Activation"))), errs: &[E400, E401, E404, E413, E503] }),
        (paths::METHOD_DISABLE, "post", Op {
            summary: "Disable a method (a lost device); the user's open challenges are cancelled",
            auth: admin, body: None,
            ok: ("200", Some(schema_ref("Method"))), errs: &[E400, E401, E404, E503] }),
        (paths::METHOD_ENABLE, "post", Op {
            summary: "Enable a disabled method again", auth: admin, body: None,
            ok: ("200", Some(schema_ref("Method"))), errs: &[E400, E401, E404, E503] }),
        (paths::DEVICE_ACTIVATE, "post", Op {
            summary: "Register a device's public key with an activation code",
            auth: None, body: Some("ActivateDevice"),
            ok: ("201", Some(schema_ref("DeviceActivated"))),
            errs: &[E400, ("404", "unknown activation code"), ("409", "the activation code was used already"), E410, E413, E503] }),
        (paths::DEVICE_POLL, "post", Op {
            summary: "A device's open challenges (signed; held open up to `wait` seconds until one is created)",
            auth: None, body: Some("DevicePoll"),
            ok: ("200", Some(schema_ref("PendingChallenges"))), errs: DEVICE_ERRS }),
        (paths::DEVICE_ANSWER, "post", Op {
            summary: "A device's signed answer to a challenge",
            auth: None, body: Some("DeviceAnswer"),
            ok: ("200", Some(schema_ref("AnswerAccepted"))),
            errs: &[E400, ("401", "unknown device or bad signature"), ("403", "the device or its user is disabled"),
                ("404", "no such challenge for this device's user"), (E409.0, "the challenge is closed already (answered, cancelled)"),
                E410, E413, E503] }),
        (paths::HOST_PUSH, "post", Op {
            summary: "Start a push challenge for a user (refusals are results: rate_limited, blocked, not_enrolled...)",
            auth: host, body: Some("StartPush"),
            ok: ("200", Some(schema_ref("PushStarted"))), errs: &[E400, E401, E403, E413, E503] }),
        (paths::HOST_PUSH_CHALLENGE, "get", Op {
            summary: "A challenge's state, waiting up to `wait` seconds (at most 30) for the answer; a final state is handed out once",
            auth: host, body: None,
            ok: ("200", Some(schema_ref("PushOutcome"))),
            errs: &[E400, E401, E403, ("404", "unknown challenge, another host's, or its result was handed out already"), E503] }),
        (paths::HOST_PUSH_CHALLENGE, "delete", Op {
            summary: "Cancel a challenge this host started (the login was abandoned)",
            auth: host, body: None, ok: ("204", None), errs: &[E401, E403, E404, E503] }),
    ]
}

/// The push schemas.
pub(crate) fn schemas() -> Value {
    let b64 = |what: &str| json!({"type": "string", "description": format!("{what}, base64url without padding")});
    let result = json!({"type": "string", "enum": ["pending", "approved", "denied", "fraud", "wrong_number", "expired", "cancelled"]});
    json!({
        "CreateActivation": object(&[], json!({ "label": nullable(string()) })),
        "Activation": object(&["username", "code", "activation_uri", "expires_at"], json!({
            "username": string(),
            "code": { "type": "string", "description": "one-time code, base32 (128 bits); shown once" },
            "activation_uri": { "type": "string", "description": "twostep-activate://activate?registry=URL&code=CODE&user=NAME" },
            "expires_at": int64() })),
        "ActivateDevice": object(&["code", "device_name", "public_key"], json!({
            "code": string(), "device_name": string(), "public_key": b64("Ed25519 public key (32 bytes)") })),
        "DeviceActivated": object(&["device_id", "username", "label"], json!({
            "device_id": int64(), "username": string(), "label": string() })),
        "DevicePoll": object(&["device_id", "timestamp", "nonce", "signature"], json!({
            "device_id": int64(), "timestamp": int64(), "nonce": b64("random"),
            "wait": {"type": "integer", "minimum": 0, "maximum": 30},
            "signature": b64("Ed25519 signature of \"twostep-poll-v1\\n{device_id}\\n{timestamp}\\n{nonce}\"") })),
        "PushContext": object(&[], json!({
            "service": nullable(string()), "host": nullable(string()), "remote_addr": nullable(string()),
            "tty": nullable(string()), "nas": nullable(string()) })),
        "PendingChallenge": object(&["challenge_id", "nonce", "username", "context", "created_at", "expires_at", "number_matching"], json!({
            "challenge_id": string(), "nonce": string(), "username": string(),
            "context": schema_ref("PushContext"), "claimed_host": string(),
            "created_at": int64(), "expires_at": int64(),
            "number_matching": {"type": "boolean"} })),
        "PendingChallenges": object(&["challenges"], json!({ "challenges": array_of("PendingChallenge") })),
        "DeviceAnswer": object(&["device_id", "challenge_id", "nonce", "decision", "signature"], json!({
            "device_id": int64(), "challenge_id": string(), "nonce": string(),
            "decision": {"type": "string", "enum": ["approve", "deny", "fraud"]},
            "number": nullable(json!({"type": "integer", "minimum": 10, "maximum": 99})),
            "signature": b64("Ed25519 signature of \"twostep-answer-v1\\n{device_id}\\n{challenge_id}\\n{nonce}\\n{decision}\\n{number or -}\"") })),
        "AnswerAccepted": object(&["result"], json!({ "result": result.clone() })),
        "StartPush": object(&["username"], json!({ "username": string(), "context": schema_ref("PushContext") })),
        "StartedChallenge": object(&["challenge_id", "number", "expires_at", "device_label"], json!({
            "challenge_id": string(), "number": nullable(json!({"type": "integer", "minimum": 10, "maximum": 99})),
            "expires_at": int64(), "device_label": string() })),
        "PushStarted": object(&["result"], json!({
            "result": {"type": "string", "enum": ["sent", "rate_limited", "blocked", "not_enrolled", "unknown_user", "locked", "disabled"]},
            "challenge": nullable(schema_ref("StartedChallenge")) })),
        "PushOutcome": object(&["result"], json!({ "result": result })),
    })
}
