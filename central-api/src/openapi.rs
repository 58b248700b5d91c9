//! The OpenAPI 3.0 document served at `/v1/openapi.json`, written by hand
//! from the wire types and paths in [`twostep_common::api`]; a test checks
//! that it describes every route the router serves and nothing else.

use crate::routes::audit::{DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT};
use serde_json::{json, Map, Value};
use twostep_common::api::{paths, ApiErrorCode, MethodKind};

pub(crate) fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// Standard error answers for `codes`.
fn errors(codes: &[(&str, &str)]) -> Map<String, Value> {
    codes
        .iter()
        .map(|(code, why)| {
            (
                (*code).to_owned(),
                json!({ "description": why, "content": json_content(schema_ref("ErrorBody")) }),
            )
        })
        .collect()
}

/// One operation: what the document says about a path and method.
pub(crate) struct Op<'a> {
    pub(crate) summary: &'a str,
    pub(crate) auth: Option<&'a str>,
    pub(crate) body: Option<&'a str>,
    pub(crate) ok: (&'a str, Option<Value>),
    pub(crate) errs: &'a [(&'a str, &'a str)],
}

pub(crate) const E400: (&str, &str) = ("400", "malformed JSON, invalid username, code or field");
pub(crate) const E401: (&str, &str) = ("401", "missing or wrong credential");
pub(crate) const E403: (&str, &str) = ("403", "the host has been revoked");
pub(crate) const E404: (&str, &str) = ("404", "unknown user, method, host or route");
pub(crate) const E409: (&str, &str) = ("409", "already exists");
pub(crate) const E413: (&str, &str) = ("413", "body larger than max_body_bytes");
pub(crate) const E503: (&str, &str) = ("503", "the database is unavailable, read-only or full");

