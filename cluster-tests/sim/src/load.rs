//! `sae-sim load`: logs N subscribers in over K router connections at a given rate (or as
//! fast as the SAE answers), measures each login's latency (the router queuing the AAR → the
//! router processing the AAA) in an HdrHistogram and reports one JSON object. With `hold`, the routers stay
//! connected afterwards, answering the SAE's requests for the logged-in sessions.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::diameter_router::RouterIdentity;
use crate::endpoint::Endpoint;
use crate::events::SimEvent;
use crate::router_state::RouterConfig;
use crate::sim::{self, Outcome, Plan, RouterHandle, SimConfig};
use crate::subscribers::Templates;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub connect: Endpoint,
    /// Router connections (distinct Origin-Hosts); subscriber `i` uses router `i % routers`.
    pub routers: usize,
    pub subscribers: u64,
    /// Number of the first subscriber (templates).
    pub first: u64,
    /// Logins per second; `None`: saturate (as fast as `concurrency` allows).
    pub rate: Option<f64>,
    /// Most logins awaiting their AAA at once; `None`: no limit.
    pub concurrency: Option<usize>,
    /// Origin-Host of router `r`: `{r}` replaced by its number.
    pub origin_host_template: String,
    pub origin_realm: String,
    pub application: u32,
    pub watchdog_interval: Duration,
    pub request_timeout: Duration,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    pub confirm: bool,
    pub startup_srq: bool,
    pub inactivity: Option<Duration>,
    pub templates: Templates,
    /// Every router event as a JSON line on stderr.
    pub verbose: bool,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// The result line.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoadReport {
    pub mode: &'static str,
    pub logins: u64,
    pub ok: u64,
    pub failed: u64,
    pub elapsed_s: f64,
    /// Successful logins per second of `elapsed_s`.
    pub logins_per_s: f64,
    /// Over every login that got an AAA (successful or not).
    pub latency_us: Latency,
    /// Requested rate; null with `--saturate`.
    pub rate: Option<f64>,
    pub concurrency: Option<usize>,
    pub routers: usize,
    /// Failed logins by Result-Code or by reason (`timeout`, `connection-closed`, …).
    pub failures: BTreeMap<String, u64>,
}

/// Routers still running after the logins (for `--hold`).
pub struct LoadRun {
    handles: Vec<RouterHandle>,
    tasks: Vec<JoinHandle<Outcome>>,
    events: mpsc::UnboundedReceiver<SimEvent>,
    verbose: bool,
}

fn verbose_print(verbose: bool, e: &SimEvent) {
    if verbose {
        eprintln!("{}", e.to_json_line());
    }
}

/// Connects the routers, runs the logins and returns the report with the routers still
/// connected. Errors: a router could not connect (or lost its connection before starting).
pub async fn run(cfg: &LoadConfig) -> Result<(LoadReport, LoadRun), String> {
    let routers = cfg.routers.max(1);
    let (sink, events) = mpsc::unbounded_channel();
    let start_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as u32;
    let mut handles = Vec::with_capacity(routers);
    let mut tasks = Vec::with_capacity(routers);
    for r in 0..routers {
        let origin_host = cfg.origin_host_template.replace("{r}", &r.to_string());
        let mut router = RouterConfig::new(&origin_host, &cfg.origin_realm, cfg.application);
        router.confirm = cfg.confirm;
        router.inactivity = cfg.inactivity;
        router.session_id_high = start_secs;
        let sim_cfg = SimConfig {
            connect: vec![cfg.connect.clone()],
            identity: RouterIdentity {
                origin_host,
                origin_realm: cfg.origin_realm.clone(),
                applications: vec![cfg.application],
                watchdog_interval: cfg.watchdog_interval,
            },
            router,
            reopen: false,
            startup_srq: cfg.startup_srq,
            request_timeout: cfg.request_timeout,
            connect_timeout: cfg.connect_timeout,
            templates: cfg.templates.clone(),
            plan: Plan::None,
            rate: 0.0,
            reconnect: None,
        };
        let (handle, task) = sim::spawn(sim_cfg, sink.clone());
        handles.push(handle);
        tasks.push(task);
    }
    drop(sink);
    let mut run = LoadRun {
        handles,
        tasks,
        events,
        verbose: cfg.verbose,
    };

    // Every router connected (and through its startup SRQ) before the clock starts.
    let mut ready = 0;
    let deadline = Instant::now() + cfg.request_timeout + Duration::from_secs(20);
    while ready < routers {
        let e = tokio::select! {
            e = run.events.recv() => e,
            () = tokio::time::sleep_until(deadline) => {
                run.stop().await;
                return Err("routers not connected in time".into());
            }
        };
        let Some(e) = e else {
            return Err("every router ended before connecting".into());
        };
        verbose_print(cfg.verbose, &e);
        match e {
            SimEvent::Ready { .. } => ready += 1,
            SimEvent::ConnectFailed { addr, error } => {
                run.stop().await;
                return Err(format!("cannot connect to {addr}: {error}"));
            }
            SimEvent::Disconnected { sae, reason } => {
                run.stop().await;
                return Err(format!("{sae} disconnected before the run: {reason}"));
            }
            _ => {}
        }
    }

    let report = logins(cfg, &mut run, routers).await;
    Ok((report, run))
}

