//! The tokio side of the simulated router: connections to the SAEs (each driven by
//! `sae_diameter::tokio::connection::drive`), the main loop that owns the timers, the login
//! plan and the control commands, and the glue to the sans-IO [`RouterState`].
//!
//! Threads of control:
//! - one connection task per SAE. Its hooks answer the SAE's requests synchronously from the
//!   shared [`RouterState`] (a mutex held for the length of one decision) and report what
//!   happened; the follow-up requests that decisions queue are sent by the main loop.
//! - the main loop ([`spawn`]): takes [`Input`]s (answers, connection changes, logins, control
//!   commands), ticks the state's timers, paces the login plan and scenario steps, and sends
//!   the state's [`Outgoing`] requests to the connection of the SAE they are addressed to, in
//!   order. Answers come back as [`Input::Answer`].
//! - one task per connection attempt: it resolves and connects within
//!   [`SimConfig::connect_timeout`] and reports back as [`Input::Connected`], so an attempt
//!   that hangs (SYNs to a node that is gone go unanswered) holds up neither the timers nor
//!   the other connections.
//!
//! Events are sent to an [`EventSink`] while the state's lock is held, so their order is the
//! order in which the router decided things.
//!
//! An SAE takes requests only while the connection's RFC 3539 watchdog is OKAY: the state
//! forgets it (as if disconnected) when the watchdog turns SUSPECT or starts in REOPEN, and
//! learns it again on OKAY, so that requests fail over to the other SAEs meanwhile.
//!
//! Reconnection (`reconnect`) honours the Disconnect-Cause of the SAE's DPR (RFC 6733 section
//! 5.4.3): REBOOTING (what a node sends when it stops) and every other end of a connection are
//! retried after the configured delay; BUSY after [`BUSY_BACKOFF`] at least;
//! DO_NOT_WANT_TO_TALK_TO_YOU, which asks not to reconnect without a need, only after
//! [`UNWANTED_BACKOFF`] or when told ([`RouterHandle::reconnect`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sae_diameter::codes::DisconnectCause;
use sae_diameter::peer::RequestFailure;
use sae_diameter::tokio::connection::{self, Command, ConnectionHandle, ConnectionHooks};
use sae_diameter::watchdog::WatchdogState;
use sae_diameter::{CloseReason, Message, Peer, PeerInfo};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

use crate::control::Control;
use crate::diameter_router::{RouterIdentity, peer_config};
use crate::endpoint::Endpoint;
use crate::events::SimEvent;
use crate::router_state::{
    AcctType, CAUSE_IDLE_TIMEOUT, CAUSE_LOGOUT, LoginSpec, Outgoing, RouterConfig, RouterState,
    SrqReason,
};
use crate::subscribers::{Scenario, StepAction, Templates};

/// Where events go (printed as JSON lines by `sae-sim router`, aggregated by `sae-sim load`).
pub type EventSink = mpsc::UnboundedSender<SimEvent>;

/// How the simulated router connects and behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The SAEs to connect to (`host:port` names are resolved at each attempt). Requests go
    /// to the active one (the remembered Juniper-Last-Origin-Host when connected, else the
    /// first connection that came up).
    pub connect: Vec<Endpoint>,
    /// Origin-Host/Realm, the one announced application, the watchdog interval.
    pub identity: RouterIdentity,
    pub router: RouterConfig,
    /// Start the watchdog in REOPEN.
    pub reopen: bool,
    /// Send an SRQ (reason `startup`) when the first connection is up; `ready` follows its SRR.
    pub startup_srq: bool,
    /// How long to wait for the answer to each request.
    pub request_timeout: Duration,
    /// How long one connection attempt may take (per address of a name) before it counts as
    /// failed; attempts run beside the main loop, so a hanging one holds up nothing else.
    pub connect_timeout: Duration,
    /// Subscribers used for `login <user>` without address and for the plan.
    pub templates: Templates,
    /// Logins to run once ready.
    pub plan: Plan,
    /// Plan pacing, logins per second; 0: all at once.
    pub rate: f64,
    /// Reconnect this long after a connection ends (or fails) without being asked to (longer
    /// after a DPR with Disconnect-Cause BUSY or DO_NOT_WANT_TO_TALK_TO_YOU, see
    /// [`reconnect_delay`]); the sessions are kept. `None`: the router ends with its last
    /// connection.
    pub reconnect: Option<Duration>,
}

