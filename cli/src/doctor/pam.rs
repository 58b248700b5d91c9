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

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

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

/// Depth limit for nested includes (Linux-PAM stops at a similar depth).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Paths explored before the analysis gives up on a very large stack.
const MAX_PATHS: usize = 200_000;

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

    fn category(self) -> Category {
        match self {
            Ret::SUCCESS => Category::Success,
            Ret::IGNORE => Category::Ignore,
            _ => Category::Failure,
        }
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

/// How a result moves the dispatcher, apart from the action: success,
/// `PAM_IGNORE` (never counts), anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Category {
    Success,
    Ignore,
    Failure,
}

/// The results of one line that the dispatcher treats alike (same action,
/// same category): one of them stands for all in the search.
#[derive(Debug, Clone)]
struct Class {
    action: Action,
    members: Vec<Ret>,
}

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

impl Control {
    /// The action taken for `ret`, as Linux-PAM sets it up
    /// (`_pam_parse_conf_file`): the four keywords are bracket controls
    /// with `new_authtok_reqd` like `success`; in brackets the last
    /// `value=` of a result wins, then the first `default=`, then `bad`.
    pub fn action(&self, ret: Ret) -> Action {
        let r = ret.key();
        let like_success = r == "success" || r == "new_authtok_reqd";
        match self {
            Control::Required if like_success => Action::Ok,
            Control::Requisite if like_success => Action::Ok,
            Control::Optional if like_success => Action::Ok,
            Control::Sufficient if like_success => Action::Done,
            Control::Required | Control::Requisite if r == "ignore" => Action::Ignore,
            Control::Required => Action::Bad,
            Control::Requisite => Action::Die,
            Control::Optional | Control::Sufficient => Action::Ignore,
            Control::Brackets(pairs) => {
                let find = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, a)| *a);
                pairs
                    .iter()
                    .rev()
                    .find(|(key, _)| key == r)
                    .map(|(_, a)| *a)
                    .or_else(|| find("default"))
                    .unwrap_or(Action::Bad)
            }
        }
    }

    /// The `value=action` item that decides `ret` (`default=ignore`), for
    /// bracket controls.
    fn item_for(&self, ret: Ret) -> Option<String> {
        let Control::Brackets(pairs) = self else {
            return None;
        };
        let r = ret.key();
        let key = if pairs.iter().any(|(k, _)| k == r) {
            r
        } else if pairs.iter().any(|(k, _)| k == "default") {
            "default"
        } else {
            return None;
        };
        Some(format!("{key}={}", action_word(self.action(ret))))
    }
}

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

    /// The results this line's module can return: pam_permit.so always
    /// succeeds, pam_deny.so always fails, the module returns
    /// [`TWOSTEP_RESULTS`], any other module any result.
    fn results(&self) -> Vec<Ret> {
        match self.module_name() {
            "pam_permit.so" => vec![Ret::SUCCESS],
            "pam_deny.so" => vec![Ret::AUTH_ERR],
            _ if self.is_twostep() => TWOSTEP_RESULTS.iter().map(|(r, _)| *r).collect(),
            _ => RETURN_NAMES
                .iter()
                .filter(|n| **n != "default")
                .map(|n| Ret(n))
                .collect(),
        }
    }

    /// [`Self::results`] grouped by what the dispatcher does with them.
    /// The category matters to `ok`/`done` (only a success counts) and, for
    /// the module, to the report; elsewhere the action alone decides.
    fn classes(&self) -> Vec<Class> {
        let twostep = self.is_twostep();
        let mut out: Vec<(Option<Category>, Class)> = Vec::new();
        for r in self.results() {
            let action = self.control.action(r);
            let cat =
                (twostep || matches!(action, Action::Ok | Action::Done)).then(|| r.category());
            match out
                .iter_mut()
                .find(|(c, cl)| *c == cat && cl.action == action)
            {
                Some((_, cl)) => cl.members.push(r),
                None => out.push((
                    cat,
                    Class {
                        action,
                        members: vec![r],
                    },
                )),
            }
        }
        out.into_iter().map(|(_, c)| c).collect()
    }
}

