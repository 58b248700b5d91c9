//! The second-factor decision shared by the PAM module and the RADIUS
//! server: a pure function from the registry's answer (or its absence) and
//! the local policy to what the front end must do.
//!
//! | input | [`Decision`] | PAM | RADIUS |
//! |---|---|---|---|
//! | `accept` | `Verified` | `PAM_SUCCESS` | Access-Accept |
//! | `reject` | `WrongCode` | `PAM_AUTH_ERR` (re-prompt; `PAM_MAXTRIES` at the end) | Access-Reject "code refused" |
//! | `replay` | `Replayed` | `PAM_AUTH_ERR` (re-prompt with [`REPLAY_MESSAGE`]; `PAM_MAXTRIES` at the end) | Access-Reject [`REPLAY_MESSAGE`] |
//! | `locked` | `Denied(Locked)` | `PAM_PERM_DENIED` | Access-Reject "account locked" |
//! | `disabled` | `Denied(Disabled)` | `PAM_PERM_DENIED` | Access-Reject "account disabled" |
//! | `not_enrolled` / `unknown_user`, policy `deny` | `Denied(NotEnrolled)` | `PAM_PERM_DENIED` | Access-Reject "second factor not set up" |
//! | no method that counts here (a security key only), policy `deny` | `Denied(NotSetUpHere)` | `PAM_PERM_DENIED` | Access-Reject "second factor not set up for VPN" |
//! | `not_enrolled` / `unknown_user`, policy `ignore` | `Ignore` | `PAM_IGNORE` | (RADIUS has no "ignore": Access-Reject) |
//! | registry unreachable, fail mode `closed` | `Unavailable` | `PAM_AUTHINFO_UNAVAIL` | Access-Reject |
//! | registry unreachable, fail mode `open` | `FailOpen` | `PAM_SUCCESS`, logged at warning | Access-Accept, logged at warning |
//! | registry answered 5xx, any fail mode | `Unavailable` | `PAM_AUTHINFO_UNAVAIL` | Access-Reject |
//! | TLS failure (untrusted or expired certificate, wrong name, alert), any fail mode | `Unavailable` | `PAM_AUTHINFO_UNAVAIL`, logged at error | Access-Reject |
//! | connection broke mid-request (reset, closed before the answer), any fail mode | `Unavailable` | `PAM_AUTHINFO_UNAVAIL` | Access-Reject |
//! | credential refused (401/403), other 4xx, malformed answer, any fail mode | `Unavailable` | `PAM_AUTHINFO_UNAVAIL` | Access-Reject |
//!
//! "Unreachable" means the registry could not be reached at all: connection
//! refused or network unreachable, a name that does not resolve, a connect
//! or request timeout ([`ClientError::is_unreachable`]). Nothing else is:
//!
//! - a registry that answers 5xx is up but failing (its database full or
//!   read-only, say); it may already have judged the code wrong, so the fail
//!   mode never turns such an answer into a login ([`ClientError::Server`]);
//! - a failed TLS handshake (a certificate from a CA not in `ca_file`, for
//!   another name, expired; a TLS alert) is what an interception looks like:
//!   whoever could present any certificate would otherwise skip the second
//!   factor under `fail_mode = "open"` ([`ClientError::Tls`]);
//! - a connection that broke after the request went out may have been acted
//!   on, like a 5xx ([`ClientError::Transport`]).
//!
//! [`ClientError::is_unreachable`]: crate::client::ClientError::is_unreachable
//! [`ClientError::Server`]: crate::client::ClientError::Server
//! [`ClientError::Tls`]: crate::client::ClientError::Tls
//! [`ClientError::Transport`]: crate::client::ClientError::Transport

use crate::api::{Registrations, UserStatus, VerifyResponse, VerifyResult};
use crate::methods::Place;
use twostep_config::{FailMode, UnenrolledPolicy};

/// Why a user is refused outright (no retry helps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// Locked out after too many failures.
    Locked,
    /// Disabled by an admin.
    Disabled,
    /// No method registered (or unknown to the registry) and policy `deny`.
    NotEnrolled,
    /// Methods registered, but none that counts in this place (a security
    /// key only, at an SSH login), and policy `deny`.
    NotSetUpHere(Place),
}

impl DenyReason {
    /// What the user is told (a PAM error message before the module
    /// returns): what happened and what to do. A name the registry does
    /// not know is told what a user without methods is (both are
    /// [`Self::NotEnrolled`]), so the words tell the two apart no more
    /// than the result does.
    pub fn notice(self) -> &'static str {
        match self {
            Self::Locked => {
                "Too many wrong verification codes: your account is locked for a while. Try again later."
            }
            Self::Disabled => {
                "Two-step verification is disabled for your account. Ask your administrator."
            }
            Self::NotEnrolled => {
                "Two-step verification is not set up for your account. Set it up on the Security info page, or ask your administrator."
            }
            Self::NotSetUpHere(Place::Pam) => {
                "None of your verification methods works for SSH logins (a security key works only on the Security info page). Add an authenticator app."
            }
            Self::NotSetUpHere(Place::Radius) => {
                "None of your verification methods works for VPN logins (a security key works only on the Security info page). Add an authenticator app."
            }
            Self::NotSetUpHere(Place::Page) => {
                "None of your verification methods works on the Security info page."
            }
        }
    }

    /// Short text for logs and Reply-Message.
    pub fn message(self) -> &'static str {
        match self {
            Self::Locked => "account locked",
            Self::Disabled => "account disabled",
            Self::NotEnrolled => "second factor not set up",
            Self::NotSetUpHere(Place::Pam) => "second factor not set up for SSH",
            Self::NotSetUpHere(Place::Radius) => "second factor not set up for VPN",
            Self::NotSetUpHere(Place::Page) => {
                "second factor not set up for the Security info page"
            }
        }
    }
}

