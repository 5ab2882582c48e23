//! The cluster with real processes: three to five `sae-node`s on 127.0.0.x joined over gRPC,
//! `sae-sim` as a router connected to every node, nodes killed (SIGKILL), stopped (SIGTERM),
//! added and restarted while the router keeps logging subscribers in.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sae_proto::v1 as pb;
use sae_sim::events::check_single_active;

use crate::support::{Api, NodeConfig, SaeNic, SaeNode, Sim};

const ROUTER: &str = "client.test.realm";

const CATALOG: &str = r#"
[[service]]
name = "internet"
policy_name = "internet-10M"

[[service]]
name = "video"
policy_name = "video-boost"

[[rule]]
name = "default"
priority = 10
services = ["internet"]
subscriber_dn = "uniqueID=<userName>,ou=<domain>,o=users"
"#;

/// How long cluster conditions may take (elections, lease expiry, resync of hundreds of
/// sessions on a loaded 2-core machine).
const CLUSTER_WAIT: Duration = Duration::from_secs(60);

fn node_config(ip: &'static str, host: &'static str, cluster: &str) -> NodeConfig {
    NodeConfig {
        origin_host: host,
        listen_ip: ip,
        allowed_peers: Some(vec![ROUTER]),
        extra: format!("\n[cluster]\n{cluster}\n{CATALOG}"),
        ..Default::default()
    }
}

fn host(i: usize) -> &'static str {
    Box::leak(format!("sae{i}.test.realm").into_boxed_str())
}

fn ip(base: u8, i: usize) -> &'static str {
    Box::leak(format!("127.0.{base}.{i}").into_boxed_str())
}

fn join_args(to: &SaeNode) -> Vec<String> {
    vec!["--join".into(), to.grpc.to_string()]
}

/// Starts `n` nodes on 127.0.BASE.1..n: the first creates the cluster, the others join it.
fn start_cluster(base: u8, n: usize, cluster: &str) -> Vec<SaeNode> {
    let first = SaeNode::start(&node_config(ip(base, 1), host(1), cluster));
    let mut nodes = vec![first];
    for i in 2..=n {
        let args = join_args(&nodes[0]);
        nodes.push(SaeNode::start_with(
            &node_config(ip(base, i), host(i), cluster),
            &args,
        ));
    }
    nodes
}

fn status(node: &SaeNode) -> Option<pb::ClusterStatus> {
    let mut api = Api::connect(node);
    api.rt
        .block_on(api.client.get_cluster(pb::GetClusterRequest {}))
        .ok()
        .map(|r| r.into_inner())
}

/// Polls until `f` holds, at most [`CLUSTER_WAIT`].
fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + CLUSTER_WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until every given node sees the same leader and `members` members; returns the
/// leader's id.
fn converged(nodes: &[&SaeNode], members: usize) -> u64 {
    until(
        &format!("{} nodes agreeing on a leader", nodes.len()),
        || agreed(nodes).filter(|(_, n)| *n == members).map(|(l, _)| l),
    )
}

/// The leader every given node names, and the member count they agree on, if they agree.
fn agreed(nodes: &[&SaeNode]) -> Option<(u64, usize)> {
    let all: Vec<pb::ClusterStatus> = nodes.iter().map(|n| status(n)).collect::<Option<_>>()?;
    let (leader, members) = (all[0].leader_id, all[0].members.len());
    (leader != 0
        && all
            .iter()
            .all(|s| s.leader_id == leader && s.members.len() == members))
    .then_some((leader, members))
}

fn services(node: &SaeNode) -> Vec<String> {
    let mut api = Api::connect(node);
    api.rt
        .block_on(api.client.list_services(pb::ListServicesRequest {}))
        .expect("ListServices")
        .into_inner()
        .services
        .into_iter()
        .map(|s| s.name)
        .collect()
}

fn put_service(node: &SaeNode, name: &str) {
    let mut api = Api::connect(node);
    let req = pb::PutServiceRequest {
        service: Some(pb::Service {
            name: name.into(),
            policy_name: format!("{name}-policy"),
            ..Default::default()
        }),
    };
    api.rt
        .block_on(api.client.put_service(req))
        .unwrap_or_else(|e| panic!("PutService {name} on {}: {e}", node.grpc));
}

