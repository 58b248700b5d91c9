//! Each placement problem in words for the admin: what is wrong, and the fix.

use super::dispatch::{Category, Class};
use super::{AuthLine, Origin, Ret, MODULE};

/// How a failure of the module ends in a successful stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The module's control maps the results to `ignore`; these are its
    /// `value=action` items (`authinfo_unavail=ignore`), empty for a keyword.
    Ignored(Vec<String>),
    /// The module's control maps the results to a jump of N lines.
    Jump(u32),
    /// A later line's `reset` forgets the recorded failure and a line after
    /// it succeeds.
    Reset {
        /// The resetting line.
        at: Origin,
        /// Its module.
        module: String,
        /// Its control.
        control: String,
    },
    /// Another way (not expected with Linux-PAM's rules).
    Other,
}

/// What is wrong with the placement of `pam_twostep.so`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not in the `auth` stack at all.
    Absent,
    /// Marked `optional`: a failed second factor is ignored.
    Optional(Origin),
    /// Failure results of the module still end in an authenticated login
    /// (e.g. `sufficient`, `authinfo_unavail=ignore`, `[default=ignore]`
    /// without a following `pam_deny.so`).
    FailureIgnored {
        /// The module's line.
        at: Origin,
        /// Its control.
        control: String,
        /// The failure results that authenticate, in
        /// [`TWOSTEP_RESULTS`](super::TWOSTEP_RESULTS) order.
        results: Vec<Ret>,
        /// How they get through.
        via: Via,
    },
    /// A `sufficient` line (or `done` action) before the module ends the
    /// stack successfully before it runs.
    AfterSufficient {
        /// The line that returns early.
        at: Origin,
        /// Its module.
        module: String,
        /// Its control.
        control: String,
    },
    /// A jump skips the module on success.
    JumpSkips {
        /// The jumping line.
        at: Origin,
        /// Its module.
        module: String,
        /// Its control.
        control: String,
        /// The module's line.
        module_at: Origin,
    },
    /// The module only runs after `pam_deny.so` has failed the stack: the
    /// stack never succeeds, so nobody can log in.
    AfterDeny {
        /// The `pam_deny.so` line.
        at: Origin,
    },
    /// No combination of results authenticates anybody.
    NeverSucceeds,
    /// Some other path authenticates without the module.
    Bypass {
        /// A description of the results that lead there.
        path: String,
    },
    /// A `stash_code` line with no `verify_stashed` line after it: the
    /// code is never checked.
    StashNotVerified {
        /// The stash_code line.
        at: Origin,
    },
    /// A `verify_stashed` line with no `stash_code` line before it: it
    /// fails every login.
    NothingStashed {
        /// The verify_stashed line.
        at: Origin,
    },
    /// A module between `stash_code` and `verify_stashed` whose failure
    /// does not end the stack: a wrong password still reaches
    /// verify_stashed, which consumes the code.
    PasswordFailureGoesOn {
        /// The module's line.
        at: Origin,
        /// Its module.
        module: String,
        /// Its control.
        control: String,
        /// The verify_stashed line.
        verify_at: Origin,
    },
    /// Too many combinations to check.
    TooComplex,
}

impl Problem {
    /// One line for the admin: what is wrong, and the fix.
    pub fn describe(&self) -> (String, String) {
        match self {
            Problem::Absent => (
                format!("{MODULE} is not in the auth stack"),
                format!("run `pam-auth-update --enable twostep` (Debian common-auth) or add `auth required {MODULE}` after the password module"),
            ),
            Problem::Optional(at) => (
                format!("{MODULE} is marked optional at {at}: a wrong code is ignored"),
                format!("change `optional` to `required` at {at}"),
            ),
            Problem::FailureIgnored {
                at,
                control,
                results,
                via,
            } => describe_failure(at, control, results, via),
            Problem::AfterSufficient { at, module, control } => (
                format!("{MODULE} comes after `{control} {module}` at {at}: when that succeeds the stack returns before the second factor"),
                format!("put {MODULE} before {at}, or change `{control}` there to `required`"),
            ),
            Problem::JumpSkips { at, module, control, module_at } => (
                format!("the jump `{control}` of {module} at {at} skips {MODULE} at {module_at}"),
                format!("move {MODULE} after the jump target (after pam_permit.so in Debian's common-auth), or use `pam-auth-update --enable twostep`"),
            ),
            Problem::AfterDeny { at } => (
                format!("{MODULE} only runs after pam_deny.so at {at}: this stack never succeeds, nobody can log in"),
                format!("move {MODULE} after the password module's success path (after pam_permit.so), not after {at}"),
            ),
            Problem::NeverSucceeds => (
                "the auth stack never succeeds: nobody can log in".into(),
                "check the controls and jumps of the auth lines".into(),
            ),
            Problem::Bypass { path } => (
                format!("a login succeeds without {MODULE} when {path}"),
                format!("put `auth required {MODULE}` after the last module that can succeed"),
            ),
            Problem::StashNotVerified { at } => (
                format!("{MODULE} stash_code at {at} keeps the code, but no `{MODULE} verify_stashed` line follows: the code is never checked"),
                format!("add `auth required {MODULE} verify_stashed` after the password module that follows {at}"),
            ),
            Problem::NothingStashed { at } => (
                format!("{MODULE} verify_stashed at {at} has no `{MODULE} forward_pass stash_code` line before it: every login fails there"),
                format!("put `auth required {MODULE} forward_pass stash_code` before the password module, or remove verify_stashed at {at}"),
            ),
            Problem::PasswordFailureGoesOn { at, module, control, verify_at } => (
                format!("`{control} {module}` at {at} does not end the stack when it fails: a wrong password still reaches verify_stashed at {verify_at}, which uses up the code"),
                format!("make {at} `requisite` (or `[success=ok default=die]`)"),
            ),
            Problem::TooComplex => (
                "the auth stack has too many lines to analyse".into(),
                "check the placement of the module by hand".into(),
            ),
        }
    }
}