/// What the user is told about a replayed code (PAM prompt, RADIUS
/// Reply-Message, the Security info page).
pub const REPLAY_MESSAGE: &str = "That code was used already. Wait for the next code in your app.";

/// What a PAM prompt says before asking again after a wrong code (or an
/// answer that is not a code).
pub const WRONG_CODE_MESSAGE: &str = "That code didn't work. Try again.";

/// What a front end does with one verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The second factor passed.
    Verified,
    /// Wrong or expired code; the user may try again.
    WrongCode,
    /// The code was used already (its time step consumed); the user may
    /// try again with the next code. Not a failure at the registry.
    Replayed,
    /// Refused; trying again does not help.
    Denied(DenyReason),
    /// Unenrolled user under policy `ignore`: step aside.
    Ignore,
    /// Registry unreachable and fail mode `closed`; or any other failed
    /// registry call (5xx, TLS, refused credential...), whatever the fail mode.
    Unavailable,
    /// Registry unreachable and fail mode `open`: let through, log a warning.
    FailOpen,
}

impl Decision {
    /// Short text for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::WrongCode => "code refused",
            Self::Replayed => "code used already (replay)",
            Self::Denied(r) => r.message(),
            Self::Ignore => "ignored (not enrolled)",
            Self::Unavailable => "registry unavailable",
            Self::FailOpen => "registry unavailable, fail-open",
        }
    }
}

/// Decides from the registry's verdict on a code.
pub fn from_result(result: VerifyResult, unenrolled: UnenrolledPolicy) -> Decision {
    match result {
        VerifyResult::Accept => Decision::Verified,
        VerifyResult::Reject => Decision::WrongCode,
        VerifyResult::Replay => Decision::Replayed,
        VerifyResult::Locked => Decision::Denied(DenyReason::Locked),
        VerifyResult::Disabled => Decision::Denied(DenyReason::Disabled),
        VerifyResult::NotEnrolled | VerifyResult::UnknownUser => match unenrolled {
            UnenrolledPolicy::Deny => Decision::Denied(DenyReason::NotEnrolled),
            UnenrolledPolicy::Ignore => Decision::Ignore,
        },
    }
}

/// Decides from the registry's whole answer to a code: as
/// [`from_result`], and "not set up for VPN" rather than "not set up" for
/// a user whose methods count elsewhere only.
pub fn from_response(resp: &VerifyResponse, unenrolled: UnenrolledPolicy) -> Decision {
    match (from_result(resp.result, unenrolled), resp.not_set_up_for) {
        (Decision::Denied(DenyReason::NotEnrolled), Some(place)) => {
            Decision::Denied(DenyReason::NotSetUpHere(place))
        }
        (d, _) => d,
    }
}

/// What the registrations lookup settles before any prompt (PAM) or
/// Access-Challenge (RADIUS): `None` when the
/// user is active with at least one method (go on and prompt), otherwise the
/// final decision (locked or disabled: denied; unknown or no method: the
/// `unenrolled` policy). `reg` is `None` for a user the registry does not know.
pub fn from_registrations(
    reg: Option<&Registrations>,
    unenrolled: UnenrolledPolicy,
) -> Option<Decision> {
    let as_result = match reg {
        None => VerifyResult::UnknownUser,
        Some(r) => match r.status {
            UserStatus::Locked => VerifyResult::Locked,
            UserStatus::Disabled => VerifyResult::Disabled,
            UserStatus::Active if !r.is_enrolled() => VerifyResult::NotEnrolled,
            UserStatus::Active => return None,
        },
    };
    let decision = from_result(as_result, unenrolled);
    // Methods that count elsewhere only: say where the user is not set up.
    if let (Decision::Denied(DenyReason::NotEnrolled), Some(r)) = (decision, reg) {
        if !r.elsewhere.is_empty() {
            let place = r.place.unwrap_or(Place::Pam);
            return Some(Decision::Denied(DenyReason::NotSetUpHere(place)));
        }
    }
    Some(decision)
}

