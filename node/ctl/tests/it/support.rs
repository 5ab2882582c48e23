//! A real `sae-node` to run `saectl` against, and running `saectl` itself.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The `sae-node` binary, built by `cargo build -p sae-node` into the same target profile
/// directory as this test executable (`target/<profile>/deps/it-*` → `target/<profile>/sae-node`).
pub fn sae_node_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    let mut candidates = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        candidates.push(dir.join(format!("sae-node{}", std::env::consts::EXE_SUFFIX)));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "sae-node binary not found (looked at {candidates:?}); build it first with \
                 `cargo build -p sae-node` (the CI script builds the whole workspace)"
            )
        })
}

/// A running `sae-node` on loopback ports, in its own temporary working and data directory;
/// killed when dropped.
pub struct Node {
    child: Child,
    /// The management API: `http://127.0.0.1:PORT`.
    pub server: String,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Starts the node and waits for its `ready` line, reading the gRPC address from its
    /// `listening grpc ADDR` line.
    pub fn start() -> Node {
        Node::start_with(None)
    }

    /// Starts the node with `--config FILE`, FILE holding `config` (TOML). The listen flags
    /// still put every listener on a free loopback port.
    pub fn start_with_config(config: &str) -> Node {
        Node::start_with(Some(config))
    }

    fn start_with(config: Option<&str>) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(sae_node_bin());
        if let Some(text) = config {
            let path = dir.path().join("sae-node.toml");
            std::fs::write(&path, text).expect("write the node configuration");
            cmd.arg("--config").arg(path);
        }
        // Every listener on a free loopback port (the defaults are fixed ports on all
        // interfaces, which parallel tests cannot share).
        let mut child = cmd
            .args([
                "--grpc-listen",
                "127.0.0.1:0",
                "--diameter-listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--cops-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .current_dir(dir.path())
            .env_remove("SAE_CONFIG")
            .env_remove("SAE_GRPC_LISTEN")
            .env_remove("SAE_DIAMETER_LISTEN")
            .env_remove("SAE_METRICS_LISTEN")
            .env_remove("SAE_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sae-node");
        // Its log goes to the test's stderr, shown for failing tests.
        let stderr = child.stderr.take().expect("piped");
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[sae-node] {line}");
            }
        });
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut grpc: Option<SocketAddr> = None;
        let mut seen = Vec::new();
        loop {
            let line = match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(l) => l,
                Err(e) => {
                    let _ = child.kill();
                    panic!("sae-node did not print `ready` ({e:?}); stdout so far: {seen:?}")
                }
            };
            if line == "ready" {
                break;
            }
            if let Some(addr) = line.strip_prefix("listening grpc ") {
                grpc = Some(addr.parse().expect("sae-node printed a bad gRPC address"));
            }
            seen.push(line);
        }
        let grpc = grpc.unwrap_or_else(|| panic!("no `listening grpc ADDR` line in {seen:?}"));
        assert_ne!(grpc.port(), 0, "the node must print the bound port");
        Node {
            child,
            server: format!("http://{grpc}"),
            _dir: dir,
        }
    }

    /// Runs `saectl --server <this node> ARGS...`.
    pub fn ctl(&self, args: &[&str]) -> Run {
        let mut all = vec!["--server", self.server.as_str()];
        all.extend_from_slice(args);
        saectl(&all)
    }

    /// Starts `saectl --server <this node> ARGS...` without waiting for it.
    pub fn spawn_ctl(&self, args: &[&str]) -> Child {
        let mut cmd = saectl_command();
        cmd.args(["--server", self.server.as_str()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().expect("start saectl")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one `saectl` run did.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    /// Exit status (None: killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts a zero exit status; returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "saectl {}: {self:#?}",
            self.args.join(" ")
        );
        self.stdout.as_str()
    }

    /// Asserts the exit status; returns stderr.
    #[track_caller]
    pub fn fails_with(&self, code: i32) -> &str {
        assert_eq!(
            self.code,
            Some(code),
            "saectl {}: {self:#?}",
            self.args.join(" ")
        );
        self.stderr.as_str()
    }

    /// Stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:#?}"))
    }
}

fn saectl_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_saectl"));
    cmd.env_remove("SAECTL_SERVER");
    cmd
}

/// Runs `saectl ARGS...` to completion (with `--timeout 10`).
pub fn saectl(args: &[&str]) -> Run {
    saectl_with(args, |_| {})
}

/// Runs `saectl ARGS...`, with `configure` adjusting the command first.
pub fn saectl_with(args: &[&str], configure: impl FnOnce(&mut Command)) -> Run {
    let mut cmd = saectl_command();
    cmd.args(["--timeout", "10"]).args(args);
    configure(&mut cmd);
    let out = cmd.output().expect("run saectl");
    Run {
        args: args.iter().map(|a| a.to_string()).collect(),
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// Everything a child wrote to a pipe until it closed.
pub fn read_all(pipe: Option<impl Read>) -> String {
    let mut s = String::new();
    if let Some(mut p) = pipe {
        p.read_to_string(&mut s).expect("read pipe");
    }
    s
}
