//! tshark: the prerequisites (tshark, text2pcap, the Juniper dictionary), a live capture of one
//! loopback port and what tshark reads in it, the findings check of a pcap, and hex dumps in
//! the form text2pcap reads.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use super::process::Proc;
use super::{RUN_CI_SETUP, run_ok, wait_for};

/// Panics with setup instructions unless `tshark` and `text2pcap` run.
pub fn require_tshark() {
    for tool in ["tshark", "text2pcap"] {
        let ok = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{tool} is not installed: {RUN_CI_SETUP}");
    }
}

/// Panics with setup instructions unless tshark's Diameter dictionary knows the Juniper AVPs
/// from `interop/tshark/Custom.xml`.
pub fn require_juniper_dictionary() {
    require_tshark();
    let out = Command::new("tshark")
        .args(["-G", "fields"])
        .output()
        .expect("tshark -G fields");
    let fields = String::from_utf8_lossy(&out.stdout);
    for name in [
        "diameter.Juniper-Policy-Install",
        "diameter.Juniper-Last-Origin-Host",
    ] {
        assert!(
            fields.lines().any(|l| l.split('\t').nth(2) == Some(name)),
            "tshark's Diameter dictionary lacks {name}: install cluster-tests/interop/tshark/\
             Custom.xml as <tshark global configuration dir>/diameter/Custom.xml; {RUN_CI_SETUP}"
        );
    }
}

/// Formats bytes the way `od -Ax -tx1 -v` does, which text2pcap reads: a hex offset, then up
/// to 16 octets per line. `direction` ('I' or 'O') precedes the packet for `text2pcap -D`.
pub fn od_hexdump(direction: char, bytes: &[u8], out: &mut String) {
    use std::fmt::Write;
    out.push(direction);
    out.push('\n');
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(out, "{:06x}", i * 16);
        for b in chunk {
            let _ = write!(out, " {b:02x}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{:06x}", bytes.len());
}

/// A live capture of one TCP port on the loopback interface by tshark, stopped on `finish`
/// (or killed on drop).
pub struct LiveCapture {
    proc: Proc,
    file: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
}

/// One end of the captured TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The end listening on the captured port.
    Listener,
    /// The end that connected to it.
    Connector,
}

/// A finished capture file and the port its Diameter traffic used.
pub struct CaptureFile {
    pub file: PathBuf,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl LiveCapture {
    /// Starts `tshark -i lo -f "tcp port PORT"` and waits until it captures.
    pub fn start(port: u16) -> LiveCapture {
        require_tshark();
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("live.pcapng");
        let mut cmd = Command::new("tshark");
        cmd.args(["-i", "lo", "-f", &format!("tcp port {port}"), "-q", "-w"])
            .arg(&file);
        let proc = Proc::spawn("tshark-capture", cmd);
        if let Err(e) = proc.stderr.wait_line(
            0,
            Duration::from_secs(20),
            "tshark to start capturing",
            // "Capturing on 'lo'" comes when the interface is opened; "Capture started" once
            // dumpcap really captures (packets before that are lost).
            |l| l.contains("Capture started"),
        ) {
            panic!(
                "live capture on lo failed ({e}); capturing needs root or the wireshark group: \
                 {RUN_CI_SETUP}\n{}",
                proc.transcript()
            );
        }
        LiveCapture {
            proc,
            file,
            port,
            dir,
        }
    }

    /// Frames written so far that end a TCP connection (FIN or RST), and all frames.
    fn progress(&self) -> (usize, usize) {
        // Reading a file that is being written may end in a cut-short packet; that is fine.
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&self.file)
            .args([
                "-T",
                "fields",
                "-e",
                "tcp.flags.fin",
                "-e",
                "tcp.flags.reset",
            ])
            .stderr(Stdio::null())
            .output()
            .expect("run tshark -r");
        let text = String::from_utf8_lossy(&out.stdout);
        let ends = text
            .lines()
            .filter(|l| l.split('\t').any(|f| matches!(f, "1" | "True")))
            .count();
        (ends, text.lines().count())
    }

    /// Waits until the capture file holds the end of the TCP connection and has stopped
    /// growing, then stops tshark and returns the file. (dumpcap hands packets over in blocks;
    /// stopping it right after the traffic would lose the last ones.)
    pub fn finish(mut self) -> CaptureFile {
        let mut last = 0;
        wait_for(
            Duration::from_secs(20),
            "the capture to hold the end of the connection",
            || {
                let (ends, frames) = self.progress();
                let stable = ends > 0 && frames == last;
                last = frames;
                if !stable {
                    thread::sleep(Duration::from_millis(300));
                }
                stable.then_some(())
            },
        );
        self.proc.terminate();
        let status = self.proc.wait_exit(Duration::from_secs(15));
        assert!(
            status.success() || status.code().is_none(),
            "tshark capture ended with {status}\n{}",
            self.proc.transcript()
        );
        assert!(self.file.is_file(), "tshark wrote no capture file");
        CaptureFile {
            file: self.file,
            port: self.port,
            _dir: self.dir,
        }
    }
}

