//! Shared helpers of the process tests, by job: [`process`] locates the workspace binaries and
//! the interop python, runs child processes whose output is watched line by line, and starts
//! `sae-node` (reading the addresses it prints) and `sae-sim`; [`capture`] checks and drives
//! tshark (live captures of loopback, pcap findings, hex dumps for text2pcap); [`api`] is a
//! blocking client of a node's management API. Here: the workspace paths, waiting on conditions
//! with deadlines, and running a command to completion.

pub mod api;
pub mod capture;
pub mod process;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

pub use api::Api;
pub use capture::{
    CaptureFile, End, LiveCapture, od_hexdump, require_juniper_dictionary, require_tshark,
    tshark_findings,
};
pub use process::{
    NodeConfig, Proc, SaeNic, SaeNode, Sim, interop_python, python_script, sae_node_bin,
    sae_sim_bin, saectl_bin,
};

/// What to do when a prerequisite installed by the CI script is missing.
pub const RUN_CI_SETUP: &str = "run `bash .ci/run` from the repository root (it installs tshark, \
     the Juniper tshark dictionary and the python-diameter venv), or set SAE_INTEROP_PYTHON";

/// The workspace root (the parent of this package's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cluster-tests has a parent directory")
        .to_path_buf()
}

/// `cluster-tests/interop`: the python scripts and the tshark dictionary fragment.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Waits until `condition` returns `Some`, polling every 20 ms, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = condition() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// How long the process tests wait for an event or a condition.
pub const WAIT: Duration = Duration::from_secs(20);

/// Runs a command to completion, returning stdout; panics with its stderr on failure.
pub fn run_ok(mut cmd: Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The last `n` lines, for failure messages.
pub fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}