/// The names of the `{...}` parameters of a path template, in order.
fn path_params(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// The operation object of `o` as `method` on `path`; its path parameters
/// are those of the template.
fn op(path: &str, method: &str, o: &Op<'_>) -> Value {
    let mut responses = Map::new();
    let (status, schema) = &o.ok;
    let mut ok = json!({ "description": "success" });
    if let Some(s) = schema {
        ok["content"] = json_content(s.clone());
    }
    responses.insert((*status).to_owned(), ok);
    responses.extend(errors(o.errs));
    let mut v = json!({ "summary": o.summary, "responses": responses });
    if let Some(a) = o.auth {
        v["security"] = json!([{ a: [] }]);
    }
    let mut params: Vec<Value> = path_params(path)
        .into_iter()
        .map(|p| {
            let schema = if p == "id" {
                json!({"type": "integer", "format": "int64"})
            } else {
                json!({"type": "string"})
            };
            json!({ "name": p, "in": "path", "required": true, "schema": schema })
        })
        .collect();
    match (path, method) {
        (paths::AUDIT, "get") => {
            params.push(json!({ "name": "limit", "in": "query", "required": false,
                "description": format!("newest N events (default {DEFAULT_AUDIT_LIMIT}, at most {MAX_AUDIT_LIMIT}); with after, the oldest N after it"),
                "schema": {"type": "integer", "minimum": 0} }));
            params.push(json!({ "name": "after", "in": "query", "required": false,
                "description": "only events whose id is greater, oldest first (to poll for new events: pass the last id seen)",
                "schema": {"type": "integer", "format": "int64"} }));
        }
        (paths::HOST_PUSH_CHALLENGE, "get") => params.push(crate::push::openapi::wait_param()),
        _ => {}
    }
    if !params.is_empty() {
        v["parameters"] = Value::Array(params);
    }
    if let Some(b) = o.body {
        v["requestBody"] = json!({ "required": true, "content": json_content(schema_ref(b)) });
    }
    v
}

pub(crate) fn array_of(name: &str) -> Value {
    json!({ "type": "array", "items": schema_ref(name) })
}

/// Every documented operation: path, method (lower case) and what it does.
#[rustfmt::skip]
fn operations() -> Vec<(&'static str, &'static str, Op<'static>)> {
    let admin = Some("admin");
    let host = Some("host");
    let std_admin = &[E401, E503][..];
    vec![
        (paths::HEALTH, "get", Op { summary: "Health: the database answers", auth: None,
            body: None, ok: ("200", Some(schema_ref("Health"))), errs: &[E503] }),
        (paths::OPENAPI, "get", Op { summary: "This document", auth: None,
            body: None, ok: ("200", Some(json!({"type": "object"}))), errs: &[] }),
        (paths::USERS, "get", Op { summary: "List users", auth: admin, body: None,
            ok: ("200", Some(array_of("User"))), errs: std_admin }),
        (paths::USERS, "post", Op { summary: "Add a user", auth: admin, body: Some("CreateUser"),
            ok: ("201", Some(schema_ref("User"))), errs: &[E400, E401, E409, E413, E503] }),
        (paths::USER, "get", Op { summary: "Show a user", auth: admin, body: None,
            ok: ("200", Some(schema_ref("User"))), errs: &[E400, E401, E404, E503] }),
        (paths::USER, "patch", Op { summary: "Disable or enable a user", auth: admin,
            body: Some("UpdateUser"), ok: ("200", Some(schema_ref("User"))),
            errs: &[E400, E401, E404, E413, E503] }),
        (paths::USER, "delete", Op { summary: "Delete a user and their methods", auth: admin,
            body: None, ok: ("204", None), errs: &[E400, E401, E404, E503] }),
        (paths::USER_UNLOCK, "post", Op { summary: "Clear a lockout and the failure count",
            auth: admin, body: None, ok: ("200", Some(schema_ref("User"))),
            errs: &[E400, E401, E404, E503] }),
        (paths::USER_PASSWORD, "put", Op { summary: "Set the Security info page password (Argon2id); ends the user's page sessions",
            auth: admin, body: Some("SetPassword"), ok: ("204", None),
            errs: &[E400, E401, E404, E413, E503] }),
        (paths::USER_INVITE, "post", Op { summary: "A one-time setup link for the Security info page (24 h); the answer holds it, once",
            auth: admin, body: Some("CreateInvite"), ok: ("201", Some(schema_ref("Invite"))),
            errs: &[E400, E401, E404, E413, E503] }),
        (paths::USER_TOTP, "post", Op { summary: "Enrol a TOTP method; the answer holds the secret, once",
            auth: admin, body: Some("EnrolTotp"),
            ok: ("201", Some(schema_ref("TotpEnrolment"))), errs: &[E400, E401, E404, E413, E503] }),
        (paths::USER_METHOD, "delete", Op { summary: "Delete one method", auth: admin,
            body: None, ok: ("204", None), errs: &[E400, E401, E404, E503] }),
        (paths::USER_METHODS, "delete", Op { summary: "Delete all of a user's methods (reset)",
            auth: admin, body: None, ok: ("204", None), errs: &[E400, E401, E404, E503] }),
        (paths::USER_TAP, "post", Op { summary: "Issue a temporary access code (earlier open codes revoked; with reset_methods, the user's methods deleted first); the answer holds it, once",
            auth: admin, body: Some("IssueTap"), ok: ("201", Some(schema_ref("TapIssued"))),
            errs: &[E400, E401, E404, E413, E503] }),
        (paths::USER_BACKUP_CODES, "post", Op { summary: "A new set of 10 backup codes (the earlier set void); the answer holds them, once",
            auth: admin, body: None, ok: ("201", Some(schema_ref("BackupCodes"))),
            errs: &[E400, E401, E404, E503] }),
        (paths::USER_TAP, "delete", Op { summary: "Revoke the user's open temporary access codes",
            auth: admin, body: None, ok: ("204", None), errs: &[E400, E401, E404, E503] }),
        (paths::HOSTS, "get", Op { summary: "List hosts", auth: admin, body: None,
            ok: ("200", Some(array_of("Host"))), errs: std_admin }),
        (paths::HOSTS, "post", Op { summary: "Add a host; the answer holds its API key, once",
            auth: admin, body: Some("CreateHost"), ok: ("201", Some(schema_ref("HostCreated"))),
            errs: &[E400, E401, E409, E413, E503] }),
        (paths::HOST, "delete", Op { summary: "Revoke a host's API key", auth: admin,
            body: None, ok: ("204", None), errs: &[E401, E404, E503] }),
        (paths::AUDIT, "get", Op { summary: "Audit events, newest first; with after=ID the events after ID, oldest first", auth: admin, body: None,
            ok: ("200", Some(array_of("AuditEvent"))), errs: &[E400, E401, E503] }),
        (paths::HOST_REGISTRATIONS, "get", Op { summary: "A user's registrations (never secrets); optional query service, host, remote_addr, tty: the login's context, audited when the login cannot go on to a code",
            auth: host, body: None, ok: ("200", Some(schema_ref("Registrations"))),
            errs: &[E400, E401, E403, E404, E503] }),
        (paths::HOST_VERIFY, "post", Op { summary: "Verify (and on accept consume) a code",
            auth: host, body: Some("VerifyRequest"), ok: ("200", Some(schema_ref("VerifyResponse"))),
            errs: &[E400, E401, E403, E413, E503] }),
        (paths::HOST_OTP_SEND, "post", Op { summary: "Send a user a one-time code by text message or phone call (through [api.sms] / [api.voice]); the code is then verified by /v1/host/verify. At most 5 per user per hour",
            auth: host, body: Some("SendCode"), ok: ("200", Some(schema_ref("CodeSent"))),
            errs: &[E400, E401, E403, E413, E503] }),
        (paths::USER_PHONE, "post", Op { summary: "Set up a phone method (text message or call) with an E.164 number",
            auth: admin, body: Some("EnrolPhone"), ok: ("201", Some(schema_ref("Method"))),
            errs: &[E400, E401, E404, E409, E413, E503] }),
    ]
}

fn paths_object() -> Value {
    let mut out = Map::new();
    for (path, method, o) in operations()
        .into_iter()
        .chain(crate::push::openapi::operations())
    {
        let item = out.entry(path).or_insert_with(|| json!({}));
        item[method] = op(path, method, &o);
    }
    Value::Object(out)
}

pub(crate) fn string() -> Value {
    json!({"type": "string"})
}
pub(crate) fn nullable(mut v: Value) -> Value {
    v["nullable"] = json!(true);
    v
}
pub(crate) fn int64() -> Value {
    json!({"type": "integer", "format": "int64"})
}
pub(crate) fn object(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props, "additionalProperties": false })
}

