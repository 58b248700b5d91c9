//! Checks on sshd's effective configuration, as printed by `sshd -T`.
//!
//! `sshd -T` prints one `keyword value` line per setting, keywords in lower
//! case, times in seconds. The second factor is asked for by PAM during
//! keyboard-interactive authentication, so sshd must use PAM
//! (`usepam yes`), offer keyboard-interactive
//! (`kbdinteractiveauthentication yes`), and every accepted method list
//! (`authenticationmethods`) must include it; `logingracetime` must leave
//! the module time to finish.
//!
//! `sshd -T` without `-C` applies no `Match` block, so [`match_blocks`]
//! reads them from the configuration files (following `Include`) and
//! [`analyse_match_blocks`] checks each block's values over the global ones.
//!
//! [`effective`] judges the global settings, [`match_block`] the `Match`
//! blocks; [`check_sshd`] runs `sshd -T` and gathers both.

pub mod effective;
pub mod match_block;

pub use effective::{analyse, SshdSettings};
pub use match_block::{analyse_match_blocks, match_blocks, SSH_DIR};

use super::report::{Finding, Status};
use super::DoctorArgs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `sshd -T` may take.
const SSHD_TIMEOUT: Duration = Duration::from_secs(10);

/// Findings for sshd: its effective settings from `sshd -T` (`-f` with
/// `--sshd-config`) against `deadline`, the module's deadline in seconds,
/// and every `Match` block of its files.
pub fn check_sshd(args: &DoctorArgs, deadline: u64) -> Vec<Finding> {
    let check = "sshd";
    if !args.sshd.exists() {
        return vec![Finding::ok(
            check,
            format!("{} is not installed; skipped", args.sshd.display()),
        )];
    }
    let mut cmd = Command::new(&args.sshd);
    cmd.arg("-T");
    if let Some(f) = &args.sshd_config {
        cmd.arg("-f").arg(f);
    }
    let with_file = args
        .sshd_config
        .as_ref()
        .map(|f| format!(" -f {}", f.display()))
        .unwrap_or_default();
    let sshd_cmd = format!("{}{with_file}", args.sshd.display());
    let shown = format!("{} -T{with_file}", args.sshd.display());
    let mut global = SshdSettings::default();
    let mut out = match run_bounded(&mut cmd, SSHD_TIMEOUT) {
        Ok((true, stdout, _)) => {
            global = SshdSettings::parse(&stdout);
            analyse(&global, deadline)
        }
        Ok((false, _, stderr)) => {
            let first = stderr.lines().next().unwrap_or("no message");
            let fix = if first.contains("privilege separation directory") {
                "create it: `install -d -m 0755 /run/sshd` (ssh.service does this when it starts)"
            } else {
                "correct the sshd configuration (`sshd -t` shows the error)"
            };
            vec![Finding::new(
                Status::Fail,
                check,
                format!("`{shown}` failed: {first}"),
                fix,
            )]
        }
        Err(e) => vec![Finding::new(
            Status::Fail,
            check,
            format!("`{shown}`: {e}"),
            "run doctor as root, or pass --no-sshd",
        )],
    };
    // `sshd -T` without -C applies no Match block: read them from the files.
    let file = args
        .sshd_config
        .clone()
        .unwrap_or_else(|| Path::new(SSH_DIR).join("sshd_config"));
    match match_blocks(&file, Path::new(SSH_DIR)) {
        Ok(blocks) => out.extend(analyse_match_blocks(&global, &blocks, &sshd_cmd)),
        Err(e) => out.push(Finding::new(
            Status::Warn,
            check,
            format!("cannot read the Match blocks: {e}"),
            "run doctor as root",
        )),
    }
    out
}

/// Runs `cmd`, killing it after `limit`; (exit success, stdout, stderr).
fn run_bounded(cmd: &mut Command, limit: Duration) -> std::io::Result<(bool, String, String)> {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", limit.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    Ok((status.success(), out, err))
}