/// The Diameter messages of a capture as tshark reads them.
#[derive(Debug, Default)]
pub struct DiameterSeen {
    /// (command code, request?) of every message, in order.
    pub messages: Vec<(u32, bool)>,
    /// Every Result-Code value, in order.
    pub result_codes: Vec<u32>,
}

impl DiameterSeen {
    /// How many messages with this command code and R bit.
    pub fn count(&self, command_code: u32, request: bool) -> usize {
        self.messages
            .iter()
            .filter(|m| **m == (command_code, request))
            .count()
    }
}

impl CaptureFile {
    fn tshark(&self) -> Command {
        let mut cmd = Command::new("tshark");
        cmd.arg("-r")
            .arg(&self.file)
            .args(["-d", &format!("tcp.port=={},diameter", self.port)]);
        cmd
    }

    /// The display filter for TCP segments sent by one end: the end that owns the captured
    /// port (the listener) or the other one (the connecting side).
    fn sent_by(&self, end: End) -> String {
        match end {
            End::Listener => format!("tcp.srcport == {}", self.port),
            End::Connector => format!("tcp.srcport != {}", self.port),
        }
    }

    /// Frames that tshark finds malformed or warns about, except TCP resets sent by
    /// python-diameter's end (it closes its sockets with SO_LINGER 0, i.e. RST, on purpose).
    pub fn findings(&self, python_end: End) -> String {
        let decode_as = format!("tcp.port=={},diameter", self.port);
        let resets = format!("tcp.flags.reset == 1 && {}", self.sent_by(python_end));
        tshark_findings(&self.file, &["-d", &decode_as], Some(&resets))
    }

    /// Frame numbers of TCP resets sent by `end`.
    pub fn resets_by(&self, end: End) -> String {
        let mut cmd = self.tshark();
        cmd.args([
            "-Y",
            &format!("tcp.flags.reset == 1 && {}", self.sent_by(end)),
            "-T",
            "fields",
            "-e",
            "frame.number",
        ]);
        run_ok(cmd)
    }

    /// Every Diameter message in the capture.
    pub fn diameter(&self) -> DiameterSeen {
        let mut cmd = self.tshark();
        cmd.args([
            "-Y",
            "diameter",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-e",
            "diameter.cmd.code",
            "-e",
            "diameter.flags.request",
            "-e",
            "diameter.Result-Code",
        ]);
        let mut seen = DiameterSeen::default();
        for row in run_ok(cmd).lines() {
            let f: Vec<&str> = row.split('\t').collect();
            assert_eq!(f.len(), 3, "unexpected tshark row {row:?}");
            let codes: Vec<u32> = f[0].split(',').map(|c| c.parse().unwrap()).collect();
            let requests: Vec<bool> = f[1]
                .split(',')
                .map(|r| matches!(r, "1" | "True" | "true"))
                .collect();
            assert_eq!(codes.len(), requests.len(), "row {row:?}");
            seen.messages.extend(codes.into_iter().zip(requests));
            seen.result_codes.extend(
                f[2].split(',')
                    .filter(|r| !r.is_empty())
                    .map(|r| r.parse::<u32>().unwrap()),
            );
        }
        seen
    }
}

/// The pass/fail check of interop.md: `tshark -r` lists, one line per frame, what it finds
/// malformed or warns about. `extra` goes before the filter (decode-as, preferences); frames
/// matching `except` are left out.
pub fn tshark_findings(pcap: &Path, extra: &[&str], except: Option<&str>) -> String {
    // A segment without payload carries none of our bytes: what tshark says of it (a D-SACK
    // option on a loopback ACK) is about TCP, not about the protocols judged here.
    let mut filter =
        "(_ws.malformed || _ws.expert.severity >= warning) && !(tcp && tcp.len == 0)".to_owned();
    if let Some(except) = except {
        filter = format!("{filter} && !({except})");
    }
    let mut cmd = Command::new("tshark");
    // TCP's own analysis (retransmissions, window notes) reports how the loopback carried a
    // live capture, not what our bytes are; only the protocol layers are judged.
    cmd.arg("-r").arg(pcap).args(extra).args([
        "-o",
        "tcp.analyze_sequence_numbers:FALSE",
        "-Y",
        &filter,
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "_ws.expert.message",
    ]);
    run_ok(cmd)
}
