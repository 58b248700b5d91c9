//! The PAM module's local policy, free of PAM: who must pass a second factor
//! (`[pam]` require/exempt groups and networks), what a registrations lookup
//! means before any prompt, how a `forward_pass` answer splits into password
//! and code, the prompt/tries loop as a state machine, and the deadline
//! budget for registry work.
//!
//! Everything here is a pure function of its inputs, so the module's
//! behaviour can be checked without a PAM stack; the PAM glue only performs
//! the I/O these types ask for.

use crate::api::VerifyResult;
pub use crate::decision::from_registrations;
use crate::decision::{self, Decision};
use ipnet::IpNet;
use std::net::IpAddr;
use std::time::Duration;
use twostep_config::{PamConfig, UnenrolledPolicy};

pub use crate::totp::{is_code_format, CODE_DIGITS};

/// Splits a `forward_pass` answer `PASSWORDCODE` into `(password, code)`.
///
/// The code is, tried in this order:
/// 1. the last [`CODE_DIGITS`] characters, all ASCII digits (a code from the app);
/// 2. the last 14 characters in the shown form of a temporary access code
///    (`K7QM-3XHD-W9PR`, any case);
/// 3. the last 12 characters, each of the temporary access code alphabet
///    (any case, no dashes);
/// 4. the last 9 characters in the shown form of a backup code
///    (`1234 5678`; without the space, its last 6 digits are taken for an
///    app's code by rule 1).
///
/// Everything before the code is the password, byte for byte (no
/// delimiter is removed, so a password may itself end in `,` or a space).
/// The password may be empty. Returns `None` when the answer ends in none
/// of these.
pub fn split_forward_pass(answer: &str) -> Option<(&str, &str)> {
    let tail = |n: usize| -> Option<(&str, &str)> {
        let cut = answer.len().checked_sub(n)?;
        answer.is_char_boundary(cut).then(|| answer.split_at(cut))
    };
    if let Some((p, c)) = tail(CODE_DIGITS as usize) {
        if is_code_format(c) {
            return Some((p, c));
        }
    }
    let dashed = |c: &str| {
        c.len() == 14
            && c.as_bytes()[4] == b'-'
            && c.as_bytes()[9] == b'-'
            && crate::recovery::is_tap_format(c)
    };
    if let Some((p, c)) = tail(14).filter(|(_, c)| dashed(c)) {
        return Some((p, c));
    }
    let plain = |c: &str| {
        c.bytes()
            .all(|b| crate::recovery::TAP_ALPHABET.contains(&b.to_ascii_uppercase()))
    };
    if let Some((p, c)) = tail(crate::recovery::TAP_CHARS).filter(|(_, c)| plain(c)) {
        return Some((p, c));
    }
    let spaced =
        |c: &str| c.as_bytes()[4] == b' ' && crate::recovery::normalise_backup_code(c).is_some();
    tail(9).filter(|(_, c)| spaced(c))
}

/// The bytes OpenSSH's sshd repeats, cut to the length of what the user
/// typed, to make the answer it hands to PAM in place of the typed one
/// when it has refused the account itself: `PermitRootLogin` forbids this
/// root login, or the user is invalid (unknown, not in `AllowUsers`)
/// (OpenSSH `auth.c` `fake_password`, used by `auth-pam.c`
/// `sshpam_respond` and `sshpam_auth_passwd`). Whatever the user typed is
/// lost; no code can be in it.
pub const SSHD_STAND_IN_PASSWORD: &str = "\x08\n\r\x7fINCORRECT";

/// Whether `answer` is sshd's stand-in: non-empty and
/// [`SSHD_STAND_IN_PASSWORD`] repeated and cut to its length
/// (`"\x08\n\r\x7fIN"` for a typed 6-digit code). The login was refused by
/// sshd, not by a wrong code, and asking again is pointless (every further
/// answer is replaced as well). Nobody types a backspace, a line feed and
/// a carriage return into a prompt.
pub fn is_sshd_stand_in(answer: &str) -> bool {
    let junk = SSHD_STAND_IN_PASSWORD.as_bytes();
    !answer.is_empty()
        && answer
            .bytes()
            .enumerate()
            .all(|(i, b)| b == junk[i % junk.len()])
}

/// Why a user skips the second factor: the module answers `PAM_IGNORE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exemption {
    /// `require_groups` is set and the user is in none of them.
    NotRequired,
    /// The user is in this `exempt_groups` group.
    Group(String),
    /// PAM_RHOST lies in this `exempt_networks` network.
    Network(IpNet),
}

impl Exemption {
    /// Short text for logs.
    pub fn reason(&self) -> String {
        match self {
            Self::NotRequired => "exempt: in no require_groups group".into(),
            Self::Group(g) => format!("exempt: member of group {g}"),
            Self::Network(n) => format!("exempt: rhost in {n}"),
        }
    }
}

