//! Where `pam_twostep.so` sits in a PAM service's `auth` stack.
//!
//! [`load_auth_stack`] reads `/etc/pam.d/SERVICE` and follows `@include`,
//! `include` and `substack` lines into one flat list of `auth` lines.
//! [`analyse`] then runs Linux-PAM's dispatch rules (`_pam_dispatch_aux`:
//! impression, `ok`/`done`/`bad`/`die`/`ignore`/`reset`/jumps, the four
//! historical keywords as their bracket equivalents) over every combination
//! of module results — every result `pam_twostep.so` can return
//! ([`TWOSTEP_RESULTS`]), every PAM result for other modules (results a
//! line treats alike are explored once), `pam_permit.so` always
//! succeeding and `pam_deny.so` always failing — and reports each way a
//! user could end authenticated without a passed second factor: no run of
//! the module, or a failure result of it (a wrong code, the registry
//! unreachable, ...) that is ignored, jumped over or reset by a later line.
//!
//! Approximation: a `substack` is inlined like `include`, so `done`/`die`
//! and jumps inside it are treated as acting on the whole stack. Debian's
//! and Red Hat's stock stacks do not depend on the difference.
//!
//! The pieces: [`parse`] reads the files, [`dispatch`] follows Linux-PAM's
//! rules over the flattened stack, [`describe`] words each problem for the
//! admin, and [`check`] turns them into findings for `twostep doctor`.

pub mod check;
pub mod describe;
pub mod dispatch;
pub mod parse;

pub use check::check_pam;
pub use describe::Problem;
pub use dispatch::analyse;
pub use parse::{load_auth_stack, Disk, LoadError};

use std::fmt;
use std::path::PathBuf;

/// The module file name looked for (as the Debian package installs it).
pub const MODULE: &str = "pam_twostep.so";

/// Every file name the module goes by: the installed name and the name
/// cargo builds (`target/release/libpam_twostep.so`).
pub const MODULE_NAMES: [&str; 2] = [MODULE, "libpam_twostep.so"];

/// The return-value names a `[value=action]` control may use (Linux-PAM
/// `_pam_token_returns`, plus `default`). Linux-PAM compares them case
/// sensitively and treats a control with an unknown name as all `bad`.
const RETURN_NAMES: [&str; 33] = [
    "success",
    "open_err",
    "symbol_err",
    "service_err",
    "system_err",
    "buf_err",
    "perm_denied",
    "auth_err",
    "cred_insufficient",
    "authinfo_unavail",
    "user_unknown",
    "maxtries",
    "new_authtok_reqd",
    "acct_expired",
    "session_err",
    "cred_unavail",
    "cred_expired",
    "cred_err",
    "no_module_data",
    "conv_err",
    "authtok_err",
    "authtok_recover_err",
    "authtok_lock_busy",
    "authtok_disable_aging",
    "try_again",
    "ignore",
    "abort",
    "authtok_expired",
    "module_unknown",
    "bad_item",
    "conv_again",
    "incomplete",
    "default",
];

/// Where a line came from: file and 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number (first line of a continued line).
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// What the dispatcher does with one module result (Linux-PAM `pam.conf(5)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Result has no effect.
    Ignore,
    /// Result counts unless a failure is already recorded.
    Ok,
    /// Records a failure and continues.
    Bad,
    /// Records a failure and returns.
    Die,
    /// Counts like `ok` and returns (unless a failure is recorded).
    Done,
    /// Forgets everything recorded so far.
    Reset,
    /// Skips the next N lines.
    Jump(u32),
}

/// A module result, by its Linux-PAM control name (`auth_err` for
/// `PAM_AUTH_ERR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ret(&'static str);

impl Ret {
    /// `PAM_SUCCESS`.
    pub const SUCCESS: Ret = Ret("success");
    /// `PAM_AUTH_ERR`.
    pub const AUTH_ERR: Ret = Ret("auth_err");
    /// `PAM_IGNORE`.
    pub const IGNORE: Ret = Ret("ignore");

