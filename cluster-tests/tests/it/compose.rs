//! The cluster in containers: the image of `deploy/build-image.sh` (static sae-node, saectl and
//! sae-sim, FROM scratch) and `deploy/compose.yaml` (sae1 creates the cluster, sae2 and sae3
//! join it, the simulated router `sim` connects to all three and logs subscribers in).
//!
//! One test, in steps: three healthy nodes agree on three members and a leader; a node stopped
//! with `docker compose stop` leaves gracefully and the other two keep a leader; started again
//! it rejoins; the router's owner cut off with `docker network disconnect` stops serving it
//! while the majority elects a leader, takes catalog writes and moves the router to a live
//! node (which rebuilds the sessions from the router's replay); reconnected, every member
//! agrees on the leader, the last applied index and the catalog, and no subscriber was lost.
//!
//! Everything is asked of the nodes with `saectl` run inside their containers (`docker exec`;
//! no host port is used, and a disconnected node can still be asked). The compose project has
//! its own name and network (`-p`, `SAE_NET_PREFIX`) and is removed (`down -v`) on drop.
//!
//! Needs docker and docker compose (v2) or docker-compose (1.29). Without a usable docker the
//! test is skipped with a message, unless `SAE_REQUIRE_DOCKER=1`. `SAE_COMPOSE_IMAGE=NAME`
//! uses an existing image instead of running `deploy/build-image.sh`.
//!
//! `cargo nextest run -p sae-cluster-tests compose`

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;

use crate::support::{Proc, workspace_root};

/// The router of the `sim` service.
const ROUTER: &str = "router1.example.net";
/// Subscribers the simulator logs in.
const SUBSCRIBERS: u64 = 10;
/// The fixed nodes of the compose file.
const NODES: [&str; 3] = ["sae1", "sae2", "sae3"];
/// How long a cluster-level condition may take (elections, joins, failover, replay).
const CLUSTER_WAIT: Duration = Duration::from_secs(90);
/// Time for the static release build and the image (cold cache: about four minutes on two
/// cores).
const BUILD_WAIT: Duration = Duration::from_secs(900);