/// Parses PAM_RHOST as an IP address. Host names (sshd with `UseDNS yes`)
/// give `None`: network exemptions apply to addresses only. IPv4-mapped IPv6
/// addresses (`::ffff:192.0.2.1`) count as their IPv4 address; a bracketed
/// form and an IPv6 zone (`fe80::1%eth0`) are accepted.
pub fn parse_rhost(rhost: &str) -> Option<IpAddr> {
    let s = rhost.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    let s = s.split('%').next().unwrap_or(s);
    s.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

/// Decides whether the user is exempt from the second factor.
///
/// `groups` are the names of all groups the user is in (primary and
/// supplementary); `rhost` is PAM_RHOST if set. Exempt networks are checked
/// first, then exempt groups, then `require_groups`.
pub fn exemption(cfg: &PamConfig, groups: &[String], rhost: Option<&str>) -> Option<Exemption> {
    if let Some(addr) = rhost.and_then(parse_rhost) {
        if let Some(net) = cfg.exempt_networks.iter().find(|n| n.contains(&addr)) {
            return Some(Exemption::Network(*net));
        }
    }
    if let Some(g) = cfg.exempt_groups.iter().find(|g| groups.contains(g)) {
        return Some(Exemption::Group(g.clone()));
    }
    if !cfg.require_groups.is_empty() && !cfg.require_groups.iter().any(|g| groups.contains(g)) {
        return Some(Exemption::NotRequired);
    }
    None
}

/// Whether the user's groups matter at all (some group list is configured);
/// when not, the module does not look them up.
pub fn needs_groups(cfg: &PamConfig) -> bool {
    !cfg.require_groups.is_empty() || !cfg.exempt_groups.is_empty()
}

/// The end of an authentication attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A decision from the registry's answer, the policy or the fail mode.
    Decided(Decision),
    /// `max_tries` wrong codes (`PAM_MAXTRIES`).
    MaxTries,
    /// The conversation failed or gave no answer before any code was tried
    /// (`PAM_CONV_ERR`).
    NoAnswer,
}

/// What one try produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The answer was not a code (wrong length, not digits, no code at the
    /// end of a `forward_pass` answer). A wrong try; the registry was not asked.
    Malformed,
    /// The registry's verdict.
    Verdict(VerifyResult),
}

/// What the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Prompt for another code.
    Prompt,
    /// Stop with this outcome.
    Done(Outcome),
}

/// The prompt/tries loop: up to `max_tries` wrong codes, then
/// [`Outcome::MaxTries`]. A replayed code ([`Decision::Replayed`]) uses up
/// a try here too, so the loop stays bounded, though the registry does not
/// count it as a failure; the next prompt says to wait for the next code
/// ([`CodeLoop::last_replayed`]).
#[derive(Debug, Clone)]
pub struct CodeLoop {
    max_tries: u32,
    wrong: u32,
    last_replayed: bool,
    unenrolled: UnenrolledPolicy,
}

impl CodeLoop {
    /// A loop allowing `max_tries` (at least 1) codes.
    pub fn new(max_tries: u32, unenrolled: UnenrolledPolicy) -> Self {
        Self {
            max_tries: max_tries.max(1),
            wrong: 0,
            last_replayed: false,
            unenrolled,
        }
    }

    /// Wrong tries so far.
    pub fn wrong_tries(&self) -> u32 {
        self.wrong
    }

    /// Whether the last try was a replayed code: the next prompt says to
    /// wait for the next code ([`crate::decision::REPLAY_MESSAGE`]).
    pub fn last_replayed(&self) -> bool {
        self.last_replayed
    }

    /// Whether the last try was a wrong code (not a replay): the next
    /// prompt says so ([`crate::decision::WRONG_CODE_MESSAGE`]).
    pub fn last_wrong(&self) -> bool {
        self.wrong > 0 && !self.last_replayed
    }

    /// Feeds the result of one try.
    pub fn answer(&mut self, answer: Answer) -> Next {
        let decision = match answer {
            Answer::Malformed => Decision::WrongCode,
            Answer::Verdict(r) => decision::from_result(r, self.unenrolled),
        };
        if !matches!(decision, Decision::WrongCode | Decision::Replayed) {
            return Next::Done(Outcome::Decided(decision));
        }
        self.last_replayed = decision == Decision::Replayed;
        self.wrong += 1;
        if self.wrong >= self.max_tries {
            Next::Done(Outcome::MaxTries)
        } else {
            Next::Prompt
        }
    }

    /// The conversation could not give another answer (the user hung up,
    /// `use_first_pass` had nothing more): a wrong (or, when the last was
    /// one, replayed) code if one was tried (`PAM_AUTH_ERR`), otherwise
    /// [`Outcome::NoAnswer`].
    pub fn no_more_answers(&self) -> Outcome {
        if self.last_replayed {
            Outcome::Decided(Decision::Replayed)
        } else if self.wrong > 0 {
            Outcome::Decided(Decision::WrongCode)
        } else {
            Outcome::NoAnswer
        }
    }
}

