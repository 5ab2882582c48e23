//! `sae-node` command line: flags, configuration, logging, then [`sae_node::start`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sae_node::config::{Config, LogFormat};

/// Exit status for a configuration that cannot be used (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

/// SAE cluster node: the policy server for Diameter (JSRC/PTSP) routers.
///
/// Prints `listening <protocol> <address>` per bound listener (diameter, grpc, metrics), then
/// `ready`. SIGTERM or Ctrl-C: DPR to every router, data flushed, exit 0.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML). Without one, the embedded defaults apply.
    #[arg(short, long, env = "SAE_CONFIG")]
    config: Option<PathBuf>,
    /// Diameter listen address, overriding the configuration.
    #[arg(long, env = "SAE_DIAMETER_LISTEN")]
    diameter_listen: Option<String>,
    /// Management API (gRPC) listen address, overriding the configuration.
    #[arg(long, env = "SAE_GRPC_LISTEN")]
    grpc_listen: Option<String>,
    /// COPS (PDP) listen address, overriding the configuration.
    #[arg(long, env = "SAE_COPS_LISTEN")]
    cops_listen: Option<String>,
    /// Prometheus endpoint listen address, overriding the configuration.
    #[arg(long, env = "SAE_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Data directory (sessions, usage, catalog), overriding the configuration.
    #[arg(long, env = "SAE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log format, overriding the configuration.
    #[arg(long, env = "SAE_LOG_FORMAT", value_parser = ["plain", "json"])]
    log_format: Option<String>,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn load(cli: &Cli) -> Result<Config, String> {
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::defaults(),
    };
    if let Some(listen) = &cli.diameter_listen {
        config.diameter.listen = listen
            .parse()
            .map_err(|_| format!("--diameter-listen: {listen:?} is not an address:port"))?;
    }
    if let Some(listen) = &cli.grpc_listen {
        config.grpc_listen = listen
            .parse()
            .map_err(|_| format!("--grpc-listen: {listen:?} is not an address:port"))?;
    }
    if let Some(listen) = &cli.cops_listen {
        config.cops.listen = listen
            .parse()
            .map_err(|_| format!("--cops-listen: {listen:?} is not an address:port"))?;
    }
    if let Some(listen) = &cli.metrics_listen {
        config.metrics_listen = listen
            .parse()
            .map_err(|_| format!("--metrics-listen: {listen:?} is not an address:port"))?;
    }
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(format) = &cli.log_format {
        config.log_format = if format == "json" {
            LogFormat::Json
        } else {
            LogFormat::Plain
        };
    }
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sae-node: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cli.check_config {
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    sae_node::telemetry::init(config.log_format, &config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sae-node: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Router drivers live on the system arbiter (this thread), subscriber sessions on one
    // arbiter per core, tonic and the metrics endpoint on the runtime's workers.
    let system = actix::System::with_tokio_rt(move || runtime);
    match system.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sae-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let node = sae_node::start(config).await?;
    {
        let mut out = std::io::stdout().lock();
        for l in node.listeners() {
            writeln!(out, "listening {} {}", l.protocol, l.addr)?;
        }
        writeln!(out, "ready")?;
        out.flush()?;
    }
    shutdown_signal().await;
    tracing::info!("shutting down: disconnecting peers");
    node.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
