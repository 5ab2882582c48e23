//! `sae-node` command line: flags, configuration, logging, then [`sae_node::start`].

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sae_node::config::{Config, FileConfig};

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
    /// Standalone NICs to publish to and resolve at (host:port, comma-separated), overriding
    /// `nic.endpoints`. Empty: the node embeds its NIC.
    #[arg(long, env = "SAE_NIC_ENDPOINTS", value_delimiter = ',')]
    nic_endpoints: Option<Vec<String>>,
    /// Log format (`plain` or `json`), overriding the configuration.
    #[arg(long, env = "SAE_LOG_FORMAT")]
    log_format: Option<String>,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

/// The file (or the embedded defaults) with the flags applied, validated as one: a flag's
/// value meets the same checks as the field it overrides.
fn load(cli: &Cli) -> Result<Config, String> {
    let (mut file, base) = match &cli.config {
        Some(path) => FileConfig::read(path).map_err(|e| e.to_string())?,
        None => (FileConfig::default(), PathBuf::from(".")),
    };
    // (config field, flag) pairs set from the command line, to name the flag in errors.
    let mut from_flags: Vec<(&str, &str)> = Vec::new();
    let mut set = |field: &mut String, value: &Option<String>, name: &'static str, flag| {
        if let Some(v) = value {
            *field = v.clone();
            from_flags.push((name, flag));
        }
    };
    set(
        &mut file.diameter.listen,
        &cli.diameter_listen,
        "diameter.listen",
        "--diameter-listen",
    );
    set(
        &mut file.grpc.listen,
        &cli.grpc_listen,
        "grpc.listen",
        "--grpc-listen",
    );
    set(
        &mut file.cops.listen,
        &cli.cops_listen,
        "cops.listen",
        "--cops-listen",
    );
    set(
        &mut file.metrics.listen,
        &cli.metrics_listen,
        "metrics.listen",
        "--metrics-listen",
    );
    set(
        &mut file.log.format,
        &cli.log_format,
        "log.format",
        "--log-format",
    );
    if !cli.join.is_empty() {
        file.cluster.join = cli
            .join
            .iter()
            .map(|j| j.trim().to_owned())
            .filter(|j| !j.is_empty())
            .collect();
        from_flags.push(("cluster.join", "--join"));
    }
    if let Some(endpoints) = &cli.nic_endpoints {
        file.nic.endpoints = endpoints
            .iter()
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect();
        from_flags.push(("nic.endpoints", "--nic-endpoints"));
    }
    if let Some(a) = &cli.advertise {
        file.cluster.advertise = Some(a.clone());
    }
    if let Some(name) = &cli.name {
        file.node.name = if name == "auto" {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .ok_or("--name auto: this machine has no hostname")?
        } else {
            name.clone()
        };
        from_flags.push(("node.name", "--name"));
    }
    if let Some(dir) = &cli.data_dir {
        // Relative to where the node is started, not to the configuration file.
        file.node.data_dir = std::env::current_dir()
            .map_err(|e| format!("--data-dir: no working directory: {e}"))?
            .join(dir);
    }
    file.validate(&base).map_err(|e| {
        let text = e.to_string();
        match from_flags
            .iter()
            .find(|(field, _)| text.starts_with(&format!("{field}:")))
        {
            Some((_, flag)) => format!("{text} (set by {flag})"),
            None => text,
        }
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print and exit 0; a bad flag is a configuration error.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_CONFIG);
        }
    };
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