/// "a wrong code (PAM_AUTH_ERR), registry unreachable
/// (PAM_AUTHINFO_UNAVAIL) and 3 other failures".
fn list_results(results: &[Ret]) -> String {
    const SHOWN: usize = 3;
    let names: Vec<String> = results.iter().take(SHOWN).map(Ret::to_string).collect();
    let rest = results.len().saturating_sub(SHOWN);
    match (names.len(), rest) {
        (_, 0) if names.len() > 1 => {
            let (last, first) = names.split_last().expect("two or more");
            format!("{} and {last}", first.join(", "))
        }
        (_, 0) => names.concat(),
        (_, 1) => format!("{} and 1 other failure", names.join(", ")),
        (_, n) => format!("{} and {n} other failures", names.join(", ")),
    }
}

fn describe_failure(at: &Origin, control: &str, results: &[Ret], via: &Via) -> (String, String) {
    let list = list_results(results);
    let verb = if results.len() == 1 { "is" } else { "are" };
    let why = if results.contains(&Ret::AUTH_ERR) {
        "a wrong code does not fail the stack"
    } else if results.contains(&Ret("authinfo_unavail")) {
        "fail-open in disguise"
    } else {
        "the login still succeeds"
    };
    match via {
        Via::Ignored(items) if !items.is_empty() => (
            format!("{MODULE} at {at} has control `{control}`: {list} {verb} ignored: {why}"),
            format!(
                "at {at} change {} to `bad` (or use `required`)",
                items
                    .iter()
                    .map(|i| format!("`{i}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Via::Ignored(_) => (
            format!("{MODULE} at {at} has control `{control}`: {list} {verb} ignored: {why}"),
            format!("use `required` at {at}"),
        ),
        Via::Jump(n) => (
            format!("{MODULE} at {at} has control `{control}`: {list} {verb} a jump of {n} and the login still succeeds: {why}"),
            format!("at {at} map those results to `bad` (or use `required`)"),
        ),
        Via::Reset {
            at: reset_at,
            module,
            control: reset_control,
        } => (
            format!("`{reset_control} {module}` at {reset_at} resets the stack after {MODULE} at {at} failed: {list} {verb} forgotten and a later line logs the user in: {why}"),
            format!("remove the `reset` from `{reset_control}` at {reset_at}, or move {MODULE} after {reset_at}"),
        ),
        Via::Other => (
            format!("{MODULE} at {at} has control `{control}`: {list} still {} in: {why}", if results.len() == 1 { "logs" } else { "log" }),
            format!("use `required` at {at}"),
        ),
    }
}

/// The results of one path through the stack, for [`Problem::Bypass`]:
/// "pam_unix.so (common-auth:1) fails, pam_permit.so (common-auth:3) succeeds".
pub(super) fn describe_path(
    stack: &[AuthLine],
    classes: &[Vec<Class>],
    results: &[(usize, usize)],
) -> String {
    let parts: Vec<String> = results
        .iter()
        .map(|&(i, c)| {
            let r = match classes[i][c].members[0].category() {
                Category::Success => "succeeds",
                Category::Failure => "fails",
                Category::Ignore => "is ignored",
            };
            format!("{} ({}) {r}", stack[i].module_name(), stack[i].origin)
        })
        .collect();
    parts.join(", ")
}