    /// The name used in `[value=action]` controls.
    pub fn key(self) -> &'static str {
        self.0
    }

    /// The C name: `PAM_AUTHINFO_UNAVAIL`.
    pub fn pam_name(self) -> String {
        format!("PAM_{}", self.0.to_ascii_uppercase())
    }

    /// What this result of `pam_twostep.so` means ("registry unreachable").
    pub fn meaning(self) -> &'static str {
        TWOSTEP_RESULTS
            .iter()
            .find(|(r, _)| *r == self)
            .map_or("a failure", |(_, m)| m)
    }
}

impl fmt::Display for Ret {
    /// `registry unreachable (PAM_AUTHINFO_UNAVAIL)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.meaning(), self.pam_name())
    }
}

/// Every result `pam_twostep.so` can return from `pam_sm_authenticate`
/// (pam-module's `to_pam`, its panic guard and, for safety, the error
/// codes a PAM module may return on resource failures), failures in the
/// order they are worth naming, with what each means.
pub const TWOSTEP_RESULTS: [(Ret, &str); 14] = [
    (Ret::SUCCESS, "a right code"),
    (Ret::IGNORE, "an exempt user"),
    (Ret::AUTH_ERR, "a wrong code"),
    (Ret("authinfo_unavail"), "registry unreachable"),
    (Ret("perm_denied"), "a locked, disabled or unenrolled user"),
    (Ret("maxtries"), "too many wrong codes"),
    (Ret("conv_err"), "no code typed"),
    (Ret("user_unknown"), "an empty user name"),
    (Ret("abort"), "a crash in the module"),
    (Ret("service_err"), "an internal error"),
    (Ret("system_err"), "a system error"),
    (Ret("buf_err"), "out of memory"),
    (Ret("module_unknown"), "the module failing to load"),
    (Ret("open_err"), "the module file missing"),
];

/// The control field of an `auth` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// `required`.
    Required,
    /// `requisite`.
    Requisite,
    /// `sufficient`.
    Sufficient,
    /// `optional`.
    Optional,
    /// `[value=action ...]`.
    Brackets(Vec<(String, Action)>),
}

/// The action as written in a `[value=action]` control.
fn action_word(a: Action) -> String {
    match a {
        Action::Ignore => "ignore".to_owned(),
        Action::Ok => "ok".to_owned(),
        Action::Bad => "bad".to_owned(),
        Action::Die => "die".to_owned(),
        Action::Done => "done".to_owned(),
        Action::Reset => "reset".to_owned(),
        Action::Jump(n) => n.to_string(),
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Control::Required => f.write_str("required"),
            Control::Requisite => f.write_str("requisite"),
            Control::Sufficient => f.write_str("sufficient"),
            Control::Optional => f.write_str("optional"),
            Control::Brackets(pairs) => {
                f.write_str("[")?;
                for (i, (k, a)) in pairs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{k}={}", action_word(*a))?;
                }
                f.write_str("]")
            }
        }
    }
}

/// One `auth` line of the flattened stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthLine {
    /// Where it was read.
    pub origin: Origin,
    /// Its control field.
    pub control: Control,
    /// The module as written (`pam_unix.so`, `/lib/security/pam_x.so`).
    pub module: String,
    /// Module arguments.
    pub args: Vec<String>,
}

impl AuthLine {
    /// The module's file name (`pam_unix.so`).
    pub fn module_name(&self) -> &str {
        self.module.rsplit('/').next().unwrap_or(&self.module)
    }

    /// Whether this line loads the module (`pam_twostep.so` or
    /// `libpam_twostep.so`, by any path).
    pub fn is_twostep(&self) -> bool {
        MODULE_NAMES.contains(&self.module_name())
    }

    /// Whether this is a `stash_code` line of the module: it keeps the
    /// code for a later `verify_stashed` line and never succeeds itself.
    pub fn stashes(&self) -> bool {
        self.is_twostep() && self.args.iter().any(|a| a == "stash_code") && !self.verifies_stashed()
    }

    /// Whether this is a `verify_stashed` line of the module.
    pub fn verifies_stashed(&self) -> bool {
        self.is_twostep() && self.args.iter().any(|a| a == "verify_stashed")
    }
}

#[cfg(test)]
mod tests;