/// Decides when the registry could not be reached (only then: a 5xx
/// answer, a TLS failure or a broken connection is
/// [`Decision::Unavailable`] whatever the fail mode).
pub fn unreachable(fail_mode: FailMode) -> Decision {
    match fail_mode {
        FailMode::Closed => Decision::Unavailable,
        FailMode::Open => Decision::FailOpen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Method, MethodKind};

    #[test]
    fn only_accept_verifies() {
        for r in [
            VerifyResult::Reject,
            VerifyResult::Replay,
            VerifyResult::Locked,
            VerifyResult::NotEnrolled,
            VerifyResult::UnknownUser,
            VerifyResult::Disabled,
        ] {
            for p in [UnenrolledPolicy::Deny, UnenrolledPolicy::Ignore] {
                assert_ne!(from_result(r, p), Decision::Verified, "{r:?} {p:?}");
            }
        }
        assert_eq!(
            from_result(VerifyResult::Accept, UnenrolledPolicy::Deny),
            Decision::Verified
        );
    }

    #[test]
    fn unenrolled_follows_policy() {
        assert_eq!(
            from_result(VerifyResult::NotEnrolled, UnenrolledPolicy::Deny),
            Decision::Denied(DenyReason::NotEnrolled)
        );
        assert_eq!(
            from_result(VerifyResult::UnknownUser, UnenrolledPolicy::Ignore),
            Decision::Ignore
        );
        assert_eq!(
            from_result(VerifyResult::Locked, UnenrolledPolicy::Ignore),
            Decision::Denied(DenyReason::Locked)
        );
    }

    #[test]
    fn replay_is_its_own_decision() {
        for p in [UnenrolledPolicy::Deny, UnenrolledPolicy::Ignore] {
            assert_eq!(from_result(VerifyResult::Replay, p), Decision::Replayed);
        }
        assert_ne!(Decision::Replayed.as_str(), Decision::WrongCode.as_str());
    }

    #[test]
    fn fail_mode() {
        assert_eq!(unreachable(FailMode::Closed), Decision::Unavailable);
        assert_eq!(unreachable(FailMode::Open), Decision::FailOpen);
    }
    fn reg(status: UserStatus, methods: usize) -> Registrations {
        Registrations {
            temporary_access_until: None,
            username: "alice".into(),
            status,
            methods: (0..methods)
                .map(|i| Method {
                    id: i as i64,
                    kind: MethodKind::Totp,
                    label: "app".into(),
                    is_default: i == 0,
                    created_at: 0,
                    last_used_at: None,
                    disabled: false,
                })
                .collect(),
            place: Some(Place::Pam),
            elsewhere: Vec::new(),
        }
    }

    #[test]
    fn a_user_with_methods_elsewhere_only_is_told_where() {
        let mut r = reg(UserStatus::Active, 0);
        r.elsewhere = vec![MethodKind::SecurityKey];
        assert_eq!(
            from_registrations(Some(&r), UnenrolledPolicy::Deny),
            Some(Decision::Denied(DenyReason::NotSetUpHere(Place::Pam)))
        );
        assert_eq!(
            Decision::Denied(DenyReason::NotSetUpHere(Place::Pam)).as_str(),
            "second factor not set up for SSH"
        );
        r.place = Some(Place::Radius);
        assert_eq!(
            from_registrations(Some(&r), UnenrolledPolicy::Deny).map(Decision::as_str),
            Some("second factor not set up for VPN")
        );
        // `unenrolled = "ignore"` still steps aside.
        assert_eq!(
            from_registrations(Some(&r), UnenrolledPolicy::Ignore),
            Some(Decision::Ignore)
        );
    }

    #[test]
    fn registrations_before_prompt() {
        use UnenrolledPolicy::{Deny, Ignore};
        assert_eq!(
            from_registrations(Some(&reg(UserStatus::Active, 1)), Deny),
            None
        );
        assert_eq!(
            from_registrations(Some(&reg(UserStatus::Active, 0)), Deny),
            Some(Decision::Denied(DenyReason::NotEnrolled))
        );
        assert_eq!(
            from_registrations(Some(&reg(UserStatus::Active, 0)), Ignore),
            Some(Decision::Ignore)
        );
        assert_eq!(from_registrations(None, Ignore), Some(Decision::Ignore));
        assert_eq!(
            from_registrations(None, Deny),
            Some(Decision::Denied(DenyReason::NotEnrolled))
        );
        // Locked and disabled users are refused even under `ignore`.
        assert_eq!(
            from_registrations(Some(&reg(UserStatus::Locked, 1)), Ignore),
            Some(Decision::Denied(DenyReason::Locked))
        );
        assert_eq!(
            from_registrations(Some(&reg(UserStatus::Disabled, 0)), Ignore),
            Some(Decision::Denied(DenyReason::Disabled))
        );
    }

    #[test]
    fn only_disabled_methods_is_not_enrolled() {
        let mut r = reg(UserStatus::Active, 2);
        for m in &mut r.methods {
            m.disabled = true;
        }
        assert_eq!(
            from_registrations(Some(&r), UnenrolledPolicy::Deny),
            Some(Decision::Denied(DenyReason::NotEnrolled))
        );
        r.methods[1].disabled = false;
        r.methods[1].kind = MethodKind::Push;
        assert_eq!(from_registrations(Some(&r), UnenrolledPolicy::Deny), None);
        assert!(!r.has_code_method());
        assert_eq!(r.push_devices().len(), 1);
    }
}
