//! `sae-sim`: the router simulator of the SAE (a JSRC/PTSP router, a COPS SBC, a COPS-PR
//! router), for tests, demos and load. Its manual (subcommands, flags, control commands,
//! events, exit status) is the crate's `README.md`; `sae-sim <subcommand> --help` lists the
//! flags.

#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use sae_cops::pep::{AdmissionWhileDown, PepConfig};
use sae_diameter::CloseReason;
use sae_diameter::codes::{DisconnectCause, app};
use sae_sim::control::Control;
use sae_sim::cops_driver::{self, DriverConfig, PepRole, seed_from_clock};
use sae_sim::cops_events::CopsEvent;
use sae_sim::cops_pr::{PrCommand, PrConfig, PrState, PrTemplates};
use sae_sim::cops_sbc::{SBC_CLIENT_TYPES, SbcCommand, SbcConfig, SbcState};
use sae_sim::diameter_router::{RouterConnection, RouterEvent, RouterIdentity};
use sae_sim::endpoint::Endpoint;
use sae_sim::events::SimEvent;
use sae_sim::load::{self, LoadConfig};
use sae_sim::router_state::{DEFAULT_MAX_ATTEMPTS, RouterConfig};
use sae_sim::sim::{self, Outcome, Plan, SimConfig};
use sae_sim::subscribers::{Scenario, Templates};
use serde::Serialize;
use tokio::sync::mpsc;

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
    /// Play a JSRC/PTSP router: subscriber logins, answers to the SAE, accounting, logout;
    /// one JSON event per line on stdout.
    #[command(visible_alias = "jsrc")]
    Router(RouterArgs),
    /// Log N subscribers in and report throughput and latency as one JSON object.
    Load(LoadArgs),
    /// Play an SBC: COPS call admission (PEP), with failover and back-off.
    Sbc(SbcArgs),
    /// Play a COPS-PR router: subscriber provisioning and RFC 3483 usage feedback.
    Copspr(CopsprArgs),
}

fn client_type(s: &str) -> Result<u16, String> {
    let t = s.trim();
    let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u16::from_str_radix(h, 16),
        None => t.parse(),
    };
    v.map_err(|e| format!("client type {s:?}: {e}"))
}

/// Connection options of both COPS roles.
#[derive(Debug, Clone, Args)]
struct CopsConnectArgs {
    /// PDP address or `host:port` name (repeatable: each reconnect tries the next one).
    #[arg(long, required = true)]
    connect: Vec<Endpoint>,
    /// PEPID sent in every OPN.
    #[arg(long)]
    pepid: String,
    /// Longest reconnect delay, seconds.
    #[arg(long, default_value_t = 300.0)]
    backoff_ceiling_secs: f64,
    /// First reconnect delay, seconds (doubling up to the ceiling).
    #[arg(long, default_value_t = 1.0)]
    backoff_initial_secs: f64,
    /// Longest wait for one TCP connection attempt (per address of a name), seconds.
    #[arg(long, default_value_t = 5.0)]
    connect_timeout_secs: f64,
    /// Read control commands on stdin.
    #[arg(long)]
    control: bool,
}

#[derive(Debug, Args)]
struct SbcArgs {
    #[command(flatten)]
    conn: CopsConnectArgs,
    /// 0x800A (PKT-MM3), 0x7926 (proprietary) or 0x7929 (CLF).
    #[arg(long, default_value = "0x800A", value_parser = client_type)]
    client_type: u16,
    /// Admit new calls while the PDP connection is down.
    #[arg(long)]
    allow_while_down: bool,
    /// Calls to place from the first CAT (`call0`, `call1`, …).
    #[arg(long, default_value_t = 0)]
    calls: u64,
    /// Calls per second (0: all at once).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Bandwidth of each call.
    #[arg(long, default_value_t = 64)]
    bandwidth_kbps: u32,
    /// Realm of each call.
    #[arg(long, default_value = "")]
    realm: String,
    /// Hang planned calls up after this many seconds (0: keep them).
    #[arg(long, default_value_t = 0.0)]
    hold_secs: f64,
}

