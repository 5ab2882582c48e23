//! The tokio driver shared by the simulated COPS PEPs (`sae-sim sbc`, `sae-sim copspr`).
//!
//! One task owns the TCP connection, a [`FrameDecoder`], the sans-IO [`PepConnection`] and the
//! role (a [`PepRole`]: the SBC call table or the COPS-PR subscriber table). Time is tokio time
//! (`tokio::time::Instant::now().into_std()`), so tests can pause it.
//!
//! Failures (KA timeout, CC from the PDP, TCP closed) end the connection; the role is told
//! ([`PepRole::down`]) and the driver reconnects after [`Backoff`] delays (doubling up to the
//! ceiling, reset on CAT), each attempt to the next `--connect` address (HA switch-over), always
//! with the same [`PepConfig`] (same PEPID and client type). A CC with PDP-Redirect sends the
//! next attempt to the redirect address at once.
//!
//! A connection attempt runs in a task of its own, at most [`DriverConfig::connect_timeout`]
//! per address: while it hangs (SYNs to a PDP that is gone go unanswered) the role's timers
//! and the control commands go on (calls placed meanwhile are handled as while down).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sae_cops::backoff::Backoff;
use sae_cops::message::{DecisionContent, OpCode};
use sae_cops::object::{ErrorCode, ErrorObject, Handle};
use sae_cops::pep::{CloseReason, PepConfig, PepConnection, PepEvent};
use sae_cops::{FrameDecoder, PdpAddress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cops_events::CopsEvent;
use crate::endpoint::Endpoint;

/// Where events go.
pub type CopsSink = mpsc::UnboundedSender<CopsEvent>;

/// The current time, from tokio's clock (pausable in tests).
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// What a role asks the driver to do after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// Nothing more.
    Continue,
    /// Close the TCP connection abruptly (no CC); reconnect as after a failure.
    Drop,
    /// Send CC (Error 10), close; reconnect as after a failure.
    ClientClose,
    /// CC (Error 11, shutting down) if connected, and end.
    Quit,
}

/// The sans-IO logic of a PEP role, driven by [`run`]. `pep` is `Some` only while the
/// connection is up (CAT received).
pub trait PepRole {
    /// The role's control commands.
    type Command: Send + 'static;

    /// CAT received.
    fn up(&mut self, now: Instant, pep: &mut PepConnection);
    /// The connection ended (whatever the reason).
    fn down(&mut self, now: Instant);
    /// A DEC.
    fn decision(
        &mut self,
        now: Instant,
        pep: &mut PepConnection,
        handle: Handle,
        decision: DecisionContent,
        solicited: bool,
    );
    /// A DEC that could not be decoded: the PEP deleted the state (DRQ sent already).
    fn malformed_decision(&mut self, now: Instant, handle: Handle);
    /// SSQ: re-send state, then SSC.
    fn sync(&mut self, now: Instant, pep: &mut PepConnection, handle: Option<Handle>);
    /// A control command.
    fn command(
        &mut self,
        now: Instant,
        pep: Option<&mut PepConnection>,
        command: Self::Command,
    ) -> Directive;
    /// The role's next deadline.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Time passed.
    fn timeout(&mut self, now: Instant, pep: Option<&mut PepConnection>);
    /// Next event to report.
    fn poll_event(&mut self) -> Option<CopsEvent>;
}

/// How the driver connects.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// PDP addresses (or `host:port` names, resolved at each attempt): the first is tried
    /// first, each reconnect tries the next one.
    pub connect: Vec<Endpoint>,
    /// PEPID, client type, accept timeout: the same for every connection.
    pub pep: Arc<PepConfig>,
    /// First reconnect delay (before jitter).
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_ceiling: Duration,
    /// Longest wait for one TCP connection attempt (per address of a name).
    pub connect_timeout: Duration,
    /// Seed of the KA jitter and back-off jitter.
    pub seed: u64,
}

impl DriverConfig {
    /// Back-off 1 s doubling to 5 minutes, 5 s connect timeout.
    pub fn new<E: Into<Endpoint>>(connect: impl IntoIterator<Item = E>, pep: PepConfig) -> Self {
        DriverConfig {
            connect: connect.into_iter().map(Into::into).collect(),
            pep: Arc::new(pep),
            backoff_initial: Backoff::DEFAULT_INITIAL,
            backoff_ceiling: Backoff::DEFAULT_CEILING,
            connect_timeout: Duration::from_secs(5),
            seed: seed_from_clock(),
        }
    }
}