/// Why a stack could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The service file itself does not exist.
    NoService(PathBuf),
    /// A file could not be read (included file missing, permissions).
    Read {
        /// The file.
        file: PathBuf,
        /// Where it was included from, if it was.
        from: Option<Origin>,
        /// What the OS said.
        message: String,
    },
    /// A line is not valid `pam.d` syntax.
    Syntax {
        /// Where.
        at: Origin,
        /// What is wrong.
        message: String,
    },
    /// Includes nest too deep (a loop).
    TooDeep(Origin),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NoService(p) => write!(f, "{} does not exist", p.display()),
            LoadError::Read {
                file,
                from: Some(o),
                message,
            } => write!(f, "{o}: cannot read included {}: {message}", file.display()),
            LoadError::Read {
                file,
                from: None,
                message,
            } => write!(f, "{}: {message}", file.display()),
            LoadError::Syntax { at, message } => write!(f, "{at}: {message}"),
            LoadError::TooDeep(o) => write!(f, "{o}: includes nest too deep (a loop?)"),
        }
    }
}

/// Reads files for [`load_auth_stack`]; `Ok(None)` when the file does not exist.
pub trait Files {
    /// The file's text.
    ///
    /// # Errors
    /// A message for a file that exists but cannot be read.
    fn read(&self, path: &Path) -> Result<Option<String>, String>;
}

/// The real file system.
pub struct Disk;

impl Files for Disk {
    fn read(&self, path: &Path) -> Result<Option<String>, String> {
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// In-memory files, for tests: name (relative to the pam.d dir) → text.
impl Files for HashMap<PathBuf, String> {
    fn read(&self, path: &Path) -> Result<Option<String>, String> {
        Ok(self.get(path).cloned())
    }
}

/// Reads `dir/service` and returns its `auth` lines with includes followed.
/// Included names are relative to `dir`; absolute names under `/etc/pam.d/`
/// are mapped into `dir` (so a copy of the directory can be checked).
///
/// # Errors
/// [`LoadError`] for a missing service file, an unreadable include, a syntax
/// error or an include loop.
pub fn load_auth_stack(
    files: &dyn Files,
    dir: &Path,
    service: &str,
) -> Result<Vec<AuthLine>, LoadError> {
    let path = dir.join(service);
    let mut out = Vec::new();
    match files.read(&path) {
        Ok(Some(text)) => load_text(files, dir, &path, &text, 0, &mut out)?,
        Ok(None) => return Err(LoadError::NoService(path)),
        Err(message) => {
            return Err(LoadError::Read {
                file: path,
                from: None,
                message,
            })
        }
    }
    Ok(out)
}

fn resolve(dir: &Path, name: &str) -> PathBuf {
    match name.strip_prefix("/etc/pam.d/") {
        Some(rest) => dir.join(rest),
        None if name.starts_with('/') => PathBuf::from(name),
        None => dir.join(name),
    }
}

/// Logical lines as Linux-PAM assembles them (`_pam_assemble_line`):
/// everything from `#` on is a comment and ends the line; a `\\` last on a
/// line (trailing blanks allowed) continues it on the next line that is
/// not blank or a comment. Each comes with its first line's number.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let content = raw.trim_start_matches([' ', '\t']);
        if content.is_empty() || content.starts_with('#') {
            // Blank and comment-only lines do not end a continued line.
            continue;
        }
        if cur.is_empty() {
            start = i + 1;
        }
        if let Some((before, _comment)) = content.split_once('#') {
            cur.push_str(before);
        } else if let Some(body) = content.trim_end_matches([' ', '\t']).strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
            continue;
        } else {
            cur.push_str(content);
        }
        if !cur.trim().is_empty() {
            out.push((start, cur.trim().to_owned()));
        }
        cur.clear();
    }
    if !cur.trim().is_empty() {
        out.push((start, cur.trim().to_owned()));
    }
    out
}

