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

/// Columns: left-aligned, or right-aligned (numbers).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// `rows` under `header` as text lines, each starting with `indent`; every
/// column as wide as its widest cell (counted in characters), two spaces
/// between columns, the last column not padded.
fn table(indent: &str, header: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|(h, _)| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut l = indent.to_owned();
        for (i, cell) in cells.into_iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i > 0 {
                l.push_str("  ");
            }
            match header[i].1 {
                Align::Right => {
                    l.push_str(&" ".repeat(pad));
                    l.push_str(cell);
                }
                Align::Left if i == last => l.push_str(cell),
                Align::Left => {
                    l.push_str(cell);
                    l.push_str(&" ".repeat(pad));
                }
            }
        }
        l.truncate(l.trim_end().len());
        l.push('\n');
        l
    };
    let mut s = line(header.iter().map(|(h, _)| *h).collect());
    for r in rows {
        s.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    s
}

/// The user's methods as a table, columns as wide as their content.
pub fn methods_table(list: &[Method]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.kind.as_str().to_owned(),
                if m.is_default { "default" } else { "" }.to_owned(),
                time(m.created_at),
                m.last_used_at.map_or_else(|| "never".to_owned(), time),
                format!(
                    "{}{}",
                    text(&m.label),
                    if m.disabled { "  (disabled)" } else { "" }
                ),
            ]
        })
        .collect();
    table(
        "  ",
        &[
            ("ID", Align::Right),
            ("KIND", Align::Left),
            ("DEFAULT", Align::Left),
            ("CREATED", Align::Left),
            ("LAST USED", Align::Left),
            ("LABEL", Align::Left),
        ],
        &rows,
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
        s.push_str("methods:\n");
        s.push_str(&methods_table(&u.methods));
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
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let name = if r.label.is_empty() {
                    r.kind.to_owned()
                } else {
                    format!("{} \u{201c}{}\u{201d}", r.kind, text(&r.label))
                };
                let yes = |b: bool| if b { "yes" } else { "no" }.to_owned();
                vec![
                    name,
                    yes(r.two_step),
                    yes(r.password_reset),
                    r.places_text(),
                ]
            })
            .collect();
        s.push_str("uses:\n");
        s.push_str(&table(
            "  ",
            &[
                ("METHOD", Align::Left),
                ("TWO-STEP", Align::Left),
                ("RESET", Align::Left),
                ("WORKS IN", Align::Left),
            ],
            &cells,
        ));
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

    /// The character offset of each header word in `header`, and of the
    /// cell that starts there in `row`: the same when the columns line up.
    fn starts(header: &str, words: &[&str]) -> Vec<usize> {
        words
            .iter()
            .map(|w| {
                let b = header.find(w).unwrap_or_else(|| panic!("{w} in {header}"));
                header[..b].chars().count()
            })
            .collect()
    }

    #[test]
    fn user_show_columns_line_up_with_their_headers() {
        use twostep_common::api::MethodKind;
        let m = |id, kind, label: &str, is_default, last| Method {
            id,
            kind,
            label: label.into(),
            is_default,
            created_at: 1_700_000_000,
            last_used_at: last,
            disabled: false,
        };
        let u = User {
            username: "bob".into(),
            display_name: None,
            disabled: false,
            created_at: 1_700_000_000,
            locked_until: None,
            push_blocked_at: None,
            methods: vec![
                m(7, MethodKind::Totp, "Authenticator app", true, None),
                m(
                    1234,
                    MethodKind::SecurityKey,
                    "YubiKey 5C NFC of the help desk, second drawer",
                    false,
                    Some(1_700_000_060),
                ),
                m(9, MethodKind::Sms, "+1 ••• ••• ••42", false, None),
            ],
            temporary_access_until: None,
            backup_codes_left: None,
            reset_methods: Vec::new(),
        };
        let out = user(&u);
        let lines: Vec<&str> = out.lines().collect();
        let at = |prefix: &str| {
            lines
                .iter()
                .position(|l| l.trim_start().starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix} in:\n{out}"))
        };
        // Methods: every cell starts where its header does (ID right-aligned).
        let h = at("ID  KIND");
        let words = ["KIND", "DEFAULT", "CREATED", "LAST USED", "LABEL"];
        let cols = starts(lines[h], &words);
        for row in &lines[h + 1..h + 4] {
            let chars: Vec<char> = row.chars().collect();
            for (w, c) in words.iter().zip(&cols) {
                let blank = *w == "DEFAULT" && !row.contains("default");
                assert!(
                    (blank || chars[*c] != ' ') && chars[c - 1] == ' ',
                    "{w} at {c} in {row:?}:\n{out}"
                );
            }
        }
        let id_end = lines[h].find("ID").unwrap() + 2;
        assert!(lines[h + 2][..id_end].ends_with("1234"), "{out}");
        assert!(lines[h + 1].contains("default"), "{out}");
        // Uses: long labels widen the column instead of pushing the rest.
        let h = at("METHOD");
        let words = ["TWO-STEP", "RESET", "WORKS IN"];
        let cols = starts(lines[h], &words);
        let rows: Vec<&&str> = lines[h + 1..]
            .iter()
            .take_while(|l| l.starts_with("  "))
            .collect();
        assert_eq!(rows.len(), 3, "{out}");
        for row in rows {
            let chars: Vec<char> = row.chars().collect();
            for (w, c) in words.iter().zip(&cols) {
                assert!(
                    chars[*c] != ' ' && chars[c - 1] == ' ',
                    "{w} at {c} in {row:?}:\n{out}"
                );
            }
        }
    }

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