/// The deadline for registry work within one module call: `[pam]
/// total_timeout` covers lookups and verifications, and time spent waiting
/// for the user at a prompt is not counted.
#[derive(Debug, Clone)]
pub struct Budget {
    total: Duration,
    spent: Duration,
}

impl Budget {
    /// A budget of `total`.
    pub fn new(total: Duration) -> Self {
        Self {
            total,
            spent: Duration::ZERO,
        }
    }

    /// Time left for registry work.
    pub fn remaining(&self) -> Duration {
        self.total.saturating_sub(self.spent)
    }

    /// Records `d` of registry work.
    pub fn spend(&mut self, d: Duration) {
        self.spent = self.spent.saturating_add(d);
    }

    /// Whether nothing is left.
    pub fn exhausted(&self) -> bool {
        self.remaining().is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::DenyReason;

    #[test]
    fn code_format() {
        assert!(is_code_format("012345"));
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            " 12345",
            "１２３４５６",
            "12 456",
        ] {
            assert!(!is_code_format(bad), "{bad:?}");
        }
    }

    #[test]
    fn forward_pass_split() {
        assert_eq!(
            split_forward_pass("hunter2123456"),
            Some(("hunter2", "123456"))
        );
        assert_eq!(split_forward_pass("pw,123456"), Some(("pw,", "123456")));
        assert_eq!(split_forward_pass("123456"), Some(("", "123456")));
        assert_eq!(
            split_forward_pass("pässwörd000001"),
            Some(("pässwörd", "000001"))
        );
        assert_eq!(split_forward_pass("12345"), None);
        assert_eq!(split_forward_pass("password"), None);
        assert_eq!(split_forward_pass("pw12345x"), None);
        // A multi-byte character straddling the cut is not a code.
        assert_eq!(split_forward_pass("ab€12345"), None);
        // A temporary access code after the password, shown form or typed.
        assert_eq!(
            split_forward_pass("hunter2passK7QM-3XHD-W9PR"),
            Some(("hunter2pass", "K7QM-3XHD-W9PR"))
        );
        assert_eq!(
            split_forward_pass("pw,k7qm3xhdw9pr"),
            Some(("pw,", "k7qm3xhdw9pr"))
        );
        // A backup code as printed, with its space.
        assert_eq!(split_forward_pass("pw1234 5678"), Some(("pw", "1234 5678")));
        // An app code wins when the answer ends in six digits.
        assert_eq!(
            split_forward_pass("K7QM3XHDW9PR123456"),
            Some(("K7QM3XHDW9PR", "123456"))
        );
    }

    #[test]
    fn sshd_stand_in_password() {
        // The exact bytes of OpenSSH's badpw: BS, LF, CR, DEL, "INCORRECT".
        assert_eq!(SSHD_STAND_IN_PASSWORD.as_bytes(), b"\x08\n\r\x7fINCORRECT");
        assert!(is_sshd_stand_in("\u{8}\n\r\u{7f}INCORRECT"));
        // Cut to the typed length (a 6-digit code), or repeated.
        assert!(is_sshd_stand_in("\u{8}\n\r\u{7f}IN"));
        assert!(is_sshd_stand_in("\u{8}\n\r\u{7f}INCORRECT\u{8}\n"));
        assert!(!is_sshd_stand_in(""));
        assert!(!is_sshd_stand_in("\u{8}\n\r\u{7f}IX"));
        assert!(!is_sshd_stand_in("INCORRECT"));
        assert!(!is_sshd_stand_in("123456"));
        assert!(split_forward_pass(SSHD_STAND_IN_PASSWORD).is_none());
    }

    fn pam(f: impl FnOnce(&mut PamConfig)) -> PamConfig {
        let mut c = PamConfig::default();
        f(&mut c);
        c
    }

