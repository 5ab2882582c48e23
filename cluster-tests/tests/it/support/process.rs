//! Child processes: the workspace binaries (`sae-node`, `sae-sim`, `saectl`, found next to the
//! test executable) and the interop python; [`Proc`], a child whose stdout and stderr are read
//! line by line and which is killed when dropped; [`SaeNode`], a node started on its own
//! configuration and data directory, with the addresses it printed; [`Sim`], a `sae-sim` with
//! its control pipe and JSON events.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{RUN_CI_SETUP, WAIT, interop_dir, wait_for, workspace_root};

/// A binary of the workspace, built by `cargo build -p <package>` into the same target profile
/// directory as this test executable (`target/<profile>/deps/it-*` → `target/<profile>/<name>`).
fn workspace_bin(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    let mut candidates = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        candidates.push(dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{name} binary not found (looked at {candidates:?}); build it first with \
                 `cargo build -p {package}` (the CI script builds the whole workspace)"
            )
        })
}

/// The `sae-sim` binary (package `sae-sim`), built into the same target profile directory.
pub fn sae_sim_bin() -> PathBuf {
    workspace_bin("sae-sim", "sae-sim")
}

/// The `sae-node` binary, built into the same target profile directory.
pub fn sae_node_bin() -> PathBuf {
    workspace_bin("sae-node", "sae-node")
}

/// The standalone `sae-nic` binary (package `sae-nic-server`).
pub fn sae_nic_bin() -> PathBuf {
    workspace_bin("sae-nic", "sae-nic-server")
}

/// The `saectl` binary, built into the same target profile directory as `sae-node`.
pub fn saectl_bin() -> PathBuf {
    let node = sae_node_bin();
    let p = node.with_file_name(format!("saectl{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.is_file(),
        "saectl not found at {}; build it with `cargo build -p sae-ctl`",
        p.display()
    );
    p
}

/// The python interpreter of the interop venv: `SAE_INTEROP_PYTHON`, else
/// `<workspace>/.venv-interop/bin/python`. Panics with setup instructions when missing or when
/// python-diameter 0.9.0 cannot be imported from it.
pub fn interop_python() -> PathBuf {
    let python = std::env::var_os("SAE_INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv-interop/bin/python"));
    assert!(
        python.is_file(),
        "python interpreter {} not found: {RUN_CI_SETUP}",
        python.display()
    );
    let out = Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('python-diameter'))",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}: {RUN_CI_SETUP}", python.display()));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && version == "0.9.0",
        "{} does not provide python-diameter 0.9.0 (got {version:?}, stderr {}): {RUN_CI_SETUP}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

/// A command running `interop/<script>` with the interop venv's python (unbuffered, and
/// without writing bytecode into the source tree).
pub fn python_script(script: &str) -> Command {
    let mut cmd = Command::new(interop_python());
    cmd.arg(interop_dir().join(script))
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// One line of a child's output and when it was read.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Instant,
    pub text: String,
}

#[derive(Default)]
struct Stream {
    lines: Vec<Line>,
    closed: bool,
}

/// Lines read from one pipe by a background thread.
#[derive(Clone, Default)]
pub struct Output {
    inner: Arc<(Mutex<Stream>, Condvar)>,
}

impl Output {
    fn spawn_reader(&self, pipe: impl Read + Send + 'static, echo: Option<String>) {
        let out = self.clone();
        thread::spawn(move || {
            let reader = BufReader::new(pipe);
            for line in reader.lines() {
                let Ok(text) = line else { break };
                if let Some(prefix) = &echo {
                    eprintln!("[{prefix}] {text}");
                }
                let (lock, cv) = &*out.inner;
                lock.lock().unwrap().lines.push(Line {
                    at: Instant::now(),
                    text,
                });
                cv.notify_all();
            }
            let (lock, cv) = &*out.inner;
            lock.lock().unwrap().closed = true;
            cv.notify_all();
        });
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<Line> {
        self.inner.0.lock().unwrap().lines.clone()
    }

    /// Every line so far, as text.
    pub fn text(&self) -> Vec<String> {
        self.lines().into_iter().map(|l| l.text).collect()
    }

    /// Waits until a line satisfying `pred` has been read (searching from line `from`), and
    /// returns its index and content. Fails on timeout or when the pipe closes first.
    pub fn wait_line(
        &self,
        from: usize,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> Result<(usize, Line), String> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.inner;
        let mut stream = lock.lock().unwrap();
        loop {
            if let Some(i) = (from..stream.lines.len()).find(|&i| pred(&stream.lines[i].text)) {
                return Ok((i, stream.lines[i].clone()));
            }
            if stream.closed {
                return Err(format!("output ended before {what}"));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("timed out after {timeout:?} waiting for {what}"));
            }
            stream = cv.wait_timeout(stream, deadline - now).unwrap().0;
        }
    }

