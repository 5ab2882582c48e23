//! The NIC over gRPC on loopback: publications applied per second when a node replays its
//! bindings, and resolutions per second with their latency percentiles, as a node resolving
//! through a standalone NIC sees them (one HTTP/2 channel, many calls in flight, no cache).
//!
//! `cargo bench -p sae-nic-server --bench grpc` (release build; the server and the client share
//! one process and the machine's cores). `SAE_NIC_BENCH_BINDINGS` (default 200,000),
//! `SAE_NIC_BENCH_RESOLUTIONS` (default 200,000), `SAE_NIC_BENCH_IN_FLIGHT` (default 64).
//! Prints one JSON line per figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sae_nic::{Attributes, Binding, Publication, SessionKey, Vr};
use sae_nic_server::{BatchOutcome, Hooks, Nic, NicService, convert};
use sae_proto::v1 as pb;
use sae_proto::v1::nic_client::NicClient;

struct NoHooks;

impl Hooks for NoHooks {
    fn node_name(&self, _node: u64) -> Option<String> {
        None
    }

    fn published(&self, _outcome: BatchOutcome) {}
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn binding(i: usize) -> Publication {
    let router = format!("bng{}.example.net", i % 100);
    let user = format!("user{i}");
    Publication::bind(Binding {
        session: SessionKey::new(&router, format!("{router};1700000000;{i}")),
        node: 1,
        epoch: 1,
        attributes: Attributes {
            addresses: vec![std::net::IpAddr::V4((0x0a00_0000 + i as u32).into())],
            login_name: Some(format!("{user}@isp.example")),
            dn: Some(format!("uniqueID={user},ou=isp.example,o=users")),
            interface_name: Some(format!("ge-0/0/{}.{}", i % 4, i / 100)),
            vr: Some(Vr::default_of(&router)),
            accounting_id: Some(format!("{user}@isp.example")),
            ..Attributes::default()
        },
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bindings = env("SAE_NIC_BENCH_BINDINGS", 200_000);
    let resolutions = env("SAE_NIC_BENCH_RESOLUTIONS", 200_000);
    let in_flight = env("SAE_NIC_BENCH_IN_FLIGHT", 64).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let nic = Arc::new(Nic::new(sae_nic::config::Resolution::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let service = NicService::new(nic.clone(), Arc::new(NoHooks)).server();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                ),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        let client = NicClient::new(channel).max_encoding_message_size(64 << 20);

        // A node's replay, in the publisher's chunks of 2048.
        let all: Vec<pb::NicPublication> = (0..bindings)
            .map(|i| convert::publication_to_pb(&binding(i)).expect("a binding goes on the wire"))
            .collect();
        let started = Instant::now();
        for chunk in all.chunks(2048) {
            client
                .clone()
                .publish(pb::PublishRequest {
                    node: 1,
                    publications: chunk.to_vec(),
                    node_name: "bench".into(),
                })
                .await?;
        }
        let took = started.elapsed();
        println!(
            "{{\"figure\":\"grpc_publish\",\"bindings\":{bindings},\"secs\":{:.3},\"bindings_per_sec\":{:.0}}}",
            took.as_secs_f64(),
            bindings as f64 / took.as_secs_f64()
        );
        assert_eq!(nic.stats().bindings, bindings);

        // Resolutions by login name, `in_flight` at a time on the one channel.
        let per_task = resolutions / in_flight;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..in_flight {
            let mut client = client.clone();
            tasks.spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                let mut x = (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for _ in 0..per_task {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = (x % bindings as u64) as usize;
                    let at = Instant::now();
                    let reply = client
                        .resolve(pb::ResolveRequest {
                            reference: format!("loginName=user{i}@isp.example"),
                        })
                        .await
                        .expect("resolves");
                    latencies.push(at.elapsed());
                    assert_eq!(reply.get_ref().matches.len(), 1);
                }
                latencies
            });
        }
        let mut latencies: Vec<Duration> = Vec::with_capacity(resolutions);
        while let Some(done) = tasks.join_next().await {
            latencies.extend(done?);
        }
        let took = started.elapsed();
        latencies.sort();
        let p = |q: f64| {
            latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)]
                .as_micros()
        };
        println!(
            "{{\"figure\":\"grpc_resolve\",\"in_flight\":{in_flight},\"resolutions\":{},\"per_sec\":{:.0},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{}}}",
            latencies.len(),
            latencies.len() as f64 / took.as_secs_f64(),
            p(0.5),
            p(0.99),
            p(0.999)
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