/// User names of every session a node holds.
fn users(node: &SaeNode) -> BTreeSet<String> {
    let mut api = Api::connect(node);
    let mut out = BTreeSet::new();
    let mut token = String::new();
    loop {
        let req = pb::ListSubscribersRequest {
            page_size: 1000,
            page_token: token.clone(),
            ..Default::default()
        };
        let page = api
            .rt
            .block_on(api.client.list_subscribers(req))
            .expect("ListSubscribers")
            .into_inner();
        out.extend(page.subscribers.into_iter().map(|s| s.user_name));
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

/// The router's owner as the given node sees it.
fn owner_of(node: &SaeNode, router: &str) -> Option<pb::RouterOwner> {
    status(node)?
        .routers
        .into_iter()
        .find(|r| r.router == router && r.owner != 0)
}

fn router_sim(nodes: &[&SaeNode], subscribers: u64, rate: f64) -> Sim {
    let mut args: Vec<String> = vec!["router".into()];
    for n in nodes {
        args.extend(["--connect".into(), n.diameter.to_string()]);
    }
    args.extend(
        [
            "--origin-host",
            ROUTER,
            "--origin-realm",
            "test.realm",
            "--watchdog-secs",
            "6",
            "--no-confirm",
            "--timeout-secs",
            "3",
            "--subscribers",
        ]
        .map(String::from),
    );
    args.push(subscribers.to_string());
    args.extend(["--rate".into(), rate.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Sim::spawn(&args)
}

fn events(sim: &Sim) -> Vec<serde_json::Value> {
    sim.proc
        .stdout
        .text()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Users the router saw logged in (AAA 2001) and not logged out since.
fn logged_in(events: &[serde_json::Value]) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| e["event"] == "login" && e["result"] == 2001)
        .filter_map(|e| e["user"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until the simulator reported the outcome of every planned login.
fn all_logins_done(sim: &Sim, subscribers: usize) -> Vec<serde_json::Value> {
    until("every planned login to finish", || {
        let ev = events(sim);
        let done = ev
            .iter()
            .filter(|e| e["event"] == "login" || e["event"] == "login-failed")
            .count();
        (done >= subscribers).then_some(ev)
    })
}

#[test]
fn leader_killed_new_leader_and_control_state_intact() {
    // A member silent for 3 s is removed by the leader.
    let mut nodes = start_cluster(11, 3, "remove_dead_after_ms = 3000");
    let refs: Vec<&SaeNode> = nodes.iter().collect();
    let leader = converged(&refs, 3);
    let st = status(&nodes[0]).expect("status");
    assert_eq!(
        st.members.iter().filter(|m| m.role == "voter").count(),
        3,
        "{st:?}"
    );
    // Node ids are assigned once: 1 created the cluster, the others got 2 and 3.
    let ids: BTreeSet<u64> = nodes.iter().map(|n| n.node_id).collect();
    assert_eq!(ids, BTreeSet::from([1, 2, 3]));
    // A catalog write through a follower reaches every node (the seed is there too).
    let follower = nodes
        .iter()
        .find(|n| n.node_id != leader)
        .expect("follower");
    put_service(follower, "gold");
    for n in &nodes {
        let names = until("the write on every node", || {
            let s = services(n);
            s.contains(&"gold".to_string()).then_some(s)
        });
        assert!(names.contains(&"internet".to_string()), "{names:?}");
    }
    // Kill the leader: the two others elect a new one and keep the state.
    let at = nodes
        .iter()
        .position(|n| n.node_id == leader)
        .expect("leader");
    let mut dead = nodes.remove(at);
    dead.proc.kill();
    let refs: Vec<&SaeNode> = nodes.iter().collect();
    let new_leader = until("a new leader", || {
        agreed(&refs).map(|(l, _)| l).filter(|l| *l != leader)
    });
    assert!(nodes.iter().any(|n| n.node_id == new_leader));
    for n in &nodes {
        let names = services(n);
        assert!(
            names.contains(&"gold".to_string()) && names.contains(&"internet".to_string()),
            "{names:?}"
        );
    }
    put_service(&nodes[0], "silver");
    until("the write after the failover", || {
        services(&nodes[1])
            .contains(&"silver".to_string())
            .then_some(())
    });
    // The dead leader is removed from the membership after 3 s of silence.
    converged(&refs, 2);
    let st = status(&nodes[0]).expect("status");
    assert!(
        st.members
            .iter()
            .all(|m| m.id != leader && m.role == "voter"),
        "{st:?}"
    );
    // Started again with its data, it is admitted again under its id.
    let back = dead.kill_and_restart_with(&join_args(&nodes[0]));
    assert_eq!(back.node_id, leader);
    nodes.push(back);
    let refs: Vec<&SaeNode> = nodes.iter().collect();
    converged(&refs, 3);
    until("the returning node's catalog", || {
        services(&nodes[2])
            .contains(&"silver".to_string())
            .then_some(())
    });
}

#[test]
fn owner_killed_while_logging_in_loses_no_subscriber() {
    const SUBSCRIBERS: u64 = 400;
    let mut nodes = start_cluster(12, 3, "");
    let refs: Vec<&SaeNode> = nodes.iter().collect();
    converged(&refs, 3);
    let sim = router_sim(&refs, SUBSCRIBERS, 60.0);
    // Logins are flowing through the owner.
    until("100 logins", || {
        (logged_in(&events(&sim)).len() >= 100).then_some(())
    });
    let owner = owner_of(&nodes[0], ROUTER).expect("the router has an owner");
    let at = nodes
        .iter()
        .position(|n| n.node_id == owner.owner)
        .expect("owner is one of ours");
    let mut dead = nodes.remove(at);
    dead.proc.kill();
    let killed_at = Instant::now();
    // Another node takes the router over (new epoch) and the router keeps logging in.
    let new_owner = until("a new owner", || {
        owner_of(&nodes[0], ROUTER).filter(|o| o.owner != owner.owner && o.epoch > owner.epoch)
    });
    eprintln!(
        "router moved from node {} to node {} (epoch {} → {}) {:?} after the kill",
        owner.owner,
        new_owner.owner,
        owner.epoch,
        new_owner.epoch,
        killed_at.elapsed()
    );
    let ev = all_logins_done(&sim, SUBSCRIBERS as usize);
    let expected = logged_in(&ev);
    let successor = nodes
        .iter()
        .find(|n| n.node_id == new_owner.owner)
        .expect("successor");
    let held = until("every logged-in subscriber on the new owner", || {
        let held = users(successor);
        expected.is_subset(&held).then_some(held)
    });
    assert_eq!(
        held, expected,
        "the new owner holds exactly the router's sessions"
    );
    assert_eq!(
        expected.len() as u64,
        SUBSCRIBERS,
        "every login eventually succeeded"
    );
    // The new owner's first message to the router was SRQ, and no two SAEs acted on the
    // router in the same epoch.
    check_single_active(&events(&sim)).unwrap_or_else(|e| panic!("{e}"));
    let first_from_successor = events(&sim)
        .into_iter()
        .find(|e| e["event"] == "request" && e["from"] == host(successor_index(&nodes, successor)));
    assert_eq!(
        first_from_successor.as_ref().map(|e| e["command"].clone()),
        Some(serde_json::json!("SRQ")),
        "{first_from_successor:?}"
    );
    // Juniper-Last-Origin-Host follows the owner, at the router and in the control state.
    until(
        "the control state's Last-Origin-Host is the new owner",
        || {
            owner_of(&nodes[0], ROUTER)
                .filter(|o| o.last_origin_host == host(successor_index(&nodes, successor)))
                .map(|_| ())
        },
    );
    until("the router's active SAE is the new owner", || {
        events(&sim)
            .iter()
            .rev()
            .find(|e| e["event"] == "active-sae")
            .filter(|e| e["sae"] == host(successor_index(&nodes, successor)))
            .map(|_| ())
    });
}

/// The index `i` of `sae{i}.test.realm` for a node (its 127.0.x.i address).
fn successor_index(_nodes: &[SaeNode], node: &SaeNode) -> usize {
    match node.grpc.ip() {
        std::net::IpAddr::V4(v4) => v4.octets()[3] as usize,
        std::net::IpAddr::V6(_) => unreachable!("loopback v4"),
    }
}

#[test]
fn nodes_added_and_removed_under_load() {
    const SUBSCRIBERS: u64 = 400;
    let mut nodes = start_cluster(13, 2, "");
    let refs: Vec<&SaeNode> = nodes.iter().collect();
    converged(&refs, 2);
    let sim = router_sim(&refs, SUBSCRIBERS, 50.0);
    until("50 logins", || {
        (logged_in(&events(&sim)).len() >= 50).then_some(())
    });
    // A third node joins while logins flow; it becomes a voter (3 configured).
    let third = SaeNode::start_with(&node_config(ip(13, 3), host(3), ""), &join_args(&nodes[0]));
    nodes.push(third);
    let refs: Vec<&SaeNode> = nodes.iter().collect();
    converged(&refs, 3);
    until("three voters", || {
        let st = status(&nodes[0])?;
        (st.members.iter().filter(|m| m.role == "voter").count() == 3).then_some(())
    });
    // The router's owner leaves gracefully (SIGTERM): it hands the router over and leaves.
    let owner = owner_of(&nodes[0], ROUTER).expect("owner");
    let at = nodes
        .iter()
        .position(|n| n.node_id == owner.owner)
        .expect("owner is one of ours");
    let mut leaving = nodes.remove(at);
    let exit = leaving.stop();
    assert!(exit.success(), "graceful leave exits 0: {exit:?}");
    let refs: Vec<&SaeNode> = nodes.iter().collect();
    converged(&refs, 2);
    let new_owner = until("a new owner", || {
        owner_of(&nodes[0], ROUTER).filter(|o| o.owner != owner.owner)
    });
    let ev = all_logins_done(&sim, SUBSCRIBERS as usize);
    let expected = logged_in(&ev);
    assert_eq!(expected.len() as u64, SUBSCRIBERS);
    let successor = nodes
        .iter()
        .find(|n| n.node_id == new_owner.owner)
        .expect("successor");
    let held = until("every subscriber on the new owner", || {
        let held = users(successor);
        (held == expected).then_some(held)
    });
    assert_eq!(held.len() as u64, SUBSCRIBERS);
    check_single_active(&events(&sim)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_restarted_node_catches_up_from_a_snapshot() {
    // Snapshots every 10 entries, so the restarted node is sent one.
    let cluster = "snapshot_after = 10";
    let mut nodes = start_cluster(14, 3, cluster);
    let refs: Vec<&SaeNode> = nodes.iter().collect();
    converged(&refs, 3);
    let third = nodes.pop().expect("third");
    let restart_args = join_args(&nodes[0]);
    // Down with its data while the others move on.
    let mut third = Some(third);
    let mut stopped = third.take().expect("node");
    stopped.proc.kill();
    for i in 0..40 {
        put_service(&nodes[i % 2], &format!("svc{i}"));
    }
    let third = stopped.kill_and_restart_with(&restart_args);
    assert_eq!(third.node_id, 3, "the node id is kept across restarts");
    nodes.push(third);
    let refs: Vec<&SaeNode> = nodes.iter().collect();
    converged(&refs, 3);
    until("the restarted node's catalog", || {
        let names = services(&nodes[2]);
        (names.len() == 40 + services(&nodes[0]).len() - 40).then_some(())
    });
    let leader_applied = status(&nodes[0]).expect("status").last_applied;
    until("the restarted node applied as far as the leader", || {
        (status(&nodes[2])?.last_applied >= leader_applied).then_some(())
    });
}

fn move_router(node: &SaeNode, router: &str, to: u64) -> pb::RouterOwner {
    let mut api = Api::connect(node);
    api.rt
        .block_on(api.client.move_router(pb::MoveRouterRequest {
            router: router.into(),
            node_id: to,
        }))
        .unwrap_or_else(|e| panic!("MoveRouter {router} → {to}: {e}"))
        .into_inner()
}

#[test]
fn an_operator_moves_a_router_and_its_sessions_follow() {
    const SUBSCRIBERS: u64 = 100;
    let nodes = start_cluster(15, 2, "");
    let refs: Vec<&SaeNode> = nodes.iter().collect();
    converged(&refs, 2);
    let sim = router_sim(&refs, SUBSCRIBERS, 200.0);
    let ev = all_logins_done(&sim, SUBSCRIBERS as usize);
    let expected = logged_in(&ev);
    assert_eq!(expected.len() as u64, SUBSCRIBERS);
    let before = owner_of(&nodes[0], ROUTER).expect("owner");
    let (from, to) = if before.owner == nodes[0].node_id {
        (&nodes[0], &nodes[1])
    } else {
        (&nodes[1], &nodes[0])
    };
    // Asked through the node that loses the router (it forwards to the leader if need be).
    let moved = move_router(from, ROUTER, to.node_id);
    assert_eq!(moved.owner, to.node_id);
    assert!(moved.epoch > before.epoch);
    let held = until("the sessions on the new owner", || {
        let held = users(to);
        (held == expected).then_some(held)
    });
    assert_eq!(held.len() as u64, SUBSCRIBERS);
    until("no session left on the old owner", || {
        users(from).is_empty().then_some(())
    });
    check_single_active(&events(&sim)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_cops_pep_is_redirected_to_the_node_that_serves_it() {
    let cops = "keepalive_secs = 5\nbudgets = [{ pepid = \"sbc1\", calls = 10 }]\n";
    let config = |i: usize| {
        let mut c = node_config(ip(16, i), host(i), "");
        c.cops = cops.into();
        c
    };
    let first = SaeNode::start(&config(1));
    let second = SaeNode::start_with(&config(2), &join_args(&first));
    converged(&[&first, &second], 2);
    let mut sbc = Sim::spawn(&[
        "sbc",
        "--connect",
        &first.cops.to_string(),
        "--pepid",
        "sbc1",
        "--control",
        "--backoff-initial-secs",
        "0.2",
    ]);
    sbc.wait(0, "CAT", |e| e["event"] == "accepted");
    let from = sbc.mark();
    sbc.send("call c1 64");
    sbc.wait(from, "c1", |e| {
        e["event"] == "call" && e["result"] == "admitted"
    });
    let key = "cops:sbc1";
    let owner = owner_of(&first, key).expect("the PEP is placed");
    assert_eq!(owner.owner, first.node_id);
    // Moved to the second node: the first closes the PEP with a PDP-Redirect to it, and the
    // second accepts it once the first node's lease is over.
    let from = sbc.mark();
    move_router(&first, key, second.node_id);
    let (_, redirected) = sbc.wait(from, "PDP-Redirect", |e| e["event"] == "redirected");
    assert_eq!(redirected["to"], second.cops.to_string(), "{redirected}");
    sbc.wait(from, "CAT from the second node", |e| {
        e["event"] == "accepted"
    });
    let from = sbc.mark();
    sbc.send("call c2 64");
    sbc.wait(from, "c2", |e| {
        e["event"] == "call" && e["result"] == "admitted"
    });
    let mut api = Api::connect(&second);
    let conns = api
        .rt
        .block_on(
            api.client
                .list_cops_connections(pb::ListCopsConnectionsRequest {}),
        )
        .expect("ListCopsConnections")
        .into_inner()
        .connections;
    assert!(conns.iter().any(|c| c.pepid == "sbc1"), "{conns:?}");
}

#[test]
fn an_operator_removes_a_live_node_and_it_stays_out() {
    let nodes = start_cluster(17, 3, "");
    let refs: Vec<&SaeNode> = nodes.iter().collect();
    converged(&refs, 3);
    // Asked of a node that may not lead: the leader removes node 3.
    let mut api = Api::connect(&nodes[1]);
    api.rt
        .block_on(api.client.remove_node(pb::RemoveNodeRequest { node_id: 3 }))
        .expect("RemoveNode");
    converged(&[&nodes[0], &nodes[1]], 2);
    // Node 3 hears that it is no longer a member and is refused when it asks again.
    until("node 3 to give up", || {
        nodes[2]
            .proc
            .transcript()
            .contains("removed from the cluster by an operator")
            .then_some(())
    });
    let st = status(&nodes[0]).expect("status");
    assert_eq!(st.members.len(), 2, "{st:?}");
    assert!(st.members.iter().all(|m| m.id != 3));
}

/// A router simulator with its own Origin-Host, connected to every node.
fn named_router_sim(nodes: &[&SaeNode], origin_host: &str, subscribers: u64) -> Sim {
    addressed_router_sim(nodes, origin_host, "10.0.0.1", subscribers)
}

#[test]
fn five_nodes_three_voters_and_every_node_serves_a_router() {
    let routers = [
        "r1.test.realm",
        "r2.test.realm",
        "r3.test.realm",
        "r4.test.realm",
        "r5.test.realm",
    ];
    // A first placement waits one renewal period for every node to report the router: 1 s
    // rather than 0.4 s, so that a node slowed by a loaded machine still reports in time.
    let config = |i: usize| {
        let mut c = node_config(ip(18, i), host(i), "renew_ms = 1000\nlease_ms = 3000");
        c.allowed_peers = Some(routers.to_vec());
        c
    };
    let first = SaeNode::start(&config(1));
    let mut nodes = vec![first];
    for i in 2..=5 {
        let args = join_args(&nodes[0]);
        nodes.push(SaeNode::start_with(&config(i), &args));
    }
    let refs: Vec<&SaeNode> = nodes.iter().collect();
    converged(&refs, 5);
    let st = status(&nodes[0]).expect("status");
    let voters = st.members.iter().filter(|m| m.role == "voter").count();
    assert_eq!((voters, st.members.len() - voters), (3, 2), "{st:?}");
    // Five routers connected to every node: the least-loaded rule gives each node one,
    // learners included.
    let sims: Vec<Sim> = routers
        .iter()
        .map(|r| named_router_sim(&refs, r, 20))
        .collect();
    let owners = until("every router placed on its own node", || {
        let st = status(&nodes[0])?;
        let owners: BTreeSet<u64> = st
            .routers
            .iter()
            .filter(|r| r.owner != 0)
            .map(|r| r.owner)
            .collect();
        (st.routers.len() == 5 && owners.len() == 5).then_some(owners)
    });
    assert_eq!(owners, nodes.iter().map(|n| n.node_id).collect());
    // Each node holds exactly the sessions of the router it serves.
    for sim in &sims {
        all_logins_done(sim, 20);
    }
    let st = status(&nodes[0]).expect("status");
    for r in &st.routers {
        let node = nodes
            .iter()
            .find(|n| n.node_id == r.owner)
            .expect("owner node");
        let held = until(
            &format!("{}'s sessions on node {}", r.router, r.owner),
            || {
                let held = users(node);
                (held.len() == 20).then_some(held)
            },
        );
        assert!(
            held.iter()
                .all(|u| u.starts_with(&format!("{}-user", r.router))),
            "{held:?}"
        );
    }
    for sim in &sims {
        check_single_active(&events(sim)).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A router simulator named `origin_host` whose subscribers have addresses from `ip_base`.
fn addressed_router_sim(nodes: &[&SaeNode], origin_host: &str, ip_base: &str, n: u64) -> Sim {
    let mut args: Vec<String> = vec!["router".into()];
    for node in nodes {
        args.extend(["--connect".into(), node.diameter.to_string()]);
    }
    args.extend(
        [
            "--origin-host",
            origin_host,
            "--origin-realm",
            "test.realm",
            "--watchdog-secs",
            "6",
            "--no-confirm",
            "--ip-base",
            ip_base,
            "--user-template",
        ]
        .map(String::from),
    );
    args.push(format!("{origin_host}-user{{n}}@example.net"));
    args.extend([
        "--subscribers".into(),
        n.to_string(),
        "--rate".into(),
        "100".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Sim::spawn(&args)
}

fn bindings(node: &SaeNode) -> Vec<pb::NicBinding> {
    let mut api = Api::connect(node);
    api.rt
        .block_on(api.client.list_bindings(pb::ListBindingsRequest {
            reference: String::new(),
            limit: 10_000,
        }))
        .map(|r| r.into_inner().bindings)
        .unwrap_or_default()
}

fn resolve(node: &SaeNode, reference: &str) -> Result<pb::ResolveReply, tonic::Status> {
    let mut api = Api::connect(node);
    api.rt
        .block_on(api.client.resolve(pb::ResolveRequest {
            reference: reference.into(),
        }))
        .map(|r| r.into_inner())
}

fn by_reference(reference: &str) -> Option<pb::SubscriberRef> {
    Some(pb::SubscriberRef {
        key: Some(pb::subscriber_ref::Key::Reference(reference.into())),
    })
}

/// The references of every key kind a binding can be found by.
fn references_of(b: &pb::NicBinding) -> Vec<String> {
    vec![
        format!("ip={}", b.addresses[0]),
        format!("loginName={}", b.login_name),
        format!("dn={}", b.dn),
        format!("interfaceName={};router={}", b.interface_name, b.router),
        format!("interfaceName={};vr={}", b.interface_name, b.vr),
        format!("accountingId={}", b.accounting_id),
        format!("sessionId=\"{}\"", b.session_id),
        format!("ip={};vr={}", b.addresses[0], b.vr),
    ]
}

#[test]
fn any_node_resolves_and_acts_on_any_subscriber_and_follows_a_failover() {
    const PER_ROUTER: u64 = 20;
    let routers = ["r1.test.realm", "r2.test.realm", "r3.test.realm"];
    let config = |i: usize| {
        let mut c = node_config(ip(19, i), host(i), "");
        c.allowed_peers = Some(routers.to_vec());
        c
    };
    let first = SaeNode::start(&config(1));
    let mut nodes = vec![first];
    for i in 2..=3 {
        let args = join_args(&nodes[0]);
        nodes.push(SaeNode::start_with(&config(i), &args));
    }
    let refs: Vec<&SaeNode> = nodes.iter().collect();
    converged(&refs, 3);
    let sims: Vec<Sim> = routers
        .iter()
        .enumerate()
        .map(|(i, r)| addressed_router_sim(&refs, r, &format!("10.{}.0.1", i + 1), PER_ROUTER))
        .collect();
    for sim in &sims {
        all_logins_done(sim, PER_ROUTER as usize);
    }
    // Router i on node i, so that every node serves one.
    for (router, node) in routers.iter().zip(&nodes) {
        if owner_of(&nodes[0], router).map(|o| o.owner) != Some(node.node_id) {
            move_router(&nodes[0], router, node.node_id);
        }
    }
    for (router, node) in routers.iter().zip(&nodes) {
        until(
            &format!("{router}'s sessions on node {}", node.node_id),
            || {
                let held = users(node);
                (held.len() == PER_ROUTER as usize
                    && held
                        .iter()
                        .all(|u| u.starts_with(&format!("{router}-user"))))
                .then_some(())
            },
        );
    }
    // Every node's NIC holds every binding, each published by its router's owner.
    let owner =
        |router: &str| nodes[routers.iter().position(|r| *r == router).expect("ours")].node_id;
    for node in &nodes {
        until(
            &format!("node {}'s NIC holding every binding", node.node_id),
            || {
                let all = bindings(node);
                (all.len() == 3 * PER_ROUTER as usize
                    && all.iter().all(|b| b.node == owner(&b.router)))
                .then_some(())
            },
        );
    }
    for node in &nodes {
        let text = until(&format!("node {}'s NIC metrics", node.node_id), || {
            let text = node.scrape_metrics();
            text.contains(&format!("sae_nic_bindings {}", 3 * PER_ROUTER))
                .then_some(text)
        });
        assert!(
            text.contains("sae_nic_published_total{outcome=\"sent\"}")
                || text.contains("sae_nic_published_total{outcome=\"replayed\"}"),
            "{text}"
        );
        assert!(
            text.contains("sae_nic_received_total{outcome=\"changed\"}"),
            "{text}"
        );
    }
    let samples: Vec<pb::NicBinding> = routers
        .iter()
        .map(|r| {
            bindings(&nodes[0])
                .into_iter()
                .find(|b| b.router == *r)
                .expect("a binding of each router")
        })
        .collect();
    for b in &samples {
        assert_eq!(
            b.dn,
            format!(
                "uniqueID={},ou=example.net,o=users",
                b.login_name.split('@').next().unwrap()
            )
        );
        assert_eq!(b.vr, format!("default@{}", b.router));
    }
    // Each key kind, from every node.
    for node in &nodes {
        for b in &samples {
            for reference in references_of(b) {
                let r = resolve(node, &reference)
                    .unwrap_or_else(|e| panic!("{reference} on node {}: {e}", node.node_id));
                assert_eq!(r.matches.len(), 1, "{reference}: {r:?}");
                assert_eq!(r.matches[0].node, owner(&b.router), "{reference}: {r:?}");
                assert_eq!(r.matches[0].session_id, b.session_id, "{reference}: {r:?}");
            }
        }
        let e = resolve(node, "loginName=nobody@example.net").unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
        assert!(e.message().contains("step loginName > session"), "{e}");
    }
    // An operator activates a service through a node that does not serve the subscriber, and
    // reads it back through the third one.
    let b = &samples[1];
    let (via, other) = (&nodes[0], &nodes[2]);
    let mut api = Api::connect(via);
    let change = api
        .rt
        .block_on(api.client.activate_service(pb::ActivateServiceRequest {
            subscriber: by_reference(&format!("loginName={}", b.login_name)),
            service: "video".into(),
            ..Default::default()
        }))
        .expect("activation forwarded to the owner")
        .into_inner();
    assert!(change.success, "{change:?}");
    assert_eq!(change.session_id, b.session_id);
    let mut api = Api::connect(other);
    let sub = api
        .rt
        .block_on(api.client.get_subscriber(pb::GetSubscriberRequest {
            subscriber: by_reference(&format!("ip={}", b.addresses[0])),
        }))
        .expect("subscriber read through another node")
        .into_inner();
    assert_eq!(sub.node, owner(&b.router));
    assert!(
        sub.services
            .iter()
            .any(|s| s.service == "video" && s.state == "active"),
        "{sub:?}"
    );
    // An expression over the fields of a subscriber another node serves.
    let eval = api
        .rt
        .block_on(
            api.client
                .evaluate_expression(pb::EvaluateExpressionRequest {
                    expression: "'interfaceName=%s;vr=%s' % (interfaceName, virtualRouterName)"
                        .into(),
                    subscriber: by_reference(&format!("loginName={}", b.login_name)),
                    ..Default::default()
                }),
        )
        .expect("expression evaluated on the owner")
        .into_inner();
    assert_eq!(
        eval.reference,
        format!("interfaceName={};vr={}", b.interface_name, b.vr)
    );
    assert_eq!(eval.matches.len(), 1, "{eval:?}");
    assert_eq!(eval.matches[0].session_id, b.session_id);
    // An old-style key of a subscriber served elsewhere is resolved too.
    let sub = api
        .rt
        .block_on(api.client.get_subscriber(pb::GetSubscriberRequest {
            subscriber: Some(pb::SubscriberRef {
                key: Some(pb::subscriber_ref::Key::UserName(
                    samples[0].login_name.clone(),
                )),
            }),
        }))
        .expect("user name served by node 1")
        .into_inner();
    assert_eq!(sub.node, owner(&samples[0].router));
    // The whole cluster's subscribers from one node, each with its node.
    let page = api
        .rt
        .block_on(api.client.list_subscribers(pb::ListSubscribersRequest {
            cluster: true,
            page_size: 1000,
            ..Default::default()
        }))
        .expect("cluster-wide list")
        .into_inner();
    assert_eq!(page.total, 3 * PER_ROUTER);
    assert!(page.subscribers.iter().all(|s| s.node == owner(&s.router)));

    // The owner of r1 dies: once its successor has rebuilt the router's sessions, every
    // surviving NIC points at the successor.
    let before = owner_of(&nodes[1], routers[0]).expect("r1's owner");
    let mut dead = nodes.remove(0);
    dead.proc.kill();
    let after = until("a new owner of r1", || {
        owner_of(&nodes[0], routers[0])
            .filter(|o| o.owner != before.owner && o.epoch > before.epoch)
    });
    for node in &nodes {
        until(
            &format!(
                "node {}'s NIC following r1 to node {}",
                node.node_id, after.owner
            ),
            || {
                let all = bindings(node);
                let r1: Vec<_> = all.iter().filter(|b| b.router == routers[0]).collect();
                (r1.len() == PER_ROUTER as usize
                    && r1
                        .iter()
                        .all(|b| b.node == after.owner && b.epoch == after.epoch))
                .then_some(())
            },
        );
        let r = resolve(node, &format!("loginName={}", samples[0].login_name)).expect("resolves");
        assert_eq!(
            (r.matches[0].node, r.matches[0].epoch),
            (after.owner, after.epoch)
        );
    }
    for sim in &sims {
        check_single_active(&events(sim)).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The standalone NIC's own listing (the nodes publish there).
fn nic_bindings(nic: &SaeNic) -> Vec<pb::NicBinding> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut client = pb::nic_client::NicClient::connect(format!("http://{}", nic.grpc)).await?;
        let reply = client
            .list_bindings(pb::ListBindingsRequest {
                reference: String::new(),
                limit: 10_000,
            })
            .await?;
        Ok::<_, Box<dyn std::error::Error>>(reply.into_inner().bindings)
    })
    .unwrap_or_default()
}

#[test]
fn nodes_resolve_through_a_standalone_nic_that_a_restart_rebuilds_from_their_replays() {
    const PER_ROUTER: u64 = 10;
    let routers = ["n1.test.realm", "n2.test.realm"];
    let mut nic = SaeNic::start(0);
    let config = |i: usize| {
        let mut c = node_config(ip(23, i), host(i), "");
        c.allowed_peers = Some(routers.to_vec());
        // A long cache lifetime: only the NIC's invalidations can make an answer go.
        c.extra.push_str(&format!(
            "\n[nic]\nendpoints = [\"{}\"]\ncache_ttl_secs = 600\n",
            nic.grpc
        ));
        c
    };
    let first = SaeNode::start(&config(1));
    let second = SaeNode::start_with(&config(2), &join_args(&first));
    let nodes = [first, second];
    let refs: Vec<&SaeNode> = nodes.iter().collect();
    converged(&refs, 2);
    let sims: Vec<Sim> = routers
        .iter()
        .enumerate()
        .map(|(i, r)| addressed_router_sim(&refs, r, &format!("10.{}.0.1", i + 1), PER_ROUTER))
        .collect();
    for sim in &sims {
        all_logins_done(sim, PER_ROUTER as usize);
    }
    for (router, node) in routers.iter().zip(&nodes) {
        if owner_of(&nodes[0], router).map(|o| o.owner) != Some(node.node_id) {
            move_router(&nodes[0], router, node.node_id);
        }
    }
    let owner =
        |router: &str| nodes[routers.iter().position(|r| *r == router).expect("ours")].node_id;
    let complete = |all: &[pb::NicBinding], n: usize| {
        all.len() == n && all.iter().all(|b| b.node == owner(&b.router))
    };
    let everyone = 2 * PER_ROUTER as usize;
    let held = until("the standalone NIC holding every binding", || {
        let all = nic_bindings(&nic);
        complete(&all, everyone).then_some(all)
    });
    // The nodes list and resolve through it: every key kind, from each node, twice (the second
    // from the node's cache).
    assert_eq!(bindings(&nodes[0]).len(), everyone, "listed through node 1");
    let samples: Vec<&pb::NicBinding> = routers
        .iter()
        .map(|r| held.iter().find(|b| b.router == *r).expect("each router"))
        .collect();
    for node in &nodes {
        for b in &samples {
            for reference in references_of(b) {
                for _ in 0..2 {
                    let r = resolve(node, &reference)
                        .unwrap_or_else(|e| panic!("{reference} on node {}: {e}", node.node_id));
                    assert_eq!(r.matches.len(), 1, "{reference}: {r:?}");
                    assert_eq!(r.matches[0].node, owner(&b.router), "{reference}: {r:?}");
                    assert_eq!(r.matches[0].session_id, b.session_id, "{reference}: {r:?}");
                }
            }
        }
        let text = node.scrape_metrics();
        assert!(
            text.contains("sae_nic_cache_total{outcome=\"hit\"}"),
            "{text}"
        );
    }
    // An activation through the node that does not serve the subscriber.
    let b = samples[1];
    let mut api = Api::connect(&nodes[0]);
    let change = api
        .rt
        .block_on(api.client.activate_service(pb::ActivateServiceRequest {
            subscriber: by_reference(&format!("loginName={}", b.login_name)),
            service: "video".into(),
            ..Default::default()
        }))
        .expect("activation forwarded to the owner")
        .into_inner();
    assert!(change.success, "{change:?}");
    // A logout reaches node 2's cached answer through the NIC's invalidations.
    let gone = samples[0];
    let by_login = format!("loginName={}", gone.login_name);
    resolve(&nodes[1], &by_login).expect("cached on node 2");
    api.rt
        .block_on(api.client.logout(pb::LogoutRequest {
            subscriber: by_reference(&by_login),
        }))
        .expect("logout");
    until("node 2's cached answer dropped by the logout", || {
        resolve(&nodes[1], &by_login)
            .err()
            .filter(|e| e.code() == tonic::Code::NotFound)
    });
    let answers = |node: &SaeNode| -> Vec<(String, u64, String)> {
        held.iter()
            .filter(|b| b.session_id != gone.session_id)
            .map(|b| {
                let r = resolve(node, &format!("loginName={}", b.login_name))
                    .map(|r| (r.matches[0].node, r.matches[0].session_id.clone()))
                    .unwrap_or_default();
                (b.login_name.clone(), r.0, r.1)
            })
            .collect()
    };
    let before = answers(&nodes[0]);
    assert!(
        before
            .iter()
            .all(|(_, node, id)| *node != 0 && !id.is_empty())
    );

    // The NIC dies and comes back empty: the nodes' replays rebuild it, with the same answers
    // from every node.
    nic = nic.kill_and_restart();
    until("the restarted NIC rebuilt from the replays", || {
        complete(&nic_bindings(&nic), everyone - 1).then_some(())
    });
    for node in &nodes {
        until(
            &format!("node {}'s answers after the NIC's restart", node.node_id),
            || (answers(node) == before).then_some(()),
        );
    }
    let text = nic.scrape_metrics();
    assert!(
        text.contains(&format!("sae_nic_bindings {}", everyone - 1)),
        "{text}"
    );
    assert!(text.contains("sae_nic_publishers 2"), "{text}");
    assert!(text.contains("sae_nic_watchers 2"), "{text}");
    for sim in &sims {
        check_single_active(&events(sim)).unwrap_or_else(|e| panic!("{e}"));
    }
}