/// A seed from the wall clock and the process id.
pub fn seed_from_clock() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// A connection was up at least once.
    pub ever_up: bool,
    /// Connections that came up (CAT).
    pub connections: u32,
}

struct Link {
    pep: PepConnection,
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    buf: BytesMut,
    decoder: FrameDecoder,
    remote: SocketAddr,
    /// `drop` asked for this close.
    dropped: bool,
}

async fn read_link(link: &mut Option<Link>) -> io::Result<usize> {
    match link {
        Some(l) => l.read.read_buf(&mut l.buf).await,
        None => std::future::pending().await,
    }
}

/// A connection attempt running in a task of its own.
struct Attempt {
    to: Endpoint,
    task: JoinHandle<io::Result<(TcpStream, SocketAddr)>>,
}

/// The outcome of the attempt under way (never, without one).
async fn attempt_done(attempt: &mut Option<Attempt>) -> Result<(TcpStream, SocketAddr), String> {
    match attempt {
        Some(a) => match (&mut a.task).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("connection attempt ended: {e}")),
        },
        None => std::future::pending().await,
    }
}

fn is_keepalive(b: &Bytes) -> bool {
    b.get(1) == Some(&(OpCode::KeepAlive as u8))
}

fn secs(d: Option<Duration>) -> Option<u64> {
    d.map(|d| d.as_secs())
}

/// A close reason as the `disconnected` event names it.
pub fn reason_name(reason: &CloseReason) -> String {
    match reason {
        CloseReason::PdpClosed { error, redirect } => match redirect {
            Some(r) => format!("pdp-cc {:?} redirect {}", error.code, pdp_addr(r)),
            None => format!("pdp-cc {:?}", error.code),
        },
        CloseReason::AcceptTimeout => "accept-timeout".into(),
        CloseReason::KeepAliveTimeout => "ka-timeout".into(),
        CloseReason::LocalClose(e) => format!("local-cc {:?}", e.code),
        CloseReason::ProtocolError { error, detail } => {
            format!("protocol-error {:?} {detail}", error.code)
        }
        CloseReason::TransportClosed => "transport-closed".into(),
    }
}

fn pdp_addr(a: &PdpAddress) -> SocketAddr {
    SocketAddr::new(a.address, a.port)
}

struct Driver<R: PepRole> {
    cfg: DriverConfig,
    role: R,
    sink: CopsSink,
    link: Option<Link>,
    /// The connection attempt under way.
    connecting: Option<Attempt>,
    backoff: Backoff,
    /// Next attempt: when and where.
    reconnect: Option<(Instant, Endpoint)>,
    addr_index: usize,
    connections: u32,
    seeds: u64,
    ka_count: u64,
    quitting: bool,
    /// Commands wait (in order) for the first CAT or the first failed attempt, so a script
    /// piped in whole does not race the connection.
    gate_open: bool,
    held: std::collections::VecDeque<Option<R::Command>>,
}

impl<R: PepRole> Driver<R> {
    fn emit(&self, e: CopsEvent) {
        let _ = self.sink.send(e);
    }

    fn up_pep(link: &mut Option<Link>) -> Option<&mut PepConnection> {
        link.as_mut().map(|l| &mut l.pep).filter(|p| p.is_up())
    }

    /// Starts a connection attempt to `to` in a task of its own; [`Driver::on_connected`]
    /// takes its outcome.
    fn start_connect(&mut self, to: Endpoint) {
        let timeout = self.cfg.connect_timeout;
        let target = to.clone();
        let task = tokio::spawn(async move { target.connect_within(timeout).await });
        self.connecting = Some(Attempt { to, task });
    }

    /// The attempt under way ended.
    fn on_connected(&mut self, result: Result<(TcpStream, SocketAddr), String>) {
        let Some(attempt) = self.connecting.take() else {
            return;
        };
        match result {
            Ok((stream, addr)) => self.open(stream, addr),
            Err(error) => self.connect_failed(&attempt.to, error),
        }
    }

    /// Gives the attempt under way up.
    fn abandon_attempt(&mut self) {
        if let Some(a) = self.connecting.take() {
            a.task.abort();
        }
    }

    /// A TCP connection to the PDP at `addr` is open: OPN goes out.
    fn open(&mut self, stream: TcpStream, addr: SocketAddr) {
        let now = now();
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let (read, write) = stream.into_split();
        self.seeds = self.seeds.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut pep = PepConnection::new(self.cfg.pep.clone(), self.cfg.seed ^ self.seeds);
        let decoder = pep.frame_decoder();
        pep.connected(now);
        self.emit(CopsEvent::Connected {
            pdp: addr.to_string(),
            addr: local,
            pepid: self.cfg.pep.pep_id.clone(),
            client_type: format!("{:#06x}", self.cfg.pep.client_type),
        });
        self.link = Some(Link {
            pep,
            read,
            write,
            buf: BytesMut::with_capacity(8192),
            decoder,
            remote: addr,
            dropped: false,
        });
    }

