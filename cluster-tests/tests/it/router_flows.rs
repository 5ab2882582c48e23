//! Every subscriber flow of the seed between a real `sae-node` and a real `sae-sim` playing a
//! JSRC router, driven through the management API: login and confirmation, activation accepted
//! and refused by the router, SAE-requested statistics, operator logout (ASR → STR), router
//! logout and inactivity, an SRQ from the router mid-life, a router that disconnects mid-flow,
//! an STR for an unknown session, a node killed and restarted that recovers its sessions
//! from storage and resyncs them, an SRQ the router leaves unanswered and the node sends again;
//! and a whole lifecycle captured live and decoded by tshark.

use std::process::Command;
use std::time::Duration;

use sae_proto::v1 as pb;
use sae_proto::v1::management_client::ManagementClient;
use serde_json::Value as Json;

use crate::support::{Api, NodeConfig, SaeNode, Sim, WAIT};

const ROUTER: &str = "router1.test.realm";

/// The catalog every test node starts with.
const CATALOG: &str = r#"
[sessions]
ppr_timeout_secs = 1
ppr_retries = 1
resync_window_secs = 2
logout_timeout_secs = 3

[[service]]
name = "internet"
policy_name = "internet-basic"
template_name = "rate-limit"
substitutions = { rate = "20m" }
accounting = true

[[service]]
name = "gold"
policy_name = "gold-100m"
template_name = "rate-limit"
substitutions = { rate = "100m" }
accounting = true

[[service]]
name = "video"
template_name = "video-boost"

[[rule]]
name = "blocked"
priority = 1
domain = "blocked.example"
reject = true

[[rule]]
name = "default"
priority = 10
services = ["internet"]
"#;

fn node_config() -> NodeConfig {
    NodeConfig {
        allowed_peers: None,
        extra: CATALOG.into(),
        ..Default::default()
    }
}

/// The simulated JSRC router of these tests.
fn router(node: &SaeNode, extra: &[&str]) -> Sim {
    let connect = node.diameter.to_string();
    let mut args = vec!["router", "--connect", connect.as_str()];
    args.extend(["--origin-host", ROUTER, "--origin-realm", "test.realm"]);
    args.extend(["--watchdog-secs", "6", "--control"]);
    args.extend(extra);
    let sim = Sim::spawn(&args);
    sim.wait(0, "ready", |e| e["event"] == "ready");
    sim
}

/// Logs a subscriber in through the control pipe and waits for the result.
fn log_in(sim: &mut Sim, user: &str, ip: &str, port: &str) -> Json {
    let from = sim.mark();
    sim.send(&format!("login {user} {ip} {port}"));
    sim.wait(from, &format!("login of {user}"), |e| {
        (e["event"] == "login" || e["event"] == "login-failed") && e["user"] == user
    })
    .1
}

/// What these tests ask the management API beyond the shared calls.
impl Api {
    fn user(name: &str) -> Option<pb::SubscriberRef> {
        Some(pb::SubscriberRef {
            key: Some(pb::subscriber_ref::Key::UserName(name.into())),
        })
    }

    fn subscribers(&mut self) -> Vec<pb::Subscriber> {
        let req = pb::ListSubscribersRequest::default();
        self.rt
            .block_on(self.client.list_subscribers(req))
            .expect("ListSubscribers")
            .into_inner()
            .subscribers
    }

    fn activate(&mut self, user: &str, service: &str) -> pb::ServiceChangeResult {
        let req = pb::ActivateServiceRequest {
            subscriber: Self::user(user),
            service: service.into(),
            substitutions: Default::default(),
        };
        self.rt
            .block_on(self.client.activate_service(req))
            .expect("ActivateService")
            .into_inner()
    }

    fn deactivate(&mut self, user: &str, service: &str) -> pb::ServiceChangeResult {
        let req = pb::DeactivateServiceRequest {
            subscriber: Self::user(user),
            service: service.into(),
        };
        self.rt
            .block_on(self.client.deactivate_service(req))
            .expect("DeactivateService")
            .into_inner()
    }

