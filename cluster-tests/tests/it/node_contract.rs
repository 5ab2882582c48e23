//! sae-node's command line (exit 64 on unusable configuration, environment overrides, JSON
//! logs), its capabilities exchange and shutdown, driven over TCP by a minimal client that
//! writes and reads raw Diameter messages (built with `sae_diameter`'s codec only, no state
//! machine, so every octet the node sends is checked as it arrives), plus sae-sim against
//! sae-node.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sae_diameter::codes::{app, avp, command, result, vendor};
use sae_diameter::{Capabilities, Frame, FrameDecoder, Message, VendorApplication};

use crate::support::{End, LiveCapture, NodeConfig, Proc, SaeNode, sae_sim_bin};

/// A TCP connection speaking Diameter message by message.
struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
    next_id: u32,
}

enum Received {
    Message(Message),
    Closed,
}

impl RawClient {
    fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect to sae-node");
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        RawClient {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::default(),
            next_id: 0x0100_0000,
        }
    }

    /// Sends a request with fresh identifiers; returns its Hop-by-Hop identifier.
    fn send_request(&mut self, mut m: Message) -> u32 {
        self.next_id += 1;
        m.header.hop_by_hop = self.next_id;
        m.header.end_to_end = self.next_id;
        self.send(&m);
        self.next_id
    }

    fn send(&mut self, m: &Message) {
        self.stream
            .write_all(&m.encode().expect("encode"))
            .expect("write to sae-node");
    }

    fn receive(&mut self, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(Frame::Message(m))) => return Received::Message(m),
                Ok(Some(Frame::Malformed { header, error })) => {
                    panic!("sae-node sent a malformed message {header:?}: {error}")
                }
                Ok(None) => {}
                Err(e) => panic!("sae-node's byte stream cannot be framed: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "nothing from sae-node within {timeout:?}"
            );
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    assert!(self.buf.is_empty(), "connection closed inside a message");
                    return Received::Closed;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Received::Closed,
                Err(e) => panic!("read from sae-node: {e}"),
            }
        }
    }

    fn receive_message(&mut self, timeout: Duration, what: &str) -> Message {
        match self.receive(timeout) {
            Received::Message(m) => m,
            Received::Closed => panic!("sae-node closed the connection instead of sending {what}"),
        }
    }

    /// Reads until the node closes the connection; returns what it sent before closing.
    fn expect_close(&mut self, timeout: Duration) -> Vec<Message> {
        let deadline = Instant::now() + timeout;
        let mut extra = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "sae-node kept the connection open");
            match self.receive(left) {
                Received::Closed => return extra,
                Received::Message(m) => extra.push(m),
            }
        }
    }
}

fn cer(origin_host: &str, caps: impl FnOnce(&mut Capabilities)) -> Message {
    let mut c = Capabilities {
        origin_host: origin_host.into(),
        origin_realm: "test.realm".into(),
        host_ip_addresses: vec!["127.0.0.1".parse().unwrap()],
        vendor_id: vendor::JUNIPER,
        product_name: "raw test client".into(),
        origin_state_id: Some(7),
        supported_vendor_ids: vec![vendor::JUNIPER],
        vendor_specific_applications: vec![VendorApplication::auth(vendor::JUNIPER, app::JSRC)],
        ..Default::default()
    };
    caps(&mut c);
    let mut m = Message::request(command::CAPABILITIES_EXCHANGE, 0, false);
    m.avps = c.to_avps();
    m
}

fn check_cea_header(cea: &Message, hop_by_hop: u32) {
    assert_eq!(cea.header.command_code, command::CAPABILITIES_EXCHANGE);
    assert!(!cea.is_request(), "CEA has the R bit clear");
    assert_eq!(cea.header.hop_by_hop, hop_by_hop, "CEA echoes Hop-by-Hop");
    assert_eq!(cea.origin_host(), Some("sae.test.realm"));
    assert_eq!(cea.origin_realm(), Some("test.realm"));
}