/// Why docker cannot be used here, if it cannot.
fn docker_unavailable() -> Option<String> {
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output()
    {
        Err(e) => Some(format!("cannot run `docker`: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "`docker info` failed (is the daemon running?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// `docker compose` (v2 plugin) or else `docker-compose` (1.29).
fn compose_program() -> Vec<String> {
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if v2 {
        return vec!["docker".into(), "compose".into()];
    }
    let v1 = Command::new("docker-compose")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        v1,
        "docker is available but neither `docker compose` nor `docker-compose` is installed"
    );
    vec!["docker-compose".into()]
}

/// Builds `sae-cluster:dev` with deploy/build-image.sh (cargo rebuilds only what changed), or
/// takes `SAE_COMPOSE_IMAGE`.
fn image() -> String {
    if let Ok(image) = std::env::var("SAE_COMPOSE_IMAGE") {
        return image;
    }
    let image = "sae-cluster:dev".to_owned();
    let started = Instant::now();
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("deploy/build-image.sh"))
        .env("SAE_IMAGE", &image)
        .current_dir(workspace_root());
    let mut build = Proc::spawn("build-image", cmd);
    let status = build.wait_exit(BUILD_WAIT);
    assert!(
        status.success(),
        "deploy/build-image.sh failed with {status}\n{}",
        build.transcript()
    );
    eprintln!("image {image} ready after {:?}", started.elapsed());
    image
}

/// Polls `f` every 500 ms until it returns `Ok`, for at most `timeout`; the panic message has
/// the last error.
#[track_caller]
fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        match f() {
            Ok(v) => {
                eprintln!("{what}: after {:?}", started.elapsed());
                return v;
            }
            Err(e) if started.elapsed() >= timeout => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {e}")
            }
            Err(_) => thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Runs a command; its stdout, or the status and stderr.
fn output(mut cmd: Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

fn docker(args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    cmd
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// One compose project of deploy/compose.yaml, with every profile; `down -v` on drop.
struct Project {
    compose: Vec<String>,
    name: String,
    image: String,
    /// The first three octets of the project network's /24.
    net_prefix: String,
}

impl Project {
    /// `up -d` of the cluster and the simulator under a fresh project name, on a /24 no other
    /// network uses (another is tried when docker finds the pool taken).
    fn up(image: String) -> Project {
        let seed = std::process::id() as u64 ^ (now_ms() as u64);
        let compose = compose_program();
        let mut last = String::new();
        for attempt in 0..6u64 {
            let n = (seed + attempt * 37) % 250 + 2;
            let project = Project {
                compose: compose.clone(),
                name: format!("sae-it-{}-{n}", std::process::id()),
                image: image.clone(),
                net_prefix: format!("10.213.{n}"),
            };
            let started = Instant::now();
            match output(project.cmd(&["up", "-d"])) {
                Ok(_) => {
                    eprintln!(
                        "compose project {} up on {}.0/24 after {:?}",
                        project.name,
                        project.net_prefix,
                        started.elapsed()
                    );
                    return project;
                }
                Err(e) if e.contains("overlap") => last = e,
                Err(e) => panic!("compose up failed: {e}\n{}", project.logs()),
            }
            // Dropping the project removes what was created before the failure.
        }
        panic!("no free /24 for the compose network: {last}");
    }

    /// `compose -p NAME -f deploy/compose.yaml --profile demo ARGS`.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.compose[0]);
        cmd.args(&self.compose[1..])
            .arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(compose_file())
            .args(["--profile", "demo"])
            .args(args)
            .env("SAE_IMAGE", &self.image)
            .env("SAE_NET_PREFIX", &self.net_prefix)
            .env("SAE_SIM_SUBSCRIBERS", SUBSCRIBERS.to_string());
        cmd
    }

    fn compose(&self, args: &[&str]) -> String {
        output(self.cmd(args)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The container of a service (its first replica).
    fn container(&self, service: &str) -> String {
        let id = self.compose(&["ps", "-q", service]);
        let id = id.lines().next().unwrap_or_default().trim().to_owned();
        assert!(!id.is_empty(), "no container for service {service}");
        id
    }

    /// The project's network (compose names it `<project>_sae`).
    fn network(&self) -> String {
        format!("{}_sae", self.name)
    }

    /// The fixed address of sae1..sae3.
    fn address(&self, service: &str) -> String {
        let host = match service {
            "sae1" => 11,
            "sae2" => 12,
            "sae3" => 13,
            other => panic!("{other} has no fixed address"),
        };
        format!("{}.{host}", self.net_prefix)
    }

    /// `saectl ARGS` inside a service's container, against that node's management API.
    fn ctl(&self, service: &str, args: &[&str]) -> Result<String, String> {
        let id = self.container(service);
        let mut cmd = docker(&["exec", &id, "/saectl", "--timeout", "5"]);
        cmd.args(args);
        let result = output(cmd);
        if let Err(e) = &result {
            // A command line saectl does not know will not start working by waiting.
            assert!(
                !e.contains("unrecognized subcommand") && !e.contains("unexpected argument"),
                "this saectl lacks a command the test uses: {e}"
            );
        }
        result
    }

    /// `saectl --json ARGS`, parsed.
    fn ctl_json(&self, service: &str, args: &[&str]) -> Result<Json, String> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.ctl(service, &all)?;
        serde_json::from_str(&text).map_err(|e| format!("saectl printed no JSON ({e}): {text}"))
    }

    /// The cluster as one node sees it (`saectl cluster`).
    fn cluster(&self, service: &str) -> Result<Cluster, String> {
        self.ctl_json(service, &["cluster"]).map(Cluster)
    }

    /// Subscriber sessions a node holds.
    fn sessions(&self, service: &str) -> Result<u64, String> {
        let page = self.ctl_json(service, &["subscriber", "list", "--page-size", "1"])?;
        Ok(page["total"].as_u64().unwrap_or(0))
    }

    /// Service names of a node's catalog, sorted.
    fn catalog(&self, service: &str) -> Result<Vec<String>, String> {
        let list = self.ctl_json(service, &["service", "list"])?;
        let mut names: Vec<String> = list["services"]
            .as_array()
            .ok_or_else(|| format!("no services array: {list}"))?
            .iter()
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The container's health (`healthy`, `starting`, `unhealthy`) or state.
    fn health(&self, service: &str) -> String {
        let id = self.container(service);
        output(docker(&[
            "inspect",
            "-f",
            "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
            &id,
        ]))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|e| e)
    }

    fn wait_healthy(&self, services: &[&str]) {
        eventually(CLUSTER_WAIT, &format!("{services:?} healthy"), || {
            let states: Vec<String> = services
                .iter()
                .map(|s| format!("{s}={}", self.health(s)))
                .collect();
            if states.iter().all(|s| s.ends_with("=healthy")) {
                Ok(())
            } else {
                Err(states.join(" "))
            }
        });
    }

    /// The simulator's JSON events so far (its stdout).
    fn sim_events(&self) -> Vec<Json> {
        let id = self.container("sim");
        let out = docker(&["logs", &id])
            .stderr(Stdio::null())
            .output()
            .expect("docker logs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The last lines of every container's log, for failure messages.
    fn logs(&self) -> String {
        let mut cmd = self.cmd(&["logs", "--no-color", "--tail", "60"]);
        match cmd.output() {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("(compose logs: {e})"),
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- compose logs of {} ---\n{}", self.name, self.logs());
        }
        let out = self
            .cmd(&["down", "-v", "--remove-orphans", "-t", "10"])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "compose down of {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("compose down of {}: {e}", self.name),
        }
    }
}

fn compose_file() -> PathBuf {
    workspace_root().join("deploy/compose.yaml")
}

/// `saectl --json cluster` of one node (the management API's ClusterStatus).
#[derive(Debug, Clone)]
struct Cluster(Json);

impl Cluster {
    fn node_id(&self) -> u64 {
        self.0["node_id"].as_u64().unwrap_or(0)
    }

    fn leader_id(&self) -> u64 {
        self.0["leader_id"].as_u64().unwrap_or(0)
    }

    fn last_applied(&self) -> u64 {
        self.0["last_applied"].as_u64().unwrap_or(0)
    }

    fn members(&self) -> Vec<Json> {
        self.0["members"].as_array().cloned().unwrap_or_default()
    }

    /// The member name of a node id.
    fn name_of(&self, id: u64) -> Option<String> {
        self.members()
            .iter()
            .find(|m| m["id"].as_u64() == Some(id))
            .and_then(|m| m["name"].as_str().map(str::to_owned))
    }

    /// The router's entry: owner id, owner name, epoch, lease end (Unix ms).
    fn router(&self, router: &str) -> Option<(u64, String, u64, i64)> {
        self.0["routers"].as_array()?.iter().find_map(|r| {
            (r["router"].as_str() == Some(router)).then(|| {
                (
                    r["owner"].as_u64().unwrap_or(0),
                    r["owner_name"].as_str().unwrap_or_default().to_owned(),
                    r["epoch"].as_u64().unwrap_or(0),
                    r["lease_until_ms"].as_i64().unwrap_or(0),
                )
            })
        })
    }
}

/// Every node of `asked` reports a number of members in `members` and the same leader, one of
/// `asked`; the leader's name and the views.
fn agreed(
    p: &Project,
    asked: &[&str],
    members: RangeInclusive<usize>,
) -> Result<(String, Vec<Cluster>), String> {
    let mut views = Vec::new();
    for node in asked {
        let view = p.cluster(node).map_err(|e| format!("{node}: {e}"))?;
        if !members.contains(&view.members().len()) {
            return Err(format!(
                "{node} sees {} members, not {members:?}: {}",
                view.members().len(),
                view.0
            ));
        }
        if view.leader_id() == 0 {
            return Err(format!("{node} knows no leader: {}", view.0));
        }
        views.push(view);
    }
    let leader = views[0].leader_id();
    if let Some(other) = views.iter().find(|v| v.leader_id() != leader) {
        return Err(format!(
            "no agreement on the leader: {leader} and {}",
            other.leader_id()
        ));
    }
    let name = views[0]
        .name_of(leader)
        .ok_or_else(|| format!("leader {leader} is not a member: {}", views[0].0))?;
    if !asked.contains(&name.as_str()) {
        return Err(format!("the leader is {name}, not one of {asked:?}"));
    }
    Ok((name, views))
}

/// The router is owned by one of `live` (as `asked` sees it), which holds every subscriber;
/// the owner's name and the epoch.
fn served(p: &Project, asked: &str, live: &[&str]) -> Result<(String, u64), String> {
    let view = p.cluster(asked)?;
    let (_, owner, epoch, _) = view
        .router(ROUTER)
        .ok_or_else(|| format!("{asked} knows no owner of {ROUTER}: {}", view.0))?;
    if !live.contains(&owner.as_str()) {
        return Err(format!(
            "{ROUTER} is owned by {owner:?}, not one of {live:?}"
        ));
    }
    let sessions = p.sessions(&owner)?;
    if sessions != SUBSCRIBERS {
        return Err(format!(
            "{owner} holds {sessions} sessions, not {SUBSCRIBERS}"
        ));
    }
    Ok((owner, epoch))
}

#[test]
fn compose_cluster_survives_a_stop_a_partition_and_rejoins() {
    if let Some(why) = docker_unavailable() {
        assert!(
            std::env::var_os("SAE_REQUIRE_DOCKER").is_none(),
            "SAE_REQUIRE_DOCKER is set but docker is not usable: {why}"
        );
        eprintln!("SKIPPED compose test: docker is not available ({why})");
        return;
    }
    let started = Instant::now();
    let image = image();
    let out = output(docker(&["run", "--rm", &image, "--check-config"]))
        .unwrap_or_else(|e| panic!("the image's configuration: {e}"));
    assert_eq!(out.trim(), "configuration ok");

    let p = Project::up(image);
    p.wait_healthy(&NODES);

    // Three members, one leader, every node agreeing.
    let (leader, _) = eventually(CLUSTER_WAIT, "three members agreeing on a leader", || {
        agreed(&p, &NODES, 3..=3)
    });
    eprintln!("leader: {leader}");

    // The router logged its subscribers in; the owner holds them all.
    eventually(CLUSTER_WAIT, "the simulator's logins", || {
        let events = p.sim_events();
        match events.iter().find(|e| e["event"] == "logins-done") {
            Some(done) if done["ok"].as_u64() == Some(SUBSCRIBERS) => Ok(()),
            Some(done) => Err(format!("logins-done: {done}")),
            None => Err(format!("{} events, no logins-done", events.len())),
        }
    });
    let (owner, _) = eventually(CLUSTER_WAIT, "the router served with every session", || {
        served(&p, "sae1", &NODES)
    });
    eprintln!("{ROUTER} owned by {owner}");

    // `docker compose stop sae3`: SIGTERM, a graceful leave; the other two keep a leader.
    let stopping = Instant::now();
    p.compose(&["stop", "sae3"]);
    let code = output(docker(&[
        "inspect",
        "-f",
        "{{.State.ExitCode}}",
        &p.container("sae3"),
    ]))
    .expect("inspect sae3");
    assert_eq!(
        code.trim(),
        "0",
        "sae3 did not exit cleanly on SIGTERM (137: killed after the grace period)"
    );
    eprintln!("sae3 left in {:?}", stopping.elapsed());
    eventually(CLUSTER_WAIT, "sae1 and sae2: two members, a leader", || {
        agreed(&p, &["sae1", "sae2"], 2..=2)
    });
    eventually(CLUSTER_WAIT, "the router served by sae1 or sae2", || {
        served(&p, "sae1", &["sae1", "sae2"])
    });

    // Started again, sae3 joins again.
    p.compose(&["start", "sae3"]);
    p.wait_healthy(&["sae3"]);
    eventually(CLUSTER_WAIT, "sae3 back: three members", || {
        agreed(&p, &NODES, 3..=3)
    });

    // Cut the router's owner off the network.
    let (cut, epoch) = eventually(CLUSTER_WAIT, "the router's owner", || {
        served(&p, "sae1", &NODES)
    });
    let rest: Vec<&str> = NODES.iter().copied().filter(|n| *n != cut).collect();
    let cut_container = p.container(&cut);
    output(docker(&[
        "network",
        "disconnect",
        &p.network(),
        &cut_container,
    ]))
    .unwrap_or_else(|e| panic!("disconnect {cut}: {e}"));
    eprintln!("{cut} disconnected");

    // The majority: a leader among them, writes, the router on a live node with every session.
    // (The cut-off node may still be listed as a member, or already removed.)
    eventually(CLUSTER_WAIT, "a leader in the majority", || {
        agreed(&p, &rest, 2..=3)
    });
    eventually(CLUSTER_WAIT, "a catalog write through the majority", || {
        p.ctl(
            rest[0],
            &[
                "service",
                "put",
                "it-partition",
                "--policy-name",
                "it-partition-1",
                "--description",
                "written while a node was cut off",
            ],
        )
    });
    let (new_owner, new_epoch) =
        eventually(CLUSTER_WAIT, "the router moved to the majority", || {
            served(&p, rest[0], &rest)
        });
    assert!(
        new_epoch > epoch,
        "{ROUTER} moved from {cut} to {new_owner} without a new epoch ({epoch} → {new_epoch})"
    );

    // The cut-off node no longer acts as the router's owner: no running lease in its own view.
    eventually(
        CLUSTER_WAIT,
        "the cut-off node to stop serving the router",
        || {
            let view = p.cluster(&cut)?;
            match view.router(ROUTER) {
                Some((owner, _, _, lease)) if owner == view.node_id() && lease > now_ms() => Err(
                    format!("{cut} still holds the router's lease until {lease}"),
                ),
                _ => Ok(()),
            }
        },
    );
    assert!(
        p.ctl(
            &cut,
            &["service", "put", "it-cut-off", "--policy-name", "x"]
        )
        .is_err(),
        "{cut}, cut off from the majority, accepted a catalog write"
    );

    // Reconnected with its address and service name: everyone converges.
    let ip = p.address(&cut);
    output(docker(&[
        "network",
        "connect",
        "--ip",
        &ip,
        "--alias",
        &cut,
        &p.network(),
        &cut_container,
    ]))
    .unwrap_or_else(|e| panic!("reconnect {cut}: {e}"));
    // Leases are renewed through Raft all the time, so the applied indexes are compared with
    // one taken from the leader after the reconnection: every node must reach it.
    let (_, views) = eventually(CLUSTER_WAIT, "three members after the reconnection", || {
        agreed(&p, &NODES, 3..=3)
    });
    let target = views
        .iter()
        .find(|v| v.node_id() == v.leader_id())
        .expect("the leader is one of the nodes asked")
        .last_applied();
    eventually(
        CLUSTER_WAIT,
        "convergence on the leader, the applied index and the catalog",
        || {
            let (_, views) = agreed(&p, &NODES, 3..=3)?;
            let applied: Vec<u64> = views.iter().map(Cluster::last_applied).collect();
            if applied.iter().any(|a| *a < target) {
                return Err(format!(
                    "applied indexes {applied:?}, not all at {target} yet"
                ));
            }
            let catalogs: Vec<Vec<String>> = NODES
                .iter()
                .map(|n| p.catalog(n))
                .collect::<Result<_, _>>()?;
            if !catalogs[0].iter().any(|s| s == "it-partition") {
                return Err(format!("it-partition missing: {:?}", catalogs[0]));
            }
            if catalogs.iter().any(|c| *c != catalogs[0]) {
                return Err(format!("catalogs differ: {catalogs:?}"));
            }
            Ok(())
        },
    );

    // No subscriber lost: the owner holds them all and the router ended none.
    eventually(
        CLUSTER_WAIT,
        "every subscriber on the router's owner",
        || served(&p, "sae1", &NODES),
    );
    let logouts: Vec<Json> = p
        .sim_events()
        .into_iter()
        .filter(|e| e["event"] == "logout")
        .collect();
    assert!(logouts.is_empty(), "sessions ended: {logouts:?}");
    // And from the router's side: no two SAEs ever acted on it in the same epoch.
    sae_sim::events::check_single_active(&p.sim_events()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("compose test done in {:?}", started.elapsed());
}
