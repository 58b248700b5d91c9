//! Findings and how they are printed.

use std::fmt;
use std::process::ExitCode;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// Works, but weaker or riskier than it should be.
    Warn,
    /// Broken or insecure: `twostep doctor` exits non-zero.
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        })
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How it came out.
    pub status: Status,
    /// Which area: `config`, `files`, `registry`, `pam sshd`, `sshd`, `radius`.
    pub check: String,
    /// What was found.
    pub message: String,
    /// What to do about it (non-ok findings).
    pub fix: Option<String>,
}

impl Finding {
    /// A passed check.
    pub fn ok(check: &str, message: impl Into<String>) -> Self {
        Self {
            status: Status::Ok,
            check: check.to_owned(),
            message: message.into(),
            fix: None,
        }
    }

    /// A finding with its fix.
    pub fn new(
        status: Status,
        check: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            status,
            check: check.to_owned(),
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Finding {
    /// One line: `STATUS check: message; fix: ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<4} {}: {}", self.status, self.check, self.message)?;
        match (&self.fix, self.status) {
            (Some(fix), Status::Warn | Status::Fail) => write!(f, " -- fix: {fix}"),
            _ => Ok(()),
        }
    }
}

/// Prints one line per finding and a summary; the exit status is 1 when a
/// check failed, success otherwise (warnings allowed).
pub fn print(findings: &[Finding]) -> ExitCode {
    for f in findings {
        twostep_common::outln!("{f}");
    }
    let fails = findings.iter().filter(|f| f.status == Status::Fail).count();
    let warns = findings.iter().filter(|f| f.status == Status::Warn).count();
    if fails == 0 && warns == 0 {
        twostep_common::outln!("all {} checks passed", findings.len());
    } else {
        twostep_common::outln!(
            "{fails} failed, {warns} warnings, {} checks",
            findings.len()
        );
    }
    if fails > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_with_fix() {
        let f = Finding::new(Status::Fail, "sshd", "UsePAM is no", "set `UsePAM yes`");
        assert_eq!(
            f.to_string(),
            "FAIL sshd: UsePAM is no -- fix: set `UsePAM yes`"
        );
        assert_eq!(
            Finding::ok("config", "parses").to_string(),
            "ok   config: parses"
        );
    }
}
