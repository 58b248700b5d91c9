//! `twostep authenticator`: the reference authenticator. It keeps TOTP
//! accounts (`otpauth://totp/` URIs, codes as any RFC 6238 app shows them)
//! and push devices (activated with a `twostep-activate://` URI; Ed25519
//! keys made here, the private half never sent) in one account file, and
//! answers sign-in requests interactively (`watch`) or from scripts
//! (`approve`, `deny`, `fraud`, `pending`).

mod device;
mod otpauth;
mod store;
mod watch;

use crate::output::text;
use crate::{Global, Run};
use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use device::{unix_now, Device};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use store::{Account, Accounts, Locked};
use twostep_common::api::ApiErrorCode;
use twostep_common::push::{parse_activation_uri, Decision, PushResult, ACTIVATION_SCHEME};

/// Exit status of `approve`, `deny`, `fraud` and `pending --wait` when no
/// sign-in request came within `--wait`.
pub const EXIT_NO_REQUEST: u8 = 3;

/// Exit status of `approve`, `deny` and `fraud` when the registry recorded
/// another result than the one asked for (`wrong_number`).
pub const EXIT_OTHER_RESULT: u8 = 4;

/// Exit status of `approve`, `deny` and `fraud` when the request is closed
/// already (answered, cancelled or expired): said at once for a
/// `--challenge ID` that is no longer pending, without waiting `--wait`.
pub const EXIT_CLOSED: u8 = 5;

const AFTER_HELP: &str = "\
Examples:
  twostep authenticator add 'otpauth://totp/twostep:alice?secret=...'
  twostep authenticator codes
  twostep authenticator add 'twostep-activate://activate?registry=...&code=...&user=alice'
  twostep authenticator watch                # answer sign-in requests as they come
  twostep authenticator approve --number 42  # scripts: answer the oldest request
  twostep authenticator deny --fraud

Accounts are kept in $XDG_CONFIG_HOME/twostep/authenticator.json (else
~/.config/twostep/authenticator.json), mode 0600; --accounts FILE uses
another file. It holds TOTP secrets and device private keys: no command
prints them.

Exit status of approve, deny and fraud:
  0  the registry recorded the answer as asked
  1  an error (the message says which; nothing was answered)
  3  no pending sign-in request (or not the --challenge ID) within --wait
  4  the registry recorded another result (wrong_number)
  5  the request is closed already (answered, cancelled or expired); for
     --challenge ID said at once, without waiting --wait
pending --wait exits with 3 when no request came.";

/// `twostep authenticator ...`.
#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct AuthenticatorArgs {
    /// Account file [default: $XDG_CONFIG_HOME/twostep/authenticator.json].
    #[arg(long, global = true, value_name = "FILE")]
    accounts: Option<PathBuf>,
    #[command(subcommand)]
    command: AuthenticatorCmd,
}

/// Which request to answer, and how long to wait for one.
#[derive(Args)]
struct AnswerTarget {
    /// Push account to answer with (required when there are several).
    #[arg(long, value_name = "NAME")]
    account: Option<String>,
    /// Seconds to wait for a pending sign-in request.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    wait: u64,
    /// Answer this request (ids: `pending`) instead of the oldest.
    #[arg(long, value_name = "ID")]
    challenge: Option<String>,
}

#[derive(Subcommand)]
enum AuthenticatorCmd {
    /// Add an account from an otpauth://totp/ URI (codes) or a
    /// twostep-activate:// URI (registers this machine as a push device).
    Add {
        /// The URI, as in the QR code (quote it for the shell).
        uri: String,
        /// Local name of the account [default: ISSUER:ACCOUNT, or USER@REGISTRY for a device].
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// Device name sent to the registry [default: this host's name].
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
        /// CA certificates to trust for the registry (a private CA), kept for later calls.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
    },
    /// List accounts: kind, issuer or registry, user, label.
    List,
    /// Show the current code of each TOTP account and the seconds it stays valid.
    Codes {
        /// Only this account.
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
    },
    /// Remove an account from the file (a push device stays registered
    /// until an admin deletes it).
    Remove {
        /// The account's name (see `list`).
        name: String,
    },
    /// Wait for sign-in requests and answer each: number, approve, deny or
    /// report as fraud (Ctrl-C stops).
    Watch {
        /// Only this push account [default: all].
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
    },
    /// Print pending sign-in requests, one line each.
    Pending {
        /// Push account to ask (required when there are several).
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// Seconds to wait for at least one request.
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        wait: u64,
        /// Print a JSON array of the requests instead.
        #[arg(long)]
        json: bool,
    },
    /// Approve the oldest pending sign-in request with the number shown at the login.
    Approve {
        /// The number shown at the login (needed under number matching).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=99))]
        number: Option<u8>,
        #[command(flatten)]
        target: AnswerTarget,
    },
    /// Deny the oldest pending sign-in request.
    Deny {
        /// Also report it as fraud (as `fraud` does).
        #[arg(long)]
        fraud: bool,
        #[command(flatten)]
        target: AnswerTarget,
    },
    /// Deny the oldest pending sign-in request and report it as fraud: new
    /// requests for the user are blocked until an admin clears them.
    Fraud {
        #[command(flatten)]
        target: AnswerTarget,
    },
}

