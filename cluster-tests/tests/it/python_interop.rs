//! Interop with python-diameter 0.9.0, a Diameter stack written by other people:
//! - as a JSRC client (a router's side) against `sae-node`: base protocol and error answers,
//!   captured live and checked by tshark;
//! - as a JSRC router through a subscriber's whole session against `sae-node` (SRQ/SRR, login,
//!   confirmation, PPR from an operator's gRPC call, accounting, STR), with the management API
//!   checked after each step and the capture decoded by tshark with the Juniper dictionary;
//! - as a server against `sae-sim`, our initiator, including the RFC 3539 REOPEN sequence.

use std::process::Command;
use std::time::Duration;

use sae_diameter::codes::{app, command, result, vendor};
use sae_proto::v1 as pb;
use sae_proto::v1::management_client::ManagementClient;
use serde_json::Value as Json;
use tonic::transport::Channel;

use crate::support::{
    CaptureFile, End, LiveCapture, NodeConfig, Proc, SaeNode, interop_python, python_script,
    require_juniper_dictionary, run_ok, sae_sim_bin, tail,
};

/// Runs `client_against_node.py` against `port` and returns its JSON summary.
fn run_python_client(port: u16) -> (Json, Proc) {
    let mut cmd = python_script("client_against_node.py");
    cmd.args(["--port", &port.to_string()]).args([
        "--node-host",
        "sae.test.realm",
        "--node-watchdog-secs",
        "6",
    ]);
    let mut client = Proc::spawn("python-client", cmd);
    let status = client.wait_exit(Duration::from_secs(90));
    let summary = client
        .stdout
        .text()
        .into_iter()
        .find_map(|l| l.strip_prefix("SUMMARY ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no SUMMARY line\n{}", client.transcript()));
    let summary: Json = serde_json::from_str(&summary).expect("SUMMARY is JSON");
    assert!(
        status.success(),
        "python client failed ({status}): {}\n{}",
        summary["error"],
        client.transcript()
    );
    (summary, client)
}

fn u64_of(v: &Json) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Checks one answer as python-diameter decoded it.
fn check_answer(a: &Json, what: &str, application_id: u32, result_code: u32, e_bit: bool) {
    assert_eq!(a["command_code"], command::AA, "{what}: {a}");
    assert_eq!(a["is_request"], false, "{what}: {a}");
    assert_eq!(
        u64_of(&a["application_id"]),
        u64::from(application_id),
        "{what}: {a}"
    );
    assert_eq!(
        u64_of(&a["result_code"]),
        u64::from(result_code),
        "{what}: {a}"
    );
    assert_eq!(a["e_bit"], e_bit, "{what}: E bit: {a}");
    assert_eq!(a["hop_by_hop_matches"], true, "{what}: Hop-by-Hop: {a}");
    assert_eq!(a["end_to_end_matches"], true, "{what}: End-to-End: {a}");
    assert_eq!(
        a["session_id"], a["request_session_id"],
        "{what}: Session-Id echoed: {a}"
    );
    assert_eq!(a["origin_host"], "sae.test.realm", "{what}: {a}");
}

