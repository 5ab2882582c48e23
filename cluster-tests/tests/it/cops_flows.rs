//! COPS between a real `sae-node` (the PDP) and a real `sae-sim` playing the PEPs: an SBC
//! asking for call admission (OPN/CAT/KA, admit and deny at the budget edge, the PDP killed and
//! restarted while the SBC keeps its calls and denies or allows new ones, then reconnects with the
//! same PEPID) and a COPS-PR router (unsupported client type refused, login → DEC → RPT → usage
//! reports → DRQ), checked through the management API.

use std::process::Command;

use sae_proto::v1 as pb;

use crate::support::{Api, NodeConfig, SaeNode, Sim, WAIT};

/// The simulator in a COPS role against the node.
fn cops_sim(role: &str, node: &SaeNode, args: &[&str]) -> Sim {
    let connect = node.cops.to_string();
    let mut all = vec![role, "--connect", connect.as_str(), "--control"];
    all.extend(args);
    Sim::spawn(&all)
}

/// Places a call and returns its result.
fn call(sim: &mut Sim, id: &str, kbps: u32) -> String {
    let from = sim.mark();
    sim.send(&format!("call {id} {kbps}"));
    let (_, e) = sim.wait(from, &format!("call {id}"), |e| {
        e["event"] == "call" && e["call_id"] == id
    });
    e["result"].as_str().unwrap_or_default().to_owned()
}

/// What these tests ask the management API beyond the shared calls.
impl Api {
    fn budgets(&mut self) -> Vec<pb::AdmissionBudget> {
        self.rt
            .block_on(
                self.client
                    .list_admission_budgets(pb::ListAdmissionBudgetsRequest {}),
            )
            .expect("ListAdmissionBudgets")
            .into_inner()
            .budgets
    }

    fn connections(&mut self) -> Vec<pb::CopsConnection> {
        self.rt
            .block_on(
                self.client
                    .list_cops_connections(pb::ListCopsConnectionsRequest {}),
            )
            .expect("ListCopsConnections")
            .into_inner()
            .connections
    }

    fn control(&mut self, pepid: &str, action: &str) -> u32 {
        let req = pb::ControlUsageRequest {
            pepid: pepid.into(),
            client_type: 0x800B,
            handle: String::new(),
            action: action.into(),
        };
        self.rt
            .block_on(self.client.control_usage(req))
            .expect("ControlUsage")
            .into_inner()
            .request_states
    }
}

fn sbc_node() -> NodeConfig {
    NodeConfig {
        cops: "keepalive_secs = 2\nbudgets = [{ pepid = \"sbc1\", calls = 2 }]\n".into(),
        ..Default::default()
    }
}

#[test]
fn an_sbc_opens_keeps_alive_and_is_admitted_up_to_its_budget() {
    let node = SaeNode::start(&sbc_node());
    let mut api = Api::connect(&node);
    let mut sbc = cops_sim("sbc", &node, &["--pepid", "sbc1"]);
    let (_, acc) = sbc.wait(0, "CAT", |e| e["event"] == "accepted");
    assert_eq!(acc["keepalive_s"], 2, "{acc}");
    assert_eq!(call(&mut sbc, "c1", 64), "admitted");
    assert_eq!(call(&mut sbc, "c2", 64), "admitted");
    // The budget is 2 calls: the third is denied by the PDP.
    assert_eq!(call(&mut sbc, "c3", 64), "denied");
    let b = api.budgets();
    let pep = b.iter().find(|b| b.name == "sbc1").expect("sbc1 budget");
    assert_eq!((pep.calls, pep.calls_limit), (2, 2));
    // Keep-alives flow both ways past two KA periods without the connection dropping.
    sbc.wait(0, "KAs", |e| {
        e["event"] == "ka-sent" && e["count"].as_u64().unwrap_or(0) >= 3
    });
    assert!(
        !sbc.proc
            .stdout
            .text()
            .iter()
            .any(|l| l.contains("\"disconnected\"")),
        "{}",
        sbc.proc.transcript()
    );
    // Hanging up releases the share (DRQ); the next call fits.
    sbc.send("hangup c1");
    api.until("c1 released", |a| {
        a.budgets()
            .iter()
            .any(|b| b.name == "sbc1" && b.calls == 1)
            .then_some(())
    });
    assert_eq!(call(&mut sbc, "c4", 64), "admitted");
    let conns = api.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(
        (
            conns[0].pepid.as_str(),
            conns[0].client_type,
            conns[0].profile.as_str()
        ),
        ("sbc1", 0x800A, "admission")
    );
    assert_eq!(conns[0].keepalive_secs, 2);
}

fn restart_on_same_port(node: SaeNode) -> SaeNode {
    let cops = format!("127.0.0.1:{}", node.cops.port());
    node.kill_and_restart_with(&["--cops-listen".into(), cops])
}