fn schemas() -> Value {
    let method_kind = json!({"type": "string", "enum": MethodKind::ALL.map(MethodKind::as_str)});
    let host_kind = json!({"type": "string", "enum": ["ssh", "radius"]});
    json!({
        "ErrorBody": object(&["error", "message"], json!({
            "error": { "type": "string", "description": error_code_description() },
            "message": string() })),
        "Health": object(&["status", "version"], json!({ "status": string(), "version": string(),
            "clock_offset_seconds": int64() })),
        "CreateUser": object(&["username"], json!({
            "username": { "type": "string", "minLength": 1, "maxLength": twostep_common::api::MAX_USERNAME_BYTES },
            "display_name": nullable(string()) })),
        "UpdateUser": object(&[], json!({ "disabled": nullable(json!({"type": "boolean"})) })),
        "Method": object(&["id", "kind", "label", "is_default", "created_at"], json!({
            "id": int64(), "kind": method_kind, "label": string(),
            "is_default": {"type": "boolean"}, "created_at": int64(),
            "last_used_at": nullable(int64()), "disabled": {"type": "boolean"} })),
        "User": object(&["username", "display_name", "disabled", "created_at", "locked_until", "methods"], json!({
            "username": string(), "display_name": nullable(string()), "disabled": {"type": "boolean"},
            "created_at": int64(), "locked_until": nullable(int64()), "push_blocked_at": nullable(int64()),
            "methods": array_of("Method"), "temporary_access_until": nullable(int64()),
            "backup_codes_left": nullable(json!({"type": "integer"})) })),
        "BackupCodes": object(&["codes", "created_at"], json!({
            "codes": { "type": "array", "items": { "type": "string", "description": "8 digits as 1234 5678; shown once, the registry keeps keyed HMACs (HMAC-SHA256 with a key derived from its secret key)" } },
            "created_at": int64() })),
        "IssueTap": object(&[], json!({
            "hours": nullable(json!({"type": "integer", "minimum": 1, "maximum": twostep_common::recovery::TAP_MAX_HOURS, "description": "default 8"})),
            "uses": nullable(json!({"type": "integer", "minimum": 1, "maximum": twostep_common::recovery::TAP_MAX_USES, "description": "default 1"})),
            "reset_methods": {"type": "boolean"} })),
        "TapIssued": object(&["code", "expires_at", "uses", "methods_deleted"], json!({
            "code": { "type": "string", "description": "12 characters in groups of four; shown once, the registry keeps an Argon2id hash" },
            "expires_at": int64(), "uses": {"type": "integer"}, "methods_deleted": int64() })),
        "EnrolTotp": object(&[], json!({ "label": nullable(string()) })),
        "TotpEnrolment": object(&["method", "secret_base32", "otpauth_uri"], json!({
            "method": schema_ref("Method"),
            "secret_base32": { "type": "string", "description": "RFC 4648 base32, no padding; shown once" },
            "otpauth_uri": { "type": "string", "description": "otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30" } })),
        "SetPassword": object(&["password"], json!({
            "password": { "type": "string", "minLength": twostep_common::portal::MIN_PASSWORD_CHARS,
                "description": "at least 12 characters, not containing the username or name" } })),
        "CreateInvite": object(&[], json!({})),
        "Invite": object(&["username", "path", "expires_at"], json!({
            "username": string(),
            "path": { "type": "string", "description": "/my/invite/TOKEN; shown once, the registry keeps its SHA-256" },
            "url": nullable(json!({ "type": "string", "description": "the whole link when [api.portal] public_url is set" })),
            "expires_at": int64() })),
        "CreateHost": object(&["name", "kind"], json!({ "name": string(), "kind": host_kind.clone() })),
        "Host": object(&["name", "kind", "created_at", "revoked_at"], json!({
            "name": string(), "kind": host_kind, "created_at": int64(), "revoked_at": nullable(int64()) })),
        "HostCreated": object(&["host", "api_key"], json!({
            "host": schema_ref("Host"), "api_key": { "type": "string", "description": "shown once; the registry keeps its SHA-256" } })),
        "AuditEvent": object(&["id", "at", "actor", "action"], json!({
            "id": int64(), "at": int64(), "actor": string(), "action": string(),
            "username": nullable(string()), "host": nullable(string()), "remote_addr": nullable(string()),
            "result": nullable(string()), "detail": nullable(string()) })),
        "Registrations": object(&["username", "status", "methods"], json!({
            "username": string(),
            "status": {"type": "string", "enum": ["active", "disabled", "locked"]},
            "methods": array_of("Method"),
            "temporary_access_until": nullable(int64()) })),
        "AuthContext": object(&[], json!({
            "service": nullable(string()), "host": nullable(string()),
            "remote_addr": nullable(string()), "tty": nullable(string()) })),
        "VerifyRequest": object(&["username", "code"], json!({
            "username": string(),
            "code": { "type": "string", "description": "6 digits, or a temporary access code (12+ characters of 23456789ABCDEFGHJKMNPQRSTWXYZ, case, dashes and spaces ignored)" },
            "context": schema_ref("AuthContext") })),
        "SendCode": object(&["channel"], json!({
            "channel": {"type": "string", "enum": ["sms", "voice"]},
            "context": schema_ref("AuthContext") })),
        "CodeSent": object(&["result"], json!({
            "result": {"type": "string", "enum": ["sent", "could_not_send", "rate_limited", "not_enrolled", "not_configured", "unknown_user", "locked", "disabled"]},
            "sent_to": nullable(json!({"type": "string", "description": "the number's last two digits, as ••42"})),
            "expires_at": nullable(int64()) })),
        "EnrolPhone": object(&["channel", "number"], json!({
            "channel": {"type": "string", "enum": ["sms", "voice"]},
            "number": {"type": "string", "description": "E.164: + then 8 to 15 digits (spaces, dashes, dots, parentheses ignored)"},
            "default": {"type": "boolean"} })),
        "VerifyResponse": object(&["result"], json!({
            "result": {"type": "string", "enum": ["accept", "reject", "replay", "locked", "not_enrolled", "unknown_user", "disabled"]},
            "method_id": nullable(int64()),
            "locked_until": nullable(int64()) })),
    })
}

