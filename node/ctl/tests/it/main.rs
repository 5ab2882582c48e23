//! `saectl` against a real `sae-node` (started on loopback ports in a temporary directory), and
//! the exit statuses that need no node.
//!
//! Prerequisite: the `sae-node` binary next to this test executable (`cargo build -p sae-node`;
//! the CI builds the whole workspace first).

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Node, read_all, saectl, saectl_with};

#[test]
fn status_as_a_table_and_as_json() {
    let node = Node::start();
    let out = node.ctl(&["status"]);
    let text = out.ok();
    for line in [
        "node:",
        "version:",
        "uptime:",
        "origin-host:",
        "origin-realm:",
        "sessions:       0",
        "usage records:  0",
        "routers:        0",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "no {line:?} line in:\n{text}"
        );
    }
    assert!(out.stderr.is_empty(), "{out:#?}");

    let doc = node.ctl(&["status", "--json"]).json();
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"), "{doc}");
    assert!(doc["uptime_seconds"].is_u64(), "{doc}");
    assert!(doc["node_name"].is_string(), "{doc}");
    assert!(
        doc["origin_host"].as_str().is_some_and(|h| !h.is_empty()),
        "{doc}"
    );
    assert_eq!(doc["diameter_peers"], json!([]), "{doc}");
    assert_eq!(doc["subscriber_sessions"], 0, "{doc}");
    assert_eq!(doc["usage_records"], 0, "{doc}");
}

#[test]
fn the_server_can_come_from_the_environment() {
    let node = Node::start();
    let out = saectl_with(&["--json", "status"], |cmd| {
        cmd.env("SAECTL_SERVER", node.server.trim_start_matches("http://"));
    });
    assert!(out.json()["version"].is_string(), "{out:#?}");
}

