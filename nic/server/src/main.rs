//! `sae-nic`: the standalone network information collector of an SAE cluster.
//!
//! Nodes configured with `[nic] endpoints` publish their bindings here and resolve subscriber
//! references here; it holds nothing on disk: after a restart every node replays its bindings.
//! Prints `listening grpc <addr>`, `listening metrics <addr>`, then `ready`. SIGTERM or
//! Ctrl-C: exit 0.

#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use sae_nic_server::config::{Config, FileConfig, LogFormat};
use sae_nic_server::metrics::Metrics;
use sae_nic_server::{BatchOutcome, Hooks, Nic, NicService};

/// Exit status for a configuration that cannot be used (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

/// SAE cluster NIC: resolves subscriber references to the SAE nodes and sessions that hold them.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML). Without one, the embedded defaults apply.
    #[arg(short, long, env = "SAE_NIC_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC listen address, overriding the configuration.
    #[arg(long, env = "SAE_NIC_GRPC_LISTEN")]
    grpc_listen: Option<String>,
    /// Prometheus endpoint listen address, overriding the configuration.
    #[arg(long, env = "SAE_NIC_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Log format (`plain` or `json`), overriding the configuration.
    #[arg(long, env = "SAE_NIC_LOG_FORMAT")]
    log_format: Option<String>,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn load(cli: &Cli) -> Result<Config, String> {
    let mut file = match &cli.config {
        Some(path) => FileConfig::read(path).map_err(|e| e.to_string())?,
        None => FileConfig::default(),
    };
    let mut flags = Vec::new();
    if let Some(v) = &cli.grpc_listen {
        file.grpc.listen = v.clone();
        flags.push(("grpc.listen", "--grpc-listen"));
    }
    if let Some(v) = &cli.metrics_listen {
        file.metrics.listen = v.clone();
        flags.push(("metrics.listen", "--metrics-listen"));
    }
    if let Some(v) = &cli.log_format {
        file.log.format = v.clone();
        flags.push(("log.format", "--log-format"));
    }
    file.validate().map_err(|e| {
        let text = e.to_string();
        match flags
            .iter()
            .find(|(f, _)| text.starts_with(&format!("{f}:")))
        {
            Some((_, flag)) => format!("{text} (set by {flag})"),
            None => text,
        }
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
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
            eprintln!("sae-nic: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cli.check_config {
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    init_logging(config.log_format, &config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sae-nic: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sae-nic: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}

/// Names from the publishers, counts into the metrics.
struct Standalone {
    nic: Arc<Nic>,
    metrics: Arc<Metrics>,
}

impl Hooks for Standalone {
    fn node_name(&self, node: u64) -> Option<String> {
        self.nic.node_name(node)
    }

    fn published(&self, outcome: BatchOutcome) {
        self.metrics.published(outcome);
    }

    fn resolved(&self, outcome: &'static str) {
        self.metrics.resolved(outcome);
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    use anyhow::Context;
    let nic = Arc::new(Nic::new(config.resolution.clone()));
    let metrics = Arc::new(Metrics::new(nic.clone()));
    let grpc = tokio::net::TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| format!("gRPC listener {}", config.grpc_listen))?;
    let metrics_listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("metrics listener {}", config.metrics_listen))?;
    let grpc_addr = grpc.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<sae_proto::v1::nic_server::NicServer<NicService>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(sae_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // v1 and v1alpha: grpcurl before 1.9 asks for v1alpha only.
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let hooks = Arc::new(Standalone {
        nic: nic.clone(),
        metrics: metrics.clone(),
    });
    let service = NicService::new(nic.clone(), hooks).server();
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(
            // TCP_NODELAY: no delayed-ACK wait after each small answer.
            tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true)),
            shutdown_signal(),
        );
    let metrics_task = tokio::spawn(sae_nic_server::metrics::serve(metrics_listener, metrics));
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening grpc {grpc_addr}")?;
        writeln!(out, "listening metrics {metrics_addr}")?;
        writeln!(out, "ready")?;
        out.flush()?;
    }
    tracing::info!(grpc = %grpc_addr, metrics = %metrics_addr, scenario = nic.scenario().name(), "NIC serving");
    server.await.context("gRPC server")?;
    metrics_task.abort();
    tracing::info!("NIC stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