#[derive(Debug, Args)]
struct CopsprArgs {
    #[command(flatten)]
    conn: CopsConnectArgs,
    #[arg(long, default_value = "0x800B", value_parser = client_type)]
    client_type: u16,
    /// Subscriber interfaces to log in from the first CAT.
    #[arg(long, default_value_t = 0)]
    subscribers: u64,
    /// Logins per second (0: all at once).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Number of the first generated interface.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Interface name of subscriber n.
    #[arg(long, default_value = "fastEthernet 3/0.{n}")]
    if_template: String,
    /// Login name of subscriber n.
    #[arg(long, default_value = "user{n}@example.net")]
    user_template: String,
    /// Address of subscriber n is this plus n.
    #[arg(long, default_value = "10.2.0.1")]
    ip_base: Ipv4Addr,
    /// Fail (RPT failure) the installation of policies matching this glob (repeatable).
    #[arg(long)]
    fail_policy: Vec<String>,
    /// Synthetic traffic of each accounted policy.
    #[arg(long, default_value_t = 1000)]
    usage_octets_per_s: u64,
}

/// The Juniper application to announce and use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Application {
    /// Juniper Policy-Control-JSRC, 16777244.
    Jsrc,
    /// Juniper JGx (PTSP), 16777273.
    Ptsp,
}

impl Application {
    fn id(self) -> u32 {
        match self {
            Application::Jsrc => app::JSRC,
            Application::Ptsp => app::PTSP,
        }
    }
}

/// How generated subscribers look.
#[derive(Debug, Clone, Args)]
struct TemplateArgs {
    /// User-Name of subscriber n (the n in curly braces is replaced by its number).
    #[arg(long, default_value = "user{n}@example.net")]
    user_template: String,
    /// Framed-IP-Address of subscriber n is this plus n.
    #[arg(long, default_value = "10.0.0.1")]
    ip_base: Ipv4Addr,
    /// NAS-Port-Id of subscriber n (the n in curly braces is replaced by its number).
    #[arg(long, default_value = "ge-0/0/0.{n}")]
    nas_port_template: String,
    /// Number of the first generated subscriber.
    #[arg(long, default_value_t = 0)]
    first: u64,
}

impl TemplateArgs {
    fn templates(&self) -> Templates {
        Templates {
            user: self.user_template.clone(),
            ip_base: self.ip_base,
            nas_port_id: self.nas_port_template.clone(),
        }
    }
}

#[derive(Debug, Args)]
struct RouterArgs {
    /// SAE address or `host:port` name, resolved at each connection attempt (repeatable:
    /// one connection per SAE).
    #[arg(long, required = true)]
    connect: Vec<Endpoint>,
    #[arg(long, value_enum, default_value = "jsrc")]
    application: Application,
    #[arg(long, default_value = "sim.test.realm")]
    origin_host: String,
    #[arg(long, default_value = "test.realm")]
    origin_realm: String,
    /// RFC 3539 watchdog interval (at least 6).
    #[arg(long, default_value_t = 30)]
    watchdog_secs: u64,
    /// Start the watchdog in REOPEN, as after a failed connection.
    #[arg(long)]
    reopen: bool,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 10.0)]
    timeout_secs: f64,
    /// Longest wait for one TCP connection attempt (per address of a name), seconds; the
    /// other connections, timers and commands go on meanwhile.
    #[arg(long, default_value_t = 5.0)]
    connect_timeout_secs: f64,
    /// Generated subscribers to log in once ready.
    #[arg(long, default_value_t = 0, conflicts_with = "scenario")]
    subscribers: u64,
    /// Logins per second (0: all at once).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    #[command(flatten)]
    templates: TemplateArgs,
    /// Scenario file (TOML): subscribers and timed steps.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// No provisioning-confirmation AAR (Juniper-Request-Type 2) after a login.
    #[arg(long)]
    no_confirm: bool,
    /// No SRQ when the connection comes up.
    #[arg(long)]
    no_startup_srq: bool,
    /// Refuse (PPA 5012) PPRs installing a policy matching this glob (repeatable).
    #[arg(long)]
    fail_ppr: Vec<String>,
    /// Never answer PPRs installing a policy matching this glob (repeatable).
    #[arg(long)]
    drop_ppr: Vec<String>,
    /// Never answer the first N SRQs from the SAEs (a router not ready yet, or one that lost
    /// them): no SRR, no replay, the active SAE unchanged; each is a `request` event with
    /// `dropped` true.
    #[arg(long, default_value_t = 0)]
    drop_srq: u32,
    /// ACR INTERIM period in seconds for accounted policies (0: none).
    #[arg(long, default_value_t = 0)]
    interim_secs: u64,
    /// Log a subscriber out (STR cause 14) after this many idle seconds (0: never).
    #[arg(long, default_value_t = 1800)]
    inactivity_secs: u64,
    /// Read control commands on stdin.
    #[arg(long)]
    control: bool,
    /// DPR and exit after this many seconds.
    #[arg(long)]
    run_secs: Option<f64>,
    /// Reconnect this many seconds after losing (or failing to open) a connection, keeping
    /// the sessions; without it the router exits with its last connection.
    #[arg(long)]
    reconnect_secs: Option<f64>,
    /// Most sends of one request of the router while it is redirected (3006), refused as
    /// too busy (3004), times out or loses its connection (1: never send again).
    #[arg(long, default_value_t = DEFAULT_MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: u32,
    /// First back-off of a held request, milliseconds (doubling up to 8 times this).
    #[arg(long, default_value_t = 250)]
    retry_backoff_ms: u64,
    /// Report requests that time out or lose their connection at once (as failed) instead
    /// of sending them again.
    #[arg(long)]
    no_retry_failures: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("pace").required(true).args(["rate", "saturate"])))]