impl Run for AuthenticatorArgs {
    fn run(self, _global: &Global) -> anyhow::Result<ExitCode> {
        let path = match self.accounts {
            Some(p) => p,
            None => store::default_path()?,
        };
        match self.command {
            AuthenticatorCmd::Add {
                uri,
                account,
                name,
                ca_file,
            } => add(&path, &uri, account, name, ca_file),
            AuthenticatorCmd::List => {
                twostep_common::out!("{}", list_text(&Accounts::load(&path)?));
                Ok(ExitCode::SUCCESS)
            }
            AuthenticatorCmd::Codes { account } => codes(&Accounts::load(&path)?, account),
            AuthenticatorCmd::Remove { name } => {
                let mut locked = Locked::open(&path)?;
                let before = locked.accounts.accounts.len();
                locked.accounts.accounts.retain(|a| a.name() != name);
                if locked.accounts.accounts.len() == before {
                    bail!("no account named {name:?} (see `twostep authenticator list`)");
                }
                locked.commit()?;
                twostep_common::outln!("removed account {}", text(&name));
                Ok(ExitCode::SUCCESS)
            }
            AuthenticatorCmd::Watch { account } => {
                let accounts = Accounts::load(&path)?;
                let devices = accounts
                    .push_accounts(account.as_deref())?
                    .into_iter()
                    .map(Device::new)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                runtime()?.block_on(watch::watch(devices))
            }
            AuthenticatorCmd::Pending {
                account,
                wait,
                json,
            } => pending(&Accounts::load(&path)?, account, wait, json),
            AuthenticatorCmd::Approve { number, target } => {
                answer(&path, &target, Decision::Approve, number)
            }
            AuthenticatorCmd::Deny { fraud, target } => {
                let decision = if fraud {
                    Decision::Fraud
                } else {
                    Decision::Deny
                };
                answer(&path, &target, decision, None)
            }
            AuthenticatorCmd::Fraud { target } => answer(&path, &target, Decision::Fraud, None),
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
}

/// This host's name, for a device's default name.
fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "twostep authenticator".into())
}

fn add(
    path: &std::path::Path,
    uri: &str,
    account: Option<String>,
    device_name: Option<String>,
    ca_file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let mut locked = Locked::open(path)?;
    if let Some(n) = &account {
        if n.is_empty() {
            bail!("--account: the name is empty");
        }
        if locked.accounts.get(n).is_some() {
            bail!("an account named {n:?} exists already: choose another --account or `remove` it first");
        }
    }
    let is_activation = uri
        .trim()
        .get(..ACTIVATION_SCHEME.len() + 1)
        .is_some_and(|s| s.eq_ignore_ascii_case(&format!("{ACTIVATION_SCHEME}:")));
    if !is_activation {
        if device_name.is_some() || ca_file.is_some() {
            bail!("--name and --ca-file are for twostep-activate:// URIs");
        }
        let parsed = otpauth::parse(uri).map_err(|e| anyhow!("{e}"))?;
        let name = account.unwrap_or_else(|| locked.accounts.free_name(&parsed.default_name()));
        let summary = format!(
            "added TOTP account {} ({} digits every {} s)",
            text(&name),
            parsed.digits,
            parsed.period
        );
        locked
            .accounts
            .accounts
            .push(Account::Totp(parsed.into_account(name, unix_now())));
        locked.commit()?;
        twostep_common::outln!("{summary}");
        return Ok(ExitCode::SUCCESS);
    }
    let parsed = parse_activation_uri(uri.trim()).map_err(|e| anyhow!("{e}"))?;
    let ca_file = ca_file
        .map(|p| std::fs::canonicalize(&p).with_context(|| format!("--ca-file {}", p.display())))
        .transpose()?;
    let registry_host = url::Url::parse(&parsed.registry)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| {
                u.port()
                    .map_or_else(|| h.to_owned(), |p| format!("{h}:{p}"))
            })
        })
        .unwrap_or_else(|| parsed.registry.clone());
    let device_name = device_name.unwrap_or_else(host_name);
    let mut acct = runtime()?.block_on(device::activate(
        &parsed,
        account.clone().unwrap_or_default(),
        device_name,
        ca_file.as_deref(),
    ))?;
    let (name, warning) = device_account_name(
        &locked.accounts,
        account,
        &registry_host,
        &parsed.username,
        &acct.username,
    );
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    acct.name = name;
    let summary = format!(
        "activated push device {} ({:?}) for {} at {}; account {}",
        acct.device_id,
        text(&acct.label),
        text(&acct.username),
        text(&acct.registry),
        text(&acct.name)
    );
    let device_id = acct.device_id;
    locked.accounts.accounts.push(Account::Push(acct));
    locked.commit().map_err(|e| {
        anyhow!(
            "{e:#} (device {device_id} was registered but its key is lost: ask an admin to delete method {device_id}, then activate again)"
        )
    })?;
    twostep_common::outln!("{summary}");
    twostep_common::outln!("Run `twostep authenticator watch` to answer sign-in requests.");
    Ok(ExitCode::SUCCESS)
}

