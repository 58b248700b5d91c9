//! Where `pam_twostep.so` sits in a PAM service's `auth` stack.
//!
//! [`load_auth_stack`] reads `/etc/pam.d/SERVICE` and follows `@include`,
//! `include` and `substack` lines into one flat list of `auth` lines.
//! [`analyse`] then runs Linux-PAM's dispatch rules (`_pam_dispatch_aux`:
//! impression, `ok`/`done`/`bad`/`die`/`ignore`/`reset`/jumps, the four
//! historical keywords as their bracket equivalents) over every combination
//! of module results — `PAM_SUCCESS`, `PAM_AUTH_ERR`, `PAM_IGNORE`, with
//! `pam_permit.so` always succeeding and `pam_deny.so` always failing — and
//! reports each way a user could end authenticated without a passed second
//! factor.
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

/// A module result the analysis distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// `PAM_SUCCESS`.
    Success,
    /// `PAM_AUTH_ERR` (any failure).
    AuthErr,
    /// `PAM_IGNORE`.
    Ignore,
}

impl Ret {
    fn key(self) -> &'static str {
        match self {
            Ret::Success => "success",
            Ret::AuthErr => "auth_err",
            Ret::Ignore => "ignore",
        }
    }
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
    /// The action taken for `ret`, per `pam.conf(5)`.
    pub fn action(&self, ret: Ret) -> Action {
        match (self, ret) {
            (Control::Required, Ret::Success) => Action::Ok,
            (Control::Required, Ret::Ignore) => Action::Ignore,
            (Control::Required, Ret::AuthErr) => Action::Bad,
            (Control::Requisite, Ret::Success) => Action::Ok,
            (Control::Requisite, Ret::Ignore) => Action::Ignore,
            (Control::Requisite, Ret::AuthErr) => Action::Die,
            (Control::Sufficient, Ret::Success) => Action::Done,
            (Control::Sufficient, _) => Action::Ignore,
            (Control::Optional, Ret::Success) => Action::Ok,
            (Control::Optional, _) => Action::Ignore,
            (Control::Brackets(pairs), ret) => {
                let find = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, a)| *a);
                // Unlisted values without a `default=` are `bad` in Linux-PAM.
                find(ret.key())
                    .or_else(|| find("default"))
                    .unwrap_or(Action::Bad)
            }
        }
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
                    let a = match a {
                        Action::Ignore => "ignore".to_owned(),
                        Action::Ok => "ok".to_owned(),
                        Action::Bad => "bad".to_owned(),
                        Action::Die => "die".to_owned(),
                        Action::Done => "done".to_owned(),
                        Action::Reset => "reset".to_owned(),
                        Action::Jump(n) => n.to_string(),
                    };
                    write!(f, "{k}={a}")?;
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

    fn outcomes(&self) -> &'static [Ret] {
        match self.module_name() {
            "pam_permit.so" => &[Ret::Success],
            "pam_deny.so" => &[Ret::AuthErr],
            _ => &[Ret::Success, Ret::AuthErr, Ret::Ignore],
        }
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

/// What is wrong with the placement of `pam_twostep.so`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not in the `auth` stack at all.
    Absent,
    /// Marked `optional`: a failed second factor is ignored.
    Optional(Origin),
    /// A failure of the module does not fail the stack (e.g. `sufficient`,
    /// `[default=ignore]` without a following `pam_deny.so`).
    FailureIgnored {
        /// The module's line.
        at: Origin,
        /// Its control.
        control: String,
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
            Problem::FailureIgnored { at, control } => (
                format!("{MODULE} at {at} has control `{control}`: a wrong code does not fail the stack"),
                format!("use `required` at {at} (or follow it with `auth requisite pam_deny.so`)"),
            ),
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
    twostep_failed: bool,
    ended_by: Option<usize>,
    skipped_by: Option<(usize, usize)>,
    results: Vec<(usize, Ret)>,
}

#[derive(Debug, Clone)]
struct PathEnd {
    success: bool,
    twostep_ran: bool,
    twostep_failed: bool,
    ended_by: Option<usize>,
    skipped_by: Option<(usize, usize)>,
    results: Vec<(usize, Ret)>,
}

fn explore(stack: &[AuthLine], i: usize, st: State, out: &mut Vec<PathEnd>) -> bool {
    if out.len() >= MAX_PATHS {
        return false;
    }
    if i >= stack.len() {
        out.push(finish(st));
        return true;
    }
    let line = &stack[i];
    for &ret in line.outcomes() {
        let mut s = st.clone();
        s.results.push((i, ret));
        if line.is_twostep() {
            s.twostep_ran = true;
            s.twostep_failed |= ret == Ret::AuthErr;
        }
        let mut next = i + 1;
        let mut stop = false;
        match line.control.action(ret) {
            Action::Ignore => {}
            Action::Reset => {
                s.impression = Impression::Undef;
                s.status_ok = false;
            }
            a @ (Action::Ok | Action::Done) => {
                if (s.impression == Impression::Undef
                    || (s.impression == Impression::Positive && s.status_ok))
                    && ret != Ret::Ignore
                {
                    s.impression = Impression::Positive;
                    s.status_ok = ret == Ret::Success;
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
            explore(stack, next, s, out)
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
        ended_by: s.ended_by,
        skipped_by: s.skipped_by,
        results: s.results,
    }
}

fn describe_path(stack: &[AuthLine], results: &[(usize, Ret)]) -> String {
    let parts: Vec<String> = results
        .iter()
        .map(|(i, r)| {
            let r = match r {
                Ret::Success => "succeeds",
                Ret::AuthErr => "fails",
                Ret::Ignore => "is ignored",
            };
            format!("{} ({}) {r}", stack[*i].module_name(), stack[*i].origin)
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
    let mut paths = Vec::new();
    let start = State {
        impression: Impression::Undef,
        status_ok: false,
        twostep_ran: false,
        twostep_failed: false,
        ended_by: None,
        skipped_by: None,
        results: Vec::new(),
    };
    if !explore(stack, 0, start, &mut paths) {
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
                path: describe_path(stack, &p.results),
            }
        };
        problems.push(problem);
    }
    // A failed second factor that still authenticates.
    if paths.iter().any(|p| p.success && p.twostep_failed) {
        let l = paths
            .iter()
            .find(|p| p.success && p.twostep_failed)
            .and_then(|p| {
                p.results
                    .iter()
                    .find(|(i, r)| stack[*i].is_twostep() && *r == Ret::AuthErr)
            })
            .map_or(&stack[first], |(i, _)| &stack[*i]);
        if l.control != Control::Optional {
            problems.push(Problem::FailureIgnored {
                at: l.origin.clone(),
                control: l.control.to_string(),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests;
