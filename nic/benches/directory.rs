//! The NIC directory at scale: how long 1 M bindings take to apply (a NIC rebuilt from the
//! nodes' replays), what they cost in resident memory, and how fast references resolve.
//!
//! `cargo bench -p sae-nic --bench directory` (release build, one thread). Set
//! `SAE_NIC_BENCH_BINDINGS` for another size. Prints one line per figure.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use sae_nic::directory::Pool;
use sae_nic::{Attributes, Binding, Directory, Publication, Reference, Scenario, SessionKey, Vr};

/// Resident set size of this process, in bytes (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn address(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

/// Binding `i`: 100 routers on 3 nodes, realistic key lengths.
fn binding(i: u32) -> Binding {
    let router = format!("bng{}.example.net", i % 100);
    let user = format!("user{i}");
    Binding {
        session: SessionKey::new(&router, format!("{router};1700000000;{i}")),
        node: u64::from(i % 100 % 3) + 1,
        epoch: 1,
        attributes: Attributes {
            addresses: vec![address(i)],
            prefixes: Vec::new(),
            login_name: Some(format!("{user}@isp.example")),
            primary_user_name: None,
            dn: Some(format!("uniqueID={user},ou=isp.example,o=users")),
            interface_name: Some(format!("ge-0/0/{}.{}", i % 4, i / 100)),
            vr: Some(Vr::default_of(&router)),
            accounting_id: Some(format!("{user}@isp.example")),
        },
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let n: u32 = std::env::var("SAE_NIC_BENCH_BINDINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let before = rss();
    let mut directory = Directory::new(vec![Pool {
        prefix: "10.0.0.0/8".parse().expect("prefix"),
        vr: Vr::default_of("bng0.example.net"),
    }]);
    // The bindings are made as they are applied (as a NIC decodes a replay), so that the
    // resident memory afterwards is the directory's; the time includes making them.
    let start = Instant::now();
    directory.apply(Publication::ReplayStart { node: 1 });
    for i in 0..n {
        directory.apply(Publication::bind(binding(i)));
    }
    directory.apply(Publication::ReplayEnd { node: 1 });
    let rebuild = start.elapsed();
    let after = rss();
    println!(
        "rebuild: {n} bindings applied in {:.2} s ({:.0} bindings/s)",
        rebuild.as_secs_f64(),
        f64::from(n) / rebuild.as_secs_f64()
    );
    println!(
        "memory: {:.1} MiB resident for {n} bindings ({:.0} bytes per binding)",
        after.saturating_sub(before) as f64 / (1024.0 * 1024.0),
        after.saturating_sub(before) as f64 / f64::from(n)
    );
    let scenario = Scenario::new("default", sae_nic::scenario::BUILT_IN[0].1).expect("default");
    for (kind, make) in [
        (
            "ip",
            (|i: u32| format!("ip={}", address(i))) as fn(u32) -> String,
        ),
        ("loginName", |i| format!("loginName=user{i}@isp.example")),
        ("dn", |i| {
            format!("dn=uniqueID=user{i},ou=isp.example,o=users")
        }),
        ("interface", |i| {
            format!(
                "interfaceName=ge-0/0/{}.{};router=bng{}.example.net",
                i % 4,
                i / 100,
                i % 100
            )
        }),
    ] {
        let ops = 200_000u32;
        // References parsed beforehand: this measures resolution, not parsing.
        let refs: Vec<Reference> = (0..ops)
            .map(|k| Reference::parse(&make(k.wrapping_mul(2_654_435_761) % n)).expect("ref"))
            .collect();
        let mut latencies = Vec::with_capacity(refs.len());
        let start = Instant::now();
        let mut found = 0usize;
        for r in &refs {
            let t = Instant::now();
            found += scenario
                .resolve(&directory, r)
                .map_or(0, |res| res.matches.len());
            latencies.push(t.elapsed());
        }
        let elapsed = start.elapsed();
        latencies.sort();
        println!(
            "resolve {kind}: {:.0} resolutions/s, p50 {:.2} µs, p99 {:.2} µs, p999 {:.2} µs ({found} matches of {ops})",
            f64::from(ops) / elapsed.as_secs_f64(),
            percentile(&latencies, 0.50).as_secs_f64() * 1e6,
            percentile(&latencies, 0.99).as_secs_f64() * 1e6,
            percentile(&latencies, 0.999).as_secs_f64() * 1e6,
        );
    }
    let start = Instant::now();
    let ops = 200_000u32;
    for k in 0..ops {
        let _ = Reference::parse(&format!("loginName=user{k}@isp.example"));
    }
    println!(
        "parse: {:.0} references/s",
        f64::from(ops) / start.elapsed().as_secs_f64()
    );
}
