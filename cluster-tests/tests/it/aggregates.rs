//! Aggregate services between a real `sae-node` and a real `sae-sim` router: an aggregate
//! whose fragments land on the subscriber's own session and on a video server's session (found
//! through the NIC by login name), deactivated; a mandatory fragment that names no session
//! rolls the others back; a fragment's session logging out ends the aggregate.

use sae_proto::v1 as pb;
use serde_json::Value as Json;

use crate::support::{Api, NodeConfig, SaeNode, Sim};

const ROUTER: &str = "router1.test.realm";

const CATALOG: &str = r#"
[sessions]
ppr_timeout_secs = 1
ppr_retries = 1

[aggregate]
keepalive_interval_secs = 2
keepalive_retry_wait_secs = 1
activation_deactivation_secs = 3
failure_notification_secs = 4

[[service]]
name = "internet"
policy_name = "internet-basic"

[[service]]
name = "sub-qos"
template_name = "qos"
substitutions = { rate = "1m" }

[[service]]
name = "server-qos"
template_name = "qos"

[[service]]
name = "vod"
kind = "aggregate"
substitutions = { rate = "8m", server = "vs1@video.example" }
[[service.fragment]]
name = "subscriber"
service = "sub-qos"
expression = "'ip=%s' % user_IpAddress"
mandatory = true
substitutions = ["rate"]
[[service.fragment]]
name = "server"
service = "server-qos"
expression = "'loginName=' + server"
mandatory = true
substitutions = ["clientIp=user_IpAddress"]

[[service]]
name = "vod-nowhere"
kind = "aggregate"
[[service.fragment]]
name = "subscriber"
service = "sub-qos"
expression = "'ip=%s' % user_IpAddress"
[[service.fragment]]
name = "server"
service = "server-qos"
expression = "'loginName=nobody@video.example'"
mandatory = true

[[rule]]
name = "default"
services = ["internet"]
"#;

fn user(name: &str) -> Option<pb::SubscriberRef> {
    Some(pb::SubscriberRef {
        key: Some(pb::subscriber_ref::Key::UserName(name.into())),
    })
}

fn activate(api: &mut Api, who: &str, service: &str) -> pb::ServiceChangeResult {
    let req = pb::ActivateServiceRequest {
        subscriber: user(who),
        service: service.into(),
        substitutions: Default::default(),
    };
    api.rt
        .block_on(api.client.activate_service(req))
        .expect("ActivateService")
        .into_inner()
}

fn deactivate(api: &mut Api, who: &str, service: &str) -> pb::ServiceChangeResult {
    let req = pb::DeactivateServiceRequest {
        subscriber: user(who),
        service: service.into(),
    };
    api.rt
        .block_on(api.client.deactivate_service(req))
        .expect("DeactivateService")
        .into_inner()
}

/// The state of `service` on `who`'s session, if it has it.
fn service_state(
    api: &mut Api,
    who: &str,
    service: &str,
) -> Option<(String, Vec<(String, String)>)> {
    let s = api.subscriber(who).ok()?;
    let found = s.services.iter().find(|x| x.service == service)?;
    let mut subs: Vec<(String, String)> = found
        .substitutions
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    subs.sort();
    Some((found.state.clone(), subs))
}

fn log_in(sim: &mut Sim, who: &str, ip: &str, port: &str) {
    let from = sim.mark();
    sim.send(&format!("login {who} {ip} {port}"));
    let (_, e) = sim.wait(from, &format!("login of {who}"), |e| {
        (e["event"] == "login" || e["event"] == "login-failed") && e["user"] == who
    });
    assert_eq!(e["event"], "login", "{e}");
}

fn is_ppr(e: &Json, key: &str, policy: &str) -> bool {
    e["event"] == "request" && e["command"] == "PPR" && e[key][0] == policy
}