#[test]
fn the_sbc_keeps_its_calls_while_the_pdp_is_down_denies_new_ones_and_reconnects() {
    let node = SaeNode::start(&sbc_node());
    let mut sbc = cops_sim(
        "sbc",
        &node,
        &[
            "--pepid",
            "sbc1",
            "--backoff-initial-secs",
            "1",
            "--backoff-ceiling-secs",
            "2",
        ],
    );
    sbc.wait(0, "CAT", |e| e["event"] == "accepted");
    assert_eq!(call(&mut sbc, "up1", 64), "admitted");

    let mark = sbc.mark();
    let node = {
        let mut node = node;
        node.proc.kill();
        sbc.wait(mark, "failure detected", |e| e["event"] == "disconnected");
        // While down: new calls are denied, the call already up is untouched.
        assert_eq!(call(&mut sbc, "new1", 64), "denied-while-down");
        let from = sbc.mark();
        sbc.send("list");
        let (_, entry) = sbc.wait(from, "the call list", |e| {
            e["event"] == "call-entry" && e["call_id"] == "up1"
        });
        assert_eq!(entry["state"], "admitted", "{entry}");
        restart_on_same_port(node)
    };
    // Back: the SBC reconnects with the same PEPID, answers the SSQ with its call, and the
    // restarted PDP rebuilds the budget from it.
    let (_, acc) = sbc.wait(mark, "reconnected", |e| e["event"] == "accepted");
    assert_eq!(acc["event"], "accepted");
    let mut api = Api::connect(&node);
    api.until("the held call counted again", |a| {
        a.budgets()
            .iter()
            .any(|b| b.name == "sbc1" && b.calls == 1)
            .then_some(())
    });
    let conns = api.connections();
    assert_eq!(conns[0].pepid, "sbc1");
    assert_eq!(conns[0].client_type, 0x800A);
    assert_eq!(call(&mut sbc, "new2", 64), "admitted");
    // The budget edge still holds with the rebuilt state.
    assert_eq!(call(&mut sbc, "new3", 64), "denied");
}

#[test]
fn with_allow_while_down_the_sbc_admits_new_calls_itself() {
    let node = SaeNode::start(&sbc_node());
    let mut sbc = cops_sim(
        "sbc",
        &node,
        &[
            "--pepid",
            "sbc1",
            "--allow-while-down",
            "--backoff-initial-secs",
            "1",
            "--backoff-ceiling-secs",
            "2",
        ],
    );
    sbc.wait(0, "CAT", |e| e["event"] == "accepted");
    let mark = sbc.mark();
    let mut node = node;
    node.proc.kill();
    sbc.wait(mark, "failure detected", |e| e["event"] == "disconnected");
    assert_eq!(call(&mut sbc, "while-down", 64), "admitted-while-down");
    sbc.wait(mark, "reconnect attempts", |e| e["event"] == "reconnecting");
}

const CATALOG: &str = r#"
[[service]]
name = "gold"
policy_name = "gold-100m"
template_name = "rate-limit"
substitutions = { rate = "100m" }
accounting = true

[[rule]]
name = "default"
services = ["gold"]
"#;

#[test]
fn an_unsupported_client_type_is_refused_with_cc() {
    let node = SaeNode::start(&NodeConfig::default());
    let sim = cops_sim(
        "copspr",
        &node,
        &["--pepid", "erx1", "--client-type", "0x1234"],
    );
    let (_, e) = sim.wait(0, "CC", |e| e["event"] == "disconnected");
    let reason = e["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("pdp-cc"), "{e}");
    assert!(
        reason.contains("UnsupportedClientType") || reason.contains('6'),
        "{e}"
    );
}

#[test]
fn a_cops_pr_login_is_provisioned_reported_and_ended_by_drq() {
    let node = SaeNode::start(&NodeConfig {
        cops: "accounting_timer_secs = 1\n".into(),
        extra: CATALOG.into(),
        ..Default::default()
    });
    let mut api = Api::connect(&node);
    let mut erx = cops_sim(
        "copspr",
        &node,
        &["--pepid", "erx1", "--usage-octets-per-s", "1000"],
    );
    let (_, acc) = erx.wait(0, "CAT", |e| e["event"] == "accepted");
    assert_eq!(acc["accounting_timer_s"], 1, "{acc}");
    erx.send("login fastEthernet 3/0.1 10.2.0.1 user1@isp.example");
    let (_, installed) = erx.wait(0, "DEC install", |e| e["event"] == "installed");
    assert_eq!(installed["policies"][0], "gold-100m", "{installed}");
    let s = api.until("the policy reported installed", |a| {
        a.subscriber("user1@isp.example")
            .ok()
            .filter(|s| s.services.first().is_some_and(|x| x.state == "active"))
    });
    assert_eq!(s.nas_port_id, "fastEthernet 3/0.1");
    assert_eq!(s.framed_ip, "10.2.0.1");
    assert_eq!(s.router, "erx1");

    // Unsolicited usage reports, paced by the Accounting Timer.
    let (i, _) = erx.wait(0, "a periodic report", |e| {
        e["event"] == "report" && e["type"] == "accounting"
    });
    erx.wait(i + 1, "a second periodic report", |e| {
        e["event"] == "report" && e["type"] == "accounting"
    });
    let usage = api.until("usage records", |a| {
        let u = a.usage("user1@isp.example");
        (u.len() >= 2).then_some(u)
    });
    assert!(
        usage.iter().all(|r| r.policy_name == "gold-100m"),
        "{usage:?}"
    );
    assert!(usage.last().unwrap().input_octets > 0);

    // A solicited report through the API.
    let from = erx.mark();
    assert_eq!(api.control("erx1", "solicit"), 1);
    erx.wait(from, "a solicited report", |e| {
        e["event"] == "report" && e["solicited"] == true
    });

    // Logout: the final report, then DRQ; the session ends.
    let from = erx.mark();
    erx.send("logout fastEthernet 3/0.1");
    erx.wait(from, "logout", |e| e["event"] == "logout");
    api.until("the session ended", |a| {
        matches!(a.subscriber("user1@isp.example"), Err(s) if s.code() == tonic::Code::NotFound)
            .then_some(())
    });
}

/// COPS op-codes of every message in a capture, in order, as tshark decodes them.
fn cops_ops(capture: &crate::support::CaptureFile) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(&capture.file)
        .args(["-d", &format!("tcp.port=={},cops", capture.port)])
        .args(["-Y", "cops", "-T", "fields", "-e", "cops.op_code"]);
    crate::support::run_ok(cmd)
        .lines()
        .flat_map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect()
}

