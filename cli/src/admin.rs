//! The admin subcommands: users, enrolment, methods, hosts, audit.

use crate::{output, Global, Run};
use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use twostep_common::api::{CreateHost, CreateUser, EnrolTotp, HostKind, IssueTap, UpdateUser};
use twostep_common::client::RegistryClient;
use twostep_common::push::CreateActivation;
use twostep_config::{Config, RegistryClientConfig};

/// `[registry]` from the config, or one derived from `[api].listen` when
/// the file configures the registry itself; and the admin token file.
///
/// # Errors
/// When the config is unreadable or names no registry or token file.
pub fn client_settings(global: &Global) -> anyhow::Result<(RegistryClientConfig, PathBuf)> {
    let config = Config::load(&global.config)?;
    let token_from_config = config
        .registry
        .as_ref()
        .and_then(|r| r.admin_token_file.clone())
        .or_else(|| config.api.as_ref().map(|a| a.admin_token_file.clone()));
    let token = global
        .admin_token_file
        .clone()
        .or(token_from_config)
        .ok_or_else(|| {
            anyhow!(
                "{}: no admin token file: set [registry].admin_token_file or pass --admin-token-file",
                global.config.display()
            )
        })?;
    if let Some(reg) = &config.registry {
        return Ok((reg.clone(), token));
    }
    let api = config.api.as_ref().ok_or_else(|| {
        anyhow!(
            "{}: neither [registry] nor [api]: cannot tell where the registry is",
            global.config.display()
        )
    })?;
    let reg = RegistryClientConfig {
        url: api.local_url(),
        api_key_file: None,
        admin_token_file: Some(token.clone()),
        ca_file: None,
        allow_plain_http: api.allow_plain_http,
        proxy: None,
        connect_timeout: 2,
        timeout: 10,
    };
    Ok((reg, token))
}

/// Runs `f` with an admin client on a current-thread runtime.
fn with_admin<T, F, Fut>(global: &Global, f: F) -> anyhow::Result<T>
where
    F: FnOnce(RegistryClient) -> Fut,
    Fut: std::future::Future<Output = Result<T, twostep_common::client::ClientError>>,
{
    let (cfg, token) = client_settings(global)?;
    let client = RegistryClient::for_admin(&cfg, &token)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    Ok(rt.block_on(f(client))?)
}

// ---- users --------------------------------------------------------------------