/// The logins a router runs by itself once ready.
#[derive(Debug, Clone, Default)]
pub enum Plan {
    /// None (control commands or an external driver log subscribers in).
    #[default]
    None,
    /// Subscribers `first .. first + count` from the templates.
    Generated { first: u64, count: u64 },
    /// The subscribers of a scenario file, with their steps.
    Scenario(Scenario),
}

impl Plan {
    fn len(&self) -> usize {
        match self {
            Plan::None => 0,
            Plan::Generated { count, .. } => usize::try_from(*count).unwrap_or(usize::MAX),
            Plan::Scenario(s) => s.subscribers.len(),
        }
    }

    fn spec(&self, index: usize, templates: &Templates) -> Option<LoginSpec> {
        match self {
            Plan::None => None,
            Plan::Generated { first, .. } => Some(templates.spec(first + index as u64)),
            Plan::Scenario(s) => s.spec(index, templates),
        }
    }
}

/// What the main loop reacts to.
#[derive(Debug)]
pub enum Input {
    /// A hook queued requests or events: flush them.
    Flush,
    /// The answer (or failure) of an outgoing request.
    Answer {
        token: u64,
        result: Result<Message, RequestFailure>,
    },
    /// Attempt `attempt` to open connection `link` ended: the TCP connection and the address
    /// it reached, or why there is none.
    Connected {
        link: usize,
        attempt: u64,
        result: Result<(TcpStream, SocketAddr), String>,
    },
    /// Connection `link` is open to the SAE `host`.
    Up { link: usize, host: String },
    /// Connection `link` ended (or could not be opened), and why.
    Closed { link: usize, reason: CloseReason },
    /// Try every connection that is down now, whatever its back-off.
    Reconnect,
    /// Log a subscriber in.
    Login(LoginSpec),
    /// A control command. Commands and logins that arrive before `ready` wait for it, in order.
    Control(Control),
    /// Close every connection with DPR now, ready or not (signals, `--run-secs`).
    Shutdown,
}

/// How the main loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every connection closed; `requested`: because the router was told to (quit, dpr,
    /// drop), not because the SAE or the network ended it.
    Finished { requested: bool, ever_up: bool },
    /// No connection could be opened.
    ConnectFailed,
}

/// Talks to a running router.
#[derive(Debug, Clone)]
pub struct RouterHandle {
    tx: mpsc::UnboundedSender<Input>,
}

impl RouterHandle {
    /// Sends an input; false if the router has ended.
    pub fn send(&self, input: Input) -> bool {
        self.tx.send(input).is_ok()
    }

    /// A control command; false if the router has ended.
    pub fn control(&self, c: Control) -> bool {
        self.send(Input::Control(c))
    }

    /// Logs a subscriber in; false if the router has ended.
    pub fn login(&self, spec: LoginSpec) -> bool {
        self.send(Input::Login(spec))
    }

    /// DPR on every connection now; false if the router has ended.
    pub fn shutdown(&self) -> bool {
        self.send(Input::Shutdown)
    }

    /// Reconnects every connection that is down now (also one an SAE asked not to come back
    /// to); false if the router has ended.
    pub fn reconnect(&self) -> bool {
        self.send(Input::Reconnect)
    }
}

/// [`SimConfig::connect_timeout`] of `sae-sim router` and `sae-sim load` by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Least back-off after a DPR with Disconnect-Cause BUSY.
pub const BUSY_BACKOFF: Duration = Duration::from_secs(30);
/// Least back-off after a DPR with Disconnect-Cause DO_NOT_WANT_TO_TALK_TO_YOU.
pub const UNWANTED_BACKOFF: Duration = Duration::from_secs(600);

/// How long to wait before reconnecting after a connection ended for `reason`, with `base`
/// the configured delay. RFC 6733 section 5.4.3: after REBOOTING a peer may reconnect (at
/// once: the node sends it when it stops, and is back soon); after BUSY and
/// DO_NOT_WANT_TO_TALK_TO_YOU it should not, unless it has a need to. A router with
/// subscribers always has one eventually, so these back off (ten and sixty times `base`, at
/// least [`BUSY_BACKOFF`] and [`UNWANTED_BACKOFF`]) rather than give the SAE up.
pub fn reconnect_delay(base: Duration, reason: Option<&CloseReason>) -> Duration {
    match reason {
        Some(CloseReason::PeerDisconnected(Some(DisconnectCause::Busy))) => {
            base.saturating_mul(10).max(BUSY_BACKOFF)
        }
        Some(CloseReason::PeerDisconnected(Some(DisconnectCause::DoNotWantToTalkToYou))) => {
            base.saturating_mul(60).max(UNWANTED_BACKOFF)
        }
        _ => base,
    }
}

