//! `twostep doctor`: reads the configuration and the system and reports,
//! one line per check, what is wrong and how to fix it.
//!
//! One file per subject: the config file (`FILE:LINE:COL` errors, here);
//! owner and mode of every `*_file` key ([`files`], the daemons' own
//! secret-file rule); the registry's health and whether it accepts this
//! host's API key ([`registry`]); where `pam_twostep.so` sits in the `auth`
//! stacks of `/etc/pam.d/sshd` and `/etc/pam.d/sudo` ([`pam`]); settings
//! that weaken the second factor and `[pam]` require and exempt groups and
//! networks against this host ([`policy`]); sshd's effective configuration
//! from `sshd -T`, and the `Match` blocks of its files, which `sshd -T`
//! alone never applies ([`sshd`]); the RADIUS warnings `twostep-radiusd`
//! logs at startup ([`radius`]). [`report`] prints the findings.
//!
//! Exit status: 0 when no check failed (warnings allowed), 1 otherwise.
//! The analysis is pure ([`pam::analyse`], [`sshd::analyse`]); the
//! `check_*` functions do the reading and the network calls.

pub mod files;
pub mod pam;
pub mod policy;
pub mod radius;
pub mod registry;
pub mod report;
pub mod sshd;

use report::{Finding, Status};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use twostep_config::{Config, ConfigError};

/// Options of `twostep doctor`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  twostep doctor                       # /etc/twostep/twostep.toml, /etc/pam.d, sshd -T
  twostep doctor --config /etc/twostep/radiusd.toml --no-pam --no-sshd
  twostep doctor --sshd-config /etc/ssh/sshd_config.new   # before reloading sshd
  twostep doctor --pam-dir /root/pam.d.test --pam-service login

One line per check: ok, warn or FAIL, with the fix. Exit status 0 when no
check failed (warnings allowed), 1 otherwise.")]
pub struct DoctorArgs {
    /// PAM configuration directory to check.
    #[arg(long, value_name = "DIR", default_value = "/etc/pam.d")]
    pub pam_dir: PathBuf,
    /// PAM services whose auth stack must run the module (repeatable).
    #[arg(long = "pam-service", value_name = "NAME", default_values_t = ["sshd".to_owned(), "sudo".to_owned()])]
    pub pam_services: Vec<String>,
    /// Directory PAM loads modules named without a path from (holding
    /// pam_twostep.so, or libpam_twostep.so as cargo builds it) [default:
    /// the multiarch PAM module dir].
    #[arg(long, value_name = "DIR")]
    pub pam_module_dir: Option<PathBuf>,
    /// The sshd binary, run as `sshd -T` to read its effective settings.
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/sshd")]
    pub sshd: PathBuf,
    /// sshd configuration file to check (`sshd -T -f FILE`; its Match blocks
    /// and Includes are read too) [default: /etc/ssh/sshd_config].
    #[arg(long, value_name = "FILE")]
    pub sshd_config: Option<PathBuf>,
    /// Skip the sshd checks (a RADIUS-only or registry-only machine).
    #[arg(long)]
    pub no_sshd: bool,
    /// Skip the PAM checks.
    #[arg(long)]
    pub no_pam: bool,
}

impl crate::Run for DoctorArgs {
    fn run(self, global: &crate::Global) -> anyhow::Result<ExitCode> {
        Ok(run(&global.config, &self))
    }
}

/// Runs every check, prints one line per finding and a summary, and returns
/// the exit status (1 when a check failed).
pub fn run(config_path: &Path, args: &DoctorArgs) -> ExitCode {
    report::print(&collect(config_path, args))
}

/// Every finding, in the order printed.
pub fn collect(config_path: &Path, args: &DoctorArgs) -> Vec<Finding> {
    let mut out = Vec::new();
    let config = match Config::load(config_path) {
        Ok(c) => {
            out.push(Finding::ok(
                "config",
                format!("{} is valid", config_path.display()),
            ));
            Some(c)
        }
        Err(e) => {
            let fix = match &e {
                ConfigError::Io { .. } => format!(
                    "create {} (example: /usr/share/doc/twostep/examples/twostep.toml, packaging/twostep.toml in the source) or pass --config FILE",
                    config_path.display()
                ),
                ConfigError::Unsafe { .. } => "run the chown/chmod named above: every twostep component refuses a configuration others can change".into(),
                _ => "correct the line and column named; /usr/share/doc/twostep/examples/twostep.toml (packaging/twostep.toml in the source) documents every key".into(),
            };
            out.push(Finding::new(Status::Fail, "config", e.to_string(), fix));
            None
        }
    };
    if let Some(c) = &config {
        out.extend(policy::check_policy(c));
        out.extend(policy::check_exemptions(
            &c.pam,
            &policy::SystemGroups::load(),
        ));
        out.extend(files::check_files(c));
        out.extend(registry::check_registry(c));
        out.extend(radius::check_radius(c));
    }
    if !args.no_pam {
        out.extend(pam::check_pam(config_path, args));
    }
    if !args.no_sshd {
        let pam = config.as_ref().map(|c| c.pam.clone()).unwrap_or_default();
        let connect = config
            .as_ref()
            .and_then(|c| c.registry.as_ref())
            .map_or(2, |r| r.connect_timeout);
        out.extend(sshd::check_sshd(args, pam.total_timeout + connect));
    }
    out
}