#[test]
fn cer_from_a_host_not_in_allowed_peers_gets_3010_and_close() {
    let node = SaeNode::start(&NodeConfig::default());
    let capture = LiveCapture::start(node.diameter.port());
    let mut client = RawClient::connect(node.diameter);
    let hbh = client.send_request(cer("intruder.test.realm", |_| {}));
    let cea = client.receive_message(Duration::from_secs(10), "CEA");
    check_cea_header(&cea, hbh);
    assert_eq!(cea.result_code(), Some(result::UNKNOWN_PEER), "{cea:?}");
    assert!(
        cea.header.flags.is_error(),
        "3010 is a protocol error: E bit"
    );
    let after = client.expect_close(Duration::from_secs(10));
    assert!(after.is_empty(), "messages after the failed CEA: {after:?}");

    let capture = capture.finish();
    let findings = capture.findings(End::Connector);
    assert!(
        findings.trim().is_empty(),
        "tshark reports problems (frame, expert message):\n{findings}"
    );
    assert_eq!(
        capture.diameter().messages,
        vec![
            (command::CAPABILITIES_EXCHANGE, true),
            (command::CAPABILITIES_EXCHANGE, false)
        ]
    );
}

#[test]
fn cer_without_a_common_application_gets_5010() {
    let node = SaeNode::start(&NodeConfig::default());
    let capture = LiveCapture::start(node.diameter.port());
    let mut client = RawClient::connect(node.diameter);
    // Credit-Control (4) only: the node serves JSRC and PTSP.
    let hbh = client.send_request(cer("client.test.realm", |c| {
        c.vendor_specific_applications.clear();
        c.auth_application_ids = vec![4];
    }));
    let cea = client.receive_message(Duration::from_secs(10), "CEA");
    check_cea_header(&cea, hbh);
    assert_eq!(
        cea.result_code(),
        Some(result::NO_COMMON_APPLICATION),
        "{cea:?}"
    );
    assert!(
        !cea.header.flags.is_error(),
        "5010 is a permanent failure, not a protocol error: E bit clear"
    );
    // RFC 6733 section 5.3: the node should then disconnect the transport.
    client.expect_close(Duration::from_secs(10));

    let capture = capture.finish();
    let findings = capture.findings(End::Connector);
    assert!(
        findings.trim().is_empty(),
        "tshark reports problems (frame, expert message):\n{findings}"
    );
}

#[test]
fn any_peer_is_accepted_when_allowed_peers_is_omitted() {
    let node = SaeNode::start(&NodeConfig {
        allowed_peers: None,
        ..NodeConfig::default()
    });
    let mut client = RawClient::connect(node.diameter);
    let hbh = client.send_request(cer("anyone.test.realm", |_| {}));
    let cea = client.receive_message(Duration::from_secs(10), "CEA");
    check_cea_header(&cea, hbh);
    assert_eq!(cea.result_code(), Some(result::SUCCESS), "{cea:?}");
    let warned = node
        .proc
        .stderr
        .wait_line(0, Duration::from_secs(5), "a warning", |l| {
            l.contains("WARN") && l.contains("allowed_peers")
        });
    assert!(
        warned.is_ok(),
        "an open peer list is logged as a warning\n{}",
        node.proc.transcript()
    );
}

