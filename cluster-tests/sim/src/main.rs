//! `sae-sim`: a Juniper JSRC/PTSP router simulator for the SAE, for tests, demos and load.
//!
//! # Subcommands
//!
//! ## `sae-sim diameter` — transport only (unchanged)
//!
//! Connects, exchanges capabilities, keeps the watchdog, sends DPR after `--run-secs` (or on
//! Ctrl-C). Prints plain text lines: `connected <sae>`, `watchdog <state>`,
//! `disconnected <reason>`, `failed <reason>`. Flags: `--connect ADDR`, `--origin-host`
//! (default `sim.test.realm`), `--origin-realm` (`test.realm`), `--application ID`
//! (repeatable, default 16777244), `--watchdog-secs` (30), `--reopen`, `--run-secs`.
//! Exit 0 after a clean DPR/DPA.
//!
//! ## `sae-sim router` (alias `sae-sim jsrc`) — the router side of the JSRC/PTSP flows
//!
//! ```text
//! sae-sim router --connect ADDR|HOST:PORT [--connect ADDR|HOST:PORT ...]
//!     [--application jsrc|ptsp]        Application-Id 16777244 / 16777273, vendor 2636 (jsrc)
//!     [--origin-host H] [--origin-realm R]          (sim.test.realm / test.realm)
//!     [--watchdog-secs 30] [--reopen] [--timeout-secs 10] [--connect-timeout-secs 5]
//!     [--subscribers N] [--first 0] [--rate 100]    N generated logins, PER_SEC (0: at once)
//!     [--user-template 'user{n}@example.net'] [--ip-base 10.0.0.1]
//!     [--nas-port-template 'ge-0/0/0.{n}']           subscriber n: base IP + n
//!     [--scenario FILE]                 TOML subscribers and timed steps (see `subscribers`)
//!     [--no-confirm]                    no provisioning-confirmation AAR after a login
//!     [--no-startup-srq]                no SRQ when the connection comes up
//!     [--fail-ppr GLOB]...              refuse PPRs installing a matching policy: PPA 5012
//!     [--drop-ppr GLOB]...              never answer PPRs installing a matching policy
//!     [--drop-srq N]                    never answer the first N SRQs from the SAEs
//!     [--interim-secs 0]                ACR INTERIM period (0: none)
//!     [--inactivity-secs 1800]          idle logout, STR Termination-Cause 14 (0: never)
//!     [--control]                       read commands on stdin
//!     [--run-secs S]                    DPR and exit after S seconds
//!     [--reconnect-secs S]              reconnect S seconds after losing a connection
//!     [--max-attempts 20]               sends of one request while redirected/busy/failing
//!     [--retry-backoff-ms 250]          first back-off of a held request (doubling, ≤ 8×)
//!     [--no-retry-failures]             timeouts and lost connections fail at once
//! ```
//!
//! With several `--connect`, requests go to the active SAE (the remembered
//! Juniper-Last-Origin-Host when connected to it, else the first connection that came up);
//! answers to an SAE's request and their follow-ups go back over that SAE's connection.
//! `HOST:PORT` names are resolved again at every connection attempt.
//!
//! Cluster behaviour: an answer 3006 (DIAMETER_REDIRECT_INDICATION) or 3004 (TOO_BUSY) to one
//! of the router's requests (login, confirmation, ACR, STR, its own SRQ), a timeout or a
//! closed connection does not end the request: it is sent again (`redirected`), at once to
//! the connected SAE named by the Redirect-Host (a DiameterURI, `aaa://host:port`, matched
//! on its host against the SAEs' Origin-Hosts) for the first redirects, otherwise held until
//! an SAE becomes active by sending SRQ (then sent to it after the replay, `resent` reason
//! `srq`) or until its back-off ends (`resent` reason `backoff`, to the Redirect-Host if
//! connected, else to the active SAE). After `--max-attempts` sends, the last answer is
//! reported as the outcome (`login-failed` with `result` 3006, …). A held SRQ of the router
//! is reported answered (`srq-answered`, `error` "superseded…") when an SAE's SRQ comes.
//! Replays (Request-Type 3) are never sent again: the next active SAE asks with its SRQ.
//!
//! Sequence: connect → `connected` → SRQ (`srq-sent` reason `startup`; it names a
//! Juniper-Last-Origin-Host only if an SAE's own SRQ already set one) → `srq-answered` →
//! `ready` → the `--subscribers`/`--scenario` logins at `--rate` → `logins-done`. Without
//! `--control` it runs until `--run-secs`, SIGINT/SIGTERM, or the SAE closes the connection.
//! With `--control`, end of stdin is `quit`.
//! The process exits when every connection has closed: status 0 if it was asked to (`quit`,
//! `dpr`, `drop`, `--run-secs`, a signal), 1 otherwise (SAE closed, CER refused, no connection).
//! With `--reconnect-secs`, a connection that ends (or cannot be opened) without being asked
//! to is retried every S seconds (`reconnecting`, then `connected` again) and the sessions are
//! kept; the router does not send an SRQ of its own then (the SAE's first message is one).
//! Each connection attempt runs beside the router's main loop and gives up after
//! `--connect-timeout-secs` per address (`connect-failed`, error "… connect timed out after
//! …"): an SAE whose address no longer answers (a killed node) holds up neither the timers nor
//! the other connections.
//! Tracing goes to stderr (`RUST_LOG`).
//!
//! What the router does is described in `router_state.rs`: login AAR (Request-Type 1), AAA 2001
//! keeps the session with its Juniper-Policy-Install policies, confirmation AAR (Request-Type
//! 2), ACR START/INTERIM/STOP for policies with Juniper-Acct-Collect, PPR → PPA (2001, 5002
//! unknown session, 5012 `--fail-ppr`, nothing for `--drop-ppr`), ASR → ASA then ACR STOP and
//! STR cause 4 with the final Juniper-Acct-Records, ACR from the SAE → ACA with counters, SRQ →
//! SRR and a Request-Type 3 replay of every session (nothing for the first `--drop-srq`), and
//! the multi-SAE rule (a request from an SAE other than the remembered one → SRQ to it,
//! replay after its SRR). Session-Id: `<origin-host>;<start time>;<login counter>;<subscriber
//! n>`.
//!
//! ### Control commands (stdin, one per line; `#` comments and blank lines ignored)
//!
//! | command | effect |
//! |---|---|
//! | `login <user> [ip] [nas-port-id]` | AAR; address and port from the templates when omitted |
//! | `logout <user\|session-id>` | ACR STOP (if accounting started), STR cause 1 (LOGOUT) |
//! | `idle <user\|session-id>` | the same with cause 14 (IDLE_TIMEOUT), now |
//! | `acct <user\|session-id> start\|interim\|stop` | an ACR of that type for the accounted policies |
//! | `touch <user\|session-id>` | subscriber activity: restarts the inactivity timer |
//! | `srq` | SRQ to the active SAE now; replay after SRR 2001 |
//! | `str-unknown <session-id>` | an STR (cause 1) for that Session-Id whatever the table holds; the STA is a `logout` event |
//! | `fail-ppr <glob>` / `fail-ppr off` | add a refuse glob / clear them |
//! | `drop-ppr <glob>` / `drop-ppr off` | add a never-answer glob / clear them |
//! | `drop-srq <n>` / `drop-srq off` | leave the next n SRQs from the SAEs unanswered / answer them all again |
//! | `drop` | close every TCP connection without DPR |
//! | `dpr` | DPR/DPA on every connection (once the requests in flight are answered, at most `--timeout-secs`) |
//! | `list` | a `session` event per session, then `listed` |
//! | `quit` | the same as `dpr`; end of stdin is `quit` |
//!
//! Commands read before `ready` wait for it and then run in order, so a script can be piped
//! in whole. A bad line gives an `error` event (at once). After `drop` or `dpr` the process
//! exits once the connections are closed.
//!
//! ### Events (stdout, one flat JSON object per line, field `event`)
//!
//! Fields that may be absent are marked `?`; `result` is the Result-Code received or sent, or
//! null when there was no answer (then `error` says why: `timeout`, `connection-closed`,
//! `invalid answer: …`, `answer without Result-Code`, a Session-Id mismatch, …).
//!
//! | event | fields |
//! |---|---|
//! | `connected` | `sae` (its Origin-Host), `realm`, `addr`, `application` |
//! | `connect-failed` | `addr`, `error` (TCP error, or the refused capabilities exchange) |
//! | `watchdog` | `sae`, `state` (`okay`, `suspect`, `down`, `reopen`, …) |
//! | `reconnecting` | `addr`, `after_s` (`--reconnect-secs`) |
//! | `disconnected` | `sae`, `reason` (`local-disconnect`, `peer-disconnected …`, `transport-closed`, `watchdog-expired`, `dropped`, …) |
//! | `ready` | `sae`: logins and commands run from now on |
//! | `active-sae` | `sae`, `previous` (null at first): the remembered Juniper-Last-Origin-Host changed |
//! | `login` | `session_id`, `user`, `ip`, `nas_port_id`, `result` (2001), `policies`, `accounting` (policies with Juniper-Acct-Collect), `sae`, `latency_us` |
//! | `login-failed` | `session_id`, `user`, `sae` (null if never sent), `result`, `error?`, `latency_us` (null without answer) |
//! | `confirmed` | `session_id`, `user`, `sae`, `result`, `error?` |
//! | `request` | `command` (`PPR`, `ASR`, `ACR`, `SRQ`, or another name answered 3001), `from` (the request's Origin-Host), `session_id`, `result` (null: not answered), `install?`/`remove?` (PPR policy names), `policies?` (ACR: policies reported in the ACA), `record_type?` (ACR), `dropped?` (true: not answered, `--drop-ppr` or `--drop-srq`), `error?` |
//! | `srq-sent` | `to`, `reason` (`startup`, `different-sae`, `control`), `last_origin_host` (null when none known) |
//! | `srq-answered` | `to`, `sae`, `reason`, `result`, `error?`, `sessions` (how many are replayed) |
//! | `replayed` | `session_id`, `user`, `sae`, `result`, `error?` |
//! | `acct` | `session_id`, `user`, `type` (`start`, `interim`, `stop`), `record_number`, `policies`, `sae`, `result`, `error?` |
//! | `logout` | `session_id`, `user`, `cause` (1, 4, 14), `sae`, `result`, `error?`: the session is gone |
//! | `redirected` | `command` (`AAR`, `ACR`, `STR`, `SRQ`), `session_id`, `from` (the answering SAE), `to` (where it goes now; null: held), `result` (3006, 3004; null for a timeout or closed connection), `redirect_host?`, `error?`, `attempt` (sends so far) |
//! | `resent` | `command`, `session_id`, `to`, `reason` (`srq`, `backoff`), `attempt` (this send included) |
//! | `session` | `session_id`, `user`, `ip`, `nas_port_id`, `policies`, `accounting`, `idle_s`, `ending` |
//! | `listed` | `count` |
//! | `logins-done` | `ok`, `failed`: every planned login has an outcome |
//! | `control` | `command` (`touch`, `fail-ppr`, `drop-ppr`, `drop-srq`, `drop`, `dpr`, `quit`, `shutdown` for `--run-secs` or a signal), `detail?` |
//! | `error` | `error` |
//!
//! In answer events, `sae` is the answer's Origin-Host (without an answer, the SAE the request
//! went to last). `sae_sim::events::check_single_active` checks a log of these
//! events for two SAEs acting on the router between two SRQs.
//!
//! Every request the router receives produces exactly one `request` event, printed before the
//! events of what it caused (`active-sae`, `srq-sent`, …). A `request` event from a PPR
//! that installs accounted policies is followed later by `acct` events (START), an ASR by
//! `acct` (STOP) and `logout` (cause 4).
//!
//! ## `sae-sim load` — login throughput and latency
//!
//! ```text
//! sae-sim load --connect ADDR|HOST:PORT --subscribers N (--rate PER_SEC | --saturate)
//!     [--concurrency C]                  most logins awaiting an AAA (default: none with
//!                                        --rate, 256 with --saturate)
//!     [--routers K]                      K router connections, Origin-Host from
//!     [--origin-host-template 'load{r}.sim.test.realm'] [--origin-realm test.realm]
//!     [--application jsrc|ptsp] [--first 0] [--user-template …] [--ip-base …]
//!     [--nas-port-template …] [--confirm] [--startup-srq] [--inactivity-secs 0]
//!     [--timeout-secs 10] [--connect-timeout-secs 5] [--watchdog-secs 30] [--hold] [--verbose]
//! ```
//!
//! Subscriber `i` logs in over router `i % K`. Prints one JSON object:
//! `{"mode":"load","logins":N,"ok":..,"failed":..,"elapsed_s":..,"logins_per_s":..,
//! "latency_us":{"p50":..,"p90":..,"p99":..,"p999":..,"max":..},"rate":..|null,
//! "concurrency":..|null,"routers":K,"failures":{"<Result-Code or reason>":count}}` —
//! latency runs from the router queuing the AAR to the router processing its AAA (so it
//! includes the simulator's own queuing; `--routers` spreads that over more tasks and
//! connections), over every login that got an AAA; `elapsed_s` runs from the first login to
//! the last outcome; `logins_per_s` counts successful logins. With `--hold` it then prints
//! `{"event":"holding","sessions":ok,"routers":K}` and stays connected, answering the SAE's
//! requests (PPR, ASR, ACR, SRQ) for those sessions until stdin closes or SIGINT/SIGTERM, then
//! sends DPR and prints `{"event":"released"}`. `--verbose` copies every router event to stderr.
//! A router that cannot connect gives `{"mode":"load","error":"…"}` and exit status 1.
//!
//! ## `sae-sim sbc` — an SBC playing the COPS PEP for call admission
//!
//! ```text
//! sae-sim sbc --connect ADDR|HOST:PORT [--connect ADDR2 ...] --pepid ID
//!     [--client-type 0x800A|0x7926|0x7929]   (0x800A)
//!     [--allow-while-down]                   admit new calls while the PDP is unreachable
//!     [--backoff-ceiling-secs 300] [--backoff-initial-secs 1] [--connect-timeout-secs 5]
//!     [--calls N --rate R --bandwidth-kbps B --realm R --hold-secs S]
//!     [--control]
//! ```
//!
//! OPN (PEPID, client type) → CAT → KA at a random point between 1/4 and 3/4 of the KA timer.
//! A failure (KA timeout, CC from the PDP, TCP closed) is followed by reconnect attempts after
//! back-off delays doubling from `--backoff-initial-secs` up to `--backoff-ceiling-secs`
//! (reset by a CAT), each to the next `--connect` address (HA switch-over), always with the
//! same PEPID and client type; a CC with PDP-Redirect goes to the redirect address at once.
//! An attempt runs beside the driver's loop and gives up after `--connect-timeout-secs` (per
//! address of a name), so calls, hangups and timers go on while a PDP does not answer.
//! A call is a REQ with a fresh handle and one CallRequest (call id, realm, media streams,
//! bandwidth): DEC Install admits, DEC Remove (or Error) denies (then DRQ). While down, new
//! calls are denied (`denied-while-down`) unless `--allow-while-down` (`admitted-while-down`,
//! unknown to the PDP); calls already up stay up. Hangup: DRQ (reason Tear) if connected; a
//! PDP-admitted call hung up while down has its DRQ sent after reconnecting; a call admitted
//! while down is just dropped. SSQ: REQs of admitted calls re-sent, then SSC. `--calls N`:
//! calls `call0`… at `--rate` per second from the first CAT, hung up after `--hold-secs` (0:
//! kept). Without `--control` it runs until SIGINT/SIGTERM (then CC and exit).
//!
//! Control commands: `call <call-id> [bandwidth-kbps] [realm]`, `hangup <call-id>`, `drop`
//! (close TCP without CC), `cc` (send CC; reconnects like after a failure), `list` (a
//! `call-entry` per call, then `listed`), `quit` (CC, exit; also end of stdin).
//!
//! ## `sae-sim copspr` — a COPS-PR router (subscriber provisioning, RFC 3483 usage)
//!
//! ```text
//! sae-sim copspr --connect ADDR|HOST:PORT [--connect ADDR2 ...] --pepid ID [--client-type 0x800B]
//!     [--subscribers N --rate R --first 0]
//!     [--if-template 'fastEthernet 3/0.{n}'] [--user-template 'user{n}@example.net']
//!     [--ip-base 10.2.0.1] [--fail-policy GLOB]... [--usage-octets-per-s 1000]
//!     [--backoff-ceiling-secs 300] [--backoff-initial-secs 1] [--connect-timeout-secs 5]
//!     [--control]
//! ```
//!
//! Per subscriber interface a REQ (SubscriberInterface: id, if-name, address, login name,
//! virtual router); DEC Install (PolicyInstance + PolicySubstitution) → RPT success, or RPT
//! failure with a CPERR per policy matching `--fail-policy` (not installed); DEC Remove →
//! refused (DRQ). Accounted policies count synthetic usage (`--usage-octets-per-s`, packets =
//! octets/1000, cumulative) and are reported in accounting RPTs (TrafficUsage, `selected` =
//! PolicyInstance PRID) once per CAT Accounting Timer (never with timer 0). FeedbackAction
//! DECs: solicit (solicited RPT now), suspend-/resume-reporting, suspend-/resume-monitoring
//! (with the report asked for on suspension). Logout: final accounting RPT, then DRQ. Counting
//! goes on while disconnected; after the next CAT the cached usage is reported (trigger
//! `reconnected`), then an SSQ is answered with RPT success per installed interface (REQ for
//! unanswered ones) and SSC.
//!
//! Control commands: `login <if-name> [ip] [user]` (the if-name runs up to the first IPv4
//! address, or quote it), `logout <if-name>`, `drop`, `list` (a `subscriber` per interface,
//! then `listed`), `quit`.
//!
//! ### COPS events (stdout, one flat JSON object per line, field `event`)
//!
//! | event | fields |
//! |---|---|
//! | `connected` | `pdp` (its address), `addr` (ours), `pepid`, `client_type` (`0x800a`) |
//! | `connect-failed` | `addr`, `error` |
//! | `accepted` | `keepalive_s`, `accounting_timer_s` (null when absent / 0 for KA) |
//! | `ka-sent` | `count` |
//! | `disconnected` | `pdp`, `reason` (`ka-timeout`, `pdp-cc <Error>[ redirect A]`, `transport-closed`, `dropped`, `local-cc <Error>`, `accept-timeout`, `protocol-error …`) |
//! | `reconnecting` | `addr`, `after_s`, `attempt` |
//! | `redirected` | `to` |
//! | `call` | `call_id`, `result` (`admitted`, `denied`, `admitted-while-down`, `denied-while-down`, `abandoned`), `latency_us` (REQ to DEC), `handle?` (hex), `error?` |
//! | `hangup` | `call_id`, `by` (`local`, `pdp`), `drq` (`sent`, `queued`, `none`) |
//! | `call-entry` | `call_id`, `state`, `handle`, `realm`, `bandwidth_kbps` |
//! | `calls-done` | `admitted`, `denied` |
//! | `installed` | `if_name`, `handle`, `policies`, `accounting` |
//! | `refused` | `if_name`, `handle`, `error?` |
//! | `report` | `if_name`, `handle`, `type` (`success`, `failure`, `accounting`), `solicited`, `policies`, `octets`, `trigger?` (`periodic`, `solicited`, `suspended`, `final`, `reconnected`, …) |
//! | `feedback` | `if_name`, `handle`, `action` (`solicit`, `suspend-reporting`, …) |
//! | `logout` | `if_name`, `handle`, `by` (`local`, `pdp`) |
//! | `subscriber` | `if_name`, `handle`, `state`, `policies`, `octets` |
//! | `sync` | `handles` |
//! | `logins-done` | `installed`, `refused` |
//! | `listed` | `count` |
//! | `error` | `error` |
//!
//! Exit status 0 if a connection was ever up, 1 otherwise.

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