#[test]
fn an_unreachable_server_exits_69() {
    // A port nothing listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let out = saectl(&["--server", &server, "status"]);
    let err = out.fails_with(69);
    assert!(
        err.starts_with(&format!(
            "saectl: UNAVAILABLE: cannot reach the SAE node at {server}"
        )),
        "{out:#?}"
    );
    assert!(out.stdout.is_empty(), "{out:#?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn command_line_errors_exit_2_before_connecting() {
    // The server would be unreachable (69): a bad command line is found first.
    let nowhere = "http://127.0.0.1:1";
    for (args, reason) in [
        (
            &["subscriber", "activate", "alice", "gold", "--sub", "rate"][..],
            "is not KEY=VALUE",
        ),
        (
            &[
                "subscriber",
                "activate",
                "alice",
                "gold",
                "--sub",
                "a=1",
                "--sub",
                "a=2",
            ][..],
            "given twice",
        ),
        (
            &["subscriber", "get", "ip=10.0.0.256"][..],
            "not an IP address or prefix",
        ),
        (
            &["subscriber", "logout", "mac=x"][..],
            "unknown kind of reference",
        ),
        (
            &["service", "put", "--file", "/nonexistent/services.toml"][..],
            "cannot read",
        ),
        (&["rule", "put", "corp"][..], "--priority"),
        (
            &[
                "cops",
                "usage",
                "solicit",
                "--pepid",
                "p",
                "--client-type",
                "0x1FFFF",
            ][..],
            "16 bits",
        ),
        (
            &[
                "cops",
                "usage",
                "solicit",
                "--pepid",
                "p",
                "--client-type",
                "800B",
            ][..],
            "is not a client type",
        ),
        (
            &[
                "cops",
                "usage",
                "solicit",
                "--pepid",
                "p",
                "--client-type",
                "0x800B",
                "--handle",
                "xyz",
            ][..],
            "not a handle in hex",
        ),
        (
            &["cops", "usage", "solicit", "--pepid", "p"][..],
            "--client-type",
        ),
        (&["frobnicate"][..], "unrecognized subcommand"),
    ] {
        let mut all = vec!["--server", nowhere];
        all.extend_from_slice(args);
        let out = saectl(&all);
        let err = out.fails_with(2);
        assert!(err.contains(reason), "{args:?}: {out:#?}");
    }
    let out = saectl(&["--server", "not a url", "status"]);
    assert!(out.fails_with(2).contains("--server"), "{out:#?}");
}

#[test]
fn help_documents_refs_and_exit_statuses() {
    let out = saectl(&["--help"]);
    let help = out.ok();
    assert!(help.contains("Exit status:"), "{help}");
    assert!(help.contains("69  the server cannot be reached"), "{help}");
    let out = saectl(&["subscriber", "get", "--help"]);
    assert!(out.ok().contains("user=NAME"), "{out:#?}");
}

// ---- The tests below need the node's catalog, rules and subscriber RPCs. ----

#[test]
fn service_put_list_get_delete() {
    let node = Node::start();
    let out = node.ctl(&[
        "service",
        "put",
        "gold",
        "--policy-name",
        "gold-pol",
        "--template",
        "tmpl-gold",
        "--sub",
        "rate=10m",
        "--sub",
        "burst=1m",
        "--accounting",
        "--description",
        "Gold tier",
    ]);
    let text = out.ok();
    assert!(text.starts_with("service gold stored\n"), "{text}");
    assert!(text.contains("\npolicy-name:    gold-pol\n"), "{text}");
    assert!(
        text.contains("\nsubstitutions:  burst=1m, rate=10m\n"),
        "{text}"
    );

    // From a file: every [[service]] entry.
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        "[[service]]\nname = \"silver\"\npolicy_name = \"silver-pol\"\n\
         substitutions = {{ rate = 5000 }}\n\n[[service]]\nname = \"bronze\"\n\
         policy_name = \"bronze-pol\"\n"
    )
    .unwrap();
    let path = file.path().to_str().unwrap();
    let out = node.ctl(&["service", "put", "--file", path]);
    assert_eq!(
        out.ok(),
        "service silver stored\nservice bronze stored\n",
        "{out:#?}"
    );

    let out = node.ctl(&["service", "list"]);
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("NAME  ") && lines[0].contains("POLICY"),
        "{text}"
    );
    assert_eq!(lines.len(), 4, "{text}");
    for (name, policy) in [
        ("gold", "gold-pol"),
        ("silver", "silver-pol"),
        ("bronze", "bronze-pol"),
    ] {
        assert!(
            lines.iter().any(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                cells.first() == Some(&name)
                    && cells.get(1) == Some(&"normal")
                    && cells.get(2) == Some(&policy)
            }),
            "no row for {name}: {text}"
        );
    }

    let doc = node.ctl(&["--json", "service", "get", "gold"]).json();
    assert_eq!(
        doc,
        json!({
            "name": "gold",
            "policy_name": "gold-pol",
            "template_name": "tmpl-gold",
            "substitutions": { "burst": "1m", "rate": "10m" },
            "accounting": true,
            "description": "Gold tier",
            "kind": "normal",
            "fragments": [],
            "deny_modification": false,
        })
    );
    let doc = node.ctl(&["service", "get", "silver", "--json"]).json();
    assert_eq!(doc["substitutions"], json!({ "rate": "5000" }), "{doc}");

    let doc = node.ctl(&["--json", "service", "list"]).json();
    let mut names: Vec<&str> = doc["services"]
        .as_array()
        .expect("a services array")
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["bronze", "gold", "silver"], "{doc}");

    // Replacing: options left out are empty again.
    let out = node.ctl(&[
        "--json",
        "service",
        "put",
        "gold",
        "--policy-name",
        "gold-2",
    ]);
    let doc = out.json();
    assert_eq!(doc["name"], "gold");
    assert_eq!(doc["policy_name"], "gold-2");
    assert_eq!(doc["substitutions"], json!({}), "{doc}");
    assert_eq!(doc["accounting"], false, "{doc}");

    assert_eq!(
        node.ctl(&["service", "delete", "gold"]).ok(),
        "service gold deleted\n"
    );
    let out = node.ctl(&["service", "get", "gold"]);
    assert!(
        out.fails_with(2).starts_with("saectl: NOT_FOUND: "),
        "{out:#?}"
    );
    let text = node.ctl(&["service", "list"]).ok().to_owned();
    assert!(!text.lines().any(|l| l.starts_with("gold ")), "{text}");
    assert_eq!(
        node.ctl(&["--json", "service", "delete", "bronze"]).json(),
        json!({})
    );
}