async fn logins(cfg: &LoadConfig, run: &mut LoadRun, routers: usize) -> LoadReport {
    let total = cfg.subscribers;
    let concurrency = cfg.concurrency.unwrap_or(usize::MAX).max(1);
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let (mut issued, mut ok, mut failed, mut in_flight) = (0u64, 0u64, 0u64, 0usize);
    let t0 = Instant::now();
    let mut last_done = t0;
    let due = |i: u64| match cfg.rate {
        Some(r) if r > 0.0 => t0 + Duration::try_from_secs_f64(i as f64 / r).unwrap_or_default(),
        _ => t0,
    };
    while ok + failed < total {
        let can_issue = issued < total && in_flight < concurrency;
        let next = can_issue.then(|| due(issued));
        tokio::select! {
            biased;
            e = run.events.recv() => {
                let Some(e) = e else { break };
                verbose_print(cfg.verbose, &e);
                match e {
                    SimEvent::Login { latency_us, .. } => {
                        ok += 1;
                        in_flight = in_flight.saturating_sub(1);
                        hist.saturating_record(latency_us.max(1));
                        last_done = Instant::now();
                    }
                    SimEvent::LoginFailed { result, error, latency_us, .. } => {
                        failed += 1;
                        in_flight = in_flight.saturating_sub(1);
                        if let Some(l) = latency_us {
                            hist.saturating_record(l.max(1));
                        }
                        let key = match (result, error) {
                            (Some(code), _) => code.to_string(),
                            (None, Some(e)) => e.chars().take(80).collect(),
                            (None, None) => "unknown".into(),
                        };
                        *failures.entry(key).or_default() += 1;
                        last_done = Instant::now();
                    }
                    _ => {}
                }
            }
            () = sleep_until_opt(next) => {
                let now = Instant::now();
                let mut batch = 0;
                while issued < total && in_flight < concurrency && due(issued) <= now && batch < 512 {
                    let r = (issued % routers as u64) as usize;
                    let spec = cfg.templates.spec(cfg.first + issued);
                    issued += 1;
                    batch += 1;
                    if run.handles[r].login(spec) {
                        in_flight += 1;
                    } else {
                        failed += 1;
                        *failures.entry("router-ended".into()).or_default() += 1;
                    }
                }
            }
        }
    }
    // Never reached when every login is accounted for; counts what could not be.
    let lost = total.saturating_sub(ok + failed);
    if lost > 0 {
        failed += lost;
        *failures.entry("router-ended".into()).or_default() += lost;
    }
    let elapsed = last_done.saturating_duration_since(t0).as_secs_f64();
    let q = |p: f64| {
        if hist.is_empty() {
            0
        } else {
            hist.value_at_quantile(p)
        }
    };
    LoadReport {
        mode: "load",
        logins: total,
        ok,
        failed,
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
        logins_per_s: if elapsed > 0.0 {
            (ok as f64 / elapsed * 10.0).round() / 10.0
        } else {
            0.0
        },
        latency_us: Latency {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: hist.max(),
        },
        rate: cfg.rate,
        concurrency: cfg.concurrency,
        routers,
        failures,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl LoadRun {
    /// Keeps the routers connected (answering the SAE) until `until` completes or every
    /// router has ended, then disconnects them.
    pub async fn hold(mut self, until: impl Future<Output = ()>) {
        tokio::pin!(until);
        loop {
            tokio::select! {
                e = self.events.recv() => match e {
                    Some(e) => verbose_print(self.verbose, &e),
                    None => break,
                },
                () = &mut until => break,
            }
        }
        self.stop().await;
    }

    /// DPR on every router and wait (bounded) for them to end.
    pub async fn stop(&mut self) {
        for h in &self.handles {
            h.shutdown();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout_at(deadline, t).await;
        }
        while let Ok(e) = self.events.try_recv() {
            verbose_print(self.verbose, &e);
        }
    }
}
