//! The PEP state machine: KA timing over many seeds, detection of a silent PDP, reconnect
//! back-off, admission while down, RFC 3483 accounting paced by the Accounting Timer (final
//! report before DRQ, cached usage after reconnecting), and hostile bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use proptest::prelude::*;
use sae_cops::pr::{AccountingReport, Prid, decode_accounting_report, encode_accounting_report};
use sae_cops::usage::{
    Linkage, ReportSchedule, ReportTrigger, SELECTION_CRITERIA_ENTRY, TRAFFIC_USAGE_ENTRY,
    TrafficUsage, Usage, UsageClass, UsageReport,
};
use sae_cops::*;

use crate::pdp::{CT, Wire, decode, h, pdp_config, pep_config};
use crate::support::{context, decision_flags, handle, msg, obj};

#[test]
fn keepalives_go_between_a_quarter_and_three_quarters_of_the_timer() {
    let ka = Duration::from_secs(40);
    let (mut below_half, mut above_half) = (0, 0);
    for seed in 0..60 {
        let cfg = PdpConfig {
            ka_timer: 40,
            ..pdp_config()
        };
        let mut w = Wire::up(cfg, pep_config(), seed);
        let start = w.at();
        w.advance(Duration::from_secs(1200));
        assert!(w.pdp_closed().is_none() && w.pep_closed().is_none());
        let times: Vec<Duration> = w
            .from_pep
            .iter()
            .filter(|(_, m)| m.body == Body::KeepAlive)
            .map(|(t, _)| *t)
            .collect();
        assert!(times.len() >= 1200 / 30, "seed {seed}: {}", times.len());
        let mut prev = start;
        for t in times {
            let gap = t - prev;
            assert!(
                gap >= ka / 4 && gap <= ka * 3 / 4,
                "seed {seed}: KA after {gap:?}"
            );
            if gap < ka / 2 {
                below_half += 1;
            } else {
                above_half += 1;
            }
            prev = t;
        }
    }
    // Uniform, not pinned to one end.
    let total = f64::from(below_half + above_half);
    assert!(f64::from(below_half) / total > 0.4 && f64::from(above_half) / total > 0.4);
}

#[test]
fn pep_detects_a_silent_pdp() {
    let mut w = Wire::up(pdp_config(), pep_config(), 30);
    w.advance(Duration::from_secs(200));
    let last = w.from_pdp.last().map(|(t, _)| *t).unwrap();
    w.drop_from_pdp = true;
    w.advance(Duration::from_secs(200));
    assert_eq!(w.pep_closed(), Some(&PepCloseReason::KeepAliveTimeout));
    let (t, cc) = w
        .from_pep
        .iter()
        .find_map(|(t, m)| match m.body {
            Body::ClientClose(c) => Some((*t, c)),
            _ => None,
        })
        .unwrap();
    assert_eq!(t, last + Duration::from_secs(45));
    assert_eq!(cc.error.code, ErrorCode::CommunicationFailure);
    // The PDP learns it from the CC (it still hears the PEP).
    assert!(matches!(
        w.pdp_closed(),
        Some(PdpCloseReason::PeerClosed { error, .. }) if error.code == ErrorCode::CommunicationFailure
    ));
    assert!(!w.pep.is_up());
    assert!(matches!(
        w.pep.request(w.now, h(1), Context::configuration(), vec![]),
        Err(PepError::NotUp)
    ));
}

#[test]
fn no_cat_in_time() {
    let mut cfg = pep_config();
    cfg.accept_timeout = Duration::from_secs(10);
    let mut w = Wire::connect(pdp_config(), cfg, 31);
    w.advance(Duration::from_secs(9));
    assert!(w.pep_closed().is_none());
    w.advance(Duration::from_secs(1));
    assert_eq!(w.pep_closed(), Some(&PepCloseReason::AcceptTimeout));
}

#[test]
fn transport_close_is_a_failure_too() {
    let mut w = Wire::up(pdp_config(), pep_config(), 32);
    w.pep.transport_closed(w.now);
    assert_eq!(
        w.pep.poll_event(),
        Some(PepEvent::Closed(PepCloseReason::TransportClosed))
    );
    w.pdp.transport_closed(w.now);
    assert_eq!(
        w.pdp.poll_event(),
        Some(PdpEvent::Closed(PdpCloseReason::TransportClosed))
    );
}