fn load_text(
    files: &dyn Files,
    dir: &Path,
    file: &Path,
    text: &str,
    depth: usize,
    out: &mut Vec<AuthLine>,
) -> Result<(), LoadError> {
    for (line, body) in logical_lines(text) {
        let at = Origin {
            file: file.to_owned(),
            line,
        };
        if let Some(rest) = body.strip_prefix("@include") {
            let name = rest.trim();
            if name.is_empty() {
                return Err(LoadError::Syntax {
                    at,
                    message: "@include without a file name".into(),
                });
            }
            include(files, dir, name, at, depth, out)?;
            continue;
        }
        // Linux-PAM compares the type and the control keywords case
        // insensitively; the `[...]` contents case sensitively.
        let (ty, rest) = split_word(&body);
        let ty = ty.strip_prefix('-').unwrap_or(ty);
        if !ty.eq_ignore_ascii_case("auth") {
            continue;
        }
        let (control, rest) = if rest.starts_with('[') {
            let end = rest.find(']').ok_or_else(|| LoadError::Syntax {
                at: at.clone(),
                message: "unterminated [...] control".into(),
            })?;
            (&rest[..=end], rest[end + 1..].trim_start())
        } else {
            split_word(rest)
        };
        let (module, rest) = split_word(rest);
        if module.is_empty() {
            return Err(LoadError::Syntax {
                at,
                message: "auth line without a module".into(),
            });
        }
        let keyword = control.to_ascii_lowercase();
        let control = match keyword.as_str() {
            "include" | "substack" => {
                include(files, dir, module, at, depth, out)?;
                continue;
            }
            "required" => Control::Required,
            "requisite" => Control::Requisite,
            "sufficient" => Control::Sufficient,
            "optional" => Control::Optional,
            c if c.starts_with('[') => {
                parse_brackets(control).map_err(|message| LoadError::Syntax {
                    at: at.clone(),
                    message,
                })?
            }
            _ => {
                return Err(LoadError::Syntax {
                    at,
                    message: format!("unknown control {control:?}"),
                })
            }
        };
        out.push(AuthLine {
            origin: at,
            control,
            module: module.to_owned(),
            args: rest.split_whitespace().map(str::to_owned).collect(),
        });
    }
    Ok(())
}

fn include(
    files: &dyn Files,
    dir: &Path,
    name: &str,
    at: Origin,
    depth: usize,
    out: &mut Vec<AuthLine>,
) -> Result<(), LoadError> {
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(LoadError::TooDeep(at));
    }
    let path = resolve(dir, name);
    match files.read(&path) {
        Ok(Some(text)) => load_text(files, dir, &path, &text, depth + 1, out),
        Ok(None) => Err(LoadError::Read {
            file: path,
            from: Some(at),
            message: "no such file".into(),
        }),
        Err(message) => Err(LoadError::Read {
            file: path,
            from: Some(at),
            message,
        }),
    }
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

fn parse_brackets(c: &str) -> Result<Control, String> {
    let inner = &c[1..c.len() - 1];
    // Linux-PAM allows blanks around `=`: `[success = ok]`.
    let mut joined = String::with_capacity(inner.len());
    for part in inner.split('=') {
        if !joined.is_empty() {
            joined.push('=');
        }
        joined.push_str(if joined.is_empty() {
            part.trim_end()
        } else {
            part.trim()
        });
    }
    let mut pairs = Vec::new();
    for item in joined.split_whitespace() {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("control item {item:?} is not value=action"))?;
        if !RETURN_NAMES.contains(&k) {
            return Err(format!(
                "control value {k:?} is not a PAM result name (Linux-PAM then treats every result of the line as bad)"
            ));
        }
        let a = match v {
            "ignore" => Action::Ignore,
            "ok" => Action::Ok,
            "bad" => Action::Bad,
            "die" => Action::Die,
            "done" => Action::Done,
            "reset" => Action::Reset,
            n => Action::Jump(
                n.parse()
                    .map_err(|_| format!("control action {v:?} is not an action or a number"))?,
            ),
        };
        pairs.push((k.to_owned(), a));
    }
    Ok(Control::Brackets(pairs))
}

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
        /// The failure results that authenticate, in [`TWOSTEP_RESULTS`]
        /// order.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impression {
    Undef,
    Positive,
    Negative,
}

