//! End-to-end benchmark of the Diameter SAE on loopback, release build: a real `sae-node`, real
//! `sae-sim` load runs, the management API for activations. Prints one JSON object per
//! measurement:
//!
//! - `login-fixed-rate`: logins/s and AAR→AAA latency percentiles at a fixed offered rate;
//! - `login-saturation`: the same with a bounded number of logins in flight, as fast as answered;
//! - `ppr-activations`: ActivateService calls (each a PPR/PPA round trip with the router) per
//!   second, with latency percentiles, `concurrency` calls in flight;
//! - `memory-per-session`: the node's resident memory (VmRSS) before and after N idle sessions,
//!   divided by N;
//! - `cops-pr-decisions`, `sbc-admissions`: COPS REQ→DEC round trips per second and their latency
//!   percentiles on one PEP connection with a window of requests in flight (COPS-PR: each REQ is
//!   a subscriber interface that becomes a session with its policies; SBC: each REQ is a call
//!   admitted from the budget).
//!
//! - `failover`: three nodes, a router (`sae-sim router`) connected to all of them with N
//!   logged-in sessions; the owner is killed (SIGKILL): the time until the successor's first
//!   SRQ reaches the router, and until the successor holds all N sessions again (for 1,000 and
//!   SAE_BENCH_FAILOVER_SESSIONS, default 100,000);
//! - `control-writes`: catalog writes (PutService) one after the other through the leader's and
//!   a follower's management API: each a Raft commit on a three-node cluster, applied locally
//!   before the call returns.
//!
//! - `nic-publishing`: login saturation with the NIC on (the default: every login, logout and
//!   change published to the embedded directory) and off (`[nic] enabled = false`), runs
//!   alternated, with logins/s and the node's CPU time per login of each (from /proc), and the
//!   publications during a login storm that holds its sessions: bindings in the NIC per second
//!   while the storm runs, and how long after the storm's last AAA the NIC holds them all.
//!
//! - `raft-disk`: the Raft database's size on disk (sled) on each of three nodes after N
//!   catalog writes with a snapshot every 1,000 entries: growth stays bounded by the snapshot
//!   and the kept log tail.
//!
//! Run: `cargo build --release -p sae-node -p sae-sim`, then
//! `cargo bench -p sae-cluster-tests --bench sae_flows`.
//! Sizes can be changed with SAE_BENCH_{RATE,RATE_LOGINS,SAT_LOGINS,PPRS,IDLE_SESSIONS,
//! FAILOVER_SESSIONS,CONTROL_WRITES}.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sae_proto::v1 as pb;
use sae_proto::v1::management_client::ManagementClient;
use serde_json::{Value as Json, json};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A release binary of the workspace (`target/release/<name>`, next to this bench's
/// `target/release/deps`).
fn release_bin(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("bench path");
    for dir in exe.ancestors().skip(1).take(3) {
        let p = dir.join(name);
        if p.is_file() && dir.ends_with("release") {
            return p;
        }
    }
    panic!("release {name} not found: run `cargo build --release -p {package}` first");
}

fn node_bin() -> PathBuf {
    release_bin("sae-node", "sae-node")
}

fn sim_bin() -> PathBuf {
    release_bin("sae-sim", "sae-sim")
}

const CONFIG: &str = r#"
[grpc]
listen = "127.0.0.1:0"
[metrics]
listen = "127.0.0.1:0"
[cops]
listen = "127.0.0.1:0"
keepalive_secs = 0
default_budget = { calls = 0, bandwidth_kbps = 0 }
[log]
level = "warn"
[diameter]
listen = "127.0.0.1:0"
origin_host = "sae-bench.test.realm"
origin_realm = "test.realm"
[sessions]
ppr_timeout_secs = 10
[[service]]
name = "internet"
policy_name = "internet-basic"
template_name = "rate-limit"
substitutions = { rate = "20m" }
accounting = true
[[service]]
name = "video"
template_name = "video-boost"
[[rule]]
name = "default"
services = ["internet"]
"#;

/// A release `sae-node` on loopback; killed on drop.
struct Node {
    child: Child,
    diameter: String,
    cops: String,
    grpc: String,
    metrics: String,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        Node::start_member(CONFIG.to_owned(), &[])
    }

    /// A node with its own Origin-Host, joining `join` (a gRPC address) when given, with
    /// extra TOML appended to its configuration.
    fn start_clustered_with(i: usize, join: Option<&str>, extra: &str) -> Node {
        let config = CONFIG.replace(
            "origin_host = \"sae-bench.test.realm\"",
            &format!("origin_host = \"sae-bench{i}.test.realm\""),
        ) + extra;
        let args: Vec<String> = join
            .map(|j| vec!["--join".to_owned(), j.to_owned()])
            .unwrap_or_default();
        Node::start_member(config, &args)
    }

    fn start_member(config_text: String, args: &[String]) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("node.toml");
        let text = format!("[node]\ndata_dir = {:?}\n{config_text}", dir.path());
        std::fs::write(&config, text).expect("config");
        let mut child = Command::new(node_bin())
            .arg("--config")
            .arg(&config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sae-node");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let (mut diameter, mut grpc, mut cops) = (String::new(), String::new(), String::new());
        let mut metrics = String::new();
        for line in out.lines() {
            let line = line.expect("node stdout");
            if let Some(a) = line.strip_prefix("listening diameter ") {
                diameter = a.to_owned();
            } else if let Some(a) = line.strip_prefix("listening cops ") {
                cops = a.to_owned();
            } else if let Some(a) = line.strip_prefix("listening grpc ") {
                grpc = a.to_owned();
            } else if let Some(a) = line.strip_prefix("listening metrics ") {
                metrics = a.to_owned();
            } else if line == "ready" {
                break;
            }
        }
        assert!(
            !diameter.is_empty() && !grpc.is_empty(),
            "node did not start"
        );
        Node {
            child,
            diameter,
            cops,
            grpc,
            metrics,
            _dir: dir,
        }
    }

    /// The value of an unlabelled metric in `/metrics`.
    fn metric(&self, name: &str) -> Option<f64> {
        metric(&self.metrics, name)
    }

    /// User plus system CPU time of the node process so far, seconds (from /proc).
    fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("/proc stat");
        // Fields after the command name (which is in parentheses): utime and stime are the
        // 12th and 13th, in clock ticks (100 per second on Linux).
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 =
            fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
        ticks / 100.0
    }

    fn raft_disk_bytes(&self) -> u64 {
        fn size(p: &std::path::Path) -> u64 {
            std::fs::read_dir(p)
                .map(|d| {
                    d.flatten()
                        .map(|e| match e.metadata() {
                            Ok(m) if m.is_dir() => size(&e.path()),
                            Ok(m) => m.len(),
                            Err(_) => 0,
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        size(&self._dir.path().join("sae-raft"))
    }

    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .expect("VmRSS")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of an unlabelled metric in the `/metrics` served at `addr`.
fn metric(addr: &str, name: &str) -> Option<f64> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: sae\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s, &mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Runs `sae-sim load` to completion and returns its JSON result.
fn load(node: &Node, args: &[&str]) -> Json {
    let out = Command::new(sim_bin())
        .args(["load", "--connect", &node.diameter])
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("run sae-sim load");
    assert!(out.status.success(), "sae-sim load failed: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("\"mode\""))
        .unwrap_or_else(|| panic!("no result from sae-sim: {text}"));
    serde_json::from_str(line).expect("sae-sim result JSON")
}

/// `sae-sim load --hold`: logs in and keeps the sessions; dropped: stdin closed, exits.
struct Holding {
    child: Child,
    _stdin: ChildStdin,
    result: Json,
}

fn hold(node: &Node, args: &[&str]) -> Holding {
    let mut child = Command::new(sim_bin())
        .args(["load", "--connect", &node.diameter, "--hold"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sae-sim load --hold");
    let stdin = child.stdin.take().expect("stdin");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut result = Json::Null;
    for line in out.lines() {
        let line = line.expect("sim stdout");
        let Ok(v) = serde_json::from_str::<Json>(&line) else {
            continue;
        };
        if v.get("mode").is_some() {
            result = v.clone();
        }
        if v["event"] == "holding" {
            break;
        }
    }
    Holding {
        child,
        _stdin: stdin,
        result,
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentiles(h: &Histogram<u64>) -> Json {
    json!({
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "p999": h.value_at_quantile(0.999),
        "max": h.max(),
    })
}

/// `count` ActivateService calls over the held sessions, `concurrency` in flight.
fn activations(node: &Node, users: &[String], count: usize, concurrency: usize) -> Json {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!("http://{}", node.grpc);
    let users = Arc::new(users.to_vec());
    rt.block_on(async move {
        let client = ManagementClient::connect(url).await.expect("connect");
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel::<(u64, bool)>();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (mut client, next, tx, users) =
                (client.clone(), next.clone(), tx.clone(), users.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let user = users[i % users.len()].clone();
                    let t = Instant::now();
                    let r = client
                        .activate_service(pb::ActivateServiceRequest {
                            subscriber: Some(pb::SubscriberRef {
                                key: Some(pb::subscriber_ref::Key::UserName(user)),
                            }),
                            service: "video".into(),
                            substitutions: Default::default(),
                        })
                        .await;
                    let ok = r.is_ok_and(|r| r.get_ref().success);
                    let _ = tx.send((t.elapsed().as_micros() as u64, ok));
                }
            }));
        }
        drop(tx);
        for t in tasks {
            let _ = t.await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let mut h = Histogram::<u64>::new(3).expect("histogram");
        let mut ok = 0;
        let mut failed = 0;
        for (us, success) in rx.iter() {
            let _ = h.record(us.max(1));
            if success {
                ok += 1;
            } else {
                failed += 1;
            }
        }
        json!({
            "measurement": "ppr-activations",
            "what": "ActivateService over gRPC → PPR to sae-sim → PPA → result, per call",
            "calls": count,
            "ok": ok,
            "failed": failed,
            "concurrency": concurrency,
            "elapsed_s": elapsed,
            "activations_per_s": ok as f64 / elapsed,
            "latency_us": percentiles(&h),
        })
    })
}

/// `count` REQs on one COPS connection, `window` in flight, each timed from REQ to DEC.
fn cops_decisions(
    node: &Node,
    client_type: u16,
    count: u32,
    window: u32,
) -> (f64, Histogram<u64>, u32, u32) {
    use bytes::BytesMut;
    use sae_cops::message::DecisionContent;
    use sae_cops::object::{ClientSi, Command, Context, Handle};
    use sae_cops::pep::{PepConfig, PepConnection, PepEvent};
    use sae_cops::pib::{CallRequest, SubscriberInterface};
    use sae_cops::pr::{RequestClientSi, encode_request_client_si};
    use sae_cops::usage::UsageClass;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr: std::net::SocketAddr = node.cops.parse().expect("cops address");
    rt.block_on(async move {
        let now = || tokio::time::Instant::now().into_std();
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let config = std::sync::Arc::new(PepConfig::new(
            client_type,
            format!("bench-{client_type:04x}"),
        ));
        let mut pep = PepConnection::new(config, 1);
        let mut frames = sae_cops::FrameDecoder::new(sae_cops::Limits::default());
        let mut buf = BytesMut::new();
        pep.connected(now());
        let request = |id: u32| {
            let instance = if client_type == 0x800B {
                SubscriberInterface {
                    id,
                    if_name: format!("fastEthernet 3/0.{id}"),
                    address: (0x0a03_0000u32 + id).to_be_bytes(),
                    login_name: format!("bench{id}@isp.example"),
                    virtual_router: "default@bench".into(),
                }
                .to_instance()
            } else {
                CallRequest {
                    id,
                    call_id: format!("call-{id}"),
                    realm: String::new(),
                    media_streams: 2,
                    bandwidth_kbps: 174,
                }
                .to_instance()
            }
            .expect("instance");
            ClientSi::Named(
                encode_request_client_si(&RequestClientSi(vec![instance])).expect("encode"),
            )
        };
        let mut sent_at: std::collections::HashMap<u32, Instant> = Default::default();
        let mut next = 1u32;
        let mut up = false;
        let mut done = 0u32;
        let (mut ok, mut other) = (0u32, 0u32);
        let mut h = Histogram::<u64>::new(3).expect("histogram");
        let mut started = Instant::now();
        let mut chunk = vec![0u8; 64 * 1024];
        while done < count {
            while let Some(e) = pep.poll_event() {
                match e {
                    PepEvent::Accepted { .. } => {}
                    PepEvent::SyncRequest { .. } => {
                        pep.sync_complete(now(), None).expect("SSC");
                        up = true;
                        started = Instant::now();
                    }
                    PepEvent::Decision {
                        handle, decision, ..
                    } => {
                        let id = handle.as_u32().unwrap_or(0);
                        if let Some(t) = sent_at.remove(&id) {
                            let _ = h.record((t.elapsed().as_micros() as u64).max(1));
                            done += 1;
                            match decision {
                                DecisionContent::Decisions(d)
                                    if d[0].flags.command == Command::Install =>
                                {
                                    ok += 1
                                }
                                _ => other += 1,
                            }
                        }
                    }
                    PepEvent::Closed(r) => panic!("COPS connection closed: {r:?}"),
                    _ => {}
                }
            }
            while up && next <= count && sent_at.len() < window as usize {
                pep.request(
                    now(),
                    Handle::from_u32(next),
                    Context::configuration(),
                    vec![request(next)],
                )
                .expect("REQ");
                sent_at.insert(next, Instant::now());
                next += 1;
            }
            while let Some(b) = pep.poll_transmit() {
                stream.write_all(&b).await.expect("write");
            }
            if done >= count {
                break;
            }
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the node closed the COPS connection");
            buf.extend_from_slice(&chunk[..n]);
            while let Some(f) = frames.decode(&mut buf).expect("frames") {
                pep.handle_frame(now(), f);
            }
        }
        (started.elapsed().as_secs_f64(), h, ok, other)
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn cluster_status(rt: &tokio::runtime::Runtime, grpc: &str) -> Option<pb::ClusterStatus> {
    rt.block_on(async {
        let mut c = ManagementClient::connect(format!("http://{grpc}"))
            .await
            .ok()?;
        c.get_cluster(pb::GetClusterRequest {})
            .await
            .ok()
            .map(|r| r.into_inner())
    })
}

/// Three nodes, the first created the cluster, all agreeing on a leader.
fn three_nodes(rt: &tokio::runtime::Runtime) -> Vec<Node> {
    three_nodes_with(rt, "")
}

fn three_nodes_with(rt: &tokio::runtime::Runtime, extra: &str) -> Vec<Node> {
    let first = Node::start_clustered_with(1, None, extra);
    let join = first.grpc.clone();
    let nodes = vec![
        first,
        Node::start_clustered_with(2, Some(&join), extra),
        Node::start_clustered_with(3, Some(&join), extra),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all: Option<Vec<pb::ClusterStatus>> =
            nodes.iter().map(|n| cluster_status(rt, &n.grpc)).collect();
        if let Some(all) = all
            && all[0].leader_id != 0
            && all
                .iter()
                .all(|s| s.leader_id == all[0].leader_id && s.members.len() == 3)
        {
            return nodes;
        }
        assert!(Instant::now() < deadline, "the cluster did not form");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn session_total(rt: &tokio::runtime::Runtime, grpc: &str) -> Option<u64> {
    rt.block_on(async {
        let mut c = ManagementClient::connect(format!("http://{grpc}"))
            .await
            .ok()?;
        c.list_subscribers(pb::ListSubscribersRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .ok()
        .map(|r| r.into_inner().total)
    })
}

/// Kill -9 of a router's owner with `sessions` logged in: time to the successor's first SRQ
/// and to all sessions rebuilt on it.
fn failover(sessions: u64) -> Json {
    const ROUTER: &str = "bench-router.test.realm";
    let rt = rt();
    let mut nodes = three_nodes(&rt);
    let mut sim = Command::new(sim_bin());
    sim.arg("router");
    for n in &nodes {
        sim.args(["--connect", &n.diameter]);
    }
    let rate = sessions.min(5000).to_string();
    let mut child = sim
        .args(["--origin-host", ROUTER, "--origin-realm", "test.realm"])
        .args([
            "--no-confirm",
            "--timeout-secs",
            "60",
            "--watchdog-secs",
            "30",
        ])
        .args(["--subscribers", &sessions.to_string(), "--rate", &rate])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sae-sim router");
    // The simulator's events, read as they come: logins, and SRQs with the time they arrived.
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let (tx, rx) = mpsc::channel::<(Instant, String, bool)>();
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            let at = Instant::now();
            if line.contains("\"event\":\"login\"") {
                let _ = tx.send((at, String::new(), false));
            } else if line.contains("\"event\":\"request\"") && line.contains("\"SRQ\"") {
                let v: Json = serde_json::from_str(&line).unwrap_or_default();
                let from = v["from"].as_str().unwrap_or_default().to_owned();
                let _ = tx.send((at, from, true));
            }
        }
    });
    let mut logged_in = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while logged_in < sessions {
        let (_, _, srq) = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("logins finish");
        if !srq {
            logged_in += 1;
        }
    }
    let status = cluster_status(&rt, &nodes[0].grpc).expect("cluster status");
    let owner = status
        .routers
        .iter()
        .find(|r| r.router == ROUTER)
        .expect("the router has an owner")
        .owner;
    let owner_at = nodes
        .iter()
        .position(|n| {
            status
                .members
                .iter()
                .any(|m| m.id == owner && m.grpc_address == n.grpc)
        })
        .expect("owner node");
    let owner_host = format!("sae-bench{}.test.realm", owner_at + 1);
    while rx.try_recv().is_ok() {}
    let mut dead = nodes.remove(owner_at);
    let killed = Instant::now();
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    // First SRQ from another SAE.
    let (first_srq_at, successor_host) = loop {
        let (at, from, srq) = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("an SRQ from the successor");
        if srq && from != owner_host {
            break (at, from);
        }
    };
    let successor = nodes
        .iter()
        .find(|n| {
            let i = successor_host
                .trim_start_matches("sae-bench")
                .trim_end_matches(".test.realm");
            cluster_status(&rt, &n.grpc).is_some_and(|s| {
                s.members
                    .iter()
                    .any(|m| m.grpc_address == n.grpc && m.origin_host.contains(i))
            })
        })
        .expect("successor node");
    let rebuilt_at = loop {
        if session_total(&rt, &successor.grpc) == Some(sessions) {
            break Instant::now();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(600),
            "sessions not rebuilt"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = child.kill();
    let _ = child.wait();
    drop(dead);
    json!({
        "measurement": "failover",
        "what": "SIGKILL of the router's owner → successor's first SRQ at the router, and → all sessions held by the successor (3 release nodes + sae-sim on loopback; lease 2 s, clock-skew margin 250 ms)",
        "sessions": sessions,
        "first_srq_ms": (first_srq_at - killed).as_secs_f64() * 1e3,
        "all_rebuilt_ms": (rebuilt_at - killed).as_secs_f64() * 1e3,
        "rebuild_after_srq_ms": (rebuilt_at - first_srq_at).as_secs_f64() * 1e3,
    })
}

/// `count` PutService calls one after the other through `grpc` (over 200 service names).
fn control_writes(rt: &tokio::runtime::Runtime, grpc: &str, count: u64, tag: &str) -> Json {
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    let started = Instant::now();
    rt.block_on(async {
        let mut c = ManagementClient::connect(format!("http://{grpc}"))
            .await
            .expect("connect");
        for i in 0..count {
            let t = Instant::now();
            c.put_service(pb::PutServiceRequest {
                service: Some(pb::Service {
                    // 200 services, each written again and again.
                    name: format!("{tag}{}", i % 200),
                    policy_name: format!("{tag}-policy-{i}"),
                    ..Default::default()
                }),
            })
            .await
            .expect("PutService");
            h.record(t.elapsed().as_micros() as u64).expect("record");
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    json!({
        "writes": count,
        "writes_per_s": count as f64 / elapsed,
        "latency_us": percentiles(&h),
    })
}

fn print(v: &Json) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects measurements by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));

    if wanted("login") {
        let node = Node::start();
        let rate = env_or("SAE_BENCH_RATE", 2000);
        let n = env_or("SAE_BENCH_RATE_LOGINS", 20_000);
        let mut r = load(
            &node,
            &["--subscribers", &n.to_string(), "--rate", &rate.to_string()],
        );
        r["measurement"] = "login-fixed-rate".into();
        print(&r);
        let n = env_or("SAE_BENCH_SAT_LOGINS", 50_000);
        let mut r = load(
            &node,
            &[
                "--subscribers",
                &n.to_string(),
                "--saturate",
                "--concurrency",
                "256",
                "--origin-host-template",
                "sat{r}.sim.test.realm",
            ],
        );
        r["measurement"] = "login-saturation".into();
        print(&r);
    }

    if wanted("ppr") {
        let node = Node::start();
        let users = 2000;
        let held = hold(
            &node,
            &[
                "--subscribers",
                &users.to_string(),
                "--saturate",
                "--user-template",
                "ppr{n}@bench",
            ],
        );
        assert_eq!(held.result["ok"], users, "{}", held.result);
        let names: Vec<String> = (0..users).map(|n| format!("ppr{n}@bench")).collect();
        let count = env_or("SAE_BENCH_PPRS", 20_000) as usize;
        print(&activations(&node, &names, count, 64));
        drop(held);
    }

    if wanted("cops") {
        let node = Node::start();
        let count = env_or("SAE_BENCH_COPS_REQS", 20_000) as u32;
        for (name, client_type) in [("cops-pr-decisions", 0x800Bu16), ("sbc-admissions", 0x800A)] {
            let (elapsed, h, ok, other) = cops_decisions(&node, client_type, count, 64);
            print(&json!({
                "measurement": name,
                "what": "REQ → DEC round trips on one COPS connection, 64 in flight",
                "client_type": format!("{client_type:#06x}"),
                "requests": count,
                "installed_or_admitted": ok,
                "other": other,
                "elapsed_s": elapsed,
                "decisions_per_s": f64::from(count) / elapsed,
                "latency_us": percentiles(&h),
            }));
        }
    }

    if wanted("failover") {
        for n in [1_000, env_or("SAE_BENCH_FAILOVER_SESSIONS", 100_000)] {
            print(&failover(n));
        }
    }

    if wanted("control") {
        let rt = rt();
        let nodes = three_nodes(&rt);
        let leader = cluster_status(&rt, &nodes[0].grpc)
            .expect("status")
            .leader_id;
        let by_id = |leader_side: bool| {
            nodes
                .iter()
                .find(|n| {
                    cluster_status(&rt, &n.grpc)
                        .is_some_and(|s| (s.node_id == leader) == leader_side)
                })
                .expect("node")
        };
        let count = env_or("SAE_BENCH_CONTROL_WRITES", 1000);
        let mut r = control_writes(&rt, &by_id(true).grpc, count, "lw");
        r["measurement"] = "control-writes-leader".into();
        r["what"] =
            "PutService through the leader, sequential: Raft commit on 3 nodes + local apply"
                .into();
        print(&r);
        let mut r = control_writes(&rt, &by_id(false).grpc, count, "fw");
        r["measurement"] = "control-writes-follower".into();
        r["what"] = "PutService through a follower, sequential: forwarded to the leader, committed, applied on the follower".into();
        print(&r);
    }

    if wanted("nic-publishing") {
        let n = env_or("SAE_BENCH_SAT_LOGINS", 50_000);
        let saturate = [
            "--subscribers",
            &n.to_string(),
            "--saturate",
            "--concurrency",
            "256",
        ]
        .map(str::to_owned);
        let saturate: Vec<&str> = saturate.iter().map(String::as_str).collect();
        let mut runs: Vec<(bool, f64, f64)> = Vec::new();
        for _round in 0..3 {
            for on in [true, false] {
                let extra = if on { "" } else { "\n[nic]\nenabled = false\n" };
                let node = Node::start_member(CONFIG.to_owned() + extra, &[]);
                let cpu = node.cpu_secs();
                let r = load(&node, &saturate);
                let ok = r["ok"].as_f64().unwrap_or(0.0).max(1.0);
                let cpu_us = (node.cpu_secs() - cpu) * 1e6 / ok;
                runs.push((on, r["logins_per_s"].as_f64().unwrap_or(0.0), cpu_us));
            }
        }
        let median = |on: bool, pick: fn(&(bool, f64, f64)) -> f64| {
            let mut v: Vec<f64> = runs.iter().filter(|r| r.0 == on).map(pick).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (rate_on, rate_off) = (median(true, |r| r.1), median(false, |r| r.1));
        let (cpu_on, cpu_off) = (median(true, |r| r.2), median(false, |r| r.2));
        print(&json!({
            "measurement": "nic-publishing-login-rate",
            "what": "login saturation (256 in flight, one router), NIC on (embedded, publishing) vs [nic] enabled = false; medians of 3 alternated runs each",
            "logins": n,
            "logins_per_s_on": rate_on,
            "logins_per_s_off": rate_off,
            "on_vs_off_percent": 100.0 * rate_on / rate_off.max(1.0),
            "node_cpu_us_per_login_on": cpu_on,
            "node_cpu_us_per_login_off": cpu_off,
            "runs": runs.iter().map(|r| json!({"nic": r.0, "logins_per_s": r.1, "node_cpu_us_per_login": r.2})).collect::<Vec<_>>(),
        }));

        // Publications during a storm whose sessions stay: the NIC's binding count sampled
        // while it runs.
        let node = Node::start();
        let (tx, rx) = mpsc::channel::<()>();
        let sampler = {
            let addr = node.metrics.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut samples: Vec<(f64, f64)> = Vec::new();
                loop {
                    let bindings = metric(&addr, "sae_nic_bindings").unwrap_or(0.0);
                    samples.push((start.elapsed().as_secs_f64(), bindings));
                    if rx.recv_timeout(Duration::from_millis(20)).is_ok() {
                        return (start, samples);
                    }
                }
            })
        };
        let storm_start = Instant::now();
        let held = hold(&node, &saturate);
        let storm_secs = storm_start.elapsed().as_secs_f64();
        let ok = held.result["ok"].as_f64().unwrap_or(0.0);
        let deadline = Instant::now() + Duration::from_secs(60);
        while node.metric("sae_nic_bindings").unwrap_or(0.0) < ok && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let caught_up = storm_start.elapsed().as_secs_f64();
        tx.send(()).expect("stop sampler");
        let (sampled_from, samples) = sampler.join().expect("sampler");
        let offset = storm_start.duration_since(sampled_from).as_secs_f64();
        let during: Vec<&(f64, f64)> = samples
            .iter()
            .filter(|(t, _)| *t - offset <= storm_secs)
            .collect();
        let in_storm = during.last().map_or(0.0, |(_, b)| *b);
        print(&json!({
            "measurement": "nic-publishing-during-a-storm",
            "what": "sessions logged in and held at saturation (256 in flight); the embedded NIC's bindings (sae_nic_bindings) sampled every 20 ms",
            "sessions": ok,
            "storm_s": storm_secs,
            "logins_per_s": held.result["logins_per_s"],
            "bindings_at_storm_end": in_storm,
            "bindings_per_s_during_storm": in_storm / storm_secs.max(1e-9),
            "all_bound_after_last_aaa_ms": (caught_up - storm_secs) * 1e3,
            "lag_at_storm_end_bindings": ok - in_storm,
        }));
        drop(held);
    }

    if wanted("raft-disk") {
        let rt = rt();
        let nodes = three_nodes_with(&rt, "\n[cluster]\nsnapshot_after = 1000\n");
        let writes = env_or("SAE_BENCH_DISK_WRITES", 20_000);
        let mut sizes = Vec::new();
        let step = writes / 4;
        for round in 0..4 {
            control_writes(&rt, &nodes[0].grpc, step, &format!("d{round}-"));
            sizes.push(json!({
                "writes": step * (round + 1),
                "bytes": nodes.iter().map(Node::raft_disk_bytes).collect::<Vec<_>>(),
            }));
        }
        print(&json!({
            "measurement": "raft-disk",
            "what": "size of each node's Raft database (sled) after N catalog writes (over 200 service names), a snapshot every 1,000 entries, plus the lease renewals",
            "sizes": sizes,
        }));
    }

    if wanted("memory") {
        let node = Node::start();
        std::thread::sleep(Duration::from_secs(1));
        let before = node.rss_bytes();
        let n = env_or("SAE_BENCH_IDLE_SESSIONS", 100_000);
        let held = hold(
            &node,
            &[
                "--subscribers",
                &n.to_string(),
                "--saturate",
                "--concurrency",
                "256",
            ],
        );
        // Let the store's writer catch up and allocations settle.
        std::thread::sleep(Duration::from_secs(3));
        let after = node.rss_bytes();
        let ok = held.result["ok"].as_u64().unwrap_or(0);
        print(&json!({
            "measurement": "memory-per-session",
            "what": "sae-node VmRSS after N idle logged-in sessions minus before, / N",
            "sessions": ok,
            "rss_before_bytes": before,
            "rss_after_bytes": after,
            "bytes_per_session": (after.saturating_sub(before)) as f64 / ok.max(1) as f64,
        }));
        drop(held);
    }
}
