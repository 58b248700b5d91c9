//! `twostep`: the admin command line of the twostep registry.
//!
//! Each subcommand is a clap `Args` type implementing [`Run`]; the command
//! list is one [`commands!`] invocation, so a new subcommand is one line
//! there (`Name(module::ArgsType),`) plus its `impl Run`.

mod admin;
mod authenticator;
mod doctor;
mod output;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Examples:
  twostep user add alice --display-name 'Alice Smith'
  twostep user invite alice            # one-time link to the Security info page (24 h)
  twostep user passwd alice            # set alice's Security info page password
  twostep enrol alice                  # prints the otpauth URI, the key and a QR code
  twostep enrol alice --push           # a one-time device activation URI and QR code
  twostep enrol alice --sms +15550100042   # codes by text message (--call: by phone call)
  twostep method disable 7             # a lost device: no more pushes, open ones cancelled
  twostep host add web1 --kind ssh --key-file /etc/twostep/host.key
  twostep host add vpn1 --kind radius
  twostep user unlock alice
  twostep user reset alice             # delete all methods (a user who changed phone)
  twostep user reset alice --tap       # ... and a temporary access code to add the new phone
  twostep user tap alice --hours 8     # a temporary access code (shown once); --revoke ends it
  twostep audit --limit 20
  twostep audit --follow --json        # new events as they happen, one JSON object a line
  twostep doctor                       # check config, key files, registry, PAM stacks, sshd

The registry is reached at [registry].url, or at [api].listen when the file
configures the registry itself. The admin token comes from --admin-token-file,
[registry].admin_token_file or [api].admin_token_file.";

/// twostep admin command line: users, enrolment, hosts, audit, doctor.
#[derive(Parser)]
#[command(name = "twostep", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, value_name = "FILE", default_value = twostep_config::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// File holding the admin token (overrides the config).
    #[arg(long, global = true, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// The options every subcommand sees.
pub struct Global {
    /// `--config`.
    pub config: PathBuf,
    /// `--admin-token-file`.
    pub admin_token_file: Option<PathBuf>,
}

/// A subcommand: runs and gives the exit status.
pub trait Run {
    /// Runs the subcommand.
    ///
    /// # Errors
    /// Any failure; printed as one `twostep: ...` line, exit status 1.
    fn run(self, global: &Global) -> anyhow::Result<ExitCode>;
}

/// Declares the subcommand enum and its dispatch to [`Run::run`].
macro_rules! commands {
    ($( $(#[$meta:meta])* $name:ident($args:ty), )*) => {
        #[derive(Subcommand)]
        enum Command {
            $( $(#[$meta])* $name($args), )*
        }

        impl Command {
            fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
                match self {
                    $( Command::$name(a) => Run::run(a, global), )*
                }
            }
        }
    };
}

commands! {
    /// Manage users: add, list, show, passwd, invite, disable, enable, delete, unlock, reset, tap.
    #[command(subcommand)]
    User(admin::UserCmd),
    /// Enrol a TOTP authenticator app for a user (shows the secret once), or with --push a push device.
    Enrol(admin::EnrolArgs),
    /// Manage verification methods: delete, disable, enable.
    #[command(subcommand)]
    Method(admin::MethodCmd),
    /// Manage hosts (SSH servers, RADIUS servers) and their API keys.
    #[command(subcommand)]
    Host(admin::HostCmd),
    /// Show the newest audit events (--json: NDJSON; --follow: then the new ones as they come).
    Audit(admin::AuditArgs),
    /// Check the configuration, key files, registry, PAM stacks, sshd and RADIUS clients.
    Doctor(doctor::DoctorArgs),
    /// Reference authenticator: TOTP codes and push sign-in requests (approve, deny, report fraud).
    Authenticator(authenticator::AuthenticatorArgs),
}

fn main() -> ExitCode {
    // Hidden: `twostep generate-man DIR`, `twostep generate-completions DIR`.
    twostep_docgen::handle_hidden(<Cli as clap::CommandFactory>::command);
    let cli = Cli::parse();
    let global = Global {
        config: cli.config,
        admin_token_file: cli.admin_token_file,
    };
    match cli.command.run(&global) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("twostep: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