    fn connect_failed(&mut self, addr: &Endpoint, error: String) {
        self.gate_open = true;
        self.emit(CopsEvent::ConnectFailed {
            addr: addr.to_string(),
            error,
        });
        self.schedule_reconnect(now(), None);
    }

    fn schedule_reconnect(&mut self, now: Instant, redirect: Option<SocketAddr>) {
        if self.quitting {
            return;
        }
        if let Some(to) = redirect {
            self.emit(CopsEvent::Redirected { to: to.to_string() });
            self.reconnect = Some((now, to.into()));
            return;
        }
        if !self.cfg.connect.is_empty() {
            self.addr_index = (self.addr_index + 1) % self.cfg.connect.len();
        }
        let Some(addr) = self.cfg.connect.get(self.addr_index).cloned() else {
            return;
        };
        let delay = self.backoff.next_delay();
        self.emit(CopsEvent::Reconnecting {
            addr: addr.to_string(),
            after_s: delay.as_secs_f64(),
            attempt: self.backoff.attempts(),
        });
        self.reconnect = Some((now.checked_add(delay).unwrap_or(now), addr));
    }

    /// Moves events and bytes until nothing is left to do.
    async fn pump(&mut self) {
        loop {
            let mut progress = false;
            while let Some(e) = self.role.poll_event() {
                progress = true;
                self.emit(e);
            }
            let Some(link) = self.link.as_mut() else {
                if !progress {
                    return;
                }
                continue;
            };
            let mut out = Vec::new();
            while let Some(b) = link.pep.poll_transmit() {
                out.push(b);
            }
            if !out.is_empty() {
                progress = true;
                let mut failed = false;
                for b in out {
                    if is_keepalive(&b) {
                        self.ka_count += 1;
                        let _ = self.sink.send(CopsEvent::KaSent {
                            count: self.ka_count,
                        });
                    }
                    if link.write.write_all(&b).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed {
                    link.pep.transport_closed(now());
                }
            }
            let Some(link) = self.link.as_mut() else {
                continue;
            };
            if let Some(ev) = link.pep.poll_event() {
                progress = true;
                self.pep_event(ev).await;
            }
            if !progress {
                return;
            }
        }
    }

    async fn pep_event(&mut self, ev: PepEvent) {
        let now = now();
        match ev {
            PepEvent::Accepted {
                keepalive,
                accounting_timer,
            } => {
                self.backoff.reset();
                self.connections += 1;
                self.gate_open = true;
                self.emit(CopsEvent::Accepted {
                    keepalive_s: secs(keepalive),
                    accounting_timer_s: secs(accounting_timer),
                });
                if let Some(l) = self.link.as_mut() {
                    self.role.up(now, &mut l.pep);
                }
            }
            PepEvent::Decision {
                handle,
                decision,
                solicited,
            } => {
                if let Some(l) = self.link.as_mut() {
                    self.role
                        .decision(now, &mut l.pep, handle, decision, solicited);
                }
            }
            PepEvent::MalformedDecision { handle, .. } => {
                self.role.malformed_decision(now, handle);
            }
            PepEvent::SyncRequest { handle } => {
                if let Some(l) = self.link.as_mut() {
                    self.role.sync(now, &mut l.pep, handle);
                }
            }
            PepEvent::Closed(reason) => {
                let Some(mut link) = self.link.take() else {
                    return;
                };
                // Write what is queued (the CC), then close.
                while let Some(b) = link.pep.poll_transmit() {
                    if link.write.write_all(&b).await.is_err() {
                        break;
                    }
                }
                let _ = link.write.shutdown().await;
                let name = if link.dropped {
                    "dropped".to_owned()
                } else {
                    reason_name(&reason)
                };
                self.emit(CopsEvent::Disconnected {
                    pdp: link.remote.to_string(),
                    reason: name,
                });
                self.role.down(now);
                self.gate_open = true;
                let redirect = match &reason {
                    CloseReason::PdpClosed {
                        redirect: Some(r), ..
                    } => Some(pdp_addr(r)),
                    _ => None,
                };
                self.schedule_reconnect(now, redirect);
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        [
            self.link.as_ref().and_then(|l| l.pep.poll_timeout()),
            self.role.poll_timeout(),
            self.reconnect
                .as_ref()
                .filter(|_| self.connecting.is_none())
                .map(|(t, _)| *t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_read(&mut self, res: io::Result<usize>) {
        let now = now();
        let Some(link) = self.link.as_mut() else {
            return;
        };
        match res {
            Ok(0) | Err(_) => link.pep.transport_closed(now),
            Ok(_) => loop {
                match link.decoder.decode(&mut link.buf) {
                    Ok(Some(frame)) => link.pep.handle_frame(now, frame),
                    Ok(None) => break,
                    Err(e) => {
                        link.pep.handle_framing_error(now, e);
                        break;
                    }
                }
            },
        }
    }

    fn on_timer(&mut self) {
        let now = now();
        if let Some(l) = self.link.as_mut() {
            l.pep.handle_timeout(now);
        }
        let pep = Self::up_pep(&mut self.link);
        self.role.timeout(now, pep);
        if let Some((at, _)) = &self.reconnect
            && *at <= now
            && self.link.is_none()
            && self.connecting.is_none()
            && let Some((_, addr)) = self.reconnect.take()
        {
            self.start_connect(addr);
        }
    }

    fn on_command(&mut self, cmd: Option<R::Command>) {
        if !self.gate_open || !self.held.is_empty() {
            self.held.push_back(cmd);
            return;
        }
        self.command(cmd);
    }

    /// Runs the held commands once the gate is open.
    fn release_held(&mut self) {
        while self.gate_open
            && !self.quitting
            && let Some(cmd) = self.held.pop_front()
        {
            self.command(cmd);
        }
    }

    fn command(&mut self, cmd: Option<R::Command>) {
        let now = now();
        let directive = match cmd {
            Some(c) => {
                let pep = Self::up_pep(&mut self.link);
                self.role.command(now, pep, c)
            }
            None => Directive::Quit,
        };
        match directive {
            Directive::Continue => {}
            Directive::Drop => {
                if let Some(l) = self.link.as_mut() {
                    l.dropped = true;
                    l.pep.transport_closed(now);
                }
            }
            Directive::ClientClose => {
                if let Some(l) = self.link.as_mut() {
                    l.pep.close(now, ErrorObject::new(ErrorCode::Unspecified));
                }
            }
            Directive::Quit => {
                self.quitting = true;
                self.reconnect = None;
                self.abandon_attempt();
                if let Some(l) = self.link.as_mut() {
                    l.pep.close(now, ErrorObject::new(ErrorCode::ShuttingDown));
                }
            }
        }
    }
}

/// Runs `role` over COPS connections until a `Quit` directive or the end of `commands`;
/// returns the role and how it went.
pub async fn run<R: PepRole>(
    cfg: DriverConfig,
    role: R,
    mut commands: mpsc::UnboundedReceiver<R::Command>,
    sink: CopsSink,
) -> (R, Outcome) {
    let backoff = Backoff::with_limits(
        cfg.backoff_initial,
        cfg.backoff_ceiling,
        Backoff::DEFAULT_JITTER_PERCENT,
        cfg.seed.rotate_left(17),
    );
    let first = cfg.connect.first().cloned();
    let mut d = Driver {
        cfg,
        role,
        sink,
        link: None,
        connecting: None,
        backoff,
        reconnect: first.map(|a| (now(), a)),
        addr_index: 0,
        connections: 0,
        seeds: 0,
        ka_count: 0,
        quitting: false,
        gate_open: false,
        held: std::collections::VecDeque::new(),
    };
    let mut commands_open = true;
    loop {
        d.pump().await;
        if d.gate_open && !d.held.is_empty() {
            d.release_held();
            d.pump().await;
        }
        if d.quitting && d.link.is_none() && d.connecting.is_none() {
            break;
        }
        if d.link.is_none() && d.connecting.is_none() && d.reconnect.is_none() && !commands_open {
            break;
        }
        let deadline = d.deadline();
        let sleep = tokio::time::sleep_until(
            deadline
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400)),
        );
        tokio::select! {
            res = read_link(&mut d.link) => d.on_read(res),
            res = attempt_done(&mut d.connecting) => d.on_connected(res),
            () = sleep, if deadline.is_some() => d.on_timer(),
            cmd = commands.recv(), if commands_open => {
                if cmd.is_none() {
                    commands_open = false;
                }
                d.on_command(cmd);
            }
        }
    }
    let outcome = Outcome {
        ever_up: d.connections > 0,
        connections: d.connections,
    };
    (d.role, outcome)
}