/// `twostep user ...`.
#[derive(Subcommand)]
pub enum UserCmd {
    /// Add a user.
    Add {
        /// Login name as PAM and RADIUS see it.
        name: String,
        /// Full name.
        #[arg(long, value_name = "TEXT")]
        display_name: Option<String>,
        /// Also set the Security info page password: asked twice on the
        /// terminal, or one line read from standard input when it is not one.
        #[arg(long)]
        password_prompt: bool,
    },
    /// Set a user's Security info page password (asked twice on the
    /// terminal, or one line from standard input); ends their page sessions.
    Passwd {
        /// Login name.
        name: String,
    },
    /// Print a one-time setup link (valid 24 h, shown once) that takes the
    /// user to "set up your security info"; earlier unused links stop working.
    Invite {
        /// Login name.
        name: String,
    },
    /// List users.
    List,
    /// Show a user and their methods.
    Show {
        /// Login name.
        name: String,
    },
    /// Disable a user: every verification answers "disabled".
    Disable {
        /// Login name.
        name: String,
    },
    /// Re-enable a disabled user.
    Enable {
        /// Login name.
        name: String,
    },
    /// Delete a user and their methods.
    Delete {
        /// Login name.
        name: String,
    },
    /// Clear a user's lockout and failure count, and the push block set
    /// by a report of fraud.
    Unlock {
        /// Login name.
        name: String,
    },
    /// Delete all of a user's methods (lost or replaced phone); with
    /// --tap, issue a temporary access code in the same step so the user
    /// can sign in and add the new phone.
    Reset {
        /// Login name.
        name: String,
        /// Also issue a temporary access code (shown once).
        #[arg(long)]
        tap: bool,
        /// With --tap: how long the code works, in hours (1..=720).
        #[arg(long, default_value_t = twostep_common::recovery::TAP_DEFAULT_HOURS, requires = "tap",
              value_parser = clap::value_parser!(u32).range(1..=i64::from(twostep_common::recovery::TAP_MAX_HOURS)))]
        hours: u32,
        /// With --tap: how many logins it works for (1..=100).
        #[arg(long, default_value_t = 1, requires = "tap",
              value_parser = clap::value_parser!(u32).range(1..=i64::from(twostep_common::recovery::TAP_MAX_USES)))]
        uses: u32,
    },
    /// Print a new set of 10 single-use backup codes (shown once) for the
    /// user to keep on paper; the earlier set stops working.
    BackupCodes {
        /// Login name.
        name: String,
    },
    /// Issue a temporary access code (shown once), accepted as a second
    /// factor by SSH, sudo, the VPN and the Security info page until it
    /// expires or is used up; an earlier open code stops working. With
    /// --revoke, end the open code instead.
    Tap {
        /// Login name.
        name: String,
        /// How long the code works, in hours (1..=720).
        #[arg(long, default_value_t = twostep_common::recovery::TAP_DEFAULT_HOURS, conflicts_with = "revoke",
              value_parser = clap::value_parser!(u32).range(1..=i64::from(twostep_common::recovery::TAP_MAX_HOURS)))]
        hours: u32,
        /// How many logins it works for (1..=100).
        #[arg(long, default_value_t = 1, conflicts_with = "revoke",
              value_parser = clap::value_parser!(u32).range(1..=i64::from(twostep_common::recovery::TAP_MAX_USES)))]
        uses: u32,
        /// Revoke the user's open code.
        #[arg(long)]
        revoke: bool,
    },
}