#[test]
fn rule_put_list_delete() {
    let node = Node::start();
    node.ctl(&["service", "put", "gold"]).ok();
    node.ctl(&["service", "put", "voip"]).ok();

    let out = node.ctl(&[
        "rule",
        "put",
        "corp",
        "--priority",
        "10",
        "--domain",
        "corp.example",
        "--service",
        "gold,voip",
        "--sub",
        "rate=20m",
    ]);
    let text = out.ok();
    assert!(text.starts_with("rule corp stored\n"), "{text}");
    assert!(text.contains("\npriority:       10\n"), "{text}");
    assert!(text.contains("\nservices:       gold, voip\n"), "{text}");
    node.ctl(&[
        "rule",
        "put",
        "guests",
        "--priority",
        "5",
        "--login-name",
        "guest*",
        "--reject",
    ])
    .ok();

    let text = node.ctl(&["rule", "list"]).ok().to_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("NAME  ") && lines[0].contains("PRIORITY"),
        "{text}"
    );
    assert_eq!(lines.len(), 3, "{text}");
    let row = |name: &str| -> Vec<String> {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}: {text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        row("corp"),
        [
            "corp",
            "10",
            "*",
            "corp.example",
            "*",
            "*",
            "accept",
            "gold,voip",
            "rate=20m"
        ]
    );
    assert_eq!(
        row("guests"),
        ["guests", "5", "guest*", "*", "*", "*", "reject", "-", "-"]
    );

    let doc = node.ctl(&["--json", "rule", "list"]).json();
    let corp = doc["rules"]
        .as_array()
        .expect("a rules array")
        .iter()
        .find(|r| r["name"] == "corp")
        .expect("rule corp")
        .clone();
    assert_eq!(
        corp,
        json!({
            "name": "corp",
            "priority": 10,
            "login_name": "",
            "domain": "corp.example",
            "nas_port_id": "",
            "router": "",
            "services": ["gold", "voip"],
            "substitutions": { "rate": "20m" },
            "reject": false,
            "subscriber_dn": "",
            "retailer_dn": "",
            "accounting_id": "",
            "subscriptions": [],
            "virtual_router": "",
        })
    );

    assert_eq!(
        node.ctl(&["rule", "delete", "corp"]).ok(),
        "rule corp deleted\n"
    );
    let doc = node.ctl(&["--json", "rule", "list"]).json();
    let names: Vec<&str> = doc["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["guests"], "{doc}");
    let out = node.ctl(&["rule", "delete", "corp"]);
    assert!(
        out.fails_with(2).starts_with("saectl: NOT_FOUND: "),
        "{out:#?}"
    );
}

#[test]
fn subscriber_and_usage_lists_on_an_empty_node() {
    let node = Node::start();
    let out = node.ctl(&["subscriber", "list"]);
    assert_eq!(
        out.ok(),
        "SESSION-ID  USER  IP  PORT  ROUTER  STATE  SERVICES\n"
    );
    assert_eq!(out.stderr, "0 of 0 subscribers\n");
    let out = node.ctl(&[
        "subscriber",
        "list",
        "--all",
        "--user",
        "alice*",
        "--page-size",
        "10",
    ]);
    assert_eq!(out.ok().lines().count(), 1, "{out:#?}");

    let doc = node.ctl(&["--json", "subscriber", "list"]).json();
    assert_eq!(
        doc,
        json!({ "subscribers": [], "next_page_token": "", "total": 0 })
    );

    let out = node.ctl(&["usage", "list"]);
    assert!(out.ok().starts_with("ID  TIME  SESSION-ID"), "{out:#?}");
    assert_eq!(out.ok().lines().count(), 1, "{out:#?}");
    assert_eq!(
        node.ctl(&["--json", "usage", "list", "--after", "0", "--limit", "5"])
            .json(),
        json!({ "records": [] })
    );
}

#[test]
fn unknown_names_exit_2_with_not_found() {
    let node = Node::start();
    for args in [
        &["service", "get", "nope"][..],
        &["service", "delete", "nope"][..],
        &["rule", "delete", "nope"][..],
        &["subscriber", "get", "user=nobody"][..],
        &["subscriber", "get", "sae.test;1;1"][..],
        &["subscriber", "logout", "ip=192.0.2.99"][..],
        &["subscriber", "activate", "nobody", "gold"][..],
    ] {
        let out = node.ctl(args);
        let err = out.fails_with(2);
        assert!(err.starts_with("saectl: NOT_FOUND: "), "{args:?}: {out:#?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:#?}");
    }
}