    fn logout(&mut self, user: &str) -> pb::LogoutResponse {
        let req = pb::LogoutRequest {
            subscriber: Self::user(user),
        };
        self.rt
            .block_on(self.client.logout(req))
            .expect("Logout")
            .into_inner()
    }

    fn collect(&mut self, user: &str) -> pb::CollectUsageResponse {
        let req = pb::CollectUsageRequest {
            subscriber: Self::user(user),
        };
        self.rt
            .block_on(self.client.collect_usage(req))
            .expect("CollectUsage")
            .into_inner()
    }

    fn gone(&mut self, user: &str) -> bool {
        matches!(self.subscriber(user), Err(s) if s.code() == tonic::Code::NotFound)
    }
}

fn service<'a>(s: &'a pb::Subscriber, name: &str) -> Option<&'a pb::ServiceSession> {
    s.services.iter().find(|x| x.service == name)
}

#[test]
fn login_confirm_and_activation_accepted_and_refused_by_the_router() {
    let node = SaeNode::start(&node_config());
    let mut sim = router(&node, &["--fail-ppr", "gold-*"]);
    let mut api = Api::connect(&node);

    let login = log_in(&mut sim, "alice@isp.example", "10.0.0.1", "ge-0/0/0.1");
    assert_eq!(login["event"], "login", "{login}");
    assert_eq!(login["result"], 2001);
    assert_eq!(login["policies"], serde_json::json!(["internet-basic"]));
    sim.wait(0, "confirmation", |e| {
        e["event"] == "confirmed" && e["result"] == 2001
    });
    let s = api.until("confirmed subscriber", |a| {
        a.subscriber("alice@isp.example")
            .ok()
            .filter(|s| s.confirmed)
    });
    assert_eq!(s.framed_ip, "10.0.0.1");
    assert_eq!(s.nas_port_id, "ge-0/0/0.1");
    assert_eq!(s.router, ROUTER);
    assert_eq!(service(&s, "internet").unwrap().state, "active");

    // Accepted by the router.
    let r = api.activate("alice@isp.example", "video");
    assert!(r.success, "{r:?}");
    assert_eq!((r.result_code, r.state.as_str()), (2001, "active"));
    let (_, ppr) = sim.wait(0, "PPR for video", |e| {
        e["event"] == "request" && e["command"] == "PPR" && e["install"][0] == "video"
    });
    assert_eq!(ppr["from"], "sae.test.realm");
    assert_eq!(ppr["result"], 2001);

    // Refused by the router (--fail-ppr gold-*): the result and the failure are recorded.
    let r = api.activate("alice@isp.example", "gold");
    assert!(!r.success, "{r:?}");
    assert_eq!((r.result_code, r.state.as_str()), (5012, "failed"));
    let s = api.subscriber("alice@isp.example").unwrap();
    let gold = service(&s, "gold").unwrap();
    assert_eq!((gold.state.as_str(), gold.result_code), ("failed", 5012));

    // Deactivation removes the policy on the router.
    let r = api.deactivate("alice@isp.example", "video");
    assert!(r.success, "{r:?}");
    sim.wait(0, "PPR removing video", |e| {
        e["event"] == "request" && e["command"] == "PPR" && e["remove"][0] == "video"
    });
    let s = api.subscriber("alice@isp.example").unwrap();
    assert!(service(&s, "video").is_none());

    // A refused login leaves no session.
    let refused = log_in(
        &mut sim,
        "mallory@blocked.example",
        "10.0.0.2",
        "ge-0/0/0.2",
    );
    assert_eq!(refused["event"], "login-failed", "{refused}");
    assert_eq!(refused["result"], 5012);
    assert!(api.gone("mallory@blocked.example"));
    assert_eq!(api.subscribers().len(), 1);

    let metrics = node.scrape_metrics();
    for line in [
        r#"sae_diameter_messages_total{direction="out",command="PPR",result=""} 3"#,
        r#"sae_diameter_messages_total{direction="in",command="PPA",result="5012"} 1"#,
        r#"sae_diameter_messages_total{direction="out",command="AAA",result="5012"} 1"#,
        "sae_subscriber_sessions 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

#[test]
fn accounting_both_ways_and_both_logouts_keep_the_final_usage() {
    let node = SaeNode::start(&node_config());
    let mut sim = router(&node, &[]);
    let mut api = Api::connect(&node);
    log_in(&mut sim, "bob@isp.example", "10.0.1.1", "ge-0/0/1.1");
    log_in(&mut sim, "carol@isp.example", "10.0.1.2", "ge-0/0/1.2");

    // The router reports (ACR START was sent at install; INTERIM on request).
    let from = sim.mark();
    sim.send("acct bob@isp.example interim");
    sim.wait(from, "ACA for the interim", |e| {
        e["event"] == "acct" && e["result"] == 2001
    });
    let usage = api.until("bob's interim record", |a| {
        let u = a.usage("bob@isp.example");
        u.iter().any(|r| r.kind == "interim").then_some(u)
    });
    assert!(usage.iter().all(|r| r.policy_name == "internet-basic"));

    // The SAE asks for statistics.
    let c = api.collect("bob@isp.example");
    assert_eq!(c.result_code, 2001);
    assert_eq!(c.usage.len(), 1);
    assert_eq!(c.usage[0].kind, "collected");
    assert_eq!(c.usage[0].policy_name, "internet-basic");

    // Operator logout: ASR, the router answers and follows with STR carrying the final usage.
    let out = api.logout("bob@isp.example");
    assert_eq!(out.result_code, 2001);
    sim.wait(0, "bob's logout", |e| {
        e["event"] == "logout" && e["result"] == 2001 && e["cause"] == 4
    });
    api.until("bob gone", |a| a.gone("bob@isp.example").then_some(()));
    let usage = api.usage("bob@isp.example");
    assert!(usage.iter().any(|r| r.kind == "final"), "{usage:?}");

    // Router logout (inactivity, Termination-Cause 14).
    sim.send("idle carol@isp.example");
    sim.wait(0, "carol's idle logout", |e| {
        e["event"] == "logout" && e["cause"] == 14 && e["result"] == 2001
    });
    api.until("carol gone", |a| a.gone("carol@isp.example").then_some(()));
    assert!(api.subscribers().is_empty());
}

#[test]
fn router_srq_mid_life_replays_the_sessions_and_keeps_them() {
    let node = SaeNode::start(&node_config());
    let mut sim = router(&node, &[]);
    let mut api = Api::connect(&node);
    for i in 1..=3 {
        log_in(
            &mut sim,
            &format!("user{i}@isp.example"),
            &format!("10.0.2.{i}"),
            &format!("ge-0/0/2.{i}"),
        );
    }
    let r = api.activate("user2@isp.example", "video");
    assert!(r.success);
    let from = sim.mark();
    sim.send("srq");
    for i in 1..=3 {
        sim.wait(from, "replay", |e| {
            e["event"] == "replayed"
                && e["result"] == 2001
                && e["user"] == format!("user{i}@isp.example")
        });
    }
    // Past the resync window the sessions are all still there, with what the router holds.
    std::thread::sleep(Duration::from_secs(3));
    let subs = api.subscribers();
    assert_eq!(subs.len(), 3, "{subs:?}");
    assert!(subs.iter().all(|s| s.state == "active"));
    let s = api.subscriber("user2@isp.example").unwrap();
    assert!(service(&s, "video").is_some(), "{s:?}");
}

#[test]
fn a_router_that_disconnects_mid_flow_fails_the_ppr_cleanly_and_the_node_keeps_serving() {
    let node = SaeNode::start(&node_config());
    let mut sim = router(&node, &["--drop-ppr", "video"]);
    let mut api = Api::connect(&node);
    log_in(&mut sim, "dave@isp.example", "10.0.3.1", "ge-0/0/3.1");
    // The router swallows the PPR and then drops the connection.
    let api_thread = {
        let url = node.grpc_url();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut c = ManagementClient::connect(url).await.unwrap();
                c.activate_service(pb::ActivateServiceRequest {
                    subscriber: Api::user("dave@isp.example"),
                    service: "video".into(),
                    substitutions: Default::default(),
                })
                .await
            })
        })
    };
    sim.wait(0, "the dropped PPR", |e| {
        e["event"] == "request" && e["command"] == "PPR" && e["dropped"] == true
    });
    sim.send("drop");
    let outcome = api_thread.join().unwrap();
    // Either the node saw the connection go (UNAVAILABLE) or the retry found no router: never
    // a hang and never a success.
    match outcome {
        Ok(r) => assert!(!r.get_ref().success, "{r:?}"),
        Err(s) => assert!(
            matches!(
                s.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
            ),
            "{s:?}"
        ),
    }
    // The session stays; the router is gone from the node's status.
    let s = api.subscriber("dave@isp.example").unwrap();
    assert_eq!(service(&s, "video").unwrap().state, "failed");
    api.until("router gone", |a| {
        let st =
            a.rt.block_on(a.client.get_node_status(pb::GetNodeStatusRequest {}))
                .unwrap()
                .into_inner();
        st.diameter_peers.is_empty().then_some(())
    });
    // With the router away, a change is refused up front and nothing is recorded.
    let req = pb::ActivateServiceRequest {
        subscriber: Api::user("dave@isp.example"),
        service: "gold".into(),
        substitutions: Default::default(),
    };
    let err = api
        .rt
        .block_on(api.client.activate_service(req))
        .expect_err("no router");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    let s = api.subscriber("dave@isp.example").unwrap();
    assert!(service(&s, "gold").is_none(), "{s:?}");
    // The node keeps serving: another router logs in.
    let mut other = router(&node, &[]);
    let l = log_in(&mut other, "erin@isp.example", "10.0.3.2", "ge-0/0/3.2");
    assert_eq!(l["result"], 2001);
    drop(other);
    drop(sim);
}

