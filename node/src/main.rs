//! `sae-node` command line: flags, configuration, logging, then [`sae_node::start`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sae_node::config::{Config, LogFormat};

/// Exit status for a configuration that cannot be used (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

/// SAE cluster node: the policy server for Diameter (JSRC/PTSP) and COPS routers.
///
/// Prints `listening <protocol> <address>` per bound listener (diameter, cops, grpc,
/// metrics), then `node <id>` (its cluster node id), then `ready` once it is a cluster member.
/// SIGTERM or Ctrl-C: routers handed to other nodes, the cluster left, DPR to every router,
/// data flushed, exit 0.
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
    /// Join an existing cluster through these members' gRPC addresses (host:port,
    /// comma-separated), overriding the configuration. Without it the node starts a
    /// single-node cluster (or restarts as the member its data says).
    #[arg(long, env = "SAE_JOIN", value_delimiter = ',')]
    join: Vec<String>,
    /// Host or IP other nodes and routers reach this node at, overriding the configuration.
    #[arg(long, env = "SAE_ADVERTISE")]
    advertise: Option<String>,
    /// Node name, overriding the configuration (`auto`: this machine's hostname). The
    /// Diameter Origin-Host defaults to `<name>.sae.localdomain`.
    #[arg(long, env = "SAE_NODE_NAME")]
    name: Option<String>,
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
    if !cli.join.is_empty() {
        let join: Vec<String> = cli
            .join
            .iter()
            .map(|j| j.trim().to_owned())
            .filter(|j| !j.is_empty())
            .collect();
        for j in &join {
            if j.rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return Err(format!("--join: {j:?} is not host:port"));
            }
        }
        config.cluster.join = join;
    }
    if let Some(a) = &cli.advertise {
        config.cluster.advertise = Some(a.clone()).filter(|a| !a.is_empty());
    }
    if let Some(name) = &cli.name {
        let name = if name == "auto" {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .ok_or("--name auto: this machine has no hostname")?
        } else {
            name.clone()
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(format!(
                "--name: {name:?} must be letters, digits, '.', '-' or '_'"
            ));
        }
        // The Origin-Host follows the name unless the file set one.
        if config.diameter.origin_host == format!("{}.sae.localdomain", config.name) {
            config.diameter.origin_host = format!("{name}.sae.localdomain");
        }
        config.name = name;
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
        writeln!(out, "node {}", node.cluster().id)?;
        writeln!(out, "ready")?;
        out.flush()?;
    }
    shutdown_signal().await;
    tracing::info!("shutting down: leaving the cluster, disconnecting peers");
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