    /// Waits until the pipe is closed (the child exited or closed it).
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.inner;
        let mut stream = lock.lock().unwrap();
        while !stream.closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            stream = cv.wait_timeout(stream, deadline - now).unwrap().0;
        }
        true
    }
}

/// A child process killed when dropped; stdout and stderr are collected line by line (stderr
/// is also echoed to the test's stderr, which the harness shows for failing tests).
pub struct Proc {
    pub name: String,
    child: Child,
    pub stdout: Output,
    pub stderr: Output,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` with piped stdout/stderr and null stdin.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let stdout = Output::default();
        let stderr = Output::default();
        stdout.spawn_reader(child.stdout.take().expect("piped"), None);
        stderr.spawn_reader(child.stderr.take().expect("piped"), Some(name.to_owned()));
        Proc {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            status: None,
        }
    }

    /// Spawns `cmd` like [`Proc::spawn`] but with stdin piped; returns the writer too.
    pub fn spawn_with_stdin(name: &str, mut cmd: Command) -> (Proc, std::process::ChildStdin) {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let stdin = child.stdin.take().expect("piped");
        let stdout = Output::default();
        let stderr = Output::default();
        stdout.spawn_reader(child.stdout.take().expect("piped"), None);
        stderr.spawn_reader(child.stderr.take().expect("piped"), Some(name.to_owned()));
        (
            Proc {
                name: name.to_owned(),
                child,
                stdout,
                stderr,
                status: None,
            },
            stdin,
        )
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&mut self) {
        if self.status.is_some() {
            return;
        }
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let name = self.name.clone();
        let child = &mut self.child;
        let status = wait_for(timeout, &format!("{name} to exit"), || {
            child.try_wait().expect("try_wait")
        });
        self.status = Some(status);
        // Let the readers drain what the process wrote before it exited.
        self.stdout.wait_closed(Duration::from_secs(5));
        self.stderr.wait_closed(Duration::from_secs(5));
        status
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Has the process exited (without waiting)?
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Stdout and stderr, for failure messages.
    pub fn transcript(&self) -> String {
        let mut s = format!("--- {} stdout ---\n", self.name);
        for l in self.stdout.text() {
            s.push_str(&l);
            s.push('\n');
        }
        s.push_str(&format!("--- {} stderr ---\n", self.name));
        for l in self.stderr.text() {
            s.push_str(&l);
            s.push('\n');
        }
        s
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running `sae-node` with the configuration it was given.
pub struct SaeNode {
    pub proc: Proc,
    pub diameter: SocketAddr,
    pub cops: SocketAddr,
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
    /// The cluster node id it printed (`node N`).
    pub node_id: u64,
    config_path: PathBuf,
    dir: tempfile::TempDir,
}

/// What a test node is started with.
pub struct NodeConfig {
    pub origin_host: &'static str,
    pub origin_realm: &'static str,
    pub allowed_peers: Option<Vec<&'static str>>,
    pub watchdog_interval_secs: u64,
    /// Raw TOML appended after the `[diameter]` keys: more of them, then `[sessions]`,
    /// `[[service]]`, `[[rule]]` tables.
    pub extra: String,
    /// Raw TOML appended to the `[cops]` section.
    pub cops: String,
    /// The loopback address every listener binds (port 0).
    pub listen_ip: &'static str,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            origin_host: "sae.test.realm",
            origin_realm: "test.realm",
            allowed_peers: Some(vec!["client.test.realm"]),
            watchdog_interval_secs: 6,
            extra: String::new(),
            cops: String::new(),
            listen_ip: "127.0.0.1",
        }
    }
}

impl NodeConfig {
    /// The configuration file. Every listener binds port 0 on loopback (the defaults are fixed
    /// ports on all interfaces, which parallel tests cannot share) and the data directory is the
    /// test's own.
    fn toml(&self, data_dir: &Path) -> String {
        let ip = self.listen_ip;
        let mut s = format!(
            "[node]\ndata_dir = {data_dir:?}\n\n[grpc]\nlisten = \"{ip}:0\"\n\n\
             [metrics]\nlisten = \"{ip}:0\"\n\n[cops]\nlisten = \"{ip}:0\"\n{}\n\n\
             [diameter]\nlisten = \"{ip}:0\"\norigin_host = \"{}\"\norigin_realm = \"{}\"\n\
             watchdog_interval_secs = {}\n",
            self.cops, self.origin_host, self.origin_realm, self.watchdog_interval_secs
        );
        if let Some(peers) = &self.allowed_peers {
            let list: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
            s.push_str(&format!("allowed_peers = [{}]\n", list.join(", ")));
        }
        s.push_str(&self.extra);
        s.push('\n');
        s
    }
}

fn listener_addrs(proc: &Proc) -> Vec<(String, SocketAddr)> {
    let lines: Vec<String> = proc
        .stdout
        .text()
        .into_iter()
        .take_while(|l| l != "ready")
        .filter(|l| !l.starts_with("node "))
        .collect();
    lines
        .iter()
        .map(|l| {
            let rest = l
                .strip_prefix("listening ")
                .unwrap_or_else(|| panic!("unexpected stdout line before `ready`: {l:?}"));
            let (protocol, addr) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad listening line {l:?}"));
            let addr: SocketAddr = addr
                .parse()
                .unwrap_or_else(|_| panic!("sae-node printed a bad address: {l:?}"));
            assert_ne!(addr.port(), 0, "the node must print the bound port: {l:?}");
            (protocol.to_owned(), addr)
        })
        .collect()
}

impl SaeNode {
    /// Starts `sae-node --config <file>` and waits for `ready`, reading the addresses from its
    /// `listening <protocol> ADDR` lines.
    pub fn start(config: &NodeConfig) -> SaeNode {
        Self::start_with(config, &[])
    }

    /// [`SaeNode::start`] with extra command-line arguments (e.g. `--join ADDR`).
    pub fn start_with(config: &NodeConfig, args: &[String]) -> SaeNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("sae-node.toml");
        std::fs::write(&config_path, config.toml(dir.path())).expect("write config");
        Self::launch(config_path, dir, args)
    }

    fn launch(config_path: PathBuf, dir: tempfile::TempDir, args: &[String]) -> SaeNode {
        let mut cmd = Command::new(sae_node_bin());
        cmd.arg("--config").arg(&config_path).args(args);
        let proc = Proc::spawn("sae-node", cmd);
        let ready = proc
            .stdout
            .wait_line(0, Duration::from_secs(60), "`ready`", |l| l == "ready");
        if let Err(e) = ready {
            panic!("sae-node did not get ready: {e}\n{}", proc.transcript());
        }
        let addrs = listener_addrs(&proc);
        let one = |protocol: &str| {
            let found: Vec<SocketAddr> = addrs
                .iter()
                .filter(|(p, _)| p == protocol)
                .map(|(_, a)| *a)
                .collect();
            assert_eq!(
                found.len(),
                1,
                "expected exactly one `listening {protocol} ADDR` line before `ready`, got {addrs:?}"
            );
            found[0]
        };
        let node_id = proc
            .stdout
            .text()
            .iter()
            .find_map(|l| l.strip_prefix("node ").and_then(|n| n.parse().ok()))
            .unwrap_or_else(|| panic!("no `node N` line before `ready`\n{}", proc.transcript()));
        SaeNode {
            node_id,
            diameter: one("diameter"),
            cops: one("cops"),
            grpc: one("grpc"),
            metrics: one("metrics"),
            proc,
            config_path,
            dir,
        }
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.proc.terminate();
        self.proc.wait_exit(Duration::from_secs(15))
    }

    /// Kills the process (SIGKILL) and starts it again on the same configuration and data, with
    /// the Diameter listener on `port` so routers find it where they left it.
    pub fn kill_and_restart_on(self, port: u16) -> SaeNode {
        let listen = format!("127.0.0.1:{port}");
        self.kill_and_restart_with(&["--diameter-listen".into(), listen])
    }

    /// Kills the process (SIGKILL) and starts it again on the same configuration and data with
    /// extra command-line arguments (e.g. fixed listen addresses).
    pub fn kill_and_restart_with(self, args: &[String]) -> SaeNode {
        let SaeNode {
            mut proc,
            config_path,
            dir,
            ..
        } = self;
        proc.kill();
        Self::launch(config_path, dir, args)
    }

    /// The Prometheus text of `/metrics`.
    pub fn scrape_metrics(&self) -> String {
        scrape(self.metrics)
    }

    /// The management API's URL.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }
}

/// A standalone `sae-nic` on loopback, with the addresses it printed.
pub struct SaeNic {
    pub proc: Proc,
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
}

impl SaeNic {
    /// Starts `sae-nic` with its gRPC listener on `127.0.0.1:port` (0: any) and waits for
    /// `ready`.
    pub fn start(port: u16) -> SaeNic {
        let mut cmd = Command::new(sae_nic_bin());
        cmd.args([
            "--grpc-listen",
            &format!("127.0.0.1:{port}"),
            "--metrics-listen",
            "127.0.0.1:0",
        ]);
        let proc = Proc::spawn("sae-nic", cmd);
        if let Err(e) = proc
            .stdout
            .wait_line(0, Duration::from_secs(30), "`ready`", |l| l == "ready")
        {
            panic!("sae-nic did not get ready: {e}\n{}", proc.transcript());
        }
        let addrs = listener_addrs(&proc);
        let one = |protocol: &str| {
            addrs
                .iter()
                .find(|(p, _)| p == protocol)
                .map(|(_, a)| *a)
                .unwrap_or_else(|| panic!("no `listening {protocol}` line: {addrs:?}"))
        };
        SaeNic {
            grpc: one("grpc"),
            metrics: one("metrics"),
            proc,
        }
    }

    /// Kills it (SIGKILL) and starts it again on the same gRPC port, empty.
    pub fn kill_and_restart(mut self) -> SaeNic {
        self.proc.kill();
        SaeNic::start(self.grpc.port())
    }

    /// The Prometheus text of `/metrics`.
    pub fn scrape_metrics(&self) -> String {
        scrape(self.metrics)
    }
}

/// The Prometheus text of `/metrics` at `addr`.
fn scrape(addr: SocketAddr) -> String {
    use std::io::Write as _;
    let mut s = std::net::TcpStream::connect(addr).expect("connect to /metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: sae\r\n\r\n")
        .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read /metrics");
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    text
}

/// A running `sae-sim` with its control pipe; it prints one JSON event per line.
pub struct Sim {
    pub proc: Proc,
    stdin: std::process::ChildStdin,
}

impl Sim {
    /// Starts `sae-sim ARGS` with its stdin piped (for `--control`).
    pub fn spawn(args: &[&str]) -> Sim {
        let mut cmd = Command::new(sae_sim_bin());
        cmd.args(args);
        let (proc, stdin) = Proc::spawn_with_stdin("sae-sim", cmd);
        Sim { proc, stdin }
    }

    /// Sends one control command.
    pub fn send(&mut self, line: &str) {
        use std::io::Write as _;
        writeln!(self.stdin, "{line}").expect("write to sae-sim");
        self.stdin.flush().expect("flush sae-sim stdin");
    }

    /// The number of lines printed so far (to wait for what comes after).
    pub fn mark(&self) -> usize {
        self.proc.stdout.lines().len()
    }

    /// Waits for an event at or after line `from`; returns its line index and the event.
    pub fn wait(
        &self,
        from: usize,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> (usize, serde_json::Value) {
        match self.proc.stdout.wait_line(from, WAIT, what, |l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|e| pred(&e))
        }) {
            Ok((i, line)) => (i, serde_json::from_str(&line.text).expect("JSON event")),
            Err(e) => panic!("sae-sim: {e}\n{}", self.proc.transcript()),
        }
    }
}