impl Run for UserCmd {
    fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        match self {
            Self::Add {
                name,
                display_name,
                password_prompt,
            } => {
                // Ask first, so a mistyped password adds no user.
                let password = if password_prompt {
                    Some(read_new_password(&name, display_name.as_deref())?)
                } else {
                    None
                };
                let u = with_admin(g, |c| async move {
                    let u = c
                        .create_user(&CreateUser {
                            username: name,
                            display_name,
                        })
                        .await?;
                    if let Some(password) = password {
                        c.set_password(&u.username, &password).await?;
                    }
                    Ok(u)
                })?;
                twostep_common::outln!("added user {}", u.username);
                if password_prompt {
                    twostep_common::outln!("set the Security info page password of {}", u.username);
                }
            }
            Self::Passwd { name } => {
                let display_name = with_admin(g, |c| {
                    let n = name.clone();
                    async move { c.user(&n).await }
                })?
                .display_name;
                let password = read_new_password(&name, display_name.as_deref())?;
                with_admin(g, |c| {
                    let n = name.clone();
                    async move { c.set_password(&n, &password).await }
                })?;
                twostep_common::outln!(
                    "set the Security info page password of {name}; their page sessions ended"
                );
            }
            Self::Invite { name } => {
                let (cfg, _) = client_settings(g)?;
                let invite = with_admin(g, |c| {
                    let n = name.clone();
                    async move { c.invite(&n).await }
                })?;
                let link = invite
                    .url
                    .clone()
                    .unwrap_or_else(|| format!("{}{}", cfg.url.trim_end_matches('/'), invite.path));
                eprintln!(
                    "setup link for {name} (works once, until {}; shown only this once):",
                    output::time(invite.expires_at)
                );
                twostep_common::outln!("{link}");
            }
            Self::List => {
                let users = with_admin(g, |c| async move { c.list_users().await })?;
                twostep_common::out!("{}", output::users(&users));
            }
            Self::Show { name } => {
                let u = with_admin(g, |c| async move { c.user(&name).await })?;
                twostep_common::out!("{}", output::user(&u));
            }
            Self::Disable { name } => set_disabled(g, name, true)?,
            Self::Enable { name } => set_disabled(g, name, false)?,
            Self::Delete { name } => {
                with_admin(g, |c| {
                    let n = name.clone();
                    async move { c.delete_user(&n).await }
                })?;
                twostep_common::outln!("deleted user {name}");
            }
            Self::Unlock { name } => {
                let u = with_admin(g, |c| async move { c.unlock_user(&name).await })?;
                twostep_common::outln!("unlocked user {}", u.username);
            }
            Self::Reset {
                name, tap: false, ..
            } => {
                with_admin(g, |c| {
                    let n = name.clone();
                    async move { c.reset_methods(&n).await }
                })?;
                twostep_common::outln!("deleted all methods of {name}");
            }
            Self::Reset {
                name,
                tap: true,
                hours,
                uses,
            } => issue_tap(g, &name, hours, uses, true)?,
            Self::BackupCodes { name } => {
                let set = with_admin(g, |c| {
                    let n = name.clone();
                    async move { c.new_backup_codes(&n).await }
                })?;
                eprintln!(
                    "backup codes for {name} (each works once; the earlier set no longer works; shown only this once):"
                );
                for c in set.codes {
                    twostep_common::outln!("{c}");
                }
            }
            Self::Tap {
                name, revoke: true, ..
            } => {
                let open = with_admin(g, |c| {
                    let n = name.clone();
                    async move {
                        let open = c.user(&n).await?.temporary_access_until;
                        c.revoke_tap(&n).await?;
                        Ok(open)
                    }
                })?;
                match open {
                    Some(_) => {
                        twostep_common::outln!("revoked the open temporary access code of {name}")
                    }
                    None => twostep_common::outln!(
                        "{name} has no open temporary access code; nothing to revoke"
                    ),
                }
            }
            Self::Tap {
                name, hours, uses, ..
            } => issue_tap(g, &name, hours, uses, false)?,
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Issues a temporary access code (after deleting the methods, with
/// `reset`): what happened on standard error, the code alone on standard
/// output.
fn issue_tap(g: &Global, name: &str, hours: u32, uses: u32, reset: bool) -> anyhow::Result<()> {
    let (user, issued) = with_admin(g, |c| {
        let n = name.to_owned();
        async move {
            let user = c.user(&n).await?;
            let issued = c
                .issue_tap(
                    &n,
                    &IssueTap {
                        hours: Some(hours),
                        uses: Some(uses),
                        reset_methods: reset,
                    },
                )
                .await?;
            Ok((user, issued))
        }
    })?;
    if user.disabled {
        eprintln!(
            "note: {name} is disabled; the code is refused until `twostep user enable {name}`"
        );
    } else if let Some(until) = user.locked_until {
        eprintln!(
            "note: {name} is locked out until {}; the code is refused until then or `twostep user unlock {name}`",
            output::time(until)
        );
    }
    if reset {
        eprintln!(
            "deleted all methods of {name} ({}); their open push requests are cancelled",
            issued.methods_deleted
        );
    }
    eprintln!(
        "temporary access code for {name} (works for {} login(s) until {}; shown only this once):",
        issued.uses,
        output::time(issued.expires_at)
    );
    twostep_common::outln!("{}", issued.code);
    Ok(())
}

fn set_disabled(g: &Global, name: String, disabled: bool) -> anyhow::Result<()> {
    let u = with_admin(g, |c| async move {
        c.update_user(
            &name,
            &UpdateUser {
                disabled: Some(disabled),
            },
        )
        .await
    })?;
    twostep_common::outln!(
        "{} user {}",
        if u.disabled { "disabled" } else { "enabled" },
        u.username
    );
    Ok(())
}

/// A new page password for `name`: asked twice with echo off when standard
/// input is a terminal, else the first line of standard input. Checked with
/// the registry's rule before it is sent.
fn read_new_password(
    name: &str,
    display_name: Option<&str>,
) -> anyhow::Result<twostep_common::portal::SetPassword> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = prompt_hidden(&format!("New Security info password for {name}: "))?;
        let again = prompt_hidden("Type it again: ")?;
        if first != again {
            bail!("the passwords do not match");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("read the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    twostep_common::portal::check_password(&password, name, display_name)
        .map_err(|m| anyhow!("password refused: {m}"))?;
    Ok(twostep_common::portal::SetPassword { password })
}

/// Reads one line from the terminal with echo off (restored afterwards,
/// also on error).
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("read the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{prompt}");
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turn off echo")?;
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    tcsetattr(&stdin, SetArg::TCSANOW, &saved).context("restore the terminal")?;
    read.context("read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

// ---- enrolment and methods ----------------------------------------------------

/// `twostep enrol NAME [--push]`.
#[derive(Args)]
pub struct EnrolArgs {
    /// Login name.
    pub name: String,
    /// Label for the method [default: "Authenticator app"; with --push:
    /// the name the device gives itself].
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
    /// Register a push device instead of a code: print a one-time
    /// activation URI (and QR code) for `twostep authenticator add`.
    #[arg(long)]
    pub push: bool,
    /// Register a phone number (E.164, `+15550100042`) for codes by text
    /// message instead (the admin vouches for the number; the Security
    /// info page proves it with a code).
    #[arg(long, value_name = "NUMBER", conflicts_with_all = ["push", "call"])]
    pub sms: Option<String>,
    /// Register a phone number for codes read out in a phone call.
    #[arg(long, value_name = "NUMBER", conflicts_with_all = ["push", "sms"])]
    pub call: Option<String>,
    /// With --sms or --call: make it the user's default method.
    #[arg(long)]
    pub default: bool,
    /// Do not draw the QR code.
    #[arg(long)]
    pub no_qr: bool,
    /// Also write the QR code as a PNG image to FILE (created, mode 0600,
    /// never overwritten: it holds the secret or the activation code).
    #[arg(long, value_name = "FILE")]
    pub qr_png: Option<std::path::PathBuf>,
    /// Also write the QR code as an SVG image to FILE (as --qr-png).
    #[arg(long, value_name = "FILE")]
    pub qr_svg: Option<std::path::PathBuf>,
}

impl EnrolArgs {
    /// Creates the image files asked for (new, mode 0600) before anything
    /// is enrolled, so a file that exists or a directory that is missing
    /// or not writable stops the command first; they are removed again
    /// unless [`EnrolArgs::write_images`] fills them.
    fn open_image_files(&self) -> anyhow::Result<ImageFiles> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut files = ImageFiles(Vec::new());
        for f in [&self.qr_png, &self.qr_svg].into_iter().flatten() {
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(f);
            match opened {
                Ok(file) => files.0.push((f.clone(), Some(file))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
                    "{}: exists already; the QR image goes only to a new file",
                    f.display()
                ),
                Err(e) => return Err(e).with_context(|| format!("{}: cannot create", f.display())),
            }
        }
        Ok(files)
    }

    /// Writes the QR images of `uri` into the files opened by
    /// [`EnrolArgs::open_image_files`], which are then kept.
    fn write_images(
        &self,
        files: &mut ImageFiles,
        uri: &str,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        for (path, file) in &mut files.0 {
            let Some(mut f) = file.take() else { continue };
            let (bytes, kind) = if Some(&*path) == self.qr_png.as_ref() {
                let png =
                    twostep_common::qr::png(uri).context("the URI is too long for a QR code")?;
                (png, "PNG")
            } else {
                let svg = twostep_common::qr::svg(uri, "QR code to scan with an authenticator app")
                    .context("the URI is too long for a QR code")?;
                (svg.into_bytes(), "SVG")
            };
            f.write_all(&bytes)
                .and_then(|()| f.sync_all())
                .with_context(|| format!("{}: cannot write", path.display()))?;
            writeln!(out, "QR code written to {} ({kind})", path.display())?;
        }
        files.0.clear();
        Ok(())
    }
}

/// Image files created ahead of enrolling; the ones still listed when
/// dropped (the enrolment failed) are removed.
struct ImageFiles(Vec<(std::path::PathBuf, Option<std::fs::File>)>);

impl Drop for ImageFiles {
    fn drop(&mut self) {
        for (path, _) in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Run for EnrolArgs {
    fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let mut files = self.open_image_files()?;
        if self.push {
            return self.run_push(g, &mut files);
        }
        let phone = match (&self.sms, &self.call) {
            (Some(n), _) => Some((twostep_common::phone::Channel::Sms, n.clone())),
            (None, Some(n)) => Some((twostep_common::phone::Channel::Voice, n.clone())),
            (None, None) => None,
        };
        if let Some((channel, number)) = phone {
            let name = self.name.clone();
            let default = self.default;
            let m = with_admin(g, |c| async move {
                c.enrol_phone(
                    &name,
                    &twostep_common::phone::EnrolPhone {
                        channel,
                        number,
                        default,
                    },
                )
                .await
            })?;
            writeln!(
                std::io::stdout().lock(),
                "enrolled phone method {} ({}, {}) for {}{}",
                m.id,
                channel.title().to_lowercase(),
                m.label,
                self.name,
                if m.is_default { "; the default" } else { "" }
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        let name = self.name.clone();
        let label = self.label.clone();
        let e = with_admin(g, |c| async move {
            c.enrol_totp(&name, &EnrolTotp { label }).await
        })?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "enrolled TOTP method {} ({:?}) for {}",
            e.method.id, e.method.label, self.name
        )?;
        if !self.no_qr {
            writeln!(
                out,
                "Scan with an authenticator app (Microsoft Authenticator, Google Authenticator, FreeOTP, Aegis):"
            )?;
            writeln!(out, "{}", qr(&e.otpauth_uri)?)?;
        }
        writeln!(out, "Can't scan? Type in this key (SHA-1, 6 digits, 30 s):")?;
        writeln!(out, "secret: {}", e.secret_base32)?;
        writeln!(out, "uri: {}", e.otpauth_uri)?;
        writeln!(
            out,
            "The secret is shown only this once; the registry keeps it encrypted."
        )?;
        self.write_images(&mut files, &e.otpauth_uri, &mut out)?;
        Ok(ExitCode::SUCCESS)
    }
}

impl EnrolArgs {
    /// `twostep enrol NAME --push`: a one-time device activation.
    fn run_push(self, g: &Global, files: &mut ImageFiles) -> anyhow::Result<ExitCode> {
        let name = self.name.clone();
        let label = self.label.clone();
        let a = with_admin(g, |c| async move {
            c.create_activation(&name, &CreateActivation { label })
                .await
        })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "push device activation for {}; expires {} (in {} minutes), works once",
            a.username,
            output::time(a.expires_at),
            ((a.expires_at - now).max(0) + 59) / 60
        )?;
        if !self.no_qr {
            writeln!(out, "Scan with the device's twostep authenticator:")?;
            writeln!(out, "{}", qr(&a.activation_uri)?)?;
        }
        writeln!(
            out,
            "Can't scan? On the device run: twostep authenticator add 'URI'"
        )?;
        writeln!(out, "uri: {}", a.activation_uri)?;
        writeln!(
            out,
            "Anyone with this URI can register a device for {} until it expires or is used.",
            a.username
        )?;
        self.write_images(files, &a.activation_uri, &mut out)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// `uri` as a QR code drawn with Unicode half blocks (two modules per
/// character cell), light on dark, with the quiet zone.
fn qr(uri: &str) -> anyhow::Result<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(uri.as_bytes()).context("QR code")?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// `twostep method ...`.
#[derive(Subcommand)]
pub enum MethodCmd {
    /// Disable a method (a lost device): it verifies nothing and gets no
    /// push; the user's open push challenges are cancelled at once.
    Disable {
        /// Method id (`twostep user show NAME`).
        id: i64,
    },
    /// Enable a disabled method again.
    Enable {
        /// Method id.
        id: i64,
    },
    /// Delete one method of a user (ids: `twostep user show NAME`).
    Delete {
        /// Login name.
        name: String,
        /// Method id.
        id: i64,
    },
}

impl Run for MethodCmd {
    fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        match self {
            Self::Delete { name, id } => {
                with_admin(g, |c| {
                    let n = name.clone();
                    async move { c.delete_method(&n, id).await }
                })?;
                twostep_common::outln!("deleted method {id} of {name}");
            }
            Self::Disable { id } => {
                let m = with_admin(g, |c| async move { c.disable_method(id).await })?;
                twostep_common::outln!("disabled method {} ({:?})", m.id, m.label);
            }
            Self::Enable { id } => {
                let m = with_admin(g, |c| async move { c.enable_method(id).await })?;
                twostep_common::outln!("enabled method {} ({:?})", m.id, m.label);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

// ---- hosts --------------------------------------------------------------------

/// Kind of host, on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// A PAM host: SSH server, console, sudo.
    Ssh,
    /// A RADIUS server in front of VPNs.
    Radius,
}

/// `twostep host ...`.
#[derive(Subcommand)]
pub enum HostCmd {
    /// Add a host and print its API key (shown only once).
    Add {
        /// Unique name, usually the host name.
        name: String,
        /// What the host is.
        #[arg(long, value_enum)]
        kind: KindArg,
        /// Write the key to this file (mode 0600) instead of printing it.
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
    },
    /// List hosts.
    List,
    /// Revoke a host's API key.
    Revoke {
        /// Host name.
        name: String,
    },
}

impl Run for HostCmd {
    fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        match self {
            Self::Add {
                name,
                kind,
                key_file,
            } => {
                let kind = match kind {
                    KindArg::Ssh => HostKind::Ssh,
                    KindArg::Radius => HostKind::Radius,
                };
                // The key file is created (new, mode 0600) before the host,
                // so an existing file (another host's key) is never
                // overwritten and no host is added without a place for its key.
                let file = match &key_file {
                    Some(p) => Some(create_key_file(p)?),
                    None => None,
                };
                let created = with_admin(g, |c| async move {
                    c.create_host(&CreateHost { name, kind }).await
                });
                let created = match created {
                    Ok(c) => c,
                    Err(e) => {
                        if let Some(p) = &key_file {
                            let _ = std::fs::remove_file(p);
                        }
                        return Err(e);
                    }
                };
                match (key_file, file) {
                    (Some(p), Some(file)) => {
                        write_key_file(file, &p, &created.api_key)?;
                        twostep_common::outln!(
                            "added {} host {}; API key written to {}",
                            output::host_kind(created.host.kind),
                            created.host.name,
                            p.display()
                        );
                    }
                    _ => {
                        eprintln!(
                            "added {} host {}; its API key (shown only once, put it in the host's [registry].api_key_file, mode 0600):",
                            output::host_kind(created.host.kind),
                            created.host.name
                        );
                        twostep_common::outln!("{}", created.api_key);
                    }
                }
            }
            Self::List => {
                let hosts = with_admin(g, |c| async move { c.list_hosts().await })?;
                twostep_common::out!("{}", output::hosts(&hosts));
            }
            Self::Revoke { name } => {
                with_admin(g, |c| {
                    let n = name.clone();
                    async move { c.revoke_host(&n).await }
                })?;
                twostep_common::outln!("revoked host {name}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Creates the key file `path`, new (`O_EXCL`) with mode 0600, before the
/// host is added.
///
/// # Errors
/// One line naming `path`: it exists already (it may hold another host's
/// key), its directory is missing, or the OS refused.
fn create_key_file(path: &Path) -> anyhow::Result<std::fs::File> {
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match opened {
        Ok(f) => {
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| anyhow!("{}: {e}", path.display()))?;
            Ok(f)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{}: already exists (it may hold another host's key); remove it or choose another --key-file; no host was added",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            bail!(
                "{}: directory does not exist; no host was added",
                dir.unwrap_or(path).display()
            )
        }
        Err(e) => bail!("{}: {e}; no host was added", path.display()),
    }
}

/// Writes `key` and a newline to `file`, the new file at `path` from
/// [`create_key_file`].
fn write_key_file(mut file: std::fs::File, path: &Path, key: &str) -> anyhow::Result<()> {
    let result = (|| -> std::io::Result<()> {
        file.write_all(key.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(path);
        return Err(anyhow!(
            "{}: {e} (the host was added; revoke it and add it again)",
            path.display()
        ));
    }
    Ok(())
}

// ---- audit --------------------------------------------------------------------

/// `twostep audit`.
#[derive(Args)]
pub struct AuditArgs {
    /// How many of the newest events to show.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// One JSON object per line (NDJSON): id, at (RFC 3339), actor,
    /// action, username, host, remote_addr, result, detail.
    #[arg(long)]
    pub json: bool,
    /// After the newest events, keep asking the registry every second for
    /// new ones and print each once, in order, until interrupted.
    #[arg(long)]
    pub follow: bool,
}

/// How often `twostep audit --follow` asks for new events.
pub const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Run for AuditArgs {
    fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let (limit, json, follow) = (self.limit, self.json, self.follow);
        let print = move |events: &[twostep_common::api::AuditEvent]| {
            let text = if json {
                output::audit_json(events)
            } else {
                output::audit(events)
            };
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) ends the command quietly.
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .is_ok()
        };
        with_admin(g, |c| async move {
            let mut failing = false;
            // With --follow, a registry down at the start is waited for too.
            let events = loop {
                match c.audit(limit).await {
                    Ok(events) => break events,
                    Err(e) if follow => {
                        if !failing {
                            eprintln!("twostep: {e}; trying again every second");
                            failing = true;
                        }
                        tokio::time::sleep(FOLLOW_INTERVAL).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            if failing {
                eprintln!("twostep: the registry answers again");
                failing = false;
            }
            if !print(&events) || !follow {
                return Ok(());
            }
            let mut last = match events.iter().map(|e| e.id).max() {
                Some(id) => id,
                // `--limit 0`: only events from now on.
                None => c.audit(1).await?.first().map_or(0, |e| e.id),
            };
            loop {
                tokio::time::sleep(FOLLOW_INTERVAL).await;
                match c.audit_after(last, MAX_FOLLOW_PAGE).await {
                    Ok(mut new) => {
                        if failing {
                            eprintln!("twostep: the registry answers again");
                            failing = false;
                        }
                        // Oldest first; an older registry that ignores
                        // `after` answers newest first and repeats events.
                        new.retain(|e| e.id > last);
                        new.sort_by_key(|e| e.id);
                        if let Some(e) = new.last() {
                            last = e.id;
                        }
                        // `print` takes newest first, as the API's default answer.
                        new.reverse();
                        if !print(&new) {
                            return Ok(());
                        }
                    }
                    Err(e) if !failing => {
                        eprintln!("twostep: {e}; trying again every second");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Most events `twostep audit --follow` asks for at once (the registry's
/// `MAX_AUDIT_LIMIT`); more arrive at the next poll.
const MAX_FOLLOW_PAGE: u32 = 10_000;