fn assert_clean(capture: &crate::support::CaptureFile) {
    let port = format!("tcp.port=={},cops", capture.port);
    let findings = crate::support::tshark_findings(&capture.file, &["-d", &port], None);
    assert!(findings.is_empty(), "tshark findings:\n{findings}");
}

#[test]
fn tshark_decodes_live_exchanges_of_both_profiles_cleanly() {
    crate::support::require_tshark();
    // SBC call admission.
    let node = SaeNode::start(&sbc_node());
    let capture = crate::support::LiveCapture::start(node.cops.port());
    let mut sbc = cops_sim("sbc", &node, &["--pepid", "sbc1"]);
    sbc.wait(0, "CAT", |e| e["event"] == "accepted");
    assert_eq!(call(&mut sbc, "c1", 64), "admitted");
    assert_eq!(call(&mut sbc, "c2", 64), "admitted");
    assert_eq!(call(&mut sbc, "c3", 64), "denied");
    sbc.send("hangup c1");
    sbc.send("quit");
    sbc.proc.wait_exit(WAIT);
    let file = capture.finish();
    assert_clean(&file);
    let ops = cops_ops(&file);
    // OPN, CAT, SSQ, SSC, REQ/DEC ×3, DRQ (denied c3 and hangup c1), CC.
    for op in ["6", "7", "5", "10", "1", "2", "4", "8"] {
        assert!(ops.iter().any(|o| o == op), "op {op} missing in {ops:?}");
    }
    drop(node);

    // COPS-PR provisioning with usage reports.
    let node = SaeNode::start(&NodeConfig {
        cops: "accounting_timer_secs = 1\n".into(),
        extra: CATALOG.into(),
        ..Default::default()
    });
    let capture = crate::support::LiveCapture::start(node.cops.port());
    let mut erx = cops_sim("copspr", &node, &["--pepid", "erx1"]);
    erx.wait(0, "CAT", |e| e["event"] == "accepted");
    erx.send("login fastEthernet 3/0.1 10.2.0.1 user1@isp.example");
    erx.wait(0, "an accounting report", |e| {
        e["event"] == "report" && e["type"] == "accounting"
    });
    erx.send("logout fastEthernet 3/0.1");
    erx.wait(0, "logout", |e| e["event"] == "logout");
    erx.send("quit");
    erx.proc.wait_exit(WAIT);
    let file = capture.finish();
    assert_clean(&file);
    let ops = cops_ops(&file);
    for op in ["6", "7", "5", "10", "1", "2", "3", "4", "8"] {
        assert!(ops.iter().any(|o| o == op), "op {op} missing in {ops:?}");
    }
    // The COPS-PR PRIDs and EPDs of the REQ and the DEC decode.
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(&file.file)
        .args(["-d", &format!("tcp.port=={},cops", file.port)])
        .args([
            "-Y",
            "cops.op_code == 2",
            "-T",
            "fields",
            "-e",
            "cops.epd.octets",
        ]);
    let octets = crate::support::run_ok(cmd);
    assert!(
        octets.contains("gold-100m") || octets.contains("676f6c642d3130306d"),
        "the installed policy name is not in the DEC's EPDs: {octets}"
    );
}

#[test]
fn a_node_stopping_closes_its_peps_with_cc_shutting_down() {
    let mut node = SaeNode::start(&sbc_node());
    let sbc = cops_sim(
        "sbc",
        &node,
        &["--pepid", "sbc1", "--backoff-initial-secs", "5"],
    );
    sbc.wait(0, "CAT", |e| e["event"] == "accepted");
    let status = node.stop();
    assert!(status.success(), "sae-node exited with {status}");
    let (_, e) = sbc.wait(0, "CC from the node", |e| e["event"] == "disconnected");
    let reason = e["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("pdp-cc"), "{e}");
    assert!(
        reason.contains("ShuttingDown") || reason.contains("11"),
        "{e}"
    );
}