#[test]
fn nic_resolve_eval_and_bindings_on_a_node_without_subscribers() {
    let node = Node::start();
    let out = node.ctl(&["nic", "resolve", "loginName=nobody@isp.example"]);
    let err = out.fails_with(2);
    assert!(
        err.contains("NOT_FOUND") && err.contains("step loginName > session"),
        "{out:#?}"
    );
    let err = node
        .ctl(&["nic", "resolve", "address=1"])
        .fails_with(2)
        .to_owned();
    assert!(
        err.contains("INVALID_ARGUMENT") && err.contains("unknown key"),
        "{err}"
    );
    let text = node
        .ctl(&[
            "nic",
            "eval",
            "'interfaceName=%s;router=%s' % (intf, 'BNG1')",
            "--sub",
            "intf=ge-0/0/0.7",
        ])
        .ok()
        .to_owned();
    assert!(
        text.contains("value:") && text.contains("interfaceName=ge-0/0/0.7;router=BNG1"),
        "{text}"
    );
    assert!(
        text.contains("interfaceName=ge-0/0/0.7;router=bng1\n"),
        "{text}"
    );
    assert!(
        text.contains("resolved:") && text.contains("no SAE owns the router"),
        "{text}"
    );
    let doc = node
        .ctl(&["--json", "nic", "eval", "len('abc') * 2"])
        .json();
    assert_eq!(doc["value"], "6");
    assert_eq!(doc["value_type"], "int");
    assert!(
        doc["reference_error"].as_str().unwrap().contains("not str"),
        "{doc}"
    );
    for hostile in [
        "__import__('os')",
        "().__class__",
        "'a' * 10**9",
        "(lambda: 1)()",
    ] {
        let err = node.ctl(&["nic", "eval", hostile]).fails_with(2).to_owned();
        assert!(
            err.contains("INVALID_ARGUMENT: expression: 1:"),
            "{hostile}: {err}"
        );
    }
    let out = node.ctl(&["nic", "bindings"]);
    assert!(out.ok().contains("ROUTER"), "{out:#?}");
    assert!(out.stderr.contains("0 of 0 bindings"), "{out:#?}");
}

#[test]
fn events_stream_until_interrupted() {
    let node = Node::start();
    let mut child = node.spawn_ctl(&["events", "--json"]);
    // It keeps streaming (an error would end it at once).
    std::thread::sleep(Duration::from_millis(1500));
    if let Some(status) = child.try_wait().unwrap() {
        panic!(
            "saectl events exited with {status}: {}",
            read_all(child.stderr.take())
        );
    }
    // Ctrl-C ends it quietly.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "saectl events ignored SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = read_all(child.stderr.take());
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(read_all(child.stdout.take()), "");
}

// ---- COPS: connections, admission budgets and usage feedback. ----

#[test]
fn cops_connections_on_a_node_without_peps() {
    let node = Node::start();
    let out = node.ctl(&["cops", "connections"]);
    assert_eq!(
        out.ok(),
        "PEPID  CLIENT-TYPE  PROFILE  REMOTE  STATE  KA  ACCT-TIMER  STATES  RESUMED  OPENED\n"
    );
    assert!(out.stderr.is_empty(), "{out:#?}");
    assert_eq!(
        node.ctl(&["--json", "cops", "connections"]).json(),
        json!({ "connections": [] })
    );
    assert_eq!(node.ctl(&["cops", "conns"]).ok().lines().count(), 1);
}