struct LoadArgs {
    /// SAE address or `host:port` name.
    #[arg(long)]
    connect: Endpoint,
    /// Subscribers to log in.
    #[arg(long)]
    subscribers: u64,
    /// Logins per second.
    #[arg(long)]
    rate: Option<f64>,
    /// As fast as the SAE answers, `--concurrency` at a time.
    #[arg(long)]
    saturate: bool,
    /// Most logins awaiting an AAA at once (default: none with --rate, 256 with --saturate).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Router connections (distinct Origin-Hosts).
    #[arg(long, default_value_t = 1)]
    routers: usize,
    /// Origin-Host of router r (the r in curly braces is replaced by its number).
    #[arg(long, default_value = "load{r}.sim.test.realm")]
    origin_host_template: String,
    #[arg(long, default_value = "test.realm")]
    origin_realm: String,
    #[arg(long, value_enum, default_value = "jsrc")]
    application: Application,
    #[command(flatten)]
    templates: TemplateArgs,
    /// Send the provisioning-confirmation AAR after each login (not timed).
    #[arg(long)]
    confirm: bool,
    /// Each router sends an SRQ when connected, before the run.
    #[arg(long)]
    startup_srq: bool,
    /// Idle logout after this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    inactivity_secs: u64,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 10.0)]
    timeout_secs: f64,
    /// Longest wait for one TCP connection attempt, seconds.
    #[arg(long, default_value_t = 5.0)]
    connect_timeout_secs: f64,
    /// RFC 3539 watchdog interval (at least 6).
    #[arg(long, default_value_t = 30)]
    watchdog_secs: u64,
    /// Stay connected after the run, answering the SAE, until stdin closes or a signal.
    #[arg(long)]
    hold: bool,
    /// Copy every router event to stderr.
    #[arg(long)]
    verbose: bool,
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(10))
}