fn lock(state: &Mutex<RouterState>) -> MutexGuard<'_, RouterState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_std() -> std::time::Instant {
    Instant::now().into_std()
}

/// The `disconnected` reason of a close.
pub fn close_reason_text(reason: &CloseReason) -> String {
    match reason {
        CloseReason::LocalDisconnect => "local-disconnect".into(),
        CloseReason::PeerDisconnected(cause) => match cause {
            Some(c) => format!("peer-disconnected {c:?}"),
            None => "peer-disconnected".into(),
        },
        CloseReason::CapabilitiesFailed {
            result_code,
            message,
        } => format!("capabilities {result_code} {message}"),
        CloseReason::CapabilitiesTimeout => "capabilities-timeout".into(),
        CloseReason::WatchdogExpired => "watchdog-expired".into(),
        CloseReason::ProtocolViolation(m) => format!("protocol-violation {m}"),
        CloseReason::TransportClosed => "transport-closed".into(),
        // The simulator's `drop` closes a connection this way.
        CloseReason::Replaced => "dropped".into(),
    }
}

/// The hooks of one SAE connection.
struct LinkHooks {
    link: usize,
    /// The `--connect` argument, as events name it.
    addr: String,
    application: u32,
    state: Arc<Mutex<RouterState>>,
    sink: EventSink,
    input: mpsc::UnboundedSender<Input>,
    /// The SAE's Origin-Host and Origin-Realm, once capabilities are exchanged.
    host: Option<String>,
    realm: String,
    early_watchdog: Option<WatchdogState>,
    /// The state knows the SAE (watchdog OKAY): requests may be addressed to it.
    usable: bool,
}

impl LinkHooks {
    fn drain_events(&self, st: &mut RouterState) {
        while let Some(e) = st.poll_event() {
            let _ = self.sink.send(e);
        }
    }
}

impl ConnectionHooks for LinkHooks {
    fn capabilities(&mut self, _info: &PeerInfo) -> Result<(), (u32, String)> {
        Ok(())
    }

    fn up(&mut self, info: &PeerInfo) {
        let host = info.capabilities.origin_host.clone();
        self.realm = info.capabilities.origin_realm.clone();
        // Reopening (RFC 3539 REOPEN): usable once the watchdog is OKAY.
        let early = self.early_watchdog.take();
        self.usable = early.is_none_or(|s| s == WatchdogState::Okay);
        {
            let mut st = lock(&self.state);
            if self.usable {
                st.sae_up(&host, &self.realm);
            }
            let _ = self.sink.send(SimEvent::Connected {
                sae: host.clone(),
                realm: self.realm.clone(),
                addr: self.addr.clone(),
                application: self.application,
            });
            if let Some(state) = early {
                let _ = self.sink.send(SimEvent::Watchdog {
                    sae: host.clone(),
                    state: state.name().into(),
                });
            }
        }
        self.host = Some(host.clone());
        if self.usable {
            let _ = self.input.send(Input::Up {
                link: self.link,
                host,
            });
        }
    }

    fn request(&mut self, request: Message) -> Message {
        let via = self
            .host
            .clone()
            .or_else(|| request.origin_host().map(str::to_owned))
            .unwrap_or_default();
        let answer = {
            let mut st = lock(&self.state);
            let answer = st.handle_request(now_std(), &via, &request);
            self.drain_events(&mut st);
            answer
        };
        let _ = self.input.send(Input::Flush);
        // The driver sends whatever this hook returns and has no "no answer" outcome; it
        // refuses (and logs) a message with the R bit set, so handing the request back is
        // how a `--drop-ppr` PPR stays unanswered.
        answer.unwrap_or(request)
    }

    fn watchdog(&mut self, state: WatchdogState) {
        match &self.host {
            Some(host) => {
                let host = host.clone();
                let mut st = lock(&self.state);
                let _ = self.sink.send(SimEvent::Watchdog {
                    sae: host.clone(),
                    state: state.name().into(),
                });
                match state {
                    // Back (failback, or REOPEN done): requests may go to this SAE again.
                    WatchdogState::Okay if !self.usable => {
                        self.usable = true;
                        st.sae_up(&host, &self.realm);
                        drop(st);
                        let _ = self.input.send(Input::Up {
                            link: self.link,
                            host,
                        });
                    }
                    // Failover: the peer refuses requests now; the state sends them elsewhere.
                    WatchdogState::Suspect | WatchdogState::Reopen if self.usable => {
                        self.usable = false;
                        st.sae_down(&host);
                    }
                    _ => {}
                }
            }
            // The peer reports the watchdog's first state just before the connection is up:
            // reported after `connected`.
            None => self.early_watchdog = Some(state),
        }
    }

