//! Interop with python-diameter 0.9.0, a Diameter stack written by other people:
//! - as a JSRC client (a router's side) against `sae-node`, captured live and checked by tshark;
//! - as a server against `sae-sim`, our initiator, including the RFC 3539 REOPEN sequence.

use std::process::Command;
use std::time::Duration;

use sae_diameter::codes::{app, command, result, vendor};
use serde_json::Value as Json;

use crate::support::{
    End, LiveCapture, NodeConfig, Proc, SaeNode, interop_python, python_script, sae_sim_bin, tail,
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

    // A valid JSRC AAR: refused for now with 5012 and an explanation.
    let aar = &summary["aar"];
    check_answer(aar, "AAR", app::JSRC, result::UNABLE_TO_COMPLY, false);
    assert!(
        aar["error_message"].as_str().is_some_and(|m| !m.is_empty()),
        "5012 comes with an Error-Message: {aar}"
    );

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
    assert_eq!(
        summary["requests_from_node"],
        serde_json::json!([]),
        "the node sent requests of its own: {summary}"
    );

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
        result::UNABLE_TO_COMPLY,
        result::APPLICATION_UNSUPPORTED,
        result::AVP_UNSUPPORTED,
    ] {
        assert!(
            seen.result_codes.contains(&rc),
            "capture lacks Result-Code {rc}: {seen:?}"
        );
    }
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