#[test]
fn python_diameter_client_against_sae_node() {
    interop_python();
    // The node's SRQ carries Juniper-Last-Origin-Host: without the Juniper dictionary tshark
    // would flag it as undecoded.
    require_juniper_dictionary();
    let mut node = SaeNode::start(&NodeConfig::default());
    let capture = LiveCapture::start(node.diameter.port());

    let (summary, _client) = run_python_client(node.diameter.port());
    let transcript = node.proc.transcript();

    // CER/CEA: python-diameter's application became ready, and the CEA says what the SAE serves.
    let cea = &summary["cea"];
    assert_eq!(
        u64_of(&cea["result_code"]),
        u64::from(result::SUCCESS),
        "{cea}"
    );
    assert_eq!(cea["e_bit"], false);
    assert_eq!(cea["origin_host"], "sae.test.realm");
    assert_eq!(cea["origin_realm"], "test.realm");
    let vsas = cea["vendor_specific_application_ids"]
        .as_array()
        .expect("VSA list");
    for id in [app::JSRC, app::PTSP] {
        assert!(
            vsas.iter()
                .any(|v| v["vendor_id"] == vendor::JUNIPER && v["auth_application_id"] == id),
            "CEA lacks Vendor-Specific-Application-Id {{2636, Auth {id}}}: {cea}"
        );
    }
    assert!(
        cea["supported_vendor_ids"]
            .as_array()
            .unwrap()
            .contains(&Json::from(vendor::JUNIPER)),
        "CEA lacks Supported-Vendor-Id 2636: {cea}"
    );

    // The SAE's first message on the connection is SRQ (Session-Resync), which python-diameter
    // answered with SRR 2001 from its request handler; no other request came from the node.
    let received = summary["received_order"]
        .as_array()
        .expect("received_order");
    assert_eq!(
        received.first(),
        Some(&serde_json::json!([command::CAPABILITIES_EXCHANGE, false])),
        "{summary}"
    );
    assert_eq!(
        received.get(1),
        Some(&serde_json::json!([command::SESSION_RESYNC, true])),
        "the first message after the CEA must be the node's SRQ: {summary}"
    );
    let requests = summary["requests_from_node"]
        .as_array()
        .expect("requests_from_node");
    assert_eq!(requests.len(), 1, "{summary}");
    let srq = &requests[0];
    assert_eq!(srq["command_code"], command::SESSION_RESYNC, "{srq}");
    assert_eq!(
        u64_of(&srq["application_id"]),
        u64::from(app::JSRC),
        "{srq}"
    );
    assert_eq!(srq["is_request"], true, "{srq}");
    assert_eq!(srq["e_bit"], false, "{srq}");
    assert_eq!(srq["origin_host"], "sae.test.realm", "{srq}");
    assert_eq!(srq["origin_realm"], "test.realm", "{srq}");
    assert_eq!(srq["destination_host"], "client.test.realm", "{srq}");
    assert_eq!(srq["destination_realm"], "test.realm", "{srq}");
    assert_eq!(
        u64_of(&srq["auth_application_id"]),
        u64::from(app::JSRC),
        "{srq}"
    );
    assert_eq!(
        srq["last_origin_host"],
        serde_json::json!(["sae.test.realm"]),
        "{srq}"
    );
    assert_eq!(
        srq["last_origin_host_flags"],
        serde_json::json!([{"vendor_bit": true, "m_bit": true}]),
        "{srq}"
    );

    // Watchdog both ways.
    let wd = &summary["watchdog"];
    assert!(
        u64_of(&wd["dwa_received"]) >= 1,
        "no DWA from the node: {wd}"
    );
    assert!(
        u64_of(&wd["dwr_received"]) >= 1,
        "no DWR from the node: {wd}"
    );
    assert_eq!(wd["connection_ready"], true, "{wd}");

    // A valid JSRC AAR logs the subscriber in: 2001, and no policy since this node's catalog
    // has no rule.
    let aar = &summary["aar"];
    check_answer(aar, "AAR", app::JSRC, result::SUCCESS, false);
    assert_eq!(aar["error_message"], Json::Null, "{aar}");
    assert_eq!(aar["policy_installs"], serde_json::json!([]), "{aar}");

    // Application 1 was not advertised: 3007 with the E bit.
    let nasreq = &summary["aar_unadvertised_application"];
    check_answer(
        nasreq,
        "AAR under application 1",
        app::NASREQ,
        result::APPLICATION_UNSUPPORTED,
        true,
    );

    // An unknown AVP with the M bit: 5001 naming it in Failed-AVP.
    let unknown = &summary["aar_unknown_mandatory_avp"];
    check_answer(
        unknown,
        "AAR with an unknown AVP",
        app::JSRC,
        result::AVP_UNSUPPORTED,
        false,
    );
    assert_eq!(
        unknown["failed_avps"],
        serde_json::json!([{"code": 1004, "vendor_id": 10415}]),
        "Failed-AVP: {unknown}"
    );

    // python-diameter's DPR got a DPA and the connection went away.
    let disconnect = &summary["disconnect"];
    assert_eq!(
        u64_of(&disconnect["dpa_result_code"]),
        u64::from(result::SUCCESS),
        "{disconnect}"
    );
    assert_eq!(disconnect["dpa_origin_host"], "sae.test.realm");
    assert_eq!(u64_of(&disconnect["connections_left"]), 0, "{disconnect}");

    // The node outlives its peer and stops cleanly on SIGTERM.
    assert!(
        node.proc.exited().is_none(),
        "sae-node exited after the peer left\n{transcript}"
    );
    let status = node.stop();
    assert!(
        status.success(),
        "sae-node exit status {status} after SIGTERM\n{}",
        node.proc.transcript()
    );

    // tshark decodes the whole conversation and finds nothing wrong with it.
    let capture = capture.finish();
    let findings = capture.findings(End::Connector);
    assert!(
        findings.trim().is_empty(),
        "tshark reports problems in the live capture (frame, expert message):\n{findings}"
    );
    let resets = capture.resets_by(End::Listener);
    assert!(
        resets.trim().is_empty(),
        "sae-node reset the connection (frames {resets})"
    );
    let seen = capture.diameter();
    for (cmd, request, at_least) in [
        (command::CAPABILITIES_EXCHANGE, true, 1),
        (command::CAPABILITIES_EXCHANGE, false, 1),
        (command::SESSION_RESYNC, true, 1),
        (command::SESSION_RESYNC, false, 1),
        (command::DEVICE_WATCHDOG, true, 2),
        (command::DEVICE_WATCHDOG, false, 2),
        (command::AA, true, 3),
        (command::AA, false, 3),
        (command::DISCONNECT_PEER, true, 1),
        (command::DISCONNECT_PEER, false, 1),
    ] {
        assert!(
            seen.count(cmd, request) >= at_least,
            "capture has {} of command {cmd} request={request}, expected at least {at_least}: {seen:?}",
            seen.count(cmd, request)
        );
    }
    for rc in [
        result::SUCCESS,
        result::APPLICATION_UNSUPPORTED,
        result::AVP_UNSUPPORTED,
    ] {
        assert!(
            seen.result_codes.contains(&rc),
            "capture lacks Result-Code {rc}: {seen:?}"
        );
    }
}