    fn closed(&mut self, reason: &CloseReason) {
        {
            let mut st = lock(&self.state);
            let event = match &self.host {
                Some(host) => {
                    st.sae_down(host);
                    SimEvent::Disconnected {
                        sae: host.clone(),
                        reason: close_reason_text(reason),
                    }
                }
                None => SimEvent::ConnectFailed {
                    addr: self.addr.clone(),
                    error: close_reason_text(reason),
                },
            };
            let _ = self.sink.send(event);
        }
        let _ = self.input.send(Input::Closed {
            link: self.link,
            reason: reason.clone(),
        });
    }
}

struct Link {
    addr: Endpoint,
    handle: Option<ConnectionHandle>,
    host: Option<String>,
    /// When to try connecting again.
    retry_at: Option<Instant>,
    /// The connection attempt under way.
    connecting: Option<Connecting>,
    /// Connection attempts so far (numbers them, so that a late outcome of an abandoned
    /// attempt is recognised).
    attempts: u64,
}

impl Link {
    fn new(addr: Endpoint) -> Link {
        Link {
            addr,
            handle: None,
            host: None,
            retry_at: None,
            connecting: None,
            attempts: 0,
        }
    }

    /// Neither connected nor connecting.
    fn idle(&self) -> bool {
        self.handle.is_none() && self.connecting.is_none()
    }
}

/// A connection attempt running in a task of its own.
struct Connecting {
    attempt: u64,
    /// Start the connection's watchdog in REOPEN.
    reopen: bool,
    task: AbortHandle,
}

/// The main loop's state.
struct Driver {
    cfg: SimConfig,
    state: Arc<Mutex<RouterState>>,
    sink: EventSink,
    tx: mpsc::UnboundedSender<Input>,
    rx: mpsc::UnboundedReceiver<Input>,
    links: Vec<Link>,
    /// A TCP connection was opened at least once.
    ever_connected: bool,
    ever_up: bool,
    ready: bool,
    startup_srq_pending: bool,
    close_requested: bool,
    /// Logins and control commands received before `ready`.
    held: Vec<Input>,
    /// `quit`/`dpr`: DPR once no request is awaiting an answer, or at this deadline.
    draining: Option<Instant>,
    // the plan
    plan_next: usize,
    plan_total: usize,
    next_login_at: Option<Instant>,
    plan_in_flight: HashSet<String>,
    plan_ok: u64,
    plan_failed: u64,
    plan_reported: bool,
    control_n: u64,
    // scenario steps: (due, sequence, subscriber index, step index)
    steps: BinaryHeap<Reverse<(Instant, u64, usize, usize)>>,
    step_seq: u64,
    scenario_users: HashMap<String, usize>,
}