/// The local name of a new push account and, when the activation URI's
/// `user=` is not the user the registry registered the device for, a
/// warning: the name (by default `USER@REGISTRY`) follows the registry's
/// answer, never the URI's claim.
fn device_account_name(
    accounts: &Accounts,
    explicit: Option<String>,
    registry_host: &str,
    uri_user: &str,
    registry_user: &str,
) -> (String, Option<String>) {
    let warning = (uri_user != registry_user).then(|| {
        format!(
            "the activation URI says user {:?}, but the registry registered this device for user {:?}: sign-in requests will be {}'s",
            text(uri_user),
            text(registry_user),
            text(registry_user)
        )
    });
    let name =
        explicit.unwrap_or_else(|| accounts.free_name(&format!("{registry_user}@{registry_host}")));
    (name, warning)
}

/// `list`: a table of every account; no secret in it.
fn list_text(accounts: &Accounts) -> String {
    let rows: Vec<[String; 5]> = accounts
        .accounts
        .iter()
        .map(|a| match a {
            Account::Totp(t) => [
                text(&t.name).into_owned(),
                a.kind().into(),
                text(t.issuer.as_deref().unwrap_or("-")).into_owned(),
                text(&t.account).into_owned(),
                format!("{} digits, {} s", t.digits, t.period),
            ],
            Account::Push(p) => [
                text(&p.name).into_owned(),
                a.kind().into(),
                text(&p.registry).into_owned(),
                text(&p.username).into_owned(),
                format!("{} (device {})", text(&p.label), p.device_id),
            ],
        })
        .collect();
    let header = ["NAME", "KIND", "ISSUER/REGISTRY", "USER", "LABEL"].map(String::from);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter().zip(row) {
            out.push_str(&format!("{cell:<w$}  "));
        }
        out.push_str(&row[4]);
        out.push('\n');
    }
    out
}

fn codes(accounts: &Accounts, only: Option<String>) -> anyhow::Result<ExitCode> {
    let totp: Vec<&store::TotpAccount> = accounts
        .accounts
        .iter()
        .filter_map(|a| match a {
            Account::Totp(t) if only.as_deref().is_none_or(|n| n == t.name) => Some(t),
            _ => None,
        })
        .collect();
    if totp.is_empty() {
        match only {
            Some(n) if accounts.get(&n).is_some() => {
                bail!("account {n:?} is a push account: it has no codes")
            }
            Some(n) => bail!("no account named {n:?} (see `twostep authenticator list`)"),
            None => bail!(
                "no TOTP account: add one with `twostep authenticator add 'otpauth://totp/...'`"
            ),
        }
    }
    let now = u64::try_from(unix_now()).unwrap_or(0);
    twostep_common::out!(
        "{}",
        otpauth::codes_text(&totp, now).map_err(|e| anyhow!("{e}"))?
    );
    Ok(ExitCode::SUCCESS)
}

fn pending(
    accounts: &Accounts,
    account: Option<String>,
    wait: u64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let device = Device::new(accounts.one_push_account(account.as_deref())?)?;
    let list = runtime()?.block_on(async {
        if wait == 0 {
            return device.poll(0).await;
        }
        // Wait for one; then list all of them.
        match device.wait_for(None, Duration::from_secs(wait)).await? {
            Some(_) => device.poll(0).await,
            None => Ok(Vec::new()),
        }
    })?;
    if json {
        twostep_common::outln!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        let now = unix_now();
        for c in &list {
            twostep_common::outln!("{}", device::pending_line(c, now));
        }
    }
    if wait > 0 && list.is_empty() {
        return Ok(ExitCode::from(EXIT_NO_REQUEST));
    }
    Ok(ExitCode::SUCCESS)
}

