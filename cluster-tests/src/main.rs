//! `sae-sim`: router simulator for the SAE.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sae_cluster_tests::diameter_router::{RouterConnection, RouterEvent, RouterIdentity};
use sae_diameter::CloseReason;
use sae_diameter::codes::DisconnectCause;

/// Router simulator for SAE nodes.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Connect as a JSRC/PTSP router: CER/CEA, watchdog, and DPR at the end.
    Diameter {
        /// Server address.
        #[arg(long)]
        connect: SocketAddr,
        #[arg(long, default_value = "sim.test.realm")]
        origin_host: String,
        #[arg(long, default_value = "test.realm")]
        origin_realm: String,
        /// Applications to announce (Application-Id, vendor 2636).
        #[arg(long = "application", default_values_t = [16_777_244u32])]
        applications: Vec<u32>,
        /// RFC 3539 watchdog interval (at least 6).
        #[arg(long, default_value_t = 30)]
        watchdog_secs: u64,
        /// Start the watchdog in REOPEN, as after a failed connection.
        #[arg(long)]
        reopen: bool,
        /// Disconnect (DPR) after this many seconds; run until interrupted without it.
        #[arg(long)]
        run_secs: Option<u64>,
    },
}

fn reason_name(reason: &CloseReason) -> String {
    match reason {
        CloseReason::LocalDisconnect => "local-disconnect".into(),
        CloseReason::PeerDisconnected(cause) => format!("peer-disconnected {cause:?}"),
        CloseReason::CapabilitiesFailed {
            result_code,
            message,
        } => format!("capabilities {result_code} {message}"),
        CloseReason::CapabilitiesTimeout => "capabilities-timeout".into(),
        CloseReason::WatchdogExpired => "watchdog-expired".into(),
        CloseReason::ProtocolViolation(m) => format!("protocol-violation {m}"),
        CloseReason::TransportClosed => "transport-closed".into(),
        CloseReason::Replaced => "replaced".into(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let Cmd::Diameter {
        connect,
        origin_host,
        origin_realm,
        applications,
        watchdog_secs,
        reopen,
        run_secs,
    } = Cli::parse().command;
    let identity = RouterIdentity {
        origin_host,
        origin_realm,
        applications,
        watchdog_interval: Duration::from_secs(watchdog_secs),
    };
    let mut conn = match RouterConnection::connect(connect, &identity, reopen).await {
        Ok(c) => c,
        Err(e) => {
            println!("failed connect {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = async {
        match run_secs {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    let mut connected = false;
    let mut stopping = false;
    loop {
        tokio::select! {
            event = conn.events.recv() => match event {
                Some(RouterEvent::Connected(host)) => {
                    connected = true;
                    println!("connected {host}");
                }
                Some(RouterEvent::Watchdog(state)) => println!("watchdog {}", state.name()),
                Some(RouterEvent::Closed(reason)) => {
                    let ok = connected && matches!(reason, CloseReason::LocalDisconnect);
                    if connected {
                        println!("disconnected {}", reason_name(&reason));
                    } else {
                        println!("failed {}", reason_name(&reason));
                    }
                    return if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
                }
                None => return ExitCode::FAILURE,
            },
            () = &mut stop, if !stopping => {
                stopping = true;
                conn.disconnect(DisconnectCause::Rebooting).await;
            }
        }
    }
}