#[derive(Debug, Clone)]
struct State {
    impression: Impression,
    status_ok: bool,
    twostep_ran: bool,
    /// The first failure of the module on this path: line and class.
    twostep_failed: Option<(usize, usize)>,
    /// The first line that reset the stack after that failure.
    reset_after_failure: Option<usize>,
    ended_by: Option<usize>,
    skipped_by: Option<(usize, usize)>,
    /// Line and class of each result on this path.
    results: Vec<(usize, usize)>,
}

#[derive(Debug, Clone)]
struct PathEnd {
    success: bool,
    twostep_ran: bool,
    twostep_failed: Option<(usize, usize)>,
    reset_after_failure: Option<usize>,
    ended_by: Option<usize>,
    skipped_by: Option<(usize, usize)>,
    results: Vec<(usize, usize)>,
}

/// Follows Linux-PAM's `_pam_dispatch_aux` from line `i` for every class of
/// results of every line; `false` when [`MAX_PATHS`] was reached.
fn explore(
    stack: &[AuthLine],
    classes: &[Vec<Class>],
    i: usize,
    st: State,
    out: &mut Vec<PathEnd>,
) -> bool {
    if out.len() >= MAX_PATHS {
        return false;
    }
    if i >= stack.len() {
        out.push(finish(st));
        return true;
    }
    let line = &stack[i];
    for (c, class) in classes[i].iter().enumerate() {
        let ret = class.members[0];
        let mut s = st.clone();
        s.results.push((i, c));
        if line.is_twostep() {
            s.twostep_ran = true;
            if ret.category() == Category::Failure && s.twostep_failed.is_none() {
                s.twostep_failed = Some((i, c));
            }
        }
        let mut next = i + 1;
        let mut stop = false;
        match class.action {
            Action::Ignore => {}
            Action::Reset => {
                s.impression = Impression::Undef;
                s.status_ok = false;
                if s.twostep_failed.is_some_and(|(t, _)| t != i) {
                    s.reset_after_failure.get_or_insert(i);
                }
            }
            a @ (Action::Ok | Action::Done) => {
                if (s.impression == Impression::Undef
                    || (s.impression == Impression::Positive && s.status_ok))
                    && ret != Ret::IGNORE
                {
                    s.impression = Impression::Positive;
                    s.status_ok = ret == Ret::SUCCESS;
                }
                if a == Action::Done && s.impression != Impression::Negative {
                    s.ended_by = Some(i);
                    stop = true;
                }
            }
            a @ (Action::Bad | Action::Die) => {
                if s.impression != Impression::Negative {
                    s.impression = Impression::Negative;
                    s.status_ok = false;
                }
                if a == Action::Die {
                    s.ended_by = Some(i);
                    stop = true;
                }
            }
            Action::Jump(n) => {
                next = i + 1 + n as usize;
                if s.skipped_by.is_none() {
                    if let Some(t) = stack
                        .iter()
                        .enumerate()
                        .take(next.min(stack.len()))
                        .skip(i + 1)
                        .find(|(_, l)| l.is_twostep())
                    {
                        s.skipped_by = Some((i, t.0));
                    }
                }
            }
        }
        let cont = if stop {
            out.push(finish(s));
            true
        } else {
            explore(stack, classes, next, s, out)
        };
        if !cont {
            return false;
        }
    }
    true
}

fn finish(s: State) -> PathEnd {
    PathEnd {
        success: s.impression == Impression::Positive && s.status_ok,
        twostep_ran: s.twostep_ran,
        twostep_failed: s.twostep_failed,
        reset_after_failure: s.reset_after_failure,
        ended_by: s.ended_by,
        skipped_by: s.skipped_by,
        results: s.results,
    }
}

