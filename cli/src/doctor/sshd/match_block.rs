//! The `Match` blocks of sshd's configuration files, which `sshd -T`
//! without `-C` never applies: read from the files (following `Include`)
//! and checked with their values over the global ones.

use super::effective::{analyse, authentication_methods, SshdSettings};
use crate::doctor::report::{Finding, Status};
use std::path::{Path, PathBuf};

/// Keywords of a `Match` block that change whether sshd asks for the code.
const MATCH_KEYWORDS: [&str; 5] = [
    "authenticationmethods",
    "kbdinteractiveauthentication",
    "challengeresponseauthentication",
    "usepam",
    "passwordauthentication",
];

/// Where sshd looks for `Include` files named without a path.
pub const SSH_DIR: &str = "/etc/ssh";

/// Include nesting sshd accepts (OpenSSH `SERVCONF_MAX_DEPTH`).
const MAX_INCLUDE_DEPTH: usize = 16;

/// A `Match` block of an sshd configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchBlock {
    /// The file holding the `Match` line.
    pub file: PathBuf,
    /// Its 1-based line number.
    pub line: usize,
    /// The criteria as written (`User root`, `Address 10.0.0.0/8`).
    pub criteria: String,
    /// The block's settings: keyword in lower case, value as written.
    pub settings: Vec<(String, String)>,
}

impl MatchBlock {
    fn at(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// Keyword (lower case) and the rest of an sshd_config line (`Key value`,
/// `Key=value`); `None` for blank and comment lines.
fn split_line(raw: &str) -> Option<(String, String)> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let key = line[..end].to_ascii_lowercase();
    let mut rest = line[end..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    // A comment after the arguments (OpenSSH 8.7 and later).
    let rest = match rest.find(" #").or_else(|| rest.find("\t#")) {
        Some(i) => rest[..i].trim_end(),
        None => rest,
    };
    Some((key, rest.to_owned()))
}

/// Arguments, double quotes grouping.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Every `Match` block of `path` and the files it includes (`Include`,
/// globs, relative names under `ssh_dir`), in the order sshd reads them. A
/// block ends at the next `Match` or at the end of its file, as in sshd.
///
/// # Errors
/// `FILE: message` for a file that cannot be read, `FILE:LINE: message`
/// for an Include nested too deep or a bad pattern.
pub fn match_blocks(path: &Path, ssh_dir: &Path) -> Result<Vec<MatchBlock>, String> {
    let mut out = Vec::new();
    scan_file(path, ssh_dir, 0, &mut out)?;
    Ok(out)
}

fn scan_file(
    path: &Path,
    ssh_dir: &Path,
    depth: usize,
    out: &mut Vec<MatchBlock>,
) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // The open block of this file, as an index into `out`.
    let mut open: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let Some((key, rest)) = split_line(raw) else {
            continue;
        };
        let at = format!("{}:{}", path.display(), i + 1);
        match key.as_str() {
            "match" => {
                out.push(MatchBlock {
                    file: path.to_owned(),
                    line: i + 1,
                    criteria: rest,
                    settings: Vec::new(),
                });
                open = Some(out.len() - 1);
            }
            "include" => {
                if depth + 1 >= MAX_INCLUDE_DEPTH {
                    return Err(format!("{at}: Include nested too deep (a loop?)"));
                }
                for pattern in words(&rest) {
                    let full = if pattern.starts_with('/') {
                        PathBuf::from(&pattern)
                    } else {
                        ssh_dir.join(&pattern)
                    };
                    let paths = glob::glob(&full.to_string_lossy())
                        .map_err(|e| format!("{at}: Include {pattern}: {e}"))?;
                    // glob yields names in sorted order, as sshd includes them.
                    for p in paths.flatten() {
                        scan_file(&p, ssh_dir, depth + 1, out)?;
                        // Settings of an included file outside its own Match
                        // blocks belong to the block the Include sits in.
                        if let Some(b) = open {
                            let inherited = settings_outside_match(&p);
                            out[b].settings.extend(inherited);
                        }
                    }
                }
            }
            _ => {
                if let Some(b) = open {
                    out[b].settings.push((key, rest));
                }
            }
        }
    }
    Ok(())
}

/// The settings of `path` before its first `Match` line.
fn settings_outside_match(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(split_line)
        .take_while(|(k, _)| k != "match")
        .filter(|(k, _)| k != "include")
        .collect()
}