#[test]
fn sigterm_sends_dpr_to_open_peers_and_exits_0() {
    let mut node = SaeNode::start(&NodeConfig::default());
    let mut client = RawClient::connect(node.diameter);
    let hbh = client.send_request(cer("client.test.realm", |_| {}));
    let cea = client.receive_message(Duration::from_secs(10), "CEA");
    check_cea_header(&cea, hbh);
    assert_eq!(cea.result_code(), Some(result::SUCCESS), "{cea:?}");

    node.proc.terminate();
    let dpr = loop {
        let m = client.receive_message(Duration::from_secs(10), "DPR");
        let code = m.header.command_code;
        if (code == command::DEVICE_WATCHDOG || code == command::SESSION_RESYNC) && m.is_request() {
            // Answer the node's SRQ (its first request) and keep the watchdog happy.
            let mut dwa = Message::answer_to(&m);
            if code == command::SESSION_RESYNC {
                dwa.push(sae_diameter::Avp::mandatory(
                    avp::AUTH_APPLICATION_ID,
                    &sae_diameter::Value::Unsigned32(m.header.application_id),
                ));
            }
            dwa.set_result_code(result::SUCCESS);
            dwa.push(sae_diameter::Avp::mandatory(
                avp::ORIGIN_HOST,
                &sae_diameter::Value::DiameterIdentity("client.test.realm".into()),
            ));
            dwa.push(sae_diameter::Avp::mandatory(
                avp::ORIGIN_REALM,
                &sae_diameter::Value::DiameterIdentity("test.realm".into()),
            ));
            client.send(&dwa);
            continue;
        }
        break m;
    };
    assert_eq!(dpr.header.command_code, command::DISCONNECT_PEER, "{dpr:?}");
    assert!(dpr.is_request());
    assert_eq!(dpr.origin_host(), Some("sae.test.realm"));
    assert!(
        dpr.find(avp::DISCONNECT_CAUSE, 0).is_some(),
        "DPR carries Disconnect-Cause"
    );
    let mut dpa = Message::answer_to(&dpr);
    dpa.set_result_code(result::SUCCESS);
    dpa.push(sae_diameter::Avp::mandatory(
        avp::ORIGIN_HOST,
        &sae_diameter::Value::DiameterIdentity("client.test.realm".into()),
    ));
    dpa.push(sae_diameter::Avp::mandatory(
        avp::ORIGIN_REALM,
        &sae_diameter::Value::DiameterIdentity("test.realm".into()),
    ));
    client.send(&dpa);
    client.expect_close(Duration::from_secs(10));
    let status = node.proc.wait_exit(Duration::from_secs(15));
    assert!(
        status.success(),
        "sae-node exit status {status} after SIGTERM\n{}",
        node.proc.transcript()
    );
}

#[test]
fn sae_sim_against_sae_node() {
    let node = SaeNode::start(&NodeConfig {
        allowed_peers: Some(vec!["sim.test.realm"]),
        ..NodeConfig::default()
    });
    let mut cmd = Command::new(sae_sim_bin());
    cmd.args(["diameter", "--connect", &node.diameter.to_string()])
        .args([
            "--origin-host",
            "sim.test.realm",
            "--origin-realm",
            "test.realm",
        ])
        .args(["--watchdog-secs", "6", "--run-secs", "2"]);
    let mut sim = Proc::spawn("sae-sim", cmd);
    let status = sim.wait_exit(Duration::from_secs(30));
    let lines = sim.stdout.text();
    assert!(
        status.success(),
        "sae-sim exit status {status}\n{}\n{}",
        sim.transcript(),
        node.proc.transcript()
    );
    assert!(
        lines.contains(&"connected sae.test.realm".to_owned()),
        "{lines:?}"
    );
    assert!(lines.contains(&"watchdog okay".to_owned()), "{lines:?}");
    assert!(
        lines.last().is_some_and(|l| l.starts_with("disconnected ")),
        "{lines:?}"
    );
}