#[test]
fn cops_budgets_from_the_configuration() {
    let node = Node::start_with_config(
        "[grpc]\nlisten = \"127.0.0.1:0\"\n\n\
         [diameter]\nlisten = \"127.0.0.1:0\"\n\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n\n\
         [cops]\nlisten = \"127.0.0.1:0\"\n\
         budgets = [{ pepid = \"sbc1\", calls = 10 }, \
         { realm = \"voice.example\", bandwidth_kbps = 2000 }]\n",
    );
    let out = node.ctl(&["cops", "budgets"]);
    let text = out.ok();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["KIND", "NAME", "CALLS", "BANDWIDTH-KBIT/S"],
        "{text}"
    );
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows.contains(&vec!["pep", "sbc1", "0/10", "0/-"]), "{text}");
    assert!(
        rows.contains(&vec!["realm", "voice.example", "0/-", "0/2000"]),
        "{text}"
    );

    let doc = node.ctl(&["cops", "budgets", "--json"]).json();
    let mut budgets = doc["budgets"].as_array().expect("a budgets array").clone();
    budgets.sort_by_key(|b| b["name"].as_str().unwrap().to_owned());
    assert_eq!(
        budgets,
        [
            json!({
                "kind": "pep",
                "name": "sbc1",
                "calls_limit": 10,
                "bandwidth_kbps_limit": 0,
                "calls": 0,
                "bandwidth_kbps": 0,
            }),
            json!({
                "kind": "realm",
                "name": "voice.example",
                "calls_limit": 0,
                "bandwidth_kbps_limit": 2000,
                "calls": 0,
                "bandwidth_kbps": 0,
            }),
        ],
        "{doc}"
    );
}

#[test]
fn cops_budgets_without_configured_budgets() {
    let node = Node::start();
    assert_eq!(
        node.ctl(&["cops", "budgets"]).ok(),
        "KIND  NAME  CALLS  BANDWIDTH-KBIT/S\n"
    );
    assert_eq!(
        node.ctl(&["--json", "cops", "budgets"]).json(),
        json!({ "budgets": [] })
    );
}

#[test]
fn cops_usage_for_a_pep_that_is_not_connected() {
    let node = Node::start();
    for args in [
        &[
            "cops",
            "usage",
            "solicit",
            "--pepid",
            "nobody",
            "--client-type",
            "0x800B",
        ][..],
        &[
            "--json",
            "cops",
            "usage",
            "suspend-reporting",
            "--pepid",
            "nobody",
            "--client-type",
            "32779",
            "--handle",
            "0000002a",
        ][..],
    ] {
        let out = node.ctl(args);
        let err = out.fails_with(2);
        assert!(err.starts_with("saectl: NOT_FOUND: "), "{args:?}: {out:#?}");
        assert!(err.contains("nobody"), "{args:?}: {out:#?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:#?}");
    }
}

#[test]
fn cops_usage_with_an_unknown_action_is_a_usage_error() {
    let node = Node::start();
    let out = node.ctl(&[
        "cops",
        "usage",
        "report-everything",
        "--pepid",
        "sbc1",
        "--client-type",
        "0x800B",
    ]);
    let err = out.fails_with(2);
    assert!(
        err.contains("invalid value 'report-everything'"),
        "{out:#?}"
    );
    for action in [
        "solicit",
        "suspend-reporting",
        "resume-reporting",
        "suspend-monitoring",
        "resume-monitoring",
    ] {
        assert!(err.contains(action), "{action}: {out:#?}");
    }
    assert!(out.stdout.is_empty(), "{out:#?}");
}

// ---- The cluster: a node started without --join is a single-node cluster (node 1). ----

#[test]
fn cluster_of_a_single_node_as_a_table_and_as_json() {
    let node = Node::start();
    // The node's own lease is renewed through Raft shortly after `ready`: until then the
    // member is not alive yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let doc = node.ctl(&["--json", "cluster"]).json();
        if doc["members"][0]["alive"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "node 1 never alive: {doc}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for args in [&["cluster"][..], &["cluster", "status"][..]] {
        let out = node.ctl(args);
        let text = out.ok();
        for line in [
            "node:          1",
            "leader:        1",
            "term:",
            "last applied:",
            "members:       1",
            "routers:       0",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(line)),
                "{args:?}: no {line:?} line in:\n{text}"
            );
        }
        let header = text
            .lines()
            .position(|l| l.starts_with("ID  NAME"))
            .unwrap_or_else(|| panic!("{args:?}: no members table in:\n{text}"));
        let members: Vec<&str> = text.lines().skip(header + 1).collect();
        assert_eq!(members.len(), 1, "{args:?}: one member in:\n{text}");
        let cells: Vec<&str> = members[0].split_whitespace().collect();
        // ID NAME ROLE LEADER ALIVE GRPC DIAMETER COPS ORIGIN-HOST ROUTERS
        assert_eq!(cells.len(), 10, "{args:?}: {cells:?}");
        assert_eq!(cells[0], "1", "{cells:?}");
        assert_eq!(cells[2], "voter", "{cells:?}");
        assert_eq!(cells[3], "*", "{cells:?}");
        assert_eq!(cells[4], "yes", "{cells:?}");
        assert_eq!(cells[9], "0", "{cells:?}");
        assert!(out.stderr.is_empty(), "{out:#?}");
    }

    let doc = node.ctl(&["--json", "cluster"]).json();
    assert_eq!(doc["node_id"], 1, "{doc}");
    assert_eq!(doc["leader_id"], 1, "{doc}");
    assert!(doc["term"].as_u64().is_some_and(|t| t >= 1), "{doc}");
    assert!(doc["last_applied"].is_u64(), "{doc}");
    let members = doc["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{doc}");
    assert_eq!(members[0]["id"], 1, "{doc}");
    assert_eq!(members[0]["role"], "voter", "{doc}");
    assert_eq!(members[0]["leader"], true, "{doc}");
    assert_eq!(members[0]["alive"], true, "{doc}");
    // The member's gRPC address is the one saectl talks to.
    let grpc = members[0]["grpc_address"].as_str().expect("grpc_address");
    assert!(node.server.ends_with(grpc), "{grpc} vs {}", node.server);
    assert_eq!(doc["routers"], json!([]), "{doc}");
}