#[test]
fn str_for_an_unknown_session_gets_5002() {
    let node = SaeNode::start(&node_config());
    let mut sim = router(&node, &[]);
    let mut api = Api::connect(&node);
    log_in(&mut sim, "frank@isp.example", "10.0.4.1", "ge-0/0/4.1");
    // Log out twice: the second STR names a session the node has ended.
    let sid = api.subscriber("frank@isp.example").unwrap().session_id;
    sim.send(&format!("logout {sid}"));
    sim.wait(0, "logout", |e| {
        e["event"] == "logout" && e["result"] == 2001
    });
    let from = sim.mark();
    sim.send(&format!("str-unknown {sid}"));
    let (_, e) = sim.wait(from, "STA for the unknown session", |e| {
        e["event"] == "logout" || e["event"] == "error"
    });
    assert_eq!(e["result"], 5002, "{e}");
}

#[test]
fn a_killed_node_recovers_its_sessions_from_storage_and_resyncs_them() {
    let node = SaeNode::start(&node_config());
    let port = node.diameter.port();
    let mut sim = router(&node, &["--reconnect-secs", "1"]);
    let mut api = Api::connect(&node);
    for i in 1..=3 {
        log_in(
            &mut sim,
            &format!("keep{i}@isp.example"),
            &format!("10.0.5.{i}"),
            &format!("ge-0/0/5.{i}"),
        );
    }
    assert!(api.activate("keep1@isp.example", "video").success);
    drop(api);
    // Let the store's writer flush (it does so within 50 ms), then kill -9.
    std::thread::sleep(Duration::from_millis(300));
    let node = node.kill_and_restart_on(port);
    let mut api = Api::connect(&node);
    // Recovered from storage before the router is back.
    assert_eq!(api.subscribers().len(), 3);
    // The router reconnects; the node's first message is SRQ; the router replays.
    sim.wait(0, "SRQ from the restarted node", |e| {
        e["event"] == "request" && e["command"] == "SRQ"
    });
    api.until("sessions active again", |a| {
        let s = a.subscribers();
        (s.len() == 3 && s.iter().all(|x| x.state == "active")).then_some(())
    });
    let s = api.subscriber("keep1@isp.example").unwrap();
    assert!(service(&s, "video").is_some(), "{s:?}");
}