    #[test]
    fn rhost_parsing() {
        assert_eq!(parse_rhost("192.0.2.7"), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(
            parse_rhost("::ffff:192.0.2.7"),
            Some("192.0.2.7".parse().unwrap())
        );
        assert_eq!(
            parse_rhost("[2001:db8::1]"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            parse_rhost("fe80::1%eth0"),
            Some("fe80::1".parse().unwrap())
        );
        assert_eq!(parse_rhost("host.example.com"), None);
        assert_eq!(parse_rhost(""), None);
    }

    #[test]
    fn exemptions() {
        let groups = vec!["users".to_owned(), "ops".to_owned()];
        assert_eq!(
            exemption(&PamConfig::default(), &groups, Some("192.0.2.1")),
            None
        );

        let c = pam(|c| c.exempt_networks = vec!["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(
            exemption(&c, &groups, Some("10.1.2.3")),
            Some(Exemption::Network("10.0.0.0/8".parse().unwrap()))
        );
        assert_eq!(
            exemption(&c, &groups, Some("::ffff:10.1.2.3")),
            Some(Exemption::Network("10.0.0.0/8".parse().unwrap()))
        );
        assert_eq!(exemption(&c, &groups, Some("11.0.0.1")), None);
        assert_eq!(exemption(&c, &groups, Some("ten.example")), None);
        assert_eq!(exemption(&c, &groups, None), None);

        let c = pam(|c| c.exempt_groups = vec!["ops".into()]);
        assert_eq!(
            exemption(&c, &groups, None),
            Some(Exemption::Group("ops".into()))
        );
        assert_eq!(exemption(&c, &["users".into()], None), None);

        let c = pam(|c| c.require_groups = vec!["admins".into()]);
        assert_eq!(exemption(&c, &groups, None), Some(Exemption::NotRequired));
        assert_eq!(exemption(&c, &["admins".into()], None), None);
        assert!(needs_groups(&c));
        assert!(!needs_groups(&PamConfig::default()));
    }

    #[test]
    fn loop_accepts_after_wrong_tries() {
        let mut l = CodeLoop::new(3, UnenrolledPolicy::Deny);
        assert_eq!(
            l.answer(Answer::Verdict(VerifyResult::Reject)),
            Next::Prompt
        );
        assert_eq!(l.answer(Answer::Malformed), Next::Prompt);
        assert_eq!(l.wrong_tries(), 2);
        assert_eq!(
            l.answer(Answer::Verdict(VerifyResult::Accept)),
            Next::Done(Outcome::Decided(Decision::Verified))
        );
    }

    #[test]
    fn loop_ends_in_maxtries() {
        let mut l = CodeLoop::new(3, UnenrolledPolicy::Deny);
        assert_eq!(l.answer(Answer::Malformed), Next::Prompt);
        assert_eq!(
            l.answer(Answer::Verdict(VerifyResult::Reject)),
            Next::Prompt
        );
        assert_eq!(
            l.answer(Answer::Verdict(VerifyResult::Reject)),
            Next::Done(Outcome::MaxTries)
        );
        let mut one = CodeLoop::new(1, UnenrolledPolicy::Deny);
        assert_eq!(one.answer(Answer::Malformed), Next::Done(Outcome::MaxTries));
        // max_tries = 0 is treated as 1, never as "no limit".
        let mut zero = CodeLoop::new(0, UnenrolledPolicy::Deny);
        assert_eq!(
            zero.answer(Answer::Malformed),
            Next::Done(Outcome::MaxTries)
        );
    }

    #[test]
    fn loop_stops_on_final_verdicts() {
        for (r, d) in [
            (VerifyResult::Locked, Decision::Denied(DenyReason::Locked)),
            (
                VerifyResult::Disabled,
                Decision::Denied(DenyReason::Disabled),
            ),
            (
                VerifyResult::NotEnrolled,
                Decision::Denied(DenyReason::NotEnrolled),
            ),
        ] {
            let mut l = CodeLoop::new(3, UnenrolledPolicy::Deny);
            assert_eq!(
                l.answer(Answer::Verdict(r)),
                Next::Done(Outcome::Decided(d))
            );
        }
    }

    #[test]
    fn loop_replay_is_a_try_with_its_own_end() {
        let mut l = CodeLoop::new(2, UnenrolledPolicy::Deny);
        assert_eq!(
            l.answer(Answer::Verdict(VerifyResult::Replay)),
            Next::Prompt
        );
        assert!(l.last_replayed());
        assert_eq!(l.no_more_answers(), Outcome::Decided(Decision::Replayed));
        assert_eq!(
            l.answer(Answer::Verdict(VerifyResult::Reject)),
            Next::Done(Outcome::MaxTries)
        );
        assert!(!l.last_replayed());
    }

    #[test]
    fn loop_without_more_answers() {
        let mut l = CodeLoop::new(3, UnenrolledPolicy::Deny);
        assert_eq!(l.no_more_answers(), Outcome::NoAnswer);
        l.answer(Answer::Malformed);
        assert_eq!(l.no_more_answers(), Outcome::Decided(Decision::WrongCode));
    }

    #[test]
    fn budget() {
        let mut b = Budget::new(Duration::from_secs(3));
        assert_eq!(b.remaining(), Duration::from_secs(3));
        b.spend(Duration::from_secs(2));
        assert_eq!(b.remaining(), Duration::from_secs(1));
        assert!(!b.exhausted());
        b.spend(Duration::from_secs(5));
        assert!(b.exhausted());
        assert_eq!(b.remaining(), Duration::ZERO);
    }
}