/// Starts a router: connects to every SAE and runs its main loop in a task.
pub fn spawn(cfg: SimConfig, sink: EventSink) -> (RouterHandle, JoinHandle<Outcome>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(Mutex::new(RouterState::new(cfg.router.clone())));
    let scenario_users = match &cfg.plan {
        Plan::Scenario(s) => s
            .subscribers
            .iter()
            .enumerate()
            .map(|(i, sub)| (sub.user.clone(), i))
            .collect(),
        _ => HashMap::new(),
    };
    let control_n = match &cfg.plan {
        Plan::Generated { first, count } => first + count,
        Plan::Scenario(s) => s.subscribers.len() as u64,
        Plan::None => 0,
    };
    let driver = Driver {
        plan_total: cfg.plan.len(),
        cfg,
        state,
        sink,
        tx: tx.clone(),
        rx,
        links: Vec::new(),
        ever_connected: false,
        ever_up: false,
        ready: false,
        startup_srq_pending: false,
        close_requested: false,
        held: Vec::new(),
        draining: None,
        plan_next: 0,
        next_login_at: None,
        plan_in_flight: HashSet::new(),
        plan_ok: 0,
        plan_failed: 0,
        plan_reported: false,
        control_n,
        steps: BinaryHeap::new(),
        step_seq: 0,
        scenario_users,
    };
    (RouterHandle { tx }, tokio::spawn(driver.run()))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    /// Starts attempt to open connection `link` in a task of its own, so that timers,
    /// answers and the other connections go on meanwhile; the outcome comes back as
    /// [`Input::Connected`]. `reopen` starts the connection's watchdog in REOPEN.
    fn start_connect(&mut self, link: usize, reopen: bool) {
        let timeout = self.cfg.connect_timeout;
        let tx = self.tx.clone();
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        l.attempts += 1;
        let attempt = l.attempts;
        let to = l.addr.clone();
        let task = tokio::spawn(async move {
            let result = to.connect_within(timeout).await.map_err(|e| e.to_string());
            let _ = tx.send(Input::Connected {
                link,
                attempt,
                result,
            });
        });
        l.connecting = Some(Connecting {
            attempt,
            reopen,
            task: task.abort_handle(),
        });
    }

    /// The outcome of a connection attempt: the connection is driven from now on, or the
    /// next attempt is planned.
    fn on_connected(
        &mut self,
        link: usize,
        attempt: u64,
        result: Result<(TcpStream, SocketAddr), String>,
    ) {
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        // An attempt given up (closing) may still report: its connection is dropped.
        let Some(connecting) = l.connecting.take_if(|c| c.attempt == attempt) else {
            return;
        };
        if self.close_requested {
            return;
        }
        let to = l.addr.to_string();
        let opened = result.and_then(|(stream, addr)| {
            let local_ip = stream.local_addr().map_err(|e| e.to_string())?.ip();
            Ok((stream, addr, local_ip))
        });
        match opened {
            Ok((stream, addr, local_ip)) => {
                self.ever_connected = true;
                let handle = self.drive(link, stream, addr, local_ip, connecting.reopen);
                if let Some(l) = self.links.get_mut(link) {
                    l.handle = Some(handle);
                }
            }
            Err(error) => {
                let _ = self.sink.send(SimEvent::ConnectFailed { addr: to, error });
                self.schedule_reconnect(link, None);
            }
        }
    }

    /// Runs the Diameter peer of connection `link` over `stream` in a task of its own.
    fn drive(
        &mut self,
        link: usize,
        stream: TcpStream,
        addr: SocketAddr,
        local_ip: std::net::IpAddr,
        reopen: bool,
    ) -> ConnectionHandle {
        let mut config = peer_config(&self.cfg.identity, local_ip);
        config.request_timeout = self.cfg.request_timeout;
        let seed = (u64::from(std::process::id()) << 32)
            ^ (u64::from(addr.port()) << 8)
            ^ link as u64
            ^ u64::from(self.cfg.router.session_id_high);
        let peer = Peer::new(Arc::new(config), seed, reopen);
        let hooks = LinkHooks {
            link,
            addr: self
                .links
                .get(link)
                .map(|l| l.addr.to_string())
                .unwrap_or_default(),
            application: self.cfg.router.application,
            state: self.state.clone(),
            sink: self.sink.clone(),
            input: self.tx.clone(),
            host: None,
            realm: String::new(),
            early_watchdog: None,
            usable: false,
        };
        let (handle, commands) = connection::channel(addr);
        tokio::spawn(connection::drive(stream, peer, hooks, commands));
        handle
    }

    async fn run(mut self) -> Outcome {
        self.links = self.cfg.connect.iter().cloned().map(Link::new).collect();
        for i in 0..self.links.len() {
            self.start_connect(i, self.cfg.reopen);
        }
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut grace: Option<Instant> = None;
        loop {
            if self.links.iter().all(Link::idle)
                && (self.close_requested || self.cfg.reconnect.is_none())
            {
                if !self.ever_connected && !self.close_requested {
                    return Outcome::ConnectFailed;
                }
                // Every connection is gone: held requests have nowhere to go (reported as
                // they are now); wait (briefly) for the failures of the requests that were
                // in flight, so that their events are reported.
                if lock(&self.state).held_requests() > 0 {
                    lock(&self.state).abandon_held(now_std());
                    self.flush().await;
                }
                let pending = lock(&self.state).pending_requests();
                let deadline =
                    *grace.get_or_insert_with(|| Instant::now() + Duration::from_secs(1));
                if pending == 0 || Instant::now() >= deadline {
                    break;
                }
            }
            if let Some(deadline) = self.draining
                && (lock(&self.state).pending_requests() == 0 || Instant::now() >= deadline)
            {
                self.draining = None;
                self.close_all(false).await;
            }
            let plan_at = self.next_login_at.filter(|_| self.ready);
            let step_at = self.steps.peek().map(|Reverse((t, ..))| *t);
            let retry_at = self.links.iter().filter_map(|l| l.retry_at).min();
            tokio::select! {
                input = self.rx.recv() => match input {
                    Some(input) => self.on_input(input).await,
                    None => break,
                },
                _ = tick.tick() => lock(&self.state).handle_timeout(now_std()),
                () = sleep_until(plan_at) => self.plan_due(),
                () = sleep_until(step_at) => self.steps_due(),
                () = sleep_until(retry_at) => self.reconnect_due(),
                () = sleep_until(grace.or(self.draining)) => {}
            }
            self.flush().await;
            if self.ready && !self.held.is_empty() {
                for input in std::mem::take(&mut self.held) {
                    self.on_input(input).await;
                    self.flush().await;
                }
            }
        }
        Outcome::Finished {
            requested: self.close_requested,
            ever_up: self.ever_up,
        }
    }

    async fn on_input(&mut self, input: Input) {
        match input {
            Input::Flush => {}
            Input::Connected {
                link,
                attempt,
                result,
            } => self.on_connected(link, attempt, result),
            Input::Answer { token, result } => {
                lock(&self.state).handle_answer(now_std(), token, result);
            }
            Input::Up { link, host } => {
                self.ever_up = true;
                if let Some(l) = self.links.get_mut(link) {
                    l.host = Some(host.clone());
                }
                if !self.ready && !self.startup_srq_pending {
                    if self.cfg.startup_srq {
                        self.startup_srq_pending = true;
                        if let Err(e) = lock(&self.state).send_srq(SrqReason::Startup) {
                            self.startup_srq_pending = false;
                            let _ = self.sink.send(SimEvent::Error { error: e });
                        }
                    }
                    if !self.startup_srq_pending {
                        let state = self.state.clone();
                        let _order = lock(&state);
                        self.become_ready(host);
                    }
                }
            }
            Input::Closed { link, reason } => {
                if let Some(l) = self.links.get_mut(link) {
                    l.handle = None;
                    l.host = None;
                }
                self.schedule_reconnect(link, Some(&reason));
            }
            Input::Reconnect => {
                let now = Instant::now();
                for i in 0..self.links.len() {
                    if self.links[i].idle() && !self.close_requested {
                        self.links[i].retry_at = Some(now);
                        let _ = self.sink.send(SimEvent::Reconnecting {
                            addr: self.links[i].addr.to_string(),
                            after_s: 0.0,
                        });
                    }
                }
            }
            Input::Login(_) | Input::Control(_) if !self.ready => self.held.push(input),
            Input::Login(spec) => {
                lock(&self.state).login(now_std(), spec);
            }
            Input::Shutdown => {
                let _ = self.sink.send(SimEvent::Control {
                    command: "shutdown".into(),
                    detail: None,
                });
                self.close_all(false).await;
            }
            Input::Control(c) => match self.control(c) {
                Some(true) => self.close_all(true).await,
                Some(false) => {
                    // Graceful: let the requests in flight be answered first.
                    self.close_requested = true;
                    self.next_login_at = None;
                    self.draining = Some(Instant::now() + self.cfg.request_timeout);
                }
                None => {}
            },
        }
    }

    /// With `reconnect`, plans the next attempt for connection `link` (unless closing), after
    /// the delay `reason` calls for ([`reconnect_delay`]; `None`: the connection could not
    /// be opened).
    fn schedule_reconnect(&mut self, link: usize, reason: Option<&CloseReason>) {
        let Some(base) = self.cfg.reconnect else {
            return;
        };
        let after = reconnect_delay(base, reason);
        if self.close_requested {
            return;
        }
        if let Some(l) = self.links.get_mut(link) {
            l.retry_at = Some(Instant::now() + after);
            let _ = self.sink.send(SimEvent::Reconnecting {
                addr: l.addr.to_string(),
                after_s: after.as_secs_f64(),
            });
        }
    }

    fn reconnect_due(&mut self) {
        let now = Instant::now();
        let due: Vec<usize> = (0..self.links.len())
            .filter(|&i| self.links[i].retry_at.is_some_and(|t| t <= now))
            .collect();
        for i in due {
            self.links[i].retry_at = None;
            if self.close_requested || !self.links[i].idle() {
                continue;
            }
            // A new connection after a failed one: RFC 3539 would start it in REOPEN, but the
            // SAE's first message (SRQ) must be served at once, so the watchdog starts afresh.
            self.start_connect(i, false);
        }
    }

    /// Emits `ready` and starts the plan. Called with the state lock held (event order).
    fn become_ready(&mut self, sae: String) {
        self.ready = true;
        let _ = self.sink.send(SimEvent::Ready { sae });
        if self.plan_total > 0 {
            self.next_login_at = Some(Instant::now());
        }
    }

    /// Applies a control command; `Some(abrupt)` asks to close every connection (`drop`:
    /// abruptly, `quit`/`dpr`: with DPR once the requests in flight are answered).
    fn control(&mut self, c: Control) -> Option<bool> {
        let now = now_std();
        let state = self.state.clone();
        let mut st = lock(&state);
        let result: Result<(), String> = match c {
            Control::Login {
                user,
                ip,
                nas_port_id,
            } => {
                let n = self.control_n;
                self.control_n += 1;
                let generated = self.cfg.templates.spec(n);
                st.login(
                    now,
                    LoginSpec {
                        user,
                        ip: ip.unwrap_or(generated.ip),
                        nas_port_id: nas_port_id.unwrap_or(generated.nas_port_id),
                        n: Some(n),
                    },
                );
                Ok(())
            }
            Control::Logout(who) => st.logout(now, &who, CAUSE_LOGOUT),
            Control::Idle(who) => st.logout(now, &who, CAUSE_IDLE_TIMEOUT),
            Control::Acct(who, kind) => st.account(now, &who, kind),
            Control::Touch(who) => st.touch(now, &who).map(|sid| {
                let _ = self.sink.send(SimEvent::Control {
                    command: "touch".into(),
                    detail: Some(sid),
                });
            }),
            Control::Srq => st.send_srq(SrqReason::Control),
            Control::StrUnknown(sid) => st.str_unchecked(&sid),
            Control::FailPpr(glob) => {
                let mut list = st.config().fail_ppr.clone();
                match glob {
                    Some(g) => list.push(g),
                    None => list.clear(),
                }
                let _ = self.sink.send(SimEvent::Control {
                    command: "fail-ppr".into(),
                    detail: Some(list.join(" ")),
                });
                st.set_fail_ppr(list);
                Ok(())
            }
            Control::DropPpr(glob) => {
                let mut list = st.config().drop_ppr.clone();
                match glob {
                    Some(g) => list.push(g),
                    None => list.clear(),
                }
                let _ = self.sink.send(SimEvent::Control {
                    command: "drop-ppr".into(),
                    detail: Some(list.join(" ")),
                });
                st.set_drop_ppr(list);
                Ok(())
            }
            Control::DropSrq(n) => {
                st.set_drop_srq(n);
                let _ = self.sink.send(SimEvent::Control {
                    command: "drop-srq".into(),
                    detail: Some(n.to_string()),
                });
                Ok(())
            }
            Control::List => {
                st.list(now);
                Ok(())
            }
            Control::Drop | Control::Dpr | Control::Quit => {
                let name = match c {
                    Control::Drop => "drop",
                    Control::Dpr => "dpr",
                    _ => "quit",
                };
                let _ = self.sink.send(SimEvent::Control {
                    command: name.into(),
                    detail: None,
                });
                return Some(matches!(c, Control::Drop));
            }
        };
        if let Err(error) = result {
            let _ = self.sink.send(SimEvent::Error { error });
        }
        None
    }

    /// Closes every connection: DPR, or (`abrupt`) at once without DPR. Attempts under way
    /// are given up.
    async fn close_all(&mut self, abrupt: bool) {
        self.close_requested = true;
        self.next_login_at = None;
        for l in &mut self.links {
            if let Some(c) = l.connecting.take() {
                c.task.abort();
            }
        }
        for l in &self.links {
            if let Some(h) = &l.handle {
                let cmd = if abrupt {
                    Command::Replace
                } else {
                    Command::Disconnect(DisconnectCause::Rebooting)
                };
                h.send(cmd).await;
            }
        }
    }

    fn plan_due(&mut self) {
        let now = Instant::now();
        let state = self.state.clone();
        let mut st = lock(&state);
        let interval = (self.cfg.rate > 0.0)
            .then(|| Duration::try_from_secs_f64(1.0 / self.cfg.rate).ok())
            .flatten();
        // Catch up with the schedule, a bounded batch at a time.
        let mut batch = 0;
        while let Some(at) = self.next_login_at {
            if at > now || batch >= 1000 {
                break;
            }
            if self.plan_next >= self.plan_total {
                self.next_login_at = None;
                break;
            }
            if let Some(spec) = self.cfg.plan.spec(self.plan_next, &self.cfg.templates) {
                let sid = st.login(now.into_std(), spec);
                self.plan_in_flight.insert(sid);
            }
            self.plan_next += 1;
            batch += 1;
            self.next_login_at = if self.plan_next >= self.plan_total {
                None
            } else {
                Some(interval.map_or(now, |i| at + i))
            };
        }
    }

    fn steps_due(&mut self) {
        let now = Instant::now();
        let Plan::Scenario(scenario) = &self.cfg.plan else {
            self.steps.clear();
            return;
        };
        let mut st = lock(&self.state);
        while let Some(Reverse((at, _, sub, step))) = self.steps.peek().copied() {
            if at > now {
                break;
            }
            self.steps.pop();
            let Some(s) = scenario.subscribers.get(sub) else {
                continue;
            };
            let Some(action) = s.steps.get(step).map(|st| st.action) else {
                continue;
            };
            let who = s.user.as_str();
            let now = now.into_std();
            let result = match action {
                StepAction::Logout => st.logout(now, who, CAUSE_LOGOUT),
                StepAction::Idle => st.logout(now, who, CAUSE_IDLE_TIMEOUT),
                StepAction::AcctStart => st.account(now, who, AcctType::Start),
                StepAction::Interim => st.account(now, who, AcctType::Interim),
                StepAction::AcctStop => st.account(now, who, AcctType::Stop),
                StepAction::Touch => st.touch(now, who).map(|_| ()),
                StepAction::Srq => st.send_srq(SrqReason::Control),
            };
            if let Err(error) = result {
                let _ = self.sink.send(SimEvent::Error {
                    error: format!("scenario step of {who}: {error}"),
                });
            }
        }
    }

    /// Reports the state's events and sends its requests, until both queues are empty.
    async fn flush(&mut self) {
        let state = self.state.clone();
        loop {
            let outgoing: Vec<Outgoing> = {
                let mut st = lock(&state);
                while let Some(e) = st.poll_event() {
                    let startup_done = self.observe(&e);
                    let _ = self.sink.send(e);
                    if let Some(sae) = startup_done {
                        self.become_ready(sae);
                    }
                }
                if self.plan_total > 0
                    && !self.plan_reported
                    && self.plan_next >= self.plan_total
                    && self.plan_in_flight.is_empty()
                {
                    self.plan_reported = true;
                    let _ = self.sink.send(SimEvent::LoginsDone {
                        ok: self.plan_ok,
                        failed: self.plan_failed,
                    });
                }
                std::iter::from_fn(|| st.poll_outgoing()).collect()
            };
            if outgoing.is_empty() {
                return;
            }
            for o in outgoing {
                self.dispatch(o).await;
            }
        }
    }

    /// Bookkeeping on an event; returns the SAE when it completes the startup SRQ.
    fn observe(&mut self, e: &SimEvent) -> Option<String> {
        match e {
            SimEvent::Login {
                session_id, user, ..
            } => {
                if self.plan_in_flight.remove(session_id) {
                    self.plan_ok += 1;
                }
                if let (Some(&sub), Plan::Scenario(s)) =
                    (self.scenario_users.get(user), &self.cfg.plan)
                    && let Some(subscriber) = s.subscribers.get(sub)
                {
                    let now = Instant::now();
                    for (i, step) in subscriber.steps.iter().enumerate() {
                        self.step_seq += 1;
                        self.steps
                            .push(Reverse((now + step.delay(), self.step_seq, sub, i)));
                    }
                }
                None
            }
            SimEvent::LoginFailed { session_id, .. } => {
                if self.plan_in_flight.remove(session_id) {
                    self.plan_failed += 1;
                }
                None
            }
            // `sae`: the SAE that answered, or the one whose SRQ superseded a held SRQ.
            SimEvent::SrqAnswered { sae, reason, .. }
                if reason == SrqReason::Startup.name() && self.startup_srq_pending =>
            {
                self.startup_srq_pending = false;
                (!self.ready).then(|| sae.clone())
            }
            _ => None,
        }
    }

    /// Sends one request on the connection to its SAE; the answer comes back as an input.
    async fn dispatch(&mut self, o: Outgoing) {
        let handle = self
            .links
            .iter()
            .find(|l| l.host.as_deref() == Some(o.to.as_str()))
            .and_then(|l| l.handle.clone());
        let Some(handle) = handle else {
            lock(&self.state).handle_answer(
                now_std(),
                o.token,
                Err(RequestFailure::ConnectionClosed),
            );
            return;
        };
        let (reply, rx) = oneshot::channel();
        let token = o.token;
        let tx = self.tx.clone();
        // If the connection is gone `reply` is dropped and the forwarder reports that.
        handle
            .send(Command::Request {
                request: o.request,
                timeout: None,
                reply,
            })
            .await;
        tokio::spawn(async move {
            let result = rx.await.unwrap_or(Err(RequestFailure::ConnectionClosed));
            let _ = tx.send(Input::Answer { token, result });
        });
    }
}
