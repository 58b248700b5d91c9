//! `twostep-api --config FILE`: the central registry.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// twostep central registry: users, methods, hosts, verification, audit.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  \
        twostep-api --config /etc/twostep/twostep.toml\n  \
        twostep-api --config /etc/twostep/twostep.toml --check   # before a (re)start\n\n\
        --check reads the config, the TLS, secret key, admin token and webhook header\n\
        value files and the database (read-only), creates nothing, and exits 0 after\n\
        an OK line.\n\
        Log filter: RUST_LOG (default info)."
)]
struct Args {
    /// Configuration file (its [api] table).
    #[arg(long, value_name = "FILE", default_value = twostep_config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Check the configuration, key, token and TLS files and the database
    /// without creating or changing anything, then exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    // Hidden: `twostep-api generate-man DIR`, `twostep-api generate-completions DIR`.
    twostep_docgen::handle_hidden(<Args as clap::CommandFactory>::command);
    let args = Args::parse();
    // Files the registry creates (database, WAL, keys, token) are private.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        // One plain line (not also a log line): `twostep-api: ` and the error
        // with its causes, each once.
        Err(e) => {
            let e: &(dyn std::error::Error + 'static) = e.as_ref();
            eprintln!("twostep-api: {}", twostep_common::error_chain(e));
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let config = twostep_config::Config::load(&args.config)?;
    let api = config.api()?;
    config.check_files(&args.config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.check {
        let report = rt.block_on(twostep_api::server::check(api))?;
        let file = args.config.display();
        for note in &report.notes {
            twostep_common::outln!("{file}: note: {note}");
        }
        let metrics = match &api.metrics {
            Some(m) => format!(", metrics {}", m.listen),
            None => String::new(),
        };
        twostep_common::outln!(
            "{file}: OK (listen {} {}, database {} {}{metrics})",
            api.listen,
            report.transport,
            match report.backend {
                twostep_api::db::Backend::Sqlite => "SQLite",
                twostep_api::db::Backend::Postgres => "PostgreSQL",
            },
            twostep_api::db::redact_url(&api.database),
        );
        return Ok(());
    }
    rt.block_on(twostep_api::server::run(api))?;
    Ok(())
}
