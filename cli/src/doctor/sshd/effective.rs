//! sshd's effective global settings, as `sshd -T` prints them: PAM,
//! keyboard-interactive, AuthenticationMethods and LoginGraceTime against
//! what the module needs.

use crate::doctor::report::{Finding, Status};
use std::collections::HashMap;

/// Seconds a user is expected to need to read the phone and type a code,
/// on top of the module's own deadline.
pub const TYPING_MARGIN_SECS: u64 = 30;

/// The settings of `sshd -T`: keyword → values (repeatable keywords keep
/// every value, in order).
#[derive(Debug, Default, Clone)]
pub struct SshdSettings(pub(super) HashMap<String, Vec<String>>);

impl SshdSettings {
    /// Parses `sshd -T` output.
    pub fn parse(text: &str) -> Self {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            map.entry(k.to_ascii_lowercase())
                .or_default()
                .push(v.trim().to_owned());
        }
        Self(map)
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.first()).map(String::as_str)
    }

    fn yes(&self, key: &str) -> bool {
        self.get(key) == Some("yes")
    }
}

const DROPIN: &str = "/etc/ssh/sshd_config.d/twostep.conf";

/// Checks `s` against what the module needs; `deadline_secs` is the module's
/// total deadline (`[pam].total_timeout` plus the registry connect timeout).
pub fn analyse(s: &SshdSettings, deadline_secs: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    let check = "sshd";
    if s.yes("usepam") {
        out.push(Finding::ok(check, "UsePAM yes"));
    } else {
        out.push(Finding::new(
            Status::Fail,
            check,
            format!(
                "UsePAM is {}: sshd never runs the PAM stack, so no second factor is asked",
                s.get("usepam").unwrap_or("unset")
            ),
            format!("set `UsePAM yes` in {DROPIN} and reload sshd"),
        ));
    }
    // OpenSSH before 8.7 called it ChallengeResponseAuthentication.
    let kbd = s
        .get("kbdinteractiveauthentication")
        .or_else(|| s.get("challengeresponseauthentication"));
    if kbd == Some("yes") {
        out.push(Finding::ok(check, "KbdInteractiveAuthentication yes"));
    } else {
        out.push(Finding::new(
            Status::Fail,
            check,
            format!(
                "KbdInteractiveAuthentication is {}: sshd cannot prompt for the code",
                kbd.unwrap_or("unset")
            ),
            format!("set `KbdInteractiveAuthentication yes` in {DROPIN} and reload sshd"),
        ));
    }
    out.push(authentication_methods(s));
    out.push(login_grace_time(s, deadline_secs));
    out
}

/// Whether `method` is keyboard-interactive through PAM: plain, or with the
/// `pam` submethod. Other submethods (`bsdauth`) never call PAM, so the
/// module is never asked (on Linux such logins cannot complete at all).
fn is_kbd(method: &str) -> bool {
    method == "keyboard-interactive" || method == "keyboard-interactive:pam"
}

pub(super) fn authentication_methods(s: &SshdSettings) -> Finding {
    let check = "sshd";
    let fix = format!(
        "set `AuthenticationMethods publickey,keyboard-interactive` (or `keyboard-interactive`) in {DROPIN}"
    );
    let value = s.get("authenticationmethods").unwrap_or("any");
    if value == "any" {
        // Every enabled method alone logs in.
        let bypassing: Vec<&str> = [
            ("pubkeyauthentication", "publickey"),
            ("hostbasedauthentication", "hostbased"),
            ("gssapiauthentication", "gssapi-with-mic"),
        ]
        .into_iter()
        .filter(|(k, _)| s.yes(k))
        .map(|(_, m)| m)
        .collect();
        if !bypassing.is_empty() {
            return Finding::new(
                Status::Fail,
                check,
                format!(
                    "AuthenticationMethods any: {} alone logs in without keyboard-interactive, so without a second factor",
                    bypassing.join(", ")
                ),
                fix,
            );
        }
        if s.yes("passwordauthentication") {
            return Finding::new(
                Status::Warn,
                check,
                "AuthenticationMethods any with PasswordAuthentication yes: password logins bypass the code prompt (sshd answers PAM's prompts with the password)".to_owned(),
                format!("set `PasswordAuthentication no` in {DROPIN}"),
            );
        }
        return Finding::ok(
            check,
            "only keyboard-interactive is enabled (AuthenticationMethods any)",
        );
    }
    let lists: Vec<&str> = value.split_whitespace().collect();
    let missing: Vec<&str> = lists
        .iter()
        .copied()
        .filter(|l| !l.split(',').any(is_kbd))
        .collect();
    if missing.is_empty() {
        Finding::ok(check, format!("AuthenticationMethods {value}"))
    } else {
        Finding::new(
            Status::Fail,
            check,
            format!(
                "AuthenticationMethods list {} never reaches keyboard-interactive through PAM: those logins skip the second factor or cannot complete",
                missing.join(" and ")
            ),
            fix,
        )
    }
}