/// `sae-node --check-config` with `args` and `env`, its exit code and what it printed.
fn check_config(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(crate::support::sae_node_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("SAE_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--check-config")
        .args(args)
        .envs(env.iter().copied());
    let out = cmd.output().expect("run sae-node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn an_unusable_configuration_exits_64_naming_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = |name: &str, toml: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, toml).expect("write config");
        path.to_string_lossy().into_owned()
    };
    let unknown = file("unknown.toml", "[diameter]\nlisten_on = \"0.0.0.0:3868\"\n");
    let bad_listen = file("listen.toml", "[diameter]\nlisten = \"nowhere\"\n");
    let empty_allow = file("allow.toml", "[diameter]\nallowed_peers = []\n");
    let not_toml = file("broken.toml", "[diameter\n");
    let missing = dir
        .path()
        .join("absent.toml")
        .to_string_lossy()
        .into_owned();
    // (arguments, environment, what the message must say)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a [&'a str]);
    let cases: Vec<Case<'_>> = vec![
        (
            vec!["--config", &unknown],
            vec![],
            &["unknown field", "listen_on"],
        ),
        (
            vec!["--config", &bad_listen],
            vec![],
            &["diameter.listen", "nowhere"],
        ),
        (
            vec!["--config", &empty_allow],
            vec![],
            &["diameter.allowed_peers"],
        ),
        (vec!["--config", &not_toml], vec![], &["broken.toml"]),
        (
            vec!["--config", &missing],
            vec![],
            &["cannot read", "absent.toml"],
        ),
        (
            vec!["--diameter-listen", "nope"],
            vec![],
            &["diameter.listen", "--diameter-listen"],
        ),
        (
            vec!["--log-format", "xml"],
            vec![],
            &["log.format", "--log-format"],
        ),
        (
            vec!["--join", "no-port"],
            vec![],
            &["cluster.join", "--join"],
        ),
        (vec!["--name", "bad name"], vec![], &["node.name", "--name"]),
        (vec![], vec![("SAE_GRPC_LISTEN", "x:y")], &["grpc.listen"]),
        (vec!["--no-such-flag"], vec![], &["--no-such-flag"]),
    ];
    for (args, env, expected) in cases {
        let (code, text) = check_config(&args, &env);
        assert_eq!(code, Some(64), "{args:?} {env:?} → exit {code:?}:\n{text}");
        for e in expected {
            assert!(text.contains(e), "{args:?} {env:?}: {e:?} not in:\n{text}");
        }
    }
    // Valid configurations pass the same check; --help is not an error.
    let (code, text) = check_config(&[], &[]);
    assert_eq!(code, Some(0), "embedded defaults:\n{text}");
    assert!(text.contains("configuration ok"), "{text}");
    let sample = crate::support::workspace_root().join("deploy/sae-node.toml");
    let (code, text) = check_config(&["--config", &sample.to_string_lossy()], &[]);
    assert_eq!(code, Some(0), "deploy/sae-node.toml:\n{text}");
    let (code, text) = check_config(&["--help"], &[]);
    assert_eq!(code, Some(0), "--help:\n{text}");
    assert!(text.contains("--config"), "{text}");
}

#[test]
fn environment_variables_override_the_file_and_json_logs_are_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("sae-node.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = {:?}\n[log]\nformat = \"plain\"\n[grpc]\nlisten = \"127.0.0.1:0\"\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n[cops]\nlisten = \"127.0.0.1:0\"\n\
             [diameter]\nlisten = \"127.0.0.1:0\"\n",
            dir.path()
        ),
    )
    .expect("write config");
    let mut cmd = Command::new(crate::support::sae_node_bin());
    cmd.arg("--config")
        .arg(&config)
        .env("SAE_DIAMETER_LISTEN", "127.0.0.3:0")
        .env("SAE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info");
    let mut proc = Proc::spawn("sae-node", cmd);
    proc.stdout
        .wait_line(0, Duration::from_secs(60), "`ready`", |l| l == "ready")
        .unwrap_or_else(|e| panic!("{e}\n{}", proc.transcript()));
    let diameter = proc
        .stdout
        .text()
        .into_iter()
        .find_map(|l| l.strip_prefix("listening diameter ").map(str::to_owned))
        .expect("a diameter listener");
    let addr: SocketAddr = diameter.parse().expect("address");
    assert_eq!(
        addr.ip().to_string(),
        "127.0.0.3",
        "SAE_DIAMETER_LISTEN overrides diameter.listen"
    );
    // The open-peer warning is logged at start; every log line is one JSON object.
    proc.stderr
        .wait_line(0, Duration::from_secs(10), "a log line", |l| {
            l.contains("allowed_peers")
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", proc.transcript()));
    proc.terminate();
    let status = proc.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit {status}\n{}", proc.transcript());
    let lines = proc.stderr.text();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(
            v.get("timestamp").is_some() && v.get("level").is_some() && v.get("target").is_some(),
            "a JSON log event has timestamp, level and target: {line}"
        );
    }
    let warning = lines
        .iter()
        .find(|l| l.contains("allowed_peers"))
        .expect("warning");
    let v: serde_json::Value = serde_json::from_str(warning).unwrap();
    assert_eq!(v["level"], "WARN", "{warning}");
}