fn describe_path(stack: &[AuthLine], classes: &[Vec<Class>], results: &[(usize, usize)]) -> String {
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

/// Every problem with the placement of `pam_twostep.so` in `stack`; empty
/// when every successful path ran the module and no failure of it is
/// ignored.
pub fn analyse(stack: &[AuthLine]) -> Vec<Problem> {
    let Some(first) = stack.iter().position(AuthLine::is_twostep) else {
        return vec![Problem::Absent];
    };
    let mut problems = Vec::new();
    for l in stack.iter().filter(|l| l.is_twostep()) {
        if l.control == Control::Optional {
            problems.push(Problem::Optional(l.origin.clone()));
        }
    }
    let classes: Vec<Vec<Class>> = stack.iter().map(AuthLine::classes).collect();
    let mut paths = Vec::new();
    let start = State {
        impression: Impression::Undef,
        status_ok: false,
        twostep_ran: false,
        twostep_failed: None,
        reset_after_failure: None,
        ended_by: None,
        skipped_by: None,
        results: Vec::new(),
    };
    if !explore(stack, &classes, 0, start, &mut paths) {
        problems.push(Problem::TooComplex);
        return problems;
    }
    if !paths.iter().any(|p| p.success) {
        let deny = stack[..first]
            .iter()
            .rev()
            .find(|l| l.module_name() == "pam_deny.so");
        problems.push(match deny {
            Some(d) => Problem::AfterDeny {
                at: d.origin.clone(),
            },
            None => Problem::NeverSucceeds,
        });
        return problems;
    }
    // A success without the module having run.
    if let Some(p) = paths.iter().find(|p| p.success && !p.twostep_ran) {
        let problem = if let Some((j, t)) = p.skipped_by {
            Problem::JumpSkips {
                at: stack[j].origin.clone(),
                module: stack[j].module_name().to_owned(),
                control: stack[j].control.to_string(),
                module_at: stack[t].origin.clone(),
            }
        } else if let Some(k) = p.ended_by.filter(|&k| k < first) {
            Problem::AfterSufficient {
                at: stack[k].origin.clone(),
                module: stack[k].module_name().to_owned(),
                control: stack[k].control.to_string(),
            }
        } else {
            Problem::Bypass {
                path: describe_path(stack, &classes, &p.results),
            }
        };
        problems.push(problem);
    }
    // Failures of the module that still authenticate: per module line and
    // way through, every failure result concerned.
    let mut failures: Vec<(usize, Via, Vec<Ret>)> = Vec::new();
    for p in paths.iter().filter(|p| p.success) {
        let Some((i, c)) = p.twostep_failed else {
            continue;
        };
        let line = &stack[i];
        if line.control == Control::Optional {
            continue; // reported as Problem::Optional
        }
        let class = &classes[i][c];
        let via = match class.action {
            Action::Ignore => Via::Ignored(
                class
                    .members
                    .iter()
                    .filter_map(|r| line.control.item_for(*r))
                    .fold(Vec::new(), |mut v, item| {
                        if !v.contains(&item) {
                            v.push(item);
                        }
                        v
                    }),
            ),
            Action::Jump(n) => Via::Jump(n),
            _ => match p.reset_after_failure {
                Some(k) => Via::Reset {
                    at: stack[k].origin.clone(),
                    module: stack[k].module_name().to_owned(),
                    control: stack[k].control.to_string(),
                },
                None => Via::Other,
            },
        };
        match failures.iter_mut().find(|(j, v, _)| *j == i && *v == via) {
            Some((_, _, rs)) => rs.extend(class.members.iter().copied()),
            None => failures.push((i, via, class.members.clone())),
        }
    }
    failures.sort_by_key(|(i, _, _)| *i);
    for (i, via, mut results) in failures {
        let rank = |r: &Ret| TWOSTEP_RESULTS.iter().position(|(t, _)| t == r);
        results.sort_by_key(rank);
        results.dedup();
        problems.push(Problem::FailureIgnored {
            at: stack[i].origin.clone(),
            control: stack[i].control.to_string(),
            results,
            via,
        });
    }
    problems
}

#[cfg(test)]
mod tests;