#[test]
fn aggregates_start_their_fragments_where_the_references_point_and_stop_them() {
    let node = SaeNode::start(&NodeConfig {
        allowed_peers: None,
        extra: CATALOG.into(),
        ..Default::default()
    });
    let connect = node.diameter.to_string();
    let mut sim = Sim::spawn(&[
        "router",
        "--connect",
        &connect,
        "--origin-host",
        ROUTER,
        "--origin-realm",
        "test.realm",
        "--watchdog-secs",
        "6",
        "--control",
    ]);
    sim.wait(0, "ready", |e| e["event"] == "ready");
    let mut api = Api::connect(&node);
    log_in(&mut sim, "alice@isp.example", "10.0.0.1", "ge-0/0/0.1");
    log_in(&mut sim, "vs1@video.example", "10.9.0.1", "ge-0/0/9.1");
    // The NIC has the server's binding (published asynchronously).
    api.until("the server bound in the NIC", |a| {
        let req = pb::ResolveRequest {
            reference: "loginName=vs1@video.example".into(),
        };
        a.rt.block_on(a.client.resolve(req)).ok()
    });

    // Both fragments start: one on alice's session, one on the server's, with the parameters
    // bound from the aggregate (rate by name, the subscriber's address renamed clientIp).
    let from = sim.mark();
    let r = activate(&mut api, "alice@isp.example", "vod");
    assert!(r.success, "{r:?}");
    assert_eq!(r.state, "active");
    sim.wait(from, "PPR installing sub-qos", |e| {
        is_ppr(e, "install", "sub-qos")
    });
    sim.wait(from, "PPR installing server-qos", |e| {
        is_ppr(e, "install", "server-qos")
    });
    let (state, subs) = service_state(&mut api, "alice@isp.example", "sub-qos").expect("sub-qos");
    assert_eq!(state, "active");
    assert_eq!(subs, [("rate".to_owned(), "8m".to_owned())]);
    let (state, subs) =
        service_state(&mut api, "vs1@video.example", "server-qos").expect("server-qos");
    assert_eq!(state, "active");
    assert_eq!(subs, [("clientIp".to_owned(), "10.0.0.1".to_owned())]);
    let list = aggregates(&mut api);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0].service.as_str(), list[0].state.as_str()),
        ("vod", "active")
    );
    let fragments: Vec<(&str, &str, &str)> = list[0]
        .fragments
        .iter()
        .map(|f| (f.name.as_str(), f.reference.as_str(), f.state.as_str()))
        .collect();
    assert_eq!(
        fragments,
        [
            ("subscriber", "ip=10.0.0.1", "active"),
            ("server", "loginName=vs1@video.example", "active"),
        ]
    );
    assert_eq!(list[0].fragments[0].session_id, list[0].session_id);
    assert_ne!(list[0].fragments[1].session_id, list[0].session_id);
    let again = activate(&mut api, "alice@isp.example", "vod");
    assert!(
        !again.success && again.message.contains("already active"),
        "{again:?}"
    );

    // Deactivated: both fragments are removed from the router.
    let from = sim.mark();
    let r = deactivate(&mut api, "alice@isp.example", "vod");
    assert!(r.success, "{r:?}");
    sim.wait(from, "PPR removing sub-qos", |e| {
        is_ppr(e, "remove", "sub-qos")
    });
    sim.wait(from, "PPR removing server-qos", |e| {
        is_ppr(e, "remove", "server-qos")
    });
    api.until("fragments gone", |a| {
        (service_state(a, "alice@isp.example", "sub-qos").is_none()
            && service_state(a, "vs1@video.example", "server-qos").is_none())
        .then_some(())
    });

    // A mandatory fragment that names no session fails the activation; the fragment that did
    // start is removed again.
    let r = activate(&mut api, "alice@isp.example", "vod-nowhere");
    assert!(!r.success, "{r:?}");
    assert!(r.message.contains("mandatory fragment 1"), "{r:?}");
    api.until("the started fragment rolled back", |a| {
        service_state(a, "alice@isp.example", "sub-qos")
            .is_none()
            .then_some(())
    });

    // A fragment's session ends: the mandatory fragment is lost and the aggregate stops the
    // other one.
    let r = activate(&mut api, "alice@isp.example", "vod");
    assert!(r.success, "{r:?}");
    let from = sim.mark();
    sim.send("logout vs1@video.example");
    sim.wait(from, "PPR removing sub-qos after the loss", |e| {
        is_ppr(e, "remove", "sub-qos")
    });
    api.until("alice without the fragment", |a| {
        service_state(a, "alice@isp.example", "sub-qos")
            .is_none()
            .then_some(())
    });
    // Activating it again: its server is gone, so it fails and leaves nothing.
    let r = activate(&mut api, "alice@isp.example", "vod");
    assert!(!r.success, "{r:?}");
    api.until("no aggregate session left", |a| {
        aggregates(a).is_empty().then_some(())
    });
    let metrics = node.scrape_metrics();
    for line in [
        r#"sae_aggregates_total{outcome="active"} 2"#,
        r#"sae_aggregates_total{outcome="failed"} 3"#,
        r#"sae_aggregates_total{outcome="deactivated"} 1"#,
        r#"sae_aggregate_fragments_total{outcome="lost"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

fn aggregates(api: &mut Api) -> Vec<pb::AggregateSession> {
    api.rt
        .block_on(api.client.list_aggregates(pb::ListAggregatesRequest {}))
        .expect("ListAggregates")
        .into_inner()
        .aggregates
}