#[test]
fn backoff_grows_to_five_minutes_and_resets() {
    let mut b = Backoff::new(7);
    let mut delays = Vec::new();
    for _ in 0..20 {
        delays.push(b.next_delay());
    }
    assert!(delays[0] >= Duration::from_millis(800) && delays[0] <= Duration::from_secs(1));
    assert!(delays[1] >= Duration::from_millis(1600) && delays[1] <= Duration::from_secs(2));
    for pair in delays.windows(2).take(8) {
        assert!(pair[1] > pair[0], "{delays:?}");
    }
    assert!(delays.iter().all(|d| *d <= Duration::from_secs(300)));
    // From the 10th attempt on (2^9 s > 5 min) every delay is at the ceiling, less jitter.
    assert!(
        delays[9..].iter().all(|d| *d >= Duration::from_secs(240)),
        "{delays:?}"
    );
    assert_eq!(b.interval(), Duration::from_secs(300));
    assert_eq!(b.attempts(), 20);
    b.reset();
    assert_eq!(b.attempts(), 0);
    assert!(b.next_delay() <= Duration::from_secs(1));
    // Without jitter, exactly the doubling series and then 5 minutes.
    let mut b = Backoff::with_limits(Duration::from_secs(1), Duration::from_secs(300), 0, 1);
    let exact: Vec<u64> = (0..11).map(|_| b.next_delay().as_secs()).collect();
    assert_eq!(exact, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    let t = Instant::now();
    assert_eq!(b.next_attempt(t), t + Duration::from_secs(300));
    // Jitter differs across seeds (PEPs do not reconnect in lockstep).
    let firsts: std::collections::HashSet<_> =
        (0..20).map(|s| Backoff::new(s).next_delay()).collect();
    assert!(firsts.len() > 15);
}

#[test]
fn admission_while_down() {
    let deny = AdmissionWhileDown::default();
    assert!(deny.admits_new_call(true));
    assert!(!deny.admits_new_call(false));
    let allow = AdmissionWhileDown { allow: true };
    assert!(allow.admits_new_call(false));
}

#[test]
fn reconnect_after_failure_with_the_same_pepid_and_client_type() {
    // The PDP fails (silent), the PEP backs off and reconnects; the HA mate would do the
    // same with the same configuration.
    let cfg = Arc::new(pep_config());
    let first = PepConnection::new(cfg.clone(), 40);
    let mut w = Wire::connect_at(Instant::now(), pdp_config(), first, 40);
    w.pdp.accept(w.now, CT).unwrap();
    w.pump();
    w.drop_from_pdp = true;
    w.advance(Duration::from_secs(60));
    assert_eq!(w.pep_closed(), Some(&PepCloseReason::KeepAliveTimeout));
    let mut backoff = Backoff::new(40);
    let mut at = backoff.next_attempt(w.now);
    // Two attempts find nobody listening; the third connects.
    at = backoff.next_attempt(at);
    at = backoff.next_attempt(at);
    assert!(at - w.now < Duration::from_secs(8));
    let previous = PdpAddress {
        address: "192.0.2.1".parse().unwrap(),
        port: 3288,
    };
    let second = PepConnection::new(cfg.clone(), 41).with_last_pdp_addr(previous);
    let mut w2 = Wire::connect_at(at, pdp_config(), second, 41);
    assert_eq!(
        w2.take_pdp_events(),
        vec![PdpEvent::Open {
            client_type: CT,
            pep_id: "erx-1.example".into(),
            last_pdp_addr: Some(previous),
            client_si: None,
        }]
    );
    w2.pdp.accept(w2.now, CT).unwrap();
    w2.pump();
    assert!(w2.pep.is_up());
    backoff.reset();
    assert_eq!(backoff.interval(), Duration::from_secs(1));
}

#[test]
fn malformed_decision_is_answered_with_drq() {
    let mut w = Wire::up(pdp_config(), pep_config(), 50);
    w.pep
        .request(w.now, h(1), Context::configuration(), vec![])
        .unwrap();
    w.pep
        .request(w.now, h(2), Context::configuration(), vec![])
        .unwrap();
    w.pump();
    // Unknown object in a DEC: DRQ with Reason 13 naming it.
    w.inject_to_pep(&msg(
        2,
        CT,
        &[
            handle(1),
            context(8, 0),
            decision_flags(1, 0),
            obj(50, 9, &[0; 4]),
        ],
    ));
    let drq = w.from_pep.last().unwrap().1.clone();
    assert_eq!(
        drq.body,
        Body::DeleteRequest(DeleteRequest {
            handle: h(1),
            reason: Reason {
                code: ReasonCode::UnknownObject,
                sub_code: 0x3209
            },
        })
    );
    // A DEC without its Decision flags: Reason 12.
    w.inject_to_pep(&msg(2, CT, &[handle(2), context(8, 0)]));
    assert!(matches!(
        w.take_pep_events()[..],
        [
            PepEvent::MalformedDecision { .. },
            PepEvent::MalformedDecision {
                reason: Reason {
                    code: ReasonCode::MalformedDecision,
                    ..
                },
                ..
            }
        ]
    ));
    assert!(w.pep.handles().is_empty());
    // The PDP saw both DRQs.
    assert_eq!(
        w.take_pdp_events()
            .iter()
            .filter(|e| matches!(e, PdpEvent::Delete { .. }))
            .count(),
        2
    );
    assert!(w.pep.is_up());
    // A malformed CC is fatal: CC back and close.
    w.inject_to_pep(&msg(8, CT, &[obj(99, 1, &[])]));
    assert!(matches!(
        w.pep_closed(),
        Some(PepCloseReason::ProtocolError { error, .. }) if error.code == ErrorCode::UnknownObject
    ));
}

#[test]
fn pep_refuses_other_client_types_and_pep_only_messages() {
    let mut w = Wire::up(pdp_config(), pep_config(), 51);
    w.inject_to_pep(&msg(5, 0x1111, &[]));
    let m = &w.from_pep.last().unwrap().1;
    assert_eq!(m.client_type, 0x1111);
    assert!(
        matches!(m.body, Body::ClientClose(c) if c.error.code == ErrorCode::UnsupportedClientType)
    );
    assert!(w.pep.is_up());
    // An OPN from the PDP is a protocol error.
    w.inject_to_pep(&msg(6, CT, &[crate::support::pep_id("pdp?")]));
    assert!(matches!(
        w.pep_closed(),
        Some(PepCloseReason::ProtocolError { error, .. }) if error.code == ErrorCode::BadMessageFormat
    ));
}

// ---------------------------------------------------------------------------------------------
// RFC 3483 accounting
// ---------------------------------------------------------------------------------------------

fn linkage() -> Linkage {
    let prid = |arcs: &[u32], i| Prid::instance_of(&Prid::new(arcs.to_vec()).unwrap(), i).unwrap();
    Linkage {
        id: 1,
        selection: prid(SELECTION_CRITERIA_ENTRY, 1),
        usage_prc: Prid::new(TRAFFIC_USAGE_ENTRY.to_vec()).unwrap(),
        interval_count: 1,
        threshold: None,
        report_on_change: false,
        clear_on_report: true,
    }
}

fn usage_client_si(link: &Linkage, u: Usage) -> ClientSi {
    let instance = TrafficUsage {
        id: 1,
        linkage: link.prid().unwrap(),
        selected: Prid::new([1, 3, 6, 1, 4, 1, 4874, 9, 1]).unwrap(),
        assignment: bytes::Bytes::new(),
        packets: u.packets,
        octets: u.octets,
    }
    .to_instance()
    .unwrap();
    ClientSi::Named(encode_accounting_report(&AccountingReport(vec![instance])).unwrap())
}

fn reported_usage(e: &PdpEvent) -> Option<Usage> {
    let PdpEvent::Report {
        report_type: ReportType::Accounting,
        client_si: Some(si),
        ..
    } = e
    else {
        return None;
    };
    let r = decode_accounting_report(si.data()).ok()?;
    let u = TrafficUsage::from_instance(r.0.first()?).ok()?;
    Some(Usage {
        packets: u.packets,
        octets: u.octets,
    })
}

/// The simulator's loop: count usage every second, send what the schedule says is due.
fn run_accounting(w: &mut Wire, s: &mut ReportSchedule, secs: u64) -> Vec<(Duration, Usage)> {
    let link = linkage();
    let mut sent = Vec::new();
    for _ in 0..secs {
        w.advance(Duration::from_secs(1));
        s.record(Usage {
            packets: 10,
            octets: 1000,
        });
        if let Some(UsageReport { trigger, usage }) = s.poll(w.now) {
            assert_eq!(trigger, ReportTrigger::Periodic);
            w.pep
                .report(
                    w.now,
                    h(1),
                    ReportType::Accounting,
                    Some(usage_client_si(&link, usage)),
                    false,
                )
                .unwrap();
            w.pump();
            sent.push((w.at(), usage));
        }
    }
    sent
}

#[test]
fn accounting_reports_follow_the_timer_then_final_report_before_drq_and_cached_after_reconnect() {
    let cfg = PdpConfig {
        acct_timer: Some(30),
        ..pdp_config()
    };
    let pep_cfg = Arc::new(pep_config());
    let mut w = Wire::up(cfg.clone(), (*pep_cfg).clone(), 60);
    let acct = w.pep.accounting_timer().unwrap();
    assert_eq!(acct, Duration::from_secs(30));
    w.pep
        .request(w.now, h(1), Context::configuration(), vec![])
        .unwrap();
    w.pump();
    let mut schedule = ReportSchedule::new(w.now, acct, &linkage(), None);
    let sent = run_accounting(&mut w, &mut schedule, 200);
    assert_eq!(sent.len(), 6, "{sent:?}");
    for pair in sent.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= acct, "{sent:?}");
    }
    // The PDP got exactly those reports, with the usage.
    let got: Vec<Usage> = w.pdp_events.iter().filter_map(reported_usage).collect();
    assert_eq!(got, sent.iter().map(|(_, u)| *u).collect::<Vec<_>>());
    assert_eq!(
        got[0],
        Usage {
            packets: 300,
            octets: 30_000
        }
    );

    // The link to the PDP fails; usage keeps counting on the cached policy.
    w.drop_from_pdp = true;
    w.drop_from_pep = true;
    w.advance(Duration::from_secs(50));
    assert_eq!(w.pep_closed(), Some(&PepCloseReason::KeepAliveTimeout));
    let outstanding = schedule.usage();
    for _ in 0..100 {
        schedule.record(Usage {
            packets: 1,
            octets: 100,
        });
    }
    // Reconnect with the same PEPID and client type; the new CAT may carry another timer.
    let cfg2 = PdpConfig {
        acct_timer: Some(60),
        ..cfg
    };
    let mut w2 = Wire::connect_at(
        w.now + Duration::from_secs(5),
        cfg2,
        PepConnection::new(pep_cfg, 61),
        61,
    );
    w2.pdp.accept(w2.now, CT).unwrap();
    w2.pump();
    let acct2 = w2.pep.accounting_timer().unwrap();
    w2.pep
        .request(w2.now, h(1), Context::configuration(), vec![])
        .unwrap();
    let cached = schedule.reconnected(w2.now, acct2);
    assert_eq!(cached.trigger, ReportTrigger::Reconnected);
    assert_eq!(
        cached.usage,
        Usage {
            packets: outstanding.packets + 100,
            octets: outstanding.octets + 10_000
        }
    );
    w2.pep
        .report(
            w2.now,
            h(1),
            ReportType::Accounting,
            Some(usage_client_si(&linkage(), cached.usage)),
            false,
        )
        .unwrap();
    w2.pump();
    let got: Vec<Usage> = w2.pdp_events.iter().filter_map(reported_usage).collect();
    assert_eq!(got, vec![cached.usage]);
    // No unsolicited report sooner than the new timer after that one.
    let sent = run_accounting(&mut w2, &mut schedule, 59);
    assert!(sent.is_empty(), "{sent:?}");
    let sent = run_accounting(&mut w2, &mut schedule, 1);
    assert_eq!(sent.len(), 1);

    // Final report immediately before the DRQ (RFC 3483 §9).
    w2.advance(Duration::from_secs(7));
    let last = schedule.final_report();
    assert_eq!(last.trigger, ReportTrigger::Final);
    w2.pep
        .report(
            w2.now,
            h(1),
            ReportType::Accounting,
            Some(usage_client_si(&linkage(), last.usage)),
            false,
        )
        .unwrap();
    w2.pep
        .delete(w2.now, h(1), Reason::new(ReasonCode::Tear))
        .unwrap();
    w2.pump();
    let tail: Vec<_> = w2.pdp_events.iter().rev().take(2).rev().collect();
    assert_eq!(reported_usage(tail[0]), Some(last.usage));
    assert!(matches!(tail[1], PdpEvent::Delete { .. }));
    let ops: Vec<OpCode> = w2
        .from_pep
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(|(_, m)| m.op_code())
        .collect();
    assert_eq!(ops, vec![OpCode::Report, OpCode::DeleteRequest]);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_pep(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        up in any::<bool>(),
    ) {
        let base = Instant::now();
        let mut pep = PepConnection::new(Arc::new(pep_config()), 0);
        let mut dec = pep.frame_decoder();
        let mut buf = BytesMut::new();
        pep.connected(base);
        if up {
            let cat = Message::new(CT, Body::ClientAccept(ClientAccept { ka_timer: 30, acct_timer: None }));
            buf.extend_from_slice(&cat.encode().unwrap());
        }
        let mut t = base;
        for c in chunks {
            buf.extend_from_slice(&c);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(f)) => pep.handle_frame(t, f),
                    Ok(None) => break,
                    Err(e) => {
                        pep.handle_framing_error(t, e);
                        buf.clear();
                        break;
                    }
                }
            }
            while let Some(b) = pep.poll_transmit() {
                // Whatever the PEP sends is well-formed.
                let _ = decode(&b);
            }
            while pep.poll_event().is_some() {}
            t += Duration::from_secs(10);
            pep.handle_timeout(t);
        }
    }
}