#[test]
fn ptsp_routers_are_served_and_events_are_streamed_to_watchers() {
    let node = SaeNode::start(&node_config());
    let mut api = Api::connect(&node);
    // Watch before anything happens.
    let mut stream = api
        .rt
        .block_on(api.client.watch_events(pb::WatchEventsRequest::default()))
        .expect("WatchEvents")
        .into_inner();
    let mut sim = router(&node, &["--application", "ptsp"]);
    let login = log_in(&mut sim, "gina@isp.example", "10.0.6.1", "ge-0/0/6.1");
    assert_eq!(login["result"], 2001, "{login}");
    let s = api.subscriber("gina@isp.example").unwrap();
    assert_eq!(s.application, "ptsp");
    let r = api.activate("gina@isp.example", "video");
    assert!(r.success, "{r:?}");
    let (_, ppr) = sim.wait(0, "PPR", |e| {
        e["event"] == "request" && e["command"] == "PPR"
    });
    assert_eq!(ppr["result"], 2001);

    // The stream carries, in order: the router coming up, the login, the activation.
    let mut kinds = Vec::new();
    let rt = &api.rt;
    while !kinds.iter().any(|k| k == "service-activated") {
        let next = rt
            .block_on(async { tokio::time::timeout(WAIT, futures_next(&mut stream)).await })
            .expect("an event within the deadline")
            .expect("stream open")
            .expect("event");
        if next.kind == "login" || next.kind == "service-activated" {
            assert_eq!(next.user_name, "gina@isp.example");
            assert_eq!(next.router, ROUTER);
        }
        kinds.push(next.kind);
    }
    let pos = |k: &str| kinds.iter().position(|x| x == k).unwrap_or(usize::MAX);
    assert!(pos("router-up") < pos("login"), "{kinds:?}");
    assert!(pos("login") < pos("service-activated"), "{kinds:?}");
}

