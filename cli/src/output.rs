//! Plain-text rendering of registry answers.

use std::time::{Duration, UNIX_EPOCH};
use twostep_common::api::{AuditEvent, Host, HostKind, Method, User};

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
            "{:<24} {:<10} {:>7}  {}\n",
            u.username,
            status,
            u.methods.len(),
            time(u.created_at)
        ));
    }
    s
}

/// One method as a table row.
pub fn method_row(m: &Method) -> String {
    format!(
        "  {:>5}  {:<6} {:<8} {}  {}",
        m.id,
        "totp",
        if m.is_default { "default" } else { "" },
        time(m.created_at),
        m.label
    )
}

/// One user in detail.
pub fn user(u: &User) -> String {
    let mut s = format!("username:     {}\n", u.username);
    if let Some(d) = &u.display_name {
        s.push_str(&format!("display name: {d}\n"));
    }
    s.push_str(&format!("status:       {}\n", user_status(u)));
    s.push_str(&format!("created:      {}\n", time(u.created_at)));
    if u.methods.is_empty() {
        s.push_str("methods:      none (not enrolled)\n");
    } else {
        s.push_str("methods:\n     ID  KIND   DEFAULT  CREATED               LABEL\n");
        for m in &u.methods {
            s.push_str(&method_row(m));
            s.push('\n');
        }
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
            h.name,
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
        s.push_str(&format!("{} {:<16} {:<14}", time(e.at), e.actor, e.action));
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
            s.push_str(&format!(" ({d})"));
        }
        s.push('\n');
    }
    s
}
