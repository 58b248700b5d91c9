//! Plain-text rendering of registry answers.

use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};
use twostep_common::api::{AuditEvent, Host, HostKind, Method, User};
use twostep_common::methods::{self, Place};

/// `s` with control characters escaped (`\u{1b}`), so text that came from
/// hosts or admins (audit details, labels, names) cannot drive the
/// terminal it is printed on.
pub fn text(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(
            s.chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

/// Unix seconds as RFC 3339 UTC (`2026-11-29T09:30:00Z`).
pub fn time(unix: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `active`, `disabled` or `locked until TIME`.
pub fn user_status(u: &User) -> String {
    if u.disabled {
        "disabled".into()
    } else if let Some(t) = u.locked_until {
        format!("locked until {}", time(t))
    } else {
        "active".into()
    }
}

/// "push blocked (fraud reported at TIME)" when a report of fraud blocks
/// new pushes to `u`.
pub fn push_block(u: &User) -> Option<String> {
    u.push_blocked_at
        .map(|t| format!("push blocked (fraud reported at {})", time(t)))
}

/// The user list as a table.
pub fn users(list: &[User]) -> String {
    let mut s = format!(
        "{:<24} {:<10} {:>7}  {}\n",
        "USERNAME", "STATUS", "METHODS", "CREATED"
    );
    for u in list {
        let status = if u.disabled {
            "disabled"
        } else if u.locked_until.is_some() {
            "locked"
        } else {
            "active"
        };
        s.push_str(&format!(
            "{:<24} {:<10} {:>7}  {}",
            text(&u.username),
            status,
            u.methods.len(),
            time(u.created_at)
        ));
        if let Some(b) = push_block(u) {
            s.push_str(&format!("  {b}"));
        }
        s.push('\n');
    }
    s
}

/// One method as a table row.
pub fn method_row(m: &Method) -> String {
    format!(
        "  {:>5}  {:<12} {:<8} {}  {:<20}  {}{}",
        m.id,
        m.kind.as_str(),
        if m.is_default { "default" } else { "" },
        time(m.created_at),
        m.last_used_at.map_or_else(|| "never".to_owned(), time),
        text(&m.label),
        if m.disabled { "  (disabled)" } else { "" }
    )
}

/// One user in detail.
pub fn user(u: &User) -> String {
    let mut s = format!("username:     {}\n", text(&u.username));
    if let Some(d) = &u.display_name {
        s.push_str(&format!("display name: {}\n", text(d)));
    }
    s.push_str(&format!("status:       {}\n", user_status(u)));
    if let Some(b) = push_block(u) {
        s.push_str(&format!(
            "push:         {b}; `twostep user unlock` clears it\n"
        ));
    }
    s.push_str(&format!("created:      {}\n", time(u.created_at)));
    if let Some(t) = u.temporary_access_until {
        s.push_str(&format!(
            "temporary access code: open until {}; `twostep user tap --revoke` ends it\n",
            time(t)
        ));
    }
    if let Some(n) = u.backup_codes_left {
        s.push_str(&format!("backup codes: {n} of 10 unused\n"));
    }
    if u.methods.is_empty() && u.temporary_access_until.is_none() {
        s.push_str("methods:      none (not enrolled)\n");
    } else {
        s.push_str("methods:\n     ID  KIND   DEFAULT  CREATED               LAST USED             LABEL\n");
        for m in &u.methods {
            s.push_str(&method_row(m));
            s.push('\n');
        }
    }
    s.push_str(&uses_table(u));
    s
}

/// What each of the user's methods is used for and where it counts
/// ([`twostep_common::methods`]), and where the user is enrolled.
pub fn uses_table(u: &User) -> String {
    let rows = methods::uses_of(&u.methods, &u.reset_methods);
    let mut s = String::new();
    if !rows.is_empty() {
        s.push_str(&format!(
            "uses:
  {:<34} {:<9} {:<9} {}\n",
            "METHOD", "TWO-STEP", "RESET", "WORKS IN"
        ));
        for r in &rows {
            let name = if r.label.is_empty() {
                r.kind.to_owned()
            } else {
                format!("{} \u{201c}{}\u{201d}", r.kind, text(&r.label))
            };
            s.push_str(&format!(
                "  {:<34} {:<9} {:<9} {}\n",
                name,
                if r.two_step { "yes" } else { "no" },
                if r.password_reset { "yes" } else { "no" },
                r.places_text()
            ));
        }
    }
    let enrolled = methods::enrolled_places(&u.methods);
    let missing: Vec<Place> = [Place::Pam, Place::Radius]
        .into_iter()
        .filter(|p| !enrolled.contains(p))
        .collect();
    if !missing.is_empty() && u.temporary_access_until.is_none() {
        s.push_str(&format!(
            "not enrolled for: {} (no method that counts there)\n",
            methods::join_places(&missing)
        ));
    }
    s
}

/// `ssh` or `radius`.
pub fn host_kind(k: HostKind) -> &'static str {
    match k {
        HostKind::Ssh => "ssh",
        HostKind::Radius => "radius",
    }
}

/// The host list as a table.
pub fn hosts(list: &[Host]) -> String {
    let mut s = format!(
        "{:<24} {:<7} {:<21} {}\n",
        "NAME", "KIND", "CREATED", "STATUS"
    );
    for h in list {
        let status = h
            .revoked_at
            .map_or_else(|| "active".to_owned(), |t| format!("revoked {}", time(t)));
        s.push_str(&format!(
            "{:<24} {:<7} {:<21} {}\n",
            text(&h.name),
            host_kind(h.kind),
            time(h.created_at),
            status
        ));
    }
    s
}

/// Audit events, one per line, oldest first.
pub fn audit(events: &[AuditEvent]) -> String {
    let mut s = String::new();
    for e in events.iter().rev() {
        s.push_str(&format!(
            "{} {:<16} {:<14}",
            time(e.at),
            text(&e.actor),
            text(&e.action)
        ));
        for (k, v) in [
            ("user", &e.username),
            ("host", &e.host),
            ("from", &e.remote_addr),
            ("result", &e.result),
        ] {
            if let Some(v) = v {
                s.push_str(&format!(" {k}={v:?}"));
            }
        }
        if let Some(d) = &e.detail {
            s.push_str(&format!(" ({})", text(d)));
        }
        s.push('\n');
    }
    s
}

/// Audit events as NDJSON, one object per line, oldest first: the table's
/// fields under the API's names, `at` in RFC 3339 UTC.
pub fn audit_json(events: &[AuditEvent]) -> String {
    let mut s = String::new();
    for e in events.iter().rev() {
        let line = serde_json::json!({
            "id": e.id,
            "at": time(e.at),
            "actor": e.actor,
            "action": e.action,
            "username": e.username,
            "host": e.host,
            "remote_addr": e.remote_addr,
            "result": e.result,
            "detail": e.detail,
        });
        s.push_str(&line.to_string());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_json_is_one_object_per_line_oldest_first() {
        let e = |id, at, detail: Option<&str>| AuditEvent {
            id,
            at,
            actor: "host:vpn".into(),
            action: "verify".into(),
            username: Some("alice".into()),
            host: None,
            remote_addr: Some("192.0.2.7".into()),
            result: Some("accept".into()),
            detail: detail.map(str::to_owned),
        };
        let text = audit_json(&[
            e(8, 1_700_000_060, Some("a\nb\u{1b}")),
            e(7, 1_700_000_000, None),
        ]);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert_eq!(
            lines[0],
            serde_json::json!({
                "id": 7, "at": "2023-11-14T22:13:20Z", "actor": "host:vpn",
                "action": "verify", "username": "alice", "host": null,
                "remote_addr": "192.0.2.7", "result": "accept", "detail": null
            })
        );
        assert_eq!(lines[1]["id"], 8);
        assert_eq!(lines[1]["detail"], "a\nb\u{1b}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(text("plain Jörg"), "plain Jörg");
        assert_eq!(text("x\u{1b}[31mred\n"), "x\\u{1b}[31mred\\n");
        let e = AuditEvent {
            id: 1,
            at: 0,
            actor: "host:h\u{7}".into(),
            action: "verify".into(),
            username: Some("alice".into()),
            host: None,
            remote_addr: None,
            result: Some("reject".into()),
            detail: Some("service=x\u{1b}[31mred".into()),
        };
        let line = audit(&[e]);
        assert!(!line.contains('\u{1b}'), "{line:?}");
        assert!(!line.contains('\u{7}'), "{line:?}");
        assert!(line.contains("service=x\\u{1b}[31mred"), "{line:?}");
    }

    #[test]
    fn a_push_block_is_shown_in_show_and_list() {
        let u: User = serde_json::from_value(serde_json::json!({
            "username": "carol", "display_name": null, "disabled": false,
            "created_at": 0, "locked_until": null, "push_blocked_at": 1_700_000_000,
            "methods": []
        }))
        .unwrap();
        let b = "push blocked (fraud reported at 2023-11-14T22:13:20Z)";
        assert!(
            user(&u).contains(&format!("push:         {b}")),
            "{}",
            user(&u)
        );
        let list = users(std::slice::from_ref(&u));
        assert!(list.lines().nth(1).unwrap().ends_with(b), "{list}");
        // From an older registry: no field, not blocked.
        let old: User = serde_json::from_value(serde_json::json!({
            "username": "carol", "display_name": null, "disabled": false,
            "created_at": 0, "locked_until": null, "methods": []
        }))
        .unwrap();
        assert_eq!(old.push_blocked_at, None);
        assert!(!user(&old).contains("push blocked"));
    }
}