fn login_grace_time(s: &SshdSettings, deadline: u64) -> Finding {
    let check = "sshd";
    let fix = format!(
        "set `LoginGraceTime {}` or more in {DROPIN}, or lower [pam].total_timeout",
        deadline + TYPING_MARGIN_SECS
    );
    let Some(raw) = s.get("logingracetime") else {
        return Finding::ok(check, "LoginGraceTime not reported (default 120 s)");
    };
    let Ok(grace) = raw.parse::<u64>() else {
        return Finding::new(
            Status::Warn,
            check,
            format!("LoginGraceTime {raw:?} is not a number of seconds"),
            fix,
        );
    };
    if grace == 0 {
        Finding::ok(check, "LoginGraceTime 0 (no limit)")
    } else if grace < deadline {
        Finding::new(
            Status::Fail,
            check,
            format!(
                "LoginGraceTime {grace} s is shorter than the module's deadline of {deadline} s: sshd drops slow logins before the registry answers"
            ),
            fix,
        )
    } else if grace < deadline + TYPING_MARGIN_SECS {
        Finding::new(
            Status::Warn,
            check,
            format!(
                "LoginGraceTime {grace} s leaves less than {TYPING_MARGIN_SECS} s to type the code after the module's {deadline} s deadline"
            ),
            fix,
        )
    } else {
        Finding::ok(
            check,
            format!("LoginGraceTime {grace} s covers the module's {deadline} s deadline"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The relevant part of Debian 12's `sshd -T` with its stock config.
    const DEBIAN: &str = "port 22\naddressfamily any\nusepam yes\nlogingracetime 120\n\
        pubkeyauthentication yes\npasswordauthentication yes\nkbdinteractiveauthentication no\n\
        hostbasedauthentication no\ngssapiauthentication no\nauthenticationmethods any\n";

    fn with(overrides: &[(&str, &str)]) -> SshdSettings {
        let mut text = String::new();
        for line in DEBIAN.lines() {
            let k = line.split(' ').next().unwrap();
            match overrides.iter().find(|(o, _)| *o == k) {
                Some((o, v)) => text.push_str(&format!("{o} {v}\n")),
                None => text.push_str(&format!("{line}\n")),
            }
        }
        SshdSettings::parse(&text)
    }

    fn statuses(f: &[Finding]) -> Vec<Status> {
        f.iter().map(|f| f.status).collect()
    }

    #[test]
    fn good_config() {
        let s = with(&[
            ("kbdinteractiveauthentication", "yes"),
            ("authenticationmethods", "publickey,keyboard-interactive"),
        ]);
        let f = analyse(&s, 17);
        assert_eq!(statuses(&f), vec![Status::Ok; 4], "{f:?}");
    }

    #[test]
    fn stock_debian_fails_kbd_and_methods() {
        let f = analyse(&with(&[]), 17);
        assert_eq!(
            statuses(&f),
            vec![Status::Ok, Status::Fail, Status::Fail, Status::Ok]
        );
        assert!(f[1].message.contains("KbdInteractiveAuthentication is no"));
        assert!(f[2].message.contains("publickey alone"), "{}", f[2].message);
        assert!(f[2]
            .fix
            .as_deref()
            .unwrap()
            .contains("publickey,keyboard-interactive"));
    }

    #[test]
    fn usepam_no() {
        let f = analyse(&with(&[("usepam", "no")]), 17);
        assert_eq!(f[0].status, Status::Fail);
        assert!(f[0].message.starts_with("UsePAM is no"));
        assert!(f[0].fix.as_deref().unwrap().contains("UsePAM yes"));
    }

    #[test]
    fn keyboard_interactive_without_pam_is_a_failure() {
        let s = with(&[
            ("kbdinteractiveauthentication", "yes"),
            (
                "authenticationmethods",
                "publickey,keyboard-interactive:bsdauth",
            ),
        ]);
        let f = analyse(&s, 17);
        assert_eq!(f[2].status, Status::Fail, "{}", f[2].message);
        assert!(
            f[2].message
                .contains("publickey,keyboard-interactive:bsdauth never reaches keyboard-interactive through PAM"),
            "{}",
            f[2].message
        );
    }

    #[test]
    fn method_lists() {
        let s = with(&[
            ("kbdinteractiveauthentication", "yes"),
            (
                "authenticationmethods",
                "publickey,keyboard-interactive:pam password",
            ),
        ]);
        let f = analyse(&s, 17);
        assert_eq!(f[2].status, Status::Fail);
        assert!(
            f[2].message.contains("list password never reaches"),
            "{}",
            f[2].message
        );
        let s = with(&[
            ("kbdinteractiveauthentication", "yes"),
            (
                "authenticationmethods",
                "publickey,password publickey,keyboard-interactive",
            ),
        ]);
        assert!(analyse(&s, 17)[2].message.contains("publickey,password"));
        // `any` with only keyboard-interactive enabled is fine; password alone is a warning.
        let s = with(&[
            ("kbdinteractiveauthentication", "yes"),
            ("pubkeyauthentication", "no"),
            ("passwordauthentication", "no"),
        ]);
        assert_eq!(analyse(&s, 17)[2].status, Status::Ok);
        let s = with(&[
            ("kbdinteractiveauthentication", "yes"),
            ("pubkeyauthentication", "no"),
        ]);
        assert_eq!(analyse(&s, 17)[2].status, Status::Warn);
    }

    #[test]
    fn grace_time() {
        let g = |v: &str| analyse(&with(&[("logingracetime", v)]), 17)[3].clone();
        assert_eq!(g("10").status, Status::Fail);
        assert!(g("10")
            .message
            .contains("shorter than the module's deadline of 17 s"));
        assert!(g("10").fix.unwrap().contains("LoginGraceTime 47"));
        assert_eq!(g("17").status, Status::Warn);
        assert_eq!(g("47").status, Status::Ok);
        assert_eq!(g("0").status, Status::Ok);
    }

    #[test]
    fn old_openssh_keyword() {
        let s = SshdSettings::parse("usepam yes\nchallengeresponseauthentication yes\n");
        assert_eq!(analyse(&s, 17)[1].status, Status::Ok);
    }
}