/// The router of the lifecycle test, its subscriber and the node's catalog: the default rule
/// gives `gold` (template, substitutions, accounting); `video` is activated by the operator;
/// a rule for another domain must not be the one chosen.
const ROUTER: &str = "router1.test.realm";
const SUBSCRIBER: &str = "alice@isp.example";
const FRAMED_IP: &str = "192.0.2.10";
const NAS_PORT_ID: &str = "ge-1/0/0.100";
const LIFECYCLE_CATALOG: &str = r#"
[[service]]
name = "gold"
policy_name = "gold-policy"
template_name = "rate-limit"
substitutions = { rate = "100m", burst = "10m" }
accounting = true

[[service]]
name = "video"
template_name = "video-boost"
substitutions = { boost = "1x", cap = "5g" }

[[rule]]
name = "business"
priority = 1
domain = "biz.example"
services = ["video"]

[[rule]]
name = "default"
priority = 10
services = ["gold"]
"#;

/// Both transcripts, for failure messages.
fn transcripts(router: &Proc, node: &SaeNode) -> String {
    format!("{}\n{}", router.transcript(), node.proc.transcript())
}

/// Waits for the router script's next `TAG ...` line at or after line `from`; returns the line
/// index and the text after the tag.
fn router_line(router: &Proc, node: &SaeNode, from: usize, tag: &str) -> (usize, String) {
    let prefix = format!("{tag} ");
    let (i, line) = router
        .stdout
        .wait_line(from, Duration::from_secs(30), &format!("`{tag}`"), |l| {
            l == tag || l.starts_with(&prefix)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", transcripts(router, node)));
    let rest = line.text.strip_prefix(tag).unwrap_or_default().trim();
    (i, rest.to_owned())
}

/// Like [`router_line`], for a line carrying JSON.
fn router_event(router: &Proc, node: &SaeNode, from: usize, tag: &str) -> (usize, Json) {
    let (i, rest) = router_line(router, node, from, tag);
    let json = serde_json::from_str(&rest).unwrap_or_else(|e| panic!("`{tag}` line: {e}: {rest}"));
    (i, json)
}

/// Writes one command line to the router script.
fn tell(stdin: &mut std::process::ChildStdin, line: &str) {
    use std::io::Write;
    writeln!(stdin, "{line}")
        .and_then(|()| stdin.flush())
        .unwrap_or_else(|e| panic!("cannot write `{line}` to the router script: {e}"));
}

/// Checks an answer to one of the router script's requests, as python-diameter decoded it.
fn check_router_answer(a: &Json, what: &str, command_code: u32, session_id: &str) {
    assert_eq!(a["command_code"], command_code, "{what}: {a}");
    assert_eq!(a["is_request"], false, "{what}: {a}");
    assert_eq!(a["e_bit"], false, "{what}: {a}");
    assert_eq!(
        u64_of(&a["application_id"]),
        u64::from(app::JSRC),
        "{what}: {a}"
    );
    assert_eq!(
        u64_of(&a["result_code"]),
        u64::from(result::SUCCESS),
        "{what}: {a}"
    );
    assert_eq!(a["hop_by_hop_matches"], true, "{what}: Hop-by-Hop: {a}");
    assert_eq!(a["end_to_end_matches"], true, "{what}: End-to-End: {a}");
    assert_eq!(a["session_id"], session_id, "{what}: Session-Id: {a}");
    assert_eq!(
        a["first_avp"],
        serde_json::json!([263, 0]),
        "{what}: <Session-Id> comes first: {a}"
    );
    assert_eq!(a["origin_host"], "sae.test.realm", "{what}: {a}");
    assert_eq!(a["origin_realm"], "test.realm", "{what}: {a}");
}

/// The (name, value) pairs of a decoded Juniper-Policy-Definition, sorted.
fn substitutions(definition: &Json) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = definition["substitutions"]
        .as_array()
        .unwrap_or_else(|| panic!("no substitutions: {definition}"))
        .iter()
        .map(|s| {
            let one = |k: &str| match s[k].as_array().map(Vec::as_slice) {
                Some([Json::String(v)]) => v.clone(),
                _ => panic!("Juniper-Substitution needs exactly one {k}: {s}"),
            };
            (one("name"), one("value"))
        })
        .collect();
    pairs.sort();
    pairs
}

/// Checks one Juniper-Policy-Install as python-diameter decoded it: vendor 2636 with the V
/// and M bits, the policy name, one Policy-Definition with the template and substitutions,
/// and Juniper-Acct-Collect when the service is accounted.
fn check_policy_install(
    p: &Json,
    policy: &str,
    template: &str,
    expected: &[(&str, &str)],
    accounting: bool,
) {
    let juniper =
        serde_json::json!({"vendor_bit": true, "m_bit": true, "vendor_id": vendor::JUNIPER});
    assert_eq!(p["flags"], juniper, "Juniper-Policy-Install flags: {p}");
    assert_eq!(p["policy_name"], serde_json::json!([policy]), "{p}");
    let definitions = p["definitions"].as_array().expect("definitions");
    assert_eq!(definitions.len(), 1, "one Juniper-Policy-Definition: {p}");
    let d = &definitions[0];
    assert_eq!(d["flags"], juniper, "Juniper-Policy-Definition flags: {p}");
    assert_eq!(d["policy_name"], serde_json::json!([policy]), "{p}");
    assert_eq!(d["template_name"], serde_json::json!([template]), "{p}");
    let mut expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(substitutions(d), expected, "substitutions: {p}");
    let collect = if accounting {
        serde_json::json!([1])
    } else {
        serde_json::json!([])
    };
    assert_eq!(p["acct_collect"], collect, "Juniper-Acct-Collect: {p}");
}

/// A blocking client of the node's management API.
struct Management {
    rt: tokio::runtime::Runtime,
    client: ManagementClient<Channel>,
}

impl Management {
    fn connect(node: &SaeNode) -> Management {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = rt
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    ManagementClient::connect(node.grpc_url()),
                )
                .await
            })
            .expect("management API connection timed out")
            .expect("connect to the management API");
        Management { rt, client }
    }

    /// Runs one call with a deadline.
    fn call<T, F>(
        &mut self,
        what: &str,
        f: impl FnOnce(ManagementClient<Channel>) -> F,
    ) -> Result<T, tonic::Status>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let fut = f(self.client.clone());
        self.rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(30), fut).await })
            .unwrap_or_else(|_| panic!("{what}: no answer within 30 s"))
            .map(tonic::Response::into_inner)
    }

    fn subscriber(&mut self, session_id: &str) -> Result<pb::Subscriber, tonic::Status> {
        let req = pb::GetSubscriberRequest {
            subscriber: Some(pb::SubscriberRef {
                key: Some(pb::subscriber_ref::Key::SessionId(session_id.to_owned())),
            }),
        };
        self.call("GetSubscriber", |mut c| async move {
            c.get_subscriber(req).await
        })
    }
}

