//! `twostep-radiusd`: the twostep RADIUS server.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use twostep_config::{Config, DEFAULT_CONFIG_PATH};
use twostep_radius::server::Server;
use twostep_radius::settings::Settings;

/// RADIUS server that adds a second factor (TOTP codes or push approvals
/// checked by the twostep registry) to VPN logins.
#[derive(Parser, Debug)]
#[command(
    name = "twostep-radiusd",
    version,
    after_help = "Examples:\n  \
        twostep-radiusd                                   # /etc/twostep/twostep.toml\n  \
        twostep-radiusd --config /etc/twostep/vpn.toml\n  \
        twostep-radiusd --config /etc/twostep/twostep.toml --check\n  \
        RUST_LOG=twostep_radius=debug twostep-radiusd     # more detail\n\n\
        Reads [radius] and [registry]. Secret files must be owned by root, mode 0600.\n\
        Create the State key once per pool: (umask 077; openssl rand -hex 32 > /etc/twostep/radius-state.key)"
)]
struct Args {
    /// Configuration file.
    #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Check the configuration and secret files, then exit.
    #[arg(long)]
    check: bool,
}

/// Fatal errors are one line on stderr, `twostep-radiusd: ` and the error
/// with its causes, and exit status 1 (never anyhow's multi-line report or a
/// backtrace).
fn main() -> ExitCode {
    // Hidden: `twostep-radiusd generate-man DIR`, `twostep-radiusd generate-completions DIR`.
    twostep_docgen::handle_hidden(<Args as clap::CommandFactory>::command);
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e: &(dyn std::error::Error + 'static) = e.as_ref();
            eprintln!("twostep-radiusd: {}", twostep_common::error_chain(e));
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let settings =
        Settings::from_config(&config).with_context(|| format!("{}", args.config.display()))?;
    let warnings = settings.warnings();
    if args.check {
        twostep_common::client::RegistryClient::for_host(&settings.registry)
            .with_context(|| format!("{}: [registry]", args.config.display()))?;
        for w in &warnings {
            twostep_common::outln!("{}: warning: {w}", args.config.display());
        }
        let noted = match warnings.len() {
            0 => String::new(),
            1 => ", 1 warning above".to_owned(),
            n => format!(", {n} warnings above"),
        };
        let radsec = match &settings.radsec {
            Some(r) => format!(", RadSec {}", r.listen),
            None => String::new(),
        };
        let metrics = match settings.metrics_listen {
            Some(m) => format!(", metrics {m}"),
            None => String::new(),
        };
        let clients = match settings.clients.len() {
            1 => "1 client".to_owned(),
            n => format!("{n} clients"),
        };
        twostep_common::outln!(
            "{}: OK ({clients}, listen {}{radsec}{metrics}{noted})",
            args.config.display(),
            settings.listen
        );
        // --check reads files only (it runs before start, where the
        // registry may not be up yet); doctor asks the registry.
        twostep_common::outln!(
            "{}: the registry was not contacted; `twostep doctor --config {} --no-pam --no-sshd` checks that it answers and accepts the host key",
            args.config.display(),
            args.config.display()
        );
        return Ok(());
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        // Installed before binding: a signal that arrives while starting is
        // handled, not met by its default action.
        warn_on_sighup().context("installing the SIGHUP handler")?;
        let stop = shutdown().context("installing the SIGTERM/SIGINT handlers")?;
        let clients = settings.clients.len();
        let metrics = std::sync::Arc::new(twostep_radius::metrics::Metrics::new());
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => Some(twostep_radius::metrics::Listener::bind(addr).await?),
            None => None,
        };
        let server = Server::bind(settings, std::sync::Arc::clone(&metrics)).await?;
        if let Some(listener) = metrics_listener {
            tracing::info!(
                "metrics served on {} (GET /metrics, plain HTTP)",
                listener.local_addr()?
            );
            tokio::spawn(async move {
                if let Err(e) = listener.serve(metrics).await {
                    tracing::error!("metrics listener failed: {e}");
                }
            });
        }
        tracing::info!(
            "listening on {} ({clients} client{}), version {}",
            server.local_addr()?,
            if clients == 1 { "" } else { "s" },
            env!("CARGO_PKG_VERSION")
        );
        if let Some(addr) = server.radsec_addr()? {
            tracing::info!("RadSec (RADIUS over TLS) listening on {addr}");
        }
        tokio::select! {
            r = server.run() => r.map_err(anyhow::Error::from),
            _ = stop => {
                tracing::info!("stopping");
                Ok(())
            }
        }
    })
}

/// Handles SIGHUP (whose default action ends the process, which systemd's
/// `Restart=on-failure` takes for a clean stop) with a warning: the
/// configuration is read at start only.
fn warn_on_sighup() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::warn!(
                "SIGHUP: reloading the configuration is not supported; restart the service to apply changes"
            );
        }
    });
    Ok(())
}

/// Resolves at SIGTERM or SIGINT; both handlers are installed when this
/// returns.
fn shutdown() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