/// A connection spec for `sshd -T -C` that the block's criteria match
/// where they are plain (`User alice` gives `user=alice`), `root`,
/// `localhost` and `127.0.0.1` otherwise.
pub fn probe_spec(criteria: &str) -> String {
    let w = words(criteria);
    let mut user = "root".to_owned();
    let mut host = "localhost".to_owned();
    let mut addr = "127.0.0.1".to_owned();
    let mut extra = Vec::new();
    let plain = |v: &str| {
        v.split(',')
            .find(|x| !x.starts_with('!') && !x.contains(['*', '?']))
            .map(str::to_owned)
    };
    for pair in w.chunks(2) {
        let [k, v] = pair else { continue };
        match k.to_ascii_lowercase().as_str() {
            "user" => user = plain(v).unwrap_or(user),
            "host" => host = plain(v).unwrap_or(host),
            "address" => addr = plain(v).map(|a| host_in(&a)).unwrap_or(addr),
            "localaddress" => {
                if let Some(a) = plain(v) {
                    extra.push(format!("laddr={}", host_in(&a)));
                }
            }
            "localport" => {
                if let Some(p) = plain(v) {
                    extra.push(format!("lport={p}"));
                }
            }
            _ => {}
        }
    }
    let mut spec = format!("user={user},host={host},addr={addr}");
    for e in extra {
        spec.push(',');
        spec.push_str(&e);
    }
    spec
}

/// A host address inside `cidr` (`127.0.0.0/8` gives `127.0.0.1`); the
/// text itself when it is not an address.
fn host_in(cidr: &str) -> String {
    use std::net::IpAddr;
    let (a, len) = cidr.split_once('/').unwrap_or((cidr, ""));
    let len: Option<u32> = len.parse().ok();
    match a.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) if len.is_some_and(|l| l < 32) => {
            std::net::Ipv4Addr::from(u32::from(v4) | 1).to_string()
        }
        Ok(IpAddr::V6(v6)) if len.is_some_and(|l| l < 128) => {
            std::net::Ipv6Addr::from(u128::from(v6) | 1).to_string()
        }
        Ok(ip) => ip.to_string(),
        Err(_) => a.to_owned(),
    }
}