/// `a` with the members of `b` added (both JSON objects).
fn merged(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// The description of [`twostep_common::api::ErrorBody::error`]: its
/// codes, each with its HTTP status.
fn error_code_description() -> String {
    let codes: Vec<String> = ApiErrorCode::ALL
        .iter()
        .map(|c| format!("{c} ({})", c.http_status()))
        .collect();
    format!("stable code, one of: {}", codes.join(", "))
}

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "twostep registry",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Users, verification methods, hosts, code verification, push approvals and audit. Times are Unix seconds (UTC). Every error is an ErrorBody."
        },
        "paths": paths_object(),
        "components": {
            "schemas": merged(schemas(), crate::push::openapi::schemas()),
            "securitySchemes": {
                "admin": { "type": "http", "scheme": "bearer", "description": "the admin token from [api].admin_token_file" },
                "host": { "type": "http", "scheme": "bearer", "description": "a host API key from POST /v1/admin/hosts" }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The document describes exactly the (path, method) pairs the router
    /// serves, each path parameter of a template once.
    #[test]
    fn document_matches_the_router() {
        let doc = document();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (path.clone(), m.clone()))
            })
            .collect();
        let served: BTreeSet<(String, String)> = crate::app::served()
            .into_iter()
            .map(|(p, m)| (p.to_owned(), m.to_owned()))
            .collect();
        assert_eq!(documented, served);
        for (path, method) in &served {
            let names: Vec<&str> = doc["paths"][path][method]["parameters"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(names, path_params(path), "{method} {path}");
        }
    }

    /// Every operation that touches the database says it can answer 503,
    /// every one with a credential 401, every one with a body 400 and 413:
    /// the answers every such route gives, so the document cannot drift
    /// from them as routes are added.
    #[test]
    fn common_answers_are_documented() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let has = |code: &str| !op["responses"][code].is_null();
                // /v1/openapi.json is the only route that reads no database.
                if path != paths::OPENAPI {
                    assert!(has("503"), "{method} {path}: no 503");
                }
                if op
                    .get("security")
                    .is_some_and(|s| !s.as_array().is_some_and(Vec::is_empty))
                {
                    assert!(has("401"), "{method} {path}: no 401");
                }
                if op.get("requestBody").is_some() {
                    assert!(has("400") && has("413"), "{method} {path}: no 400/413");
                }
            }
        }
    }

    #[test]
    fn path_params_in_order() {
        assert_eq!(path_params(paths::USER_METHOD), ["username", "id"]);
        assert!(path_params(paths::HOST_VERIFY).is_empty());
    }
}