#[test]
fn cluster_routers_without_routers() {
    let node = Node::start();
    assert_eq!(
        node.ctl(&["cluster", "routers"]).ok(),
        "ROUTER  OWNER  OWNER-NAME  EPOCH  LEASE-MS  LAST-ORIGIN-HOST\n"
    );
    assert_eq!(
        node.ctl(&["--json", "cluster", "routers"]).json(),
        json!({ "routers": [] })
    );
}

#[test]
fn cluster_move_of_an_unknown_router_is_refused() {
    let node = Node::start();
    let out = node.ctl(&["cluster", "move", "no-such-router", "1"]);
    let err = out.fails_with(2);
    assert!(err.starts_with("saectl: "), "{out:#?}");
    assert!(err.contains("no-such-router"), "{out:#?}");
    assert!(out.stdout.is_empty(), "{out:#?}");
    // A node id of 0 never reaches the node.
    let out = node.ctl(&["cluster", "move", "no-such-router", "0"]);
    assert!(out.fails_with(2).contains("0"), "{out:#?}");
}

#[test]
fn cluster_remove_of_the_only_voter_is_refused() {
    let node = Node::start();
    let out = node.ctl(&["cluster", "remove", "1"]);
    let err = out.fails_with(2);
    assert!(
        err.starts_with("saectl: INVALID_ARGUMENT: ")
            || err.starts_with("saectl: FAILED_PRECONDITION: "),
        "{out:#?}"
    );
    assert!(err.contains("only voter"), "{out:#?}");
    assert!(out.stdout.is_empty(), "{out:#?}");
    // Still a cluster of one, led by node 1.
    let doc = node.ctl(&["--json", "cluster"]).json();
    assert_eq!(doc["leader_id"], 1, "{doc}");
    assert_eq!(doc["members"].as_array().map(Vec::len), Some(1), "{doc}");
}

#[test]
fn health_is_serving() {
    let node = Node::start();
    let out = node.ctl(&["health"]);
    assert_eq!(out.ok(), "SERVING\n");
    assert!(out.stderr.is_empty(), "{out:#?}");
    assert_eq!(
        node.ctl(&["--json", "health"]).json(),
        json!({ "service": "", "status": "SERVING" })
    );
    // As a container health check runs it: a bare HOST:PORT.
    let bare = node.server.trim_start_matches("http://");
    let out = saectl(&["--server", bare, "health"]);
    assert_eq!(out.ok(), "SERVING\n");
    assert_eq!(
        node.ctl(&["health", "--service", "sae.v1.Management"]).ok(),
        "SERVING\n"
    );
    // A service the node does not have: refused by the health service.
    let out = node.ctl(&["health", "--service", "no.such.Service"]);
    assert_ne!(out.code, Some(0), "{out:#?}");
    assert!(out.stderr.starts_with("saectl: "), "{out:#?}");
}

#[test]
fn health_of_an_unreachable_node_exits_69() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = saectl(&["--server", &format!("127.0.0.1:{port}"), "health"]);
    out.fails_with(69);
    assert!(out.stdout.is_empty(), "{out:#?}");
}