fn answer(
    path: &std::path::Path,
    target: &AnswerTarget,
    decision: Decision,
    number: Option<u8>,
) -> anyhow::Result<ExitCode> {
    let accounts = Accounts::load(path)?;
    let device = Device::new(accounts.one_push_account(target.account.as_deref())?)?;
    runtime()?.block_on(async {
        let closed = |why: &str| {
            eprintln!("twostep: {why} (nothing was answered)");
            Ok(ExitCode::from(EXIT_CLOSED))
        };
        if let Some(id) = &target.challenge {
            if !device.poll(0).await?.iter().any(|c| c.challenge_id == *id) {
                match device.probe(id).await? {
                    device::Probe::Closed(why) => return closed(&why),
                    device::Probe::Unknown => bail!(
                        "the registry knows no sign-in request {} for this device's user (see `pending`)",
                        text(id)
                    ),
                    device::Probe::Open => {}
                }
            }
        }
        let wait = Duration::from_secs(target.wait);
        let Some(challenge) = device.wait_for(target.challenge.as_deref(), wait).await? else {
            match &target.challenge {
                Some(id) => eprintln!(
                    "twostep: no pending sign-in request {} within {} s",
                    text(id),
                    target.wait
                ),
                None => eprintln!(
                    "twostep: no pending sign-in request within {} s",
                    target.wait
                ),
            }
            return Ok(ExitCode::from(EXIT_NO_REQUEST));
        };
        if decision == Decision::Approve && challenge.number_matching && number.is_none() {
            bail!(
                "this sign-in request needs the number shown at the login: --number N (nothing was answered)"
            );
        }
        let result = match device.answer(&challenge, decision, number).await {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.api_code(),
                    Some(ApiErrorCode::ChallengeClosed | ApiErrorCode::ChallengeExpired)
                ) =>
            {
                return closed(&device::answer_error(&e));
            }
            Err(e) => bail!("{}", device::answer_error(&e)),
        };
        twostep_common::outln!("{}", result.as_str());
        let asked = match decision {
            Decision::Approve => PushResult::Approved,
            Decision::Deny => PushResult::Denied,
            Decision::Fraud => PushResult::Fraud,
        };
        if result == asked {
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!(
                "twostep: {}",
                device::result_message(result, &challenge.username)
            );
            Ok(ExitCode::from(EXIT_OTHER_RESULT))
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_device_account_is_named_after_the_registrys_user() {
        let accounts = super::Accounts::default();
        let (name, warning) =
            super::device_account_name(&accounts, None, "reg:8443", "alice", "mallory");
        assert_eq!(name, "mallory@reg:8443");
        let w = warning.unwrap();
        assert!(w.contains("\"alice\"") && w.contains("\"mallory\""), "{w}");
        let (name, warning) =
            super::device_account_name(&accounts, None, "reg:8443", "alice", "alice");
        assert_eq!((name.as_str(), warning), ("alice@reg:8443", None));
        let (name, _) = super::device_account_name(&accounts, Some("work".into()), "reg", "a", "b");
        assert_eq!(name, "work");
    }

    use super::*;
    use store::{PushAccount, SecretText};

    #[test]
    fn list_shows_no_secret() {
        let accounts = Accounts {
            version: store::FORMAT_VERSION,
            accounts: vec![
                Account::Totp(store::example_totp("twostep:alice")),
                Account::Push(PushAccount {
                    name: "alice@reg:8443".into(),
                    registry: "https://reg:8443".into(),
                    ca_file: None,
                    username: "alice".into(),
                    label: "laptop".into(),
                    device_name: "laptop".into(),
                    device_id: 7,
                    secret_key: SecretText::new("c2VjcmV0LWtleS1ieXRlcw".into()),
                    added_at: 0,
                }),
            ],
        };
        let out = list_text(&accounts);
        assert_eq!(
            out,
            "NAME            KIND  ISSUER/REGISTRY   USER   LABEL\n\
             twostep:alice   totp  twostep           alice  6 digits, 30 s\n\
             alice@reg:8443  push  https://reg:8443  alice  laptop (device 7)\n"
        );
        assert!(!out.contains("GEZD") && !out.contains("c2Vj"));
    }

    #[test]
    fn help_reads_well() {
        use clap::CommandFactory;
        let mut cmd = crate::Cli::command();
        let auth = cmd
            .find_subcommand_mut("authenticator")
            .expect("authenticator subcommand");
        let names: Vec<&str> = auth.get_subcommands().map(|c| c.get_name()).collect();
        assert_eq!(
            names,
            ["add", "list", "codes", "remove", "watch", "pending", "approve", "deny", "fraud"]
        );
        cmd.debug_assert();
    }
}