fn nonzero_secs(s: u64) -> Option<Duration> {
    (s > 0).then(|| Duration::from_secs(s))
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Lines of stdin, read on a plain thread (a blocked read must not hold up the runtime's
/// shutdown); the channel closes at end of input.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    rx
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match Cli::parse().command {
        Cmd::Diameter {
            connect,
            origin_host,
            origin_realm,
            applications,
            watchdog_secs,
            reopen,
            run_secs,
        } => {
            let identity = RouterIdentity {
                origin_host,
                origin_realm,
                applications,
                watchdog_interval: Duration::from_secs(watchdog_secs),
            };
            run_diameter(connect, identity, reopen, run_secs).await
        }
        Cmd::Router(args) => run_router(args).await,
        Cmd::Load(args) => run_load(args).await,
        Cmd::Sbc(args) => run_sbc(args).await,
        Cmd::Copspr(args) => run_copspr(args).await,
    }
}

fn cops_driver_config(conn: &CopsConnectArgs, client_type: u16) -> DriverConfig {
    let mut cfg = DriverConfig::new(
        conn.connect.clone(),
        PepConfig::new(client_type, &conn.pepid),
    );
    cfg.backoff_ceiling = secs(conn.backoff_ceiling_secs.max(0.001));
    cfg.backoff_initial = secs(conn.backoff_initial_secs.max(0.001));
    cfg.connect_timeout = secs(conn.connect_timeout_secs.max(0.001));
    cfg
}

async fn run_sbc(args: SbcArgs) -> ExitCode {
    if !SBC_CLIENT_TYPES.contains(&args.client_type) {
        let error = format!(
            "client type {:#06x} is not an SBC client type (0x800A, 0x7926, 0x7929)",
            args.client_type
        );
        println!("{}", CopsEvent::Error { error }.to_json_line());
        return ExitCode::from(64);
    }
    let sbc = SbcConfig {
        while_down: AdmissionWhileDown {
            allow: args.allow_while_down,
        },
        bandwidth_kbps: args.bandwidth_kbps,
        realm: args.realm.clone(),
        media_streams: 1,
        calls: args.calls,
        rate: args.rate.max(0.0),
        hold: (args.hold_secs > 0.0).then(|| secs(args.hold_secs)),
    };
    let cfg = cops_driver_config(&args.conn, args.client_type);
    let first_handle = (seed_from_clock() as u32 & 0x00ff_ffff).max(1);
    run_cops(
        cfg,
        SbcState::new(sbc, first_handle),
        args.conn.control,
        SbcCommand::parse,
        SbcCommand::Quit,
    )
    .await
}

async fn run_copspr(args: CopsprArgs) -> ExitCode {
    let pr = PrConfig {
        templates: PrTemplates {
            if_name: args.if_template.clone(),
            user: args.user_template.clone(),
            ip_base: args.ip_base,
        },
        subscribers: args.subscribers,
        first: args.first,
        rate: args.rate.max(0.0),
        fail_policy: args.fail_policy.clone(),
        usage_octets_per_s: args.usage_octets_per_s,
        virtual_router: format!("default@{}", args.conn.pepid),
    };
    let cfg = cops_driver_config(&args.conn, args.client_type);
    let first_handle = (seed_from_clock() as u32 & 0x00ff_ffff).max(1);
    run_cops(
        cfg,
        PrState::new(pr, first_handle),
        args.conn.control,
        PrCommand::parse,
        PrCommand::Quit,
    )
    .await
}

/// Runs a COPS role: events printed as JSON lines, commands from stdin (`--control`) or a
/// quit on SIGINT/SIGTERM.
async fn run_cops<R>(
    cfg: DriverConfig,
    role: R,
    control: bool,
    parse: fn(&str) -> Result<Option<R::Command>, String>,
    quit: R::Command,
) -> ExitCode
where
    R: PepRole + Send + 'static,
    R::Command: Clone,
{
    let (sink, mut events) = mpsc::unbounded_channel::<CopsEvent>();
    let printer = tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            println!("{}", e.to_json_line());
        }
    });
    let (tx, rx) = mpsc::unbounded_channel::<R::Command>();
    let input = {
        let sink = sink.clone();
        let quit = quit.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            if control {
                let mut lines = stdin_lines();
                loop {
                    tokio::select! {
                        line = lines.recv() => match line {
                            Some(l) => match parse(&l) {
                                Ok(Some(c)) => {
                                    if tx.send(c).is_err() {
                                        return;
                                    }
                                }
                                Ok(None) => {}
                                Err(error) => {
                                    let _ = sink.send(CopsEvent::Error { error });
                                }
                            },
                            None => break,
                        },
                        () = shutdown_signal() => break,
                    }
                }
            } else {
                shutdown_signal().await;
            }
            let _ = tx.send(quit);
        })
    };
    drop(tx);
    let (_role, outcome) = cops_driver::run(cfg, role, rx, sink.clone()).await;
    input.abort();
    drop(sink);
    let _ = tokio::time::timeout(Duration::from_secs(2), printer).await;
    if outcome.ever_up {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
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

async fn run_diameter(
    connect: SocketAddr,
    identity: RouterIdentity,
    reopen: bool,
    run_secs: Option<u64>,
) -> ExitCode {
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

async fn run_router(args: RouterArgs) -> ExitCode {
    let templates = args.templates.templates();
    let plan = match &args.scenario {
        Some(path) => match Scenario::load(path) {
            Ok(s) => Plan::Scenario(s),
            Err(error) => {
                println!("{}", SimEvent::Error { error }.to_json_line());
                return ExitCode::from(64);
            }
        },
        None if args.subscribers > 0 => Plan::Generated {
            first: args.templates.first,
            count: args.subscribers,
        },
        None => Plan::None,
    };
    let application = args.application.id();
    let mut router = RouterConfig::new(&args.origin_host, &args.origin_realm, application);
    router.confirm = !args.no_confirm;
    router.interim = nonzero_secs(args.interim_secs);
    router.inactivity = nonzero_secs(args.inactivity_secs);
    router.fail_ppr = args.fail_ppr.clone();
    router.drop_ppr = args.drop_ppr.clone();
    router.drop_srq = args.drop_srq;
    router.session_id_high = unix_seconds() as u32;
    router.max_attempts = args.max_attempts;
    router.retry_backoff = Duration::from_millis(args.retry_backoff_ms);
    router.retry_failures = !args.no_retry_failures;
    let cfg = SimConfig {
        connect: args.connect.clone(),
        identity: RouterIdentity {
            origin_host: args.origin_host.clone(),
            origin_realm: args.origin_realm.clone(),
            applications: vec![application],
            watchdog_interval: Duration::from_secs(args.watchdog_secs),
        },
        router,
        reopen: args.reopen,
        startup_srq: !args.no_startup_srq,
        request_timeout: secs(args.timeout_secs),
        connect_timeout: secs(args.connect_timeout_secs.max(0.001)),
        templates,
        plan,
        rate: args.rate.max(0.0),
        reconnect: args.reconnect_secs.map(secs),
    };

    let (sink, mut events) = mpsc::unbounded_channel::<SimEvent>();
    let printer = tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            println!("{}", e.to_json_line());
        }
    });
    let (handle, task) = sim::spawn(cfg, sink.clone());

    let control = args.control.then(|| {
        let mut lines = stdin_lines();
        let handle = handle.clone();
        let sink = sink.clone();
        tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                match Control::parse(&line) {
                    Ok(Some(c)) => {
                        if !handle.control(c) {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(error) => {
                        let _ = sink.send(SimEvent::Error { error });
                    }
                }
            }
            handle.control(Control::Quit);
        })
    });
    let stopper = {
        let handle = handle.clone();
        let run_secs = args.run_secs;
        tokio::spawn(async move {
            let timer = async {
                match run_secs {
                    Some(s) => tokio::time::sleep(secs(s)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = timer => {}
                () = shutdown_signal() => {}
            }
            handle.shutdown();
        })
    };

    let outcome = task.await.unwrap_or(Outcome::Finished {
        requested: false,
        ever_up: false,
    });
    stopper.abort();
    if let Some(c) = control {
        c.abort();
    }
    drop(handle);
    drop(sink);
    let _ = tokio::time::timeout(Duration::from_secs(2), printer).await;
    match outcome {
        Outcome::Finished {
            requested: true,
            ever_up: true,
        } => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

#[derive(Serialize)]
struct LoadError {
    mode: &'static str,
    error: String,
}

#[derive(Serialize)]
struct Holding {
    event: &'static str,
    sessions: u64,
    routers: usize,
}

fn line(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|e| format!("{{\"event\":\"error\",\"error\":\"{e}\"}}"))
}

async fn run_load(args: LoadArgs) -> ExitCode {
    let concurrency = args
        .concurrency
        .or(args.saturate.then_some(256))
        .map(|c| c.max(1));
    let cfg = LoadConfig {
        connect: args.connect,
        routers: args.routers.max(1),
        subscribers: args.subscribers,
        first: args.templates.first,
        rate: if args.saturate { None } else { args.rate },
        concurrency,
        origin_host_template: args.origin_host_template.clone(),
        origin_realm: args.origin_realm.clone(),
        application: args.application.id(),
        watchdog_interval: Duration::from_secs(args.watchdog_secs),
        request_timeout: secs(args.timeout_secs),
        connect_timeout: secs(args.connect_timeout_secs.max(0.001)),
        confirm: args.confirm,
        startup_srq: args.startup_srq,
        inactivity: nonzero_secs(args.inactivity_secs),
        templates: args.templates.templates(),
        verbose: args.verbose,
    };
    let (report, run) = match load::run(&cfg).await {
        Ok(r) => r,
        Err(error) => {
            println!(
                "{}",
                line(&LoadError {
                    mode: "load",
                    error
                })
            );
            return ExitCode::FAILURE;
        }
    };
    println!("{}", line(&report));
    if args.hold {
        let holding = Holding {
            event: "holding",
            sessions: report.ok,
            routers: report.routers,
        };
        println!("{}", line(&holding));
        let mut lines = stdin_lines();
        run.hold(async move {
            tokio::select! {
                () = async { while lines.recv().await.is_some() {} } => {}
                () = shutdown_signal() => {}
            }
        })
        .await;
        println!("{{\"event\":\"released\"}}");
    } else {
        run.hold(async {}).await;
    }
    ExitCode::SUCCESS
}
