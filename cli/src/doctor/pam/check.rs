//! The findings for the PAM stacks: each service's `auth` stack loaded,
//! analysed and described, and the module file each stack names.

use super::{analyse, load_auth_stack, Disk, LoadError, Problem, MODULE, MODULE_NAMES};
use crate::doctor::report::{Finding, Status};
use crate::doctor::DoctorArgs;
use std::path::{Path, PathBuf};

/// Where `pam_twostep.so` is looked for when the stack names it without a path.
fn default_module_dirs() -> Vec<PathBuf> {
    // Debian's multiarch tuple for the common 64-bit targets.
    let multiarch = format!("/usr/lib/{}-linux-gnu/security", std::env::consts::ARCH);
    vec![
        PathBuf::from(multiarch),
        PathBuf::from("/lib/security"),
        PathBuf::from("/usr/lib/security"),
    ]
}

/// Findings for every service of `args.pam_services`: where the module
/// runs, every problem of its placement, a `config=` argument naming
/// another file than `config_path`, and whether each module file named is
/// installed.
pub fn check_pam(config_path: &Path, args: &DoctorArgs) -> Vec<Finding> {
    let mut out = Vec::new();
    // Every distinct module path named, checked once each below.
    let mut wants_modules: Vec<String> = Vec::new();
    for service in &args.pam_services {
        let check = format!("pam {service}");
        match load_auth_stack(&Disk, &args.pam_dir, service) {
            Err(LoadError::NoService(p)) => out.push(Finding::ok(
                &check,
                format!("{} does not exist; skipped", p.display()),
            )),
            Err(e) => out.push(Finding::new(
                Status::Fail,
                &check,
                e.to_string(),
                "correct the PAM file; a broken file locks everybody out of this service",
            )),
            Ok(stack) => {
                for l in stack.iter().filter(|l| l.is_twostep()) {
                    if !wants_modules.contains(&l.module) {
                        wants_modules.push(l.module.clone());
                    }
                }
                // The module reads config=PATH when given: say so when that
                // is not the file checked here.
                for l in stack.iter().filter(|l| l.is_twostep()) {
                    let other = l
                        .args
                        .iter()
                        .filter_map(|a| a.strip_prefix("config="))
                        .find(|p| !same_file(Path::new(p), config_path));
                    if let Some(p) = other {
                        out.push(Finding::new(
                            Status::Warn,
                            &check,
                            format!(
                                "{} at {} reads config={p}, not {}",
                                MODULE,
                                l.origin,
                                config_path.display()
                            ),
                            format!("check that file too: twostep doctor --config {p}"),
                        ));
                    }
                }
                let problems = analyse(&stack);
                if problems.is_empty() {
                    // The line that checks the code (verify_stashed after
                    // a stash_code line).
                    let at = stack
                        .iter()
                        .find(|l| l.is_twostep() && !l.stashes())
                        .map(|l| l.origin.to_string())
                        .unwrap_or_default();
                    out.push(Finding::ok(
                        &check,
                        format!("{} runs at {at} on every successful login", MODULE),
                    ));
                }
                for p in problems {
                    let (mut what, fix) = p.describe();
                    if p == Problem::Absent {
                        what = format!(
                            "{what} of {} (includes followed)",
                            args.pam_dir.join(service).display()
                        );
                    }
                    let status = if matches!(
                        p,
                        Problem::TooComplex | Problem::PasswordFailureGoesOn { .. }
                    ) {
                        Status::Warn
                    } else {
                        Status::Fail
                    };
                    out.push(Finding::new(status, &check, what, fix));
                }
            }
        }
    }
    for module in wants_modules {
        out.push(check_module_file(args, &module));
    }
    out
}

/// Whether `a` and `b` name the same file (`.state/x.toml` and
/// `/work/.state/x.toml`); literal comparison when either does not exist.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn check_module_file(args: &DoctorArgs, module: &str) -> Finding {
    let check = "pam module";
    let candidates: Vec<PathBuf> = if module.starts_with('/') {
        vec![PathBuf::from(module)]
    } else if let Some(d) = &args.pam_module_dir {
        vec![d.join(module)]
    } else {
        default_module_dirs()
            .iter()
            .map(|d| d.join(module))
            .collect()
    };
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return Finding::ok(check, format!("{} is installed", p.display()));
    }
    // The same module under its other name (cargo builds libpam_twostep.so,
    // the package installs pam_twostep.so): there, but PAM will not load
    // it under the name the stack uses.
    let other = candidates.iter().find_map(|p| {
        let name = p.file_name()?.to_str()?;
        MODULE_NAMES
            .iter()
            .filter(|n| **n != name)
            .map(|n| p.with_file_name(n))
            .find(|q| q.is_file())
            .map(|q| (p, q))
    });
    if let Some((wanted, found)) = other {
        return Finding::new(
            Status::Warn,
            check,
            format!(
                "{} exists, but the PAM stack names {module}: PAM looks for {}",
                found.display(),
                wanted.display()
            ),
            format!(
                "install it under that name (`install -m 0644 {} {}`) or name {} in the stack",
                found.display(),
                wanted.display(),
                found.display()
            ),
        );
    }
    Finding::new(
        Status::Fail,
        check,
        format!(
            "{module} is named in the PAM stack but not installed ({}): PAM fails every login of that service",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "apt-get install libpam-twostep",
    )
}