/// One finding per `Match` block that changes a setting the second factor
/// depends on: FAIL when, with the block's values over the global ones
/// (`global`, from `sshd -T`), its AuthenticationMethods lets a login skip
/// keyboard-interactive; a warning otherwise, since `sshd -T` without `-C`
/// never shows what the block does. `sshd_cmd` is how to run sshd
/// (`/usr/sbin/sshd -f FILE`), for the fix.
pub fn analyse_match_blocks(
    global: &SshdSettings,
    blocks: &[MatchBlock],
    sshd_cmd: &str,
) -> Vec<Finding> {
    let check = "sshd";
    let mut out = Vec::new();
    for b in blocks {
        let set: Vec<&(String, String)> = b
            .settings
            .iter()
            .filter(|(k, _)| MATCH_KEYWORDS.contains(&k.as_str()))
            .collect();
        if set.is_empty() {
            continue;
        }
        // The block's first value of each keyword wins over the global one.
        let mut merged = global.clone();
        for (k, v) in b.settings.iter().rev() {
            merged.0.insert(k.clone(), vec![v.to_ascii_lowercase()]);
        }
        let probe = format!("check with `{sshd_cmd} -T -C {}`", probe_spec(&b.criteria));
        let what = format!(
            "Match block at {} (`Match {}`) sets {}",
            b.at(),
            b.criteria,
            set.iter()
                .map(|(k, v)| format!("{} {v}", canonical(k)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let methods = authentication_methods(&merged);
        if set.iter().any(|(k, _)| k == "authenticationmethods") && methods.status == Status::Fail {
            out.push(Finding::new(
                Status::Fail,
                check,
                format!("{what}: for the connections it matches, {}", methods.message),
                format!(
                    "in that block set `AuthenticationMethods publickey,keyboard-interactive` (or remove it); {probe}"
                ),
            ));
            continue;
        }
        // UsePAM, KbdInteractiveAuthentication, AuthenticationMethods.
        let mut notes: Vec<String> = analyse(&merged, 0)
            .into_iter()
            .take(3)
            .filter(|f| f.status != Status::Ok)
            .map(|f| f.message)
            .collect();
        if set.iter().any(|(k, _)| k == "usepam") {
            notes.push("UsePAM is not allowed in a Match block (sshd refuses the file)".into());
        }
        let what = if notes.is_empty() {
            format!("{what}: `sshd -T` without -C does not show what it changes")
        } else {
            format!(
                "{what}: for the connections it matches, {}",
                notes.join("; ")
            )
        };
        out.push(Finding::new(Status::Warn, check, what, probe));
    }
    out
}

/// The sshd_config spelling of a lower-case keyword.
fn canonical(key: &str) -> &str {
    match key {
        "authenticationmethods" => "AuthenticationMethods",
        "kbdinteractiveauthentication" => "KbdInteractiveAuthentication",
        "challengeresponseauthentication" => "ChallengeResponseAuthentication",
        "usepam" => "UsePAM",
        "passwordauthentication" => "PasswordAuthentication",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good_global() -> SshdSettings {
        SshdSettings::parse(
            "usepam yes\nkbdinteractiveauthentication yes\npubkeyauthentication yes\n\
             passwordauthentication no\nauthenticationmethods publickey,keyboard-interactive\n",
        )
    }

    fn block(criteria: &str, settings: &[(&str, &str)]) -> MatchBlock {
        MatchBlock {
            file: "/etc/ssh/sshd_config".into(),
            line: 40,
            criteria: criteria.into(),
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn lines_and_words() {
        assert_eq!(
            split_line("  AuthenticationMethods=publickey # admins"),
            Some(("authenticationmethods".into(), "publickey".into()))
        );
        assert_eq!(
            split_line("Match User root Address 10.0.0.0/8"),
            Some(("match".into(), "User root Address 10.0.0.0/8".into()))
        );
        assert_eq!(split_line("   # comment"), None);
        assert_eq!(
            words("\"/etc/ssh/my dir/*.conf\" other.conf"),
            vec!["/etc/ssh/my dir/*.conf", "other.conf"]
        );
    }

    #[test]
    fn probe_spec_from_criteria() {
        assert_eq!(
            probe_spec("User root"),
            "user=root,host=localhost,addr=127.0.0.1"
        );
        assert_eq!(
            probe_spec("Address 10.1.0.0/16,!10.1.2.0/24 User !bob,alice"),
            "user=alice,host=localhost,addr=10.1.0.1"
        );
        assert_eq!(
            probe_spec("user deploy* LocalPort 2222"),
            "user=root,host=localhost,addr=127.0.0.1,lport=2222"
        );
    }

    #[test]
    fn methods_without_keyboard_interactive_fail_with_the_block() {
        let f = analyse_match_blocks(
            &good_global(),
            &[block(
                "Address 127.0.0.0/8",
                &[("authenticationmethods", "publickey")],
            )],
            "/usr/sbin/sshd",
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Fail);
        assert!(
            f[0].message.starts_with(
                "Match block at /etc/ssh/sshd_config:40 (`Match Address 127.0.0.0/8`) sets AuthenticationMethods publickey: "
            ) && f[0].message.contains("list publickey never reaches keyboard-interactive"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].fix.as_deref().unwrap().contains(
                "check with `/usr/sbin/sshd -T -C user=root,host=localhost,addr=127.0.0.1`"
            ),
            "{:?}",
            f[0].fix
        );
        // `any` with publickey enabled is the same bypass.
        let f = analyse_match_blocks(
            &good_global(),
            &[block("User root", &[("authenticationmethods", "any")])],
            "sshd",
        );
        assert_eq!(f[0].status, Status::Fail);
        assert!(f[0].message.contains("publickey alone"), "{}", f[0].message);
    }

    #[test]
    fn other_blocks_warn_and_unrelated_blocks_are_skipped() {
        let blocks = [
            block(
                "User alice",
                &[("authenticationmethods", "publickey,keyboard-interactive")],
            ),
            block("Group sftp", &[("kbdinteractiveauthentication", "no")]),
            block("User bob", &[("x11forwarding", "no")]),
        ];
        let f = analyse_match_blocks(&good_global(), &blocks, "sshd");
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].status, Status::Warn);
        assert!(
            f[0].message.contains("without -C does not show"),
            "{}",
            f[0].message
        );
        assert!(f[0].fix.as_deref().unwrap().contains("user=alice"));
        assert_eq!(f[1].status, Status::Warn);
        assert!(
            f[1].message.contains("KbdInteractiveAuthentication is no"),
            "{}",
            f[1].message
        );
    }
}