/// The next item of a tonic stream.
async fn futures_next(
    s: &mut tonic::Streaming<pb::SessionEvent>,
) -> Option<Result<pb::SessionEvent, tonic::Status>> {
    s.message().await.transpose()
}

/// Runs `saectl` against the node; returns (exit code, stdout, stderr).
fn saectl(node: &SaeNode, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(crate::support::saectl_bin())
        .args(["--server", &node.grpc_url()])
        .args(args)
        .output()
        .expect("run saectl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn saectl_lists_activates_and_logs_out_subscribers_of_a_simulated_router() {
    let node = SaeNode::start(&node_config());
    let mut sim = router(&node, &["--fail-ppr", "gold-*"]);
    log_in(&mut sim, "hank@isp.example", "10.0.7.1", "ge-0/0/7.1");
    log_in(&mut sim, "ivy@isp.example", "10.0.7.2", "ge-0/0/7.2");

    let (code, out, err) = saectl(&node, &["subscriber", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("hank@isp.example") && out.contains("ivy@isp.example"),
        "{out}"
    );
    let (code, out, err) = saectl(&node, &["--json", "subscriber", "list", "--user", "h*"]);
    assert_eq!(code, 0, "{err}");
    let list: Json = serde_json::from_str(&out).expect("JSON");
    assert_eq!(list["subscribers"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["subscribers"][0]["framed_ip"], "10.0.7.1");

    let (code, out, err) = saectl(&node, &["subscriber", "activate", "ip=10.0.7.1", "video"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2001"), "{out}");
    // Refused by the router: the answer is printed and the exit status says so.
    let (code, out, _) = saectl(
        &node,
        &["subscriber", "activate", "hank@isp.example", "gold"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("5012"), "{out}");
    // Unknown subscriber: NOT_FOUND, exit 2.
    let (code, _, err) = saectl(&node, &["subscriber", "get", "nobody@isp.example"]);
    assert_eq!(code, 2, "{err}");

    let (code, out, err) = saectl(&node, &["subscriber", "logout", "ivy@isp.example"]);
    assert_eq!(code, 0, "{out}{err}");
    sim.wait(0, "ivy's logout", |e| {
        e["event"] == "logout" && e["cause"] == 4
    });
    let (code, out, _) = saectl(
        &node,
        &["--json", "usage", "list", "--user", "ivy@isp.example"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("\"final\""), "{out}");
}

/// Every Diameter message type exchanged between a real `sae-node` and a real `sae-sim` over a
/// whole subscriber lifecycle, captured live on loopback: tshark finds nothing malformed and
/// no warning, and reads every command in both roles (request and answer) with the expected
/// Result-Codes. The bytes are the ones the node and the simulator really send, not copies.
#[test]
fn a_whole_lifecycle_between_node_and_simulator_is_clean_for_tshark() {
    use crate::support::{LiveCapture, require_juniper_dictionary, tshark_findings};
    use sae_diameter::codes::command;

    require_juniper_dictionary();
    let node = SaeNode::start(&node_config());
    let capture = LiveCapture::start(node.diameter.port());
    // The SAE's SRQ comes first on the connection; the router answers SRR.
    let mut sim = router(&node, &["--fail-ppr", "gold-*"]);
    let mut api = Api::connect(&node);

    // Login, confirmation and accounting START (AAR/AAA twice, ACR/ACA).
    log_in(&mut sim, "alice@isp.example", "10.0.9.1", "ge-0/0/9.1");
    sim.wait(0, "confirmation", |e| e["event"] == "confirmed");
    // A refused login (AAA 5012).
    log_in(
        &mut sim,
        "mallory@blocked.example",
        "10.0.9.2",
        "ge-0/0/9.2",
    );
    // Activation accepted (PPR/PPA 2001) and refused by the router (PPA 5012).
    assert!(api.activate("alice@isp.example", "video").success);
    assert!(!api.activate("alice@isp.example", "gold").success);
    // Statistics both ways: the SAE asks (ACR from the SAE), the router reports (INTERIM).
    assert_eq!(api.collect("alice@isp.example").result_code, 2001);
    let from = sim.mark();
    sim.send("acct alice@isp.example interim");
    sim.wait(from, "ACA", |e| e["event"] == "acct" && e["result"] == 2001);
    // The router resynchronizes (SRQ from the router, replayed AARs).
    let from = sim.mark();
    sim.send("srq");
    sim.wait(from, "replay", |e| e["event"] == "replayed");
    // Nothing for a while: the watchdog exchanges DWR/DWA (Tw is 6 s ± 2 s on both sides).
    std::thread::sleep(Duration::from_secs(9));
    // Operator logout (ASR/ASA, then the router's STR/STA), an STR for that ended session
    // (STA 5002), then DPR/DPA.
    let sid = api.subscriber("alice@isp.example").unwrap().session_id;
    assert_eq!(api.logout("alice@isp.example").result_code, 2001);
    sim.wait(0, "logout", |e| {
        e["event"] == "logout" && e["result"] == 2001
    });
    let from = sim.mark();
    sim.send(&format!("str-unknown {sid}"));
    sim.wait(from, "STA 5002", |e| e["result"] == 5002);
    sim.send("quit");
    let status = sim.proc.wait_exit(WAIT);
    assert!(status.success(), "{}", sim.proc.transcript());
    let capture = capture.finish();

    let decode_as = format!("tcp.port=={},diameter", capture.port);
    let findings = tshark_findings(&capture.file, &["-d", &decode_as], None);
    assert!(
        findings.trim().is_empty(),
        "tshark reports problems (frame, expert message):\n{findings}"
    );
    let seen = capture.diameter();
    for (code, name) in [
        (command::CAPABILITIES_EXCHANGE, "CER/CEA"),
        (command::DEVICE_WATCHDOG, "DWR/DWA"),
        (command::AA, "AAR/AAA"),
        (command::PUSH_PROFILE, "PPR/PPA"),
        (command::ACCOUNTING, "ACR/ACA"),
        (command::ABORT_SESSION, "ASR/ASA"),
        (command::SESSION_TERMINATION, "STR/STA"),
        (command::SESSION_RESYNC, "SRQ/SRR"),
        (command::DISCONNECT_PEER, "DPR/DPA"),
    ] {
        assert!(
            seen.count(code, true) > 0 && seen.count(code, false) > 0,
            "{name} missing from the capture: {:?}",
            seen.messages
        );
    }
    // SRQ both ways (the SAE's at connect, the router's later), ACR both ways.
    assert!(
        seen.count(command::SESSION_RESYNC, true) >= 2,
        "{:?}",
        seen.messages
    );
    assert!(
        seen.count(command::ACCOUNTING, true) >= 3,
        "{:?}",
        seen.messages
    );
    for code in [2001, 5002, 5012] {
        assert!(
            seen.result_codes.contains(&code),
            "Result-Code {code} missing: {:?}",
            seen.result_codes
        );
    }
}

/// Session events of the node from `stream`, read until `done` holds for those read so far.
fn events_until(
    api: &Api,
    stream: &mut tonic::Streaming<pb::SessionEvent>,
    what: &str,
    done: impl Fn(&[pb::SessionEvent]) -> bool,
) -> Vec<pb::SessionEvent> {
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let next = api
            .rt
            .block_on(async { tokio::time::timeout(left, futures_next(stream)).await });
        match next {
            Ok(Some(Ok(e))) => seen.push(e),
            other => panic!("no {what} ({other:?}); events so far: {seen:#?}"),
        }
    }
    seen
}

/// The session events of the node, from now on.
fn watch(api: &mut Api) -> tonic::Streaming<pb::SessionEvent> {
    api.rt
        .block_on(api.client.watch_events(pb::WatchEventsRequest::default()))
        .expect("WatchEvents")
        .into_inner()
}

/// `sae_srq_retries_total` of [`ROUTER`] in the node's metrics (0 when absent).
fn srq_retries(node: &SaeNode) -> f64 {
    let label = format!("router=\"{ROUTER}\"");
    node.scrape_metrics()
        .lines()
        .filter(|l| l.starts_with("sae_srq_retries_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn is_srq(e: &Json) -> bool {
    e["event"] == "request" && e["command"] == "SRQ"
}

/// From line `from` of the router's output: its `drop-srq` leaves the node's SRQ unanswered,
/// the node sends SRQ again, the router answers it and replays every one of `users` to the
/// node. Returns the line of the answered SRQ.
fn srq_dropped_then_answered(sim: &Sim, from: usize, users: &[String]) -> usize {
    let (dropped_at, dropped) = sim.wait(from, "the SRQ left unanswered", is_srq);
    assert_eq!(dropped["dropped"], true, "{dropped}");
    assert!(dropped["result"].is_null(), "{dropped}");
    let (again_at, again) = sim.wait(dropped_at + 1, "the SRQ sent again", is_srq);
    assert_eq!(again["result"], 2001, "{again}");
    assert!(again.get("dropped").is_none(), "{again}");
    assert_eq!(again["from"], dropped["from"]);
    for user in users {
        sim.wait(again_at, &format!("the replay of {user}"), |e| {
            e["event"] == "replayed" && e["user"] == user.as_str() && e["result"] == 2001
        });
    }
    again_at
}

/// What the node reported while the router's sessions were resynchronized: the SRQ sent
/// again, and every one of `users` replayed into the session it held (none ended, none
/// rebuilt from the replay as a session it had lost).
fn resync_retried_and_kept(
    api: &Api,
    stream: &mut tonic::Streaming<pb::SessionEvent>,
    users: &[String],
) {
    let replayed = |seen: &[pb::SessionEvent], user: &str| {
        seen.iter()
            .any(|e| e.kind == "session-replayed" && e.user_name == user)
    };
    let seen = events_until(api, stream, "resync-retried and the replays", |seen| {
        seen.iter().any(|e| e.kind == "resync-retried") && users.iter().all(|u| replayed(seen, u))
    });
    let retried = seen.iter().find(|e| e.kind == "resync-retried").unwrap();
    assert_eq!(retried.router, ROUTER, "{retried:?}");
    for e in &seen {
        assert_ne!(e.kind, "logout", "a session ended: {e:?}\n{seen:#?}");
        if e.kind == "session-replayed" {
            assert!(
                !e.detail.contains("rebuilt"),
                "a session was lost and rebuilt: {e:?}\n{seen:#?}"
            );
        }
    }
}

/// A router that is not ready (or lost the message) leaves the node's SRQ unanswered: the
/// node sends it again after its request timeout and the router replays. First at connect,
/// with subscribers logging in meanwhile; then after a restart of the node, with sessions
/// recovered from storage waiting for the replay. No subscriber is lost either time, and the
/// node counts the retries.
#[test]
fn an_srq_left_unanswered_is_sent_again_and_no_subscriber_is_lost() {
    // A short request timeout; a resync window long enough for one SRQ sent again.
    let extra = format!(
        "request_timeout_secs = 1\n{}",
        CATALOG.replace("resync_window_secs = 2", "resync_window_secs = 8")
    );
    let config = NodeConfig {
        extra,
        ..node_config()
    };
    let node = SaeNode::start(&config);
    let port = node.diameter.port();
    let mut api = Api::connect(&node);
    let mut stream = watch(&mut api);
    // No SRQ of the router's own: only the node's SRQ starts the replay.
    let mut sim = router(
        &node,
        &[
            "--drop-srq",
            "1",
            "--no-startup-srq",
            "--reconnect-secs",
            "1",
        ],
    );
    let users: Vec<String> = (1..=3).map(|i| format!("retry{i}@isp.example")).collect();
    let mut logins = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let login = log_in(
            &mut sim,
            user,
            &format!("10.0.10.{}", i + 1),
            &format!("ge-0/0/10.{}", i + 1),
        );
        assert_eq!(login["result"], 2001, "{login}");
        logins.push(sim.mark());
    }
    let again_at = srq_dropped_then_answered(&sim, 0, &users);
    assert!(
        logins.iter().all(|&at| at <= again_at),
        "the logins came after the SRQ sent again: {logins:?} > {again_at}\n{}",
        sim.proc.transcript()
    );
    let srqs = sim
        .proc
        .stdout
        .text()
        .iter()
        .filter(|l| serde_json::from_str::<Json>(l).is_ok_and(|e| is_srq(&e)))
        .count();
    assert_eq!(srqs, 2, "{}", sim.proc.transcript());
    resync_retried_and_kept(&api, &mut stream, &users);
    api.until("the sessions active", |a| {
        let s = a.subscribers();
        (s.len() == 3 && s.iter().all(|x| x.state == "active")).then_some(())
    });
    assert!(srq_retries(&node) >= 1.0, "{}", node.scrape_metrics());

    // The node restarts; the router, still not ready, leaves the first SRQ unanswered again.
    let from = sim.mark();
    sim.send("drop-srq 1");
    sim.wait(from, "drop-srq", |e| {
        e["event"] == "control" && e["command"] == "drop-srq" && e["detail"] == "1"
    });
    drop(stream);
    drop(api);
    let from = sim.mark();
    let node = node.kill_and_restart_on(port);
    let mut api = Api::connect(&node);
    let mut stream = watch(&mut api);
    assert_eq!(api.subscribers().len(), 3, "recovered from storage");
    srq_dropped_then_answered(&sim, from, &users);
    resync_retried_and_kept(&api, &mut stream, &users);
    api.until("the recovered sessions active", |a| {
        let s = a.subscribers();
        (s.len() == 3 && s.iter().all(|x| x.state == "active")).then_some(())
    });
    assert!(srq_retries(&node) >= 1.0, "{}", node.scrape_metrics());
}