fn service_of<'a>(s: &'a pb::Subscriber, name: &str) -> &'a pb::ServiceSession {
    s.services
        .iter()
        .find(|x| x.service == name)
        .unwrap_or_else(|| panic!("subscriber has no service {name}: {s:?}"))
}

/// Lowercase hex of a text, as tshark prints OctetString fields.
fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Every value tshark decodes for `field` in the capture.
fn field_values(capture: &CaptureFile, field: &str) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(&capture.file).args([
        "-d",
        &format!("tcp.port=={},diameter", capture.port),
        "-Y",
        field,
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
        "-e",
        field,
    ]);
    run_ok(cmd)
        .lines()
        .flat_map(|l| l.split(','))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Frames of the capture matching a display filter.
fn frames_matching(capture: &CaptureFile, filter: &str) -> usize {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(&capture.file).args([
        "-d",
        &format!("tcp.port=={},diameter", capture.port),
        "-Y",
        filter,
        "-T",
        "fields",
        "-e",
        "frame.number",
    ]);
    run_ok(cmd).lines().count()
}

/// python-diameter plays a JSRC router through a subscriber's whole session: the node's SRQ
/// answered with SRR, login AAR → AAA with the default rule's Juniper-Policy-Install, confirm
/// AAR, an operator's ActivateService → PPR answered with PPA 2001, ACR (START), STR with the
/// final usage, DPR. The management API shows each step's effect, and tshark decodes the
/// whole capture, Juniper AVPs included, without a warning.
#[test]
fn python_diameter_router_session_lifecycle_against_sae_node() {
    interop_python();
    require_juniper_dictionary();
    let mut node = SaeNode::start(&NodeConfig {
        allowed_peers: Some(vec![ROUTER]),
        extra: LIFECYCLE_CATALOG.to_owned(),
        ..NodeConfig::default()
    });
    let capture = LiveCapture::start(node.diameter.port());
    let mut cmd = python_script("router_against_node.py");
    cmd.args(["--port", &node.diameter.port().to_string()])
        .args(["--node-host", "sae.test.realm", "--origin-host", ROUTER])
        .args(["--user-name", SUBSCRIBER, "--framed-ip", FRAMED_IP])
        .args([
            "--nas-port-id",
            NAS_PORT_ID,
            "--accounted-policy",
            "gold-policy",
        ]);
    let (mut router, mut stdin) = Proc::spawn_with_stdin("python-router", cmd);

    // The SAE's first request on the connection: SRQ with Juniper-Last-Origin-Host.
    let (at, srq) = router_event(&router, &node, 0, "SRQ");
    assert_eq!(srq["command_code"], command::SESSION_RESYNC, "{srq}");
    assert_eq!(
        u64_of(&srq["application_id"]),
        u64::from(app::JSRC),
        "{srq}"
    );
    assert_eq!(srq["is_request"], true, "{srq}");
    assert_eq!(srq["destination_host"], ROUTER, "{srq}");
    assert_eq!(srq["origin_host"], "sae.test.realm", "{srq}");
    assert_eq!(
        srq["last_origin_host"],
        serde_json::json!(["sae.test.realm"]),
        "{srq}"
    );

    // Login: AAA 2001 with the default rule's service.
    let (at, aaa) = router_event(&router, &node, at + 1, "AAA");
    let (at, session_id) = router_line(&router, &node, at + 1, "LOGGED-IN");
    check_router_answer(&aaa, "AAA", command::AA, &session_id);
    assert_eq!(
        u64_of(&aaa["auth_application_id"]),
        u64::from(app::JSRC),
        "{aaa}"
    );
    assert_eq!(aaa["user_name"], SUBSCRIBER, "{aaa}");
    let installs = aaa["policy_installs"].as_array().expect("policy_installs");
    assert_eq!(
        installs.len(),
        1,
        "the default rule gives one service: {aaa}"
    );
    check_policy_install(
        &installs[0],
        "gold-policy",
        "rate-limit",
        &[("burst", "10m"), ("rate", "100m")],
        true,
    );
    // Confirmation: acknowledged, nothing installed again.
    let (_, confirm) = router_event(&router, &node, 0, "CONFIRM");
    check_router_answer(&confirm, "confirm AAA", command::AA, &session_id);
    assert_eq!(
        confirm["policy_installs"],
        serde_json::json!([]),
        "{confirm}"
    );

    let mut api = Management::connect(&node);
    let s = api.subscriber(&session_id).unwrap_or_else(|e| {
        panic!(
            "GetSubscriber after login: {e}\n{}",
            transcripts(&router, &node)
        )
    });
    assert_eq!(
        (
            s.router.as_str(),
            s.application.as_str(),
            s.user_name.as_str(),
            s.framed_ip.as_str(),
            s.nas_port_id.as_str(),
            s.state.as_str(),
            s.confirmed
        ),
        (
            ROUTER,
            "jsrc",
            SUBSCRIBER,
            FRAMED_IP,
            NAS_PORT_ID,
            "active",
            true
        ),
        "{s:?}"
    );
    assert_eq!(s.services.len(), 1, "{s:?}");
    let gold = service_of(&s, "gold");
    assert_eq!(
        (
            gold.policy_name.as_str(),
            gold.state.as_str(),
            gold.accounting
        ),
        ("gold-policy", "active", true),
        "{s:?}"
    );

    // The operator activates `video` with an override while the router waits: PPR → PPA 2001.
    let req = pb::ActivateServiceRequest {
        subscriber: Some(pb::SubscriberRef {
            key: Some(pb::subscriber_ref::Key::UserName(SUBSCRIBER.to_owned())),
        }),
        service: "video".into(),
        substitutions: [("boost".to_owned(), "2x".to_owned())].into(),
    };
    let change = api
        .call("ActivateService", |mut c| async move {
            c.activate_service(req).await
        })
        .unwrap_or_else(|e| panic!("ActivateService: {e}\n{}", transcripts(&router, &node)));
    assert!(
        change.success,
        "{change:?}\n{}",
        transcripts(&router, &node)
    );
    assert_eq!(change.result_code, result::SUCCESS, "{change:?}");
    assert_eq!(
        (
            change.session_id.as_str(),
            change.service.as_str(),
            change.policy_name.as_str(),
            change.state.as_str(),
            change.attempts
        ),
        (session_id.as_str(), "video", "video", "active", 1),
        "{change:?}"
    );
    let (at, ppr) = router_event(&router, &node, at + 1, "PPR");
    assert_eq!(ppr["command_code"], command::PUSH_PROFILE, "{ppr}");
    assert_eq!(
        u64_of(&ppr["application_id"]),
        u64::from(app::JSRC),
        "{ppr}"
    );
    assert_eq!(ppr["is_request"], true, "{ppr}");
    assert_eq!(ppr["first_avp"], serde_json::json!([263, 0]), "{ppr}");
    assert_eq!(ppr["session_id"], session_id.as_str(), "{ppr}");
    assert_eq!(ppr["origin_host"], "sae.test.realm", "{ppr}");
    assert_eq!(ppr["destination_host"], ROUTER, "{ppr}");
    assert_eq!(ppr["destination_realm"], "test.realm", "{ppr}");
    assert_eq!(
        u64_of(&ppr["auth_application_id"]),
        u64::from(app::JSRC),
        "{ppr}"
    );
    assert_eq!(ppr["user_name"], SUBSCRIBER, "{ppr}");
    assert_eq!(ppr["problems"], serde_json::json!([]), "{ppr}");
    assert_eq!(ppr["answered"], result::SUCCESS, "{ppr}");
    assert_eq!(ppr["policy_removes"], serde_json::json!([]), "{ppr}");
    let installs = ppr["policy_installs"].as_array().expect("policy_installs");
    assert_eq!(installs.len(), 1, "{ppr}");
    check_policy_install(
        &installs[0],
        "video",
        "video-boost",
        &[("boost", "2x"), ("cap", "5g")],
        false,
    );
    let s = api
        .subscriber(&session_id)
        .unwrap_or_else(|e| panic!("GetSubscriber after PPA: {e}"));
    let video = service_of(&s, "video");
    assert_eq!(
        (
            video.state.as_str(),
            video.result_code,
            video.policy_name.as_str()
        ),
        ("active", result::SUCCESS, "video"),
        "{s:?}"
    );
    assert_eq!(
        video.substitutions.get("boost").map(String::as_str),
        Some("2x"),
        "{s:?}"
    );
    assert_eq!(service_of(&s, "gold").state, "active", "{s:?}");

    // Logout: ACR START and STR, each with a Juniper-Acct-Record.
    tell(&mut stdin, "LOGOUT");
    let (at, aca) = router_event(&router, &node, at + 1, "ACA");
    check_router_answer(&aca, "ACA", command::ACCOUNTING, &session_id);
    assert_eq!(aca["accounting_record_type"], 2, "START echoed: {aca}");
    assert_eq!(aca["accounting_record_number"], 0, "{aca}");
    let (at, sta) = router_event(&router, &node, at + 1, "STA");
    check_router_answer(&sta, "STA", command::SESSION_TERMINATION, &session_id);
    router_line(&router, &node, at + 1, "LOGGED-OUT");

    // The session is gone (the router is still connected) and its usage is kept.
    let gone = crate::support::wait_for(
        Duration::from_secs(10),
        "GetSubscriber to answer NOT_FOUND after the STR",
        || api.subscriber(&session_id).err(),
    );
    assert_eq!(gone.code(), tonic::Code::NotFound, "{gone:?}");
    let req = pb::ListUsageRecordsRequest {
        session_id: session_id.clone(),
        ..Default::default()
    };
    let records = api
        .call("ListUsageRecords", |mut c| async move {
            c.list_usage_records(req).await
        })
        .expect("ListUsageRecords")
        .records;
    let seen: Vec<(&str, &str, u32, u64, u64, u64, u64)> = records
        .iter()
        .map(|r| {
            (
                r.kind.as_str(),
                r.policy_name.as_str(),
                r.record_number,
                r.input_octets,
                r.output_octets,
                r.input_packets,
                r.output_packets,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("start", "gold-policy", 0, 0, 0, 0, 0),
            (
                "final",
                "gold-policy",
                0,
                1_234_567,
                7_654_321,
                1_000,
                2_000
            ),
        ],
        "{records:?}"
    );
    for r in &records {
        assert_eq!(
            (
                r.session_id.as_str(),
                r.user_name.as_str(),
                r.router.as_str()
            ),
            (session_id.as_str(), SUBSCRIBER, ROUTER),
            "{r:?}"
        );
    }
    assert!(records[0].id < records[1].id, "{records:?}");

    // DPR/DPA, and the script's account of the whole conversation.
    tell(&mut stdin, "DISCONNECT");
    let status = router.wait_exit(Duration::from_secs(30));
    let (_, summary) = router_event(&router, &node, 0, "SUMMARY");
    assert!(
        status.success(),
        "python router failed ({status}): {}\n{}",
        summary["error"],
        transcripts(&router, &node)
    );
    let disconnect = &summary["disconnect"];
    assert_eq!(
        u64_of(&disconnect["dpa_result_code"]),
        u64::from(result::SUCCESS),
        "{disconnect}"
    );
    assert_eq!(u64_of(&disconnect["connections_left"]), 0, "{disconnect}");
    // What python-diameter received, in order (the node's DWRs may come in between).
    let received: Vec<Json> = summary["received_order"]
        .as_array()
        .expect("received_order")
        .iter()
        .filter(|m| m[0] != command::DEVICE_WATCHDOG)
        .cloned()
        .collect();
    let answer = |c: u32| serde_json::json!([c, false]);
    let request = |c: u32| serde_json::json!([c, true]);
    assert_eq!(
        received,
        vec![
            answer(command::CAPABILITIES_EXCHANGE),
            request(command::SESSION_RESYNC),
            answer(command::AA),
            answer(command::AA),
            request(command::PUSH_PROFILE),
            answer(command::ACCOUNTING),
            answer(command::SESSION_TERMINATION),
            answer(command::DISCONNECT_PEER),
        ],
        "{summary}"
    );
    assert!(
        node.proc.exited().is_none(),
        "sae-node exited after the router left\n{}",
        node.proc.transcript()
    );
    let status = node.stop();
    assert!(
        status.success(),
        "sae-node exit status {status} after SIGTERM\n{}",
        node.proc.transcript()
    );

    // tshark: nothing malformed, no warning, every command of the lifecycle, Juniper AVPs
    // decoded by name.
    let capture = capture.finish();
    let findings = capture.findings(End::Connector);
    assert!(
        findings.trim().is_empty(),
        "tshark reports problems in the live capture (frame, expert message):\n{findings}"
    );
    let resets = capture.resets_by(End::Listener);
    assert!(
        resets.trim().is_empty(),
        "sae-node reset the connection (frames {resets})"
    );
    let seen = capture.diameter();
    for (cmd, count) in [
        (command::CAPABILITIES_EXCHANGE, 1),
        (command::SESSION_RESYNC, 1),
        (command::AA, 2),
        (command::PUSH_PROFILE, 1),
        (command::ACCOUNTING, 1),
        (command::SESSION_TERMINATION, 1),
        (command::DISCONNECT_PEER, 1),
    ] {
        for request in [true, false] {
            assert_eq!(
                seen.count(cmd, request),
                count,
                "capture: command {cmd} request={request}: {seen:?}"
            );
        }
    }
    assert!(
        seen.result_codes.iter().all(|&c| c == result::SUCCESS),
        "every answer is 2001: {seen:?}"
    );
    for (filter, what) in [
        (
            "diameter.cmd.code == 277 && diameter.flags.request == 1 && diameter.Juniper-Last-Origin-Host",
            "SRQ with Juniper-Last-Origin-Host",
        ),
        (
            "diameter.cmd.code == 265 && diameter.flags.request == 0 && diameter.Juniper-Policy-Install",
            "AAA with Juniper-Policy-Install",
        ),
        (
            "diameter.cmd.code == 288 && diameter.flags.request == 1 && diameter.Juniper-Policy-Install",
            "PPR with Juniper-Policy-Install",
        ),
        (
            "diameter.cmd.code == 271 && diameter.flags.request == 1 && diameter.Juniper-Acct-Record",
            "ACR with Juniper-Acct-Record",
        ),
        (
            "diameter.cmd.code == 275 && diameter.flags.request == 1 && diameter.Juniper-Acct-Record",
            "STR with Juniper-Acct-Record",
        ),
    ] {
        assert_eq!(
            frames_matching(&capture, filter),
            1,
            "tshark finds one frame with {what} ({filter})"
        );
    }
    let names = field_values(&capture, "diameter.Juniper-Policy-Name");
    for policy in ["gold-policy", "video"] {
        assert!(
            names.contains(&hex(policy)),
            "tshark decodes Juniper-Policy-Name {policy}: {names:?}"
        );
    }
    let templates = field_values(&capture, "diameter.Juniper-Template-Name");
    assert_eq!(
        templates,
        vec![hex("rate-limit"), hex("video-boost")],
        "Juniper-Template-Name in AAA then PPR"
    );
    assert_eq!(
        field_values(&capture, "diameter.Juniper-Last-Origin-Host"),
        vec!["sae.test.realm"]
    );
    assert_eq!(
        field_values(&capture, "diameter.Juniper-Request-Type"),
        vec!["1", "2"],
        "login then confirm"
    );
}

/// Starts `server_for_sim.py` on a free port; returns it and the port.
fn start_python_server(peers: &[&str]) -> (Proc, u16) {
    let mut cmd = python_script("server_for_sim.py");
    cmd.arg("0");
    for p in peers {
        cmd.args(["--peer", p]);
    }
    let server = Proc::spawn("python-server", cmd);
    let line = server
        .stdout
        .wait_line(0, Duration::from_secs(20), "`listening PORT`", |l| {
            l.starts_with("listening ")
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", server.transcript()));
    let port = line.1.text["listening ".len()..]
        .parse()
        .expect("port number");
    (server, port)
}

fn sae_sim(port: u16, origin_host: &str, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(sae_sim_bin());
    cmd.args(["diameter", "--connect", &format!("127.0.0.1:{port}")])
        .args(["--origin-host", origin_host, "--origin-realm", "test.realm"])
        .args(extra);
    Proc::spawn("sae-sim", cmd)
}

#[test]
fn sae_sim_against_python_diameter_server_reopens_and_disconnects() {
    let (mut server, port) = start_python_server(&["sim.test.realm"]);
    let capture = LiveCapture::start(port);
    let mut sim = sae_sim(
        port,
        "sim.test.realm",
        &["--watchdog-secs", "6", "--reopen", "--run-secs", "24"],
    );
    let fail = |what: String, sim: &Proc, server: &Proc| -> ! {
        panic!("{what}\n{}\n{}", sim.transcript(), server.transcript())
    };

    let (_, connected) = sim
        .stdout
        .wait_line(0, Duration::from_secs(15), "`connected`", |l| {
            l.starts_with("connected ") || l.starts_with("failed ")
        })
        .unwrap_or_else(|e| fail(e, &sim, &server));
    assert_eq!(
        connected.text, "connected server.test.realm",
        "sae-sim names python-diameter's Origin-Host after the CEA"
    );
    let (reopen_at, reopen) = sim
        .stdout
        .wait_line(0, Duration::from_secs(5), "`watchdog reopen`", |l| {
            l.starts_with("watchdog ")
        })
        .unwrap_or_else(|e| fail(e, &sim, &server));
    assert_eq!(
        reopen.text, "watchdog reopen",
        "with --reopen the first watchdog state is REOPEN"
    );
    let (okay_at, okay) = sim
        .stdout
        .wait_line(
            reopen_at + 1,
            Duration::from_secs(25),
            "`watchdog okay`",
            |l| l.starts_with("watchdog "),
        )
        .unwrap_or_else(|e| fail(e, &sim, &server));
    assert_eq!(
        okay.text, "watchdog okay",
        "REOPEN goes straight to OKAY when DWAs arrive"
    );
    assert!(okay_at > reopen_at);
    // Three DWRs, each after a Tw of at least 4 s (6 s minus jitter) but the first: at least
    // two intervals between REOPEN and OKAY, and python-diameter saw three DWRs by then.
    let waited = okay.at - reopen.at;
    assert!(
        waited >= Duration::from_millis(7_500),
        "OKAY after only {waited:?}: REOPEN needs three DWAs, one Tw apart"
    );
    let dwrs = |server: &Proc| {
        server
            .stdout
            .text()
            .iter()
            .filter(|l| *l == "received DWR from sim.test.realm")
            .count()
    };
    let seen =
        crate::support::wait_for(Duration::from_secs(2), "3 DWRs at python-diameter", || {
            (dwrs(&server) >= 3).then(|| dwrs(&server))
        });
    assert_eq!(seen, 3, "DWRs before OKAY:\n{}", server.transcript());

    // After --run-secs: DPR, python-diameter's DPA, clean exit.
    let (disconnected_at, disconnected) = sim
        .stdout
        .wait_line(
            okay_at + 1,
            Duration::from_secs(30),
            "`disconnected`",
            |l| l.starts_with("disconnected ") || l.starts_with("failed "),
        )
        .unwrap_or_else(|e| fail(e, &sim, &server));
    assert!(
        disconnected.text.starts_with("disconnected "),
        "{}",
        disconnected.text
    );
    let status = sim.wait_exit(Duration::from_secs(15));
    assert!(
        status.success(),
        "sae-sim exit status {status}\n{}",
        sim.transcript()
    );
    server
        .stdout
        .wait_line(0, Duration::from_secs(5), "DPR at python-diameter", |l| {
            l == "received DPR from sim.test.realm"
        })
        .unwrap_or_else(|e| fail(e, &sim, &server));
    server
        .stdout
        .wait_line(0, Duration::from_secs(10), "the connection to close", |l| {
            l.starts_with("closed sim.test.realm")
        })
        .unwrap_or_else(|e| fail(e, &sim, &server));
    let sim_lines = sim.stdout.text();
    assert_eq!(
        sim_lines[..disconnected_at]
            .iter()
            .filter(|l| l.starts_with("watchdog "))
            .count(),
        2,
        "while connected the watchdog goes REOPEN → OKAY and stays there:\n{}",
        tail(&sim_lines, 20)
    );

    server.terminate();
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "python server: {status}\n{}",
        server.transcript()
    );

    let capture = capture.finish();
    let findings = capture.findings(End::Listener);
    assert!(
        findings.trim().is_empty(),
        "tshark reports problems in sae-sim's traffic (frame, expert message):\n{findings}"
    );
    let resets = capture.resets_by(End::Connector);
    assert!(
        resets.trim().is_empty(),
        "sae-sim reset the connection (frames {resets})"
    );
    let seen = capture.diameter();
    assert!(
        seen.count(command::CAPABILITIES_EXCHANGE, true) == 1,
        "{seen:?}"
    );
    assert!(seen.count(command::DEVICE_WATCHDOG, true) >= 3, "{seen:?}");
    assert!(seen.count(command::DISCONNECT_PEER, true) == 1, "{seen:?}");
    assert!(seen.count(command::DISCONNECT_PEER, false) == 1, "{seen:?}");
}

#[test]
fn sae_sim_reports_a_refused_capabilities_exchange() {
    // python-diameter answers CER from a host it was not told about with 3010.
    let (_server, port) = start_python_server(&["sim.test.realm"]);
    let mut sim = sae_sim(port, "stranger.test.realm", &["--watchdog-secs", "6"]);
    let status = sim.wait_exit(Duration::from_secs(20));
    let lines = sim.stdout.text();
    assert!(
        !status.success(),
        "sae-sim must fail when the CER is refused\n{}",
        sim.transcript()
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("failed ") && l.contains("3010")),
        "expected `failed <reason with 3010>`\n{}",
        sim.transcript()
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("connected ")),
        "{}",
        sim.transcript()
    );
}
