//! The simulated PEPs over TCP against a scripted PDP ([`PdpConnection`] on 127.0.0.1:0).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use sae_cops::message::{Decision, DecisionContent, Request};
use sae_cops::object::{ClientSi, Command, Context, DecisionFlags, ErrorCode, Handle, ReportType};
use sae_cops::pdp::{PdpConfig, PdpConnection, PdpEvent};
use sae_cops::pep::{AdmissionWhileDown, PepConfig};
use sae_cops::pib::{CallRequest, PolicyInstance};
use sae_cops::pr::{InstallDecision, decode_request_client_si, encode_install_decision};
use sae_cops::usage::{ActionKind, FeedbackAction, UsageClass};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::cops_driver::{self, DriverConfig, Outcome, PepRole};
use crate::cops_events::CopsEvent;
use crate::cops_pr::{PrCommand, PrConfig, PrState};
use crate::cops_sbc::{SbcCommand, SbcConfig, SbcState};

enum PdpCmd {
    Decide(Handle, DecisionContent),
    Cc,
    Silence,
    Kill,
}

type Responder = fn(&Request) -> DecisionContent;

struct ScriptedPdp {
    addr: SocketAddr,
    events: mpsc::UnboundedReceiver<PdpEvent>,
    cmds: mpsc::UnboundedSender<PdpCmd>,
}

/// A PDP that accepts every OPN, answers each REQ with `respond`, and reports its events;
/// connections are served one after the other.
async fn scripted_pdp(config: PdpConfig, respond: Responder) -> ScriptedPdp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (ev_tx, events) = mpsc::unbounded_channel();
    let (cmds, mut cmd_rx) = mpsc::unbounded_channel();
    let config = Arc::new(config);
    tokio::spawn(async move {
        // Request states survive reconnections, as the node keeps them per PEPID.
        let mut known = std::collections::HashSet::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let now = cops_driver::now;
            let mut pdp = PdpConnection::new(config.clone(), now(), 7);
            let mut decoder = pdp.frame_decoder();
            let mut buf = BytesMut::new();
            let mut silent = false;
            let mut closed = false;
            while !closed {
                while let Some(e) = pdp.poll_event() {
                    match &e {
                        PdpEvent::Open { client_type, .. } => {
                            let _ = pdp.accept_with_state(now(), *client_type, known.clone());
                        }
                        PdpEvent::Request {
                            client_type,
                            handle,
                            request,
                            ..
                        } => {
                            known.insert(handle.clone());
                            let content = respond(request);
                            let _ = pdp.send_decision(
                                now(),
                                *client_type,
                                handle.clone(),
                                content,
                                true,
                            );
                        }
                        PdpEvent::Delete { handle, .. } => {
                            known.remove(handle);
                        }
                        PdpEvent::Closed(_) => closed = true,
                        _ => {}
                    }
                    let _ = ev_tx.send(e);
                }
                while let Some(b) = pdp.poll_transmit() {
                    let _ = stream.write_all(&b).await;
                }
                if closed {
                    break;
                }
                let deadline = pdp.poll_timeout().filter(|_| !silent);
                let sleep = tokio::time::sleep_until(
                    deadline
                        .map(tokio::time::Instant::from_std)
                        .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600)),
                );
                tokio::select! {
                    r = stream.read_buf(&mut buf) => match r {
                        Ok(0) | Err(_) => pdp.transport_closed(now()),
                        Ok(_) if silent => buf.clear(),
                        Ok(_) => while let Ok(Some(f)) = decoder.decode(&mut buf) {
                            pdp.handle_frame(now(), f);
                        },
                    },
                    () = sleep, if deadline.is_some() => pdp.handle_timeout(now()),
                    c = cmd_rx.recv() => match c {
                        Some(PdpCmd::Decide(h, content)) => {
                            let ct = pdp.client_types().next().unwrap_or(0);
                            let _ = pdp.send_decision(now(), ct, h, content, false);
                        }
                        Some(PdpCmd::Cc) => pdp.close(now(), ErrorCode::ShuttingDown),
                        Some(PdpCmd::Silence) => silent = true,
                        Some(PdpCmd::Kill) | None => break,
                    },
                }
            }
        }
    });
    ScriptedPdp { addr, events, cmds }
}

fn install_flags(command: Command) -> DecisionContent {
    DecisionContent::Decisions(vec![Decision::new(
        Context::configuration(),
        DecisionFlags::new(command),
    )])
}

/// Admits calls unless their id starts with `deny`.
fn admission(req: &Request) -> DecisionContent {
    let ClientSi::Named(b) = &req.client_si[0] else {
        return install_flags(Command::Remove);
    };
    let inst = decode_request_client_si(b).unwrap();
    let call = sae_cops::pib::find::<CallRequest>(&inst.0)
        .unwrap()
        .unwrap();
    if call.call_id.starts_with("deny") {
        install_flags(Command::Remove)
    } else {
        install_flags(Command::Install)
    }
}

/// Installs one accounted policy.
fn provisioning(_req: &Request) -> DecisionContent {
    let p = PolicyInstance {
        id: 1,
        interface: 1,
        policy_name: "gold".into(),
        template_name: String::new(),
        accounting: true,
    };
    let named = encode_install_decision(&InstallDecision(vec![p.to_instance().unwrap()])).unwrap();
    DecisionContent::Decisions(vec![
        Decision::new(
            Context::configuration(),
            DecisionFlags::new(Command::Install),
        )
        .with_named(named),
    ])
}

fn feedback(kind: ActionKind) -> DecisionContent {
    let a = FeedbackAction {
        id: 1,
        action: kind,
        target: None,
        report_now: matches!(
            kind,
            ActionKind::SuspendReporting | ActionKind::SuspendMonitoring
        ),
    };
    let named = encode_install_decision(&InstallDecision(vec![a.to_instance().unwrap()])).unwrap();
    DecisionContent::Decisions(vec![
        Decision::new(
            Context::configuration(),
            DecisionFlags::new(Command::Install),
        )
        .with_named(named),
    ])
}

struct Pep<C> {
    commands: mpsc::UnboundedSender<C>,
    events: mpsc::UnboundedReceiver<CopsEvent>,
    task: tokio::task::JoinHandle<Outcome>,
}

fn start<R: PepRole + Send + 'static>(cfg: DriverConfig, role: R) -> Pep<R::Command> {
    let (commands, rx) = mpsc::unbounded_channel();
    let (sink, events) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move { cops_driver::run(cfg, role, rx, sink).await.1 });
    Pep {
        commands,
        events,
        task,
    }
}

fn driver_config(addrs: Vec<SocketAddr>, client_type: u16, pepid: &str) -> DriverConfig {
    let mut cfg = DriverConfig::new(addrs, PepConfig::new(client_type, pepid));
    cfg.backoff_initial = Duration::from_millis(50);
    cfg.backoff_ceiling = Duration::from_millis(400);
    cfg.seed = 42;
    cfg
}

async fn until<T>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    what: &str,
    mut pred: impl FnMut(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(_)) => {}
            Ok(None) => panic!("channel closed waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

fn call_result(e: &CopsEvent, id: &str) -> Option<String> {
    match e {
        CopsEvent::Call {
            call_id, result, ..
        } if call_id == id => Some(result.clone()),
        _ => None,
    }
}

async fn result_of(rx: &mut mpsc::UnboundedReceiver<CopsEvent>, id: &str) -> String {
    let e = until(rx, id, |e| call_result(e, id).is_some()).await;
    call_result(&e, id).unwrap_or_default()
}

fn call(id: &str) -> SbcCommand {
    SbcCommand::Call {
        call_id: id.into(),
        bandwidth_kbps: None,
        realm: None,
    }
}

#[tokio::test]
async fn sbc_calls_are_admitted_or_denied_and_hangup_is_a_drq() {
    let mut pdp = scripted_pdp(PdpConfig::default(), admission).await;
    let mut pep = start(
        driver_config(vec![pdp.addr], 0x800A, "sbc1"),
        SbcState::new(SbcConfig::default(), 1),
    );
    until(&mut pep.events, "accepted", |e| {
        matches!(e, CopsEvent::Accepted { .. })
    })
    .await;
    let open = until(&mut pdp.events, "OPN", |e| {
        matches!(e, PdpEvent::Open { .. })
    })
    .await;
    assert!(
        matches!(open, PdpEvent::Open { client_type: 0x800A, ref pep_id, .. } if pep_id == "sbc1")
    );
    pep.commands.send(call("a")).unwrap();
    assert_eq!(result_of(&mut pep.events, "a").await, "admitted");
    pep.commands.send(call("deny-b")).unwrap();
    assert_eq!(result_of(&mut pep.events, "deny-b").await, "denied");
    pep.commands.send(SbcCommand::Hangup("a".into())).unwrap();
    until(
        &mut pep.events,
        "hangup",
        |e| matches!(e, CopsEvent::Hangup { drq, .. } if drq == "sent"),
    )
    .await;
    // The PDP sees the denied call's DRQ, then the hangup's.
    until(
        &mut pdp.events,
        "DRQ",
        |e| matches!(e, PdpEvent::Delete { handle, .. } if *handle == Handle::from_u32(1)),
    )
    .await;
    pep.commands.send(SbcCommand::Quit).unwrap();
    let outcome = pep.task.await.unwrap();
    assert!(outcome.ever_up);
}

#[tokio::test]
async fn sbc_reconnects_after_cc_with_the_same_pepid_and_denies_new_calls_meanwhile() {
    let mut pdp = scripted_pdp(PdpConfig::default(), admission).await;
    let mut cfg = driver_config(vec![pdp.addr], 0x7926, "sbc-ha");
    cfg.backoff_initial = Duration::from_millis(500);
    let mut pep = start(cfg, SbcState::new(SbcConfig::default(), 1));
    until(&mut pep.events, "accepted", |e| {
        matches!(e, CopsEvent::Accepted { .. })
    })
    .await;
    pep.commands.send(call("up")).unwrap();
    assert_eq!(result_of(&mut pep.events, "up").await, "admitted");

    pdp.cmds.send(PdpCmd::Cc).unwrap();
    let e = until(&mut pep.events, "disconnected", |e| {
        matches!(e, CopsEvent::Disconnected { .. })
    })
    .await;
    assert!(matches!(e, CopsEvent::Disconnected { reason, .. } if reason.starts_with("pdp-cc")));
    let e = until(&mut pep.events, "reconnecting", |e| {
        matches!(e, CopsEvent::Reconnecting { .. })
    })
    .await;
    assert!(matches!(e, CopsEvent::Reconnecting { attempt: 1, after_s, .. } if after_s <= 0.5));
    pep.commands.send(call("new")).unwrap();
    assert_eq!(result_of(&mut pep.events, "new").await, "denied-while-down");
    until(&mut pep.events, "accepted again", |e| {
        matches!(e, CopsEvent::Accepted { .. })
    })
    .await;
    // Two OPNs, same PEPID and client type.
    let mut opens = Vec::new();
    while opens.len() < 2 {
        if let PdpEvent::Open {
            client_type,
            pep_id,
            ..
        } = until(&mut pdp.events, "OPN", |e| {
            matches!(e, PdpEvent::Open { .. })
        })
        .await
        {
            opens.push((client_type, pep_id));
        }
    }
    assert_eq!(opens[0], opens[1]);
    assert_eq!(opens[0], (0x7926, "sbc-ha".to_owned()));
    // The call admitted before the failure is still up; new calls are admitted again.
    pep.commands.send(SbcCommand::List).unwrap();
    until(&mut pep.events, "call entry", |e| {
        matches!(e, CopsEvent::CallEntry { call_id, state, .. } if call_id == "up" && state == "admitted")
    })
    .await;
    pep.commands.send(call("after")).unwrap();
    assert_eq!(result_of(&mut pep.events, "after").await, "admitted");
    pep.commands.send(SbcCommand::Quit).unwrap();
    pep.task.await.unwrap();
}

#[tokio::test]
async fn sbc_detects_a_silent_pdp_by_ka_timeout_and_admits_while_down_when_allowed() {
    let config = PdpConfig {
        ka_timer: 1,
        ..PdpConfig::default()
    };
    let mut pdp = scripted_pdp(config, admission).await;
    let sbc = SbcConfig {
        while_down: AdmissionWhileDown { allow: true },
        ..SbcConfig::default()
    };
    let mut cfg = driver_config(vec![pdp.addr], 0x7929, "sbc2");
    cfg.backoff_initial = Duration::from_secs(5);
    let mut pep = start(cfg, SbcState::new(sbc, 1));
    until(&mut pep.events, "accepted", |e| {
        matches!(
            e,
            CopsEvent::Accepted {
                keepalive_s: Some(1),
                ..
            }
        )
    })
    .await;
    until(&mut pep.events, "a KA", |e| {
        matches!(e, CopsEvent::KaSent { .. })
    })
    .await;
    until(&mut pdp.events, "ka", |e| {
        matches!(e, PdpEvent::Open { .. })
    })
    .await;
    pdp.cmds.send(PdpCmd::Silence).unwrap();
    let e = until(&mut pep.events, "disconnected", |e| {
        matches!(e, CopsEvent::Disconnected { .. })
    })
    .await;
    assert!(matches!(e, CopsEvent::Disconnected { reason, .. } if reason == "ka-timeout"));
    pep.commands.send(call("x")).unwrap();
    assert_eq!(result_of(&mut pep.events, "x").await, "admitted-while-down");
    pep.commands.send(SbcCommand::Hangup("x".into())).unwrap();
    until(
        &mut pep.events,
        "hangup",
        |e| matches!(e, CopsEvent::Hangup { drq, .. } if drq == "none"),
    )
    .await;
    pdp.cmds.send(PdpCmd::Kill).unwrap();
    pep.commands.send(SbcCommand::Quit).unwrap();
    pep.task.await.unwrap();
}

#[tokio::test]
async fn sbc_switches_over_to_the_next_address() {
    // The first address refuses connections: the SBC goes on to the second.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let mut pdp = scripted_pdp(PdpConfig::default(), admission).await;
    let mut pep = start(
        driver_config(vec![dead_addr, pdp.addr], 0x800A, "sbc3"),
        SbcState::new(SbcConfig::default(), 1),
    );
    until(&mut pep.events, "connect-failed", |e| {
        matches!(e, CopsEvent::ConnectFailed { .. })
    })
    .await;
    let e = until(&mut pep.events, "connected", |e| {
        matches!(e, CopsEvent::Connected { .. })
    })
    .await;
    assert!(matches!(e, CopsEvent::Connected { pdp: p, .. } if p == pdp.addr.to_string()));
    until(&mut pdp.events, "OPN", |e| {
        matches!(e, PdpEvent::Open { .. })
    })
    .await;
    pep.commands.send(SbcCommand::Quit).unwrap();
    pep.task.await.unwrap();
}

#[tokio::test]
async fn copspr_installs_reports_usage_obeys_feedback_and_sends_the_final_report_before_drq() {
    let config = PdpConfig {
        acct_timer: Some(1),
        ..PdpConfig::default()
    };
    let mut pdp = scripted_pdp(config, provisioning).await;
    let pr = PrConfig {
        usage_octets_per_s: 10_000,
        ..PrConfig::default()
    };
    let mut pep = start(
        driver_config(vec![pdp.addr], 0x800B, "erx1"),
        PrState::new(pr, 1),
    );
    until(&mut pep.events, "accepted", |e| {
        matches!(
            e,
            CopsEvent::Accepted {
                accounting_timer_s: Some(1),
                ..
            }
        )
    })
    .await;
    pep.commands
        .send(PrCommand::Login {
            if_name: "fastEthernet 3/0.1".into(),
            ip: None,
            user: Some("alice".into()),
        })
        .unwrap();
    until(&mut pep.events, "installed", |e| {
        matches!(e, CopsEvent::Installed { accounting, .. } if accounting == &["gold".to_owned()])
    })
    .await;
    until(&mut pdp.events, "RPT success", |e| {
        matches!(
            e,
            PdpEvent::Report {
                report_type: ReportType::Success,
                ..
            }
        )
    })
    .await;
    // A periodic report after about one Accounting Timer.
    let e = until(&mut pdp.events, "RPT accounting", |e| {
        matches!(
            e,
            PdpEvent::Report {
                report_type: ReportType::Accounting,
                ..
            }
        )
    })
    .await;
    assert!(matches!(
        e,
        PdpEvent::Report {
            solicited: false,
            ..
        }
    ));

    let h = Handle::from_u32(1);
    pdp.cmds
        .send(PdpCmd::Decide(h.clone(), feedback(ActionKind::Solicit)))
        .unwrap();
    until(
        &mut pep.events,
        "solicited report",
        |e| matches!(e, CopsEvent::Report { solicited: true, kind, .. } if kind == "accounting"),
    )
    .await;
    until(&mut pdp.events, "solicited RPT", |e| {
        matches!(
            e,
            PdpEvent::Report {
                solicited: true,
                ..
            }
        )
    })
    .await;
    pdp.cmds
        .send(PdpCmd::Decide(
            h.clone(),
            feedback(ActionKind::SuspendReporting),
        ))
        .unwrap();
    until(
        &mut pep.events,
        "suspended",
        |e| matches!(e, CopsEvent::Report { trigger: Some(t), .. } if t == "suspended"),
    )
    .await;
    pdp.cmds
        .send(PdpCmd::Decide(
            h.clone(),
            feedback(ActionKind::ResumeReporting),
        ))
        .unwrap();
    until(
        &mut pep.events,
        "resumed",
        |e| matches!(e, CopsEvent::Feedback { action, .. } if action == "resume-reporting"),
    )
    .await;

    pep.commands
        .send(PrCommand::Logout("fastEthernet 3/0.1".into()))
        .unwrap();
    let mut last_accounting_before_drq = false;
    while let PdpEvent::Report { report_type, .. } = until(&mut pdp.events, "DRQ", |e| {
        matches!(e, PdpEvent::Report { .. } | PdpEvent::Delete { .. })
    })
    .await
    {
        last_accounting_before_drq = report_type == ReportType::Accounting;
    }
    assert!(
        last_accounting_before_drq,
        "final accounting RPT right before the DRQ"
    );
    pep.commands.send(PrCommand::Quit).unwrap();
    pep.task.await.unwrap();
}

#[tokio::test]
async fn copspr_reports_usage_cached_while_disconnected_after_reconnecting() {
    let config = PdpConfig {
        acct_timer: Some(30),
        ..PdpConfig::default()
    };
    let mut pdp = scripted_pdp(config, provisioning).await;
    let mut pep = start(
        driver_config(vec![pdp.addr], 0x800B, "erx2"),
        PrState::new(PrConfig::default(), 1),
    );
    pep.commands
        .send(PrCommand::Login {
            if_name: "if0".into(),
            ip: None,
            user: None,
        })
        .unwrap();
    until(&mut pep.events, "installed", |e| {
        matches!(e, CopsEvent::Installed { .. })
    })
    .await;
    pep.commands.send(PrCommand::Drop).unwrap();
    let e = until(&mut pep.events, "disconnected", |e| {
        matches!(e, CopsEvent::Disconnected { .. })
    })
    .await;
    assert!(matches!(e, CopsEvent::Disconnected { reason, .. } if reason == "dropped"));
    let e = until(
        &mut pep.events,
        "reconnected report",
        |e| matches!(e, CopsEvent::Report { trigger: Some(t), .. } if t == "reconnected"),
    )
    .await;
    assert!(matches!(e, CopsEvent::Report { octets, .. } if octets > 0));
    until(&mut pdp.events, "RPT accounting", |e| {
        matches!(
            e,
            PdpEvent::Report {
                report_type: ReportType::Accounting,
                ..
            }
        )
    })
    .await;
    pep.commands.send(PrCommand::Quit).unwrap();
    pep.task.await.unwrap();
}

/// How long the hanging-attempt tests let one attempt take.
const HANG: Duration = Duration::from_secs(2);

/// Drops the PEP's connection and waits until its next attempt, to `dead`, is under way.
async fn drop_into_a_hanging_attempt<C>(pep: &mut Pep<C>, drop: C, dead: SocketAddr) {
    pep.commands.send(drop).unwrap();
    until(
        &mut pep.events,
        "reconnecting to the unanswered address",
        |e| matches!(e, CopsEvent::Reconnecting { addr, .. } if *addr == dead.to_string()),
    )
    .await;
    // The back-off of the first attempt is 50 ms (jitter included, well under this).
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn sbc_calls_and_quit_go_on_while_a_reconnect_hangs() {
    let dead = crate::endpoint::UnansweredListener::new();
    let mut pdp = scripted_pdp(PdpConfig::default(), admission).await;
    let mut cfg = driver_config(vec![pdp.addr, dead.addr], 0x800A, "sbc4");
    cfg.connect_timeout = HANG;
    let mut pep = start(cfg, SbcState::new(SbcConfig::default(), 1));
    until(&mut pep.events, "accepted", |e| {
        matches!(e, CopsEvent::Accepted { .. })
    })
    .await;

    drop_into_a_hanging_attempt(&mut pep, SbcCommand::Drop, dead.addr).await;
    let asked = tokio::time::Instant::now();
    pep.commands.send(call("x")).unwrap();
    assert_eq!(result_of(&mut pep.events, "x").await, "denied-while-down");
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "{:?}",
        asked.elapsed()
    );
    // The attempt gives up at its deadline; the next address takes over.
    let e = until(&mut pep.events, "connect-failed", |e| {
        matches!(e, CopsEvent::ConnectFailed { .. })
    })
    .await;
    assert!(
        matches!(&e, CopsEvent::ConnectFailed { addr, error }
            if *addr == dead.addr.to_string() && error.contains("timed out after 2s")),
        "{e:?}"
    );
    assert!(asked.elapsed() >= HANG - Duration::from_millis(400));
    let e = until(&mut pep.events, "connected again", |e| {
        matches!(e, CopsEvent::Connected { .. })
    })
    .await;
    assert!(matches!(e, CopsEvent::Connected { pdp: p, .. } if p == pdp.addr.to_string()));
    until(&mut pep.events, "accepted again", |e| {
        matches!(e, CopsEvent::Accepted { .. })
    })
    .await;
    until(&mut pdp.events, "second OPN", |e| {
        matches!(e, PdpEvent::Open { .. })
    })
    .await;

    // Quit while an attempt hangs: at once.
    drop_into_a_hanging_attempt(&mut pep, SbcCommand::Drop, dead.addr).await;
    let quit = tokio::time::Instant::now();
    pep.commands.send(SbcCommand::Quit).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(1), pep.task)
        .await
        .expect("the PEP ends while its attempt hangs")
        .unwrap();
    assert_eq!(outcome.connections, 2);
    assert!(quit.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn copspr_commands_go_on_while_a_reconnect_hangs() {
    let dead = crate::endpoint::UnansweredListener::new();
    let pdp = scripted_pdp(PdpConfig::default(), provisioning).await;
    let mut cfg = driver_config(vec![pdp.addr, dead.addr], 0x800B, "erx3");
    cfg.connect_timeout = HANG;
    let mut pep = start(cfg, PrState::new(PrConfig::default(), 1));
    pep.commands
        .send(PrCommand::Login {
            if_name: "if0".into(),
            ip: None,
            user: None,
        })
        .unwrap();
    until(&mut pep.events, "installed", |e| {
        matches!(e, CopsEvent::Installed { .. })
    })
    .await;

    drop_into_a_hanging_attempt(&mut pep, PrCommand::Drop, dead.addr).await;
    let asked = tokio::time::Instant::now();
    pep.commands.send(PrCommand::List).unwrap();
    let e = until(&mut pep.events, "listed", |e| {
        matches!(
            e,
            CopsEvent::Listed { .. } | CopsEvent::ConnectFailed { .. }
        )
    })
    .await;
    assert!(matches!(e, CopsEvent::Listed { count: 1 }), "{e:?}");
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "{:?}",
        asked.elapsed()
    );
    // After the attempt gives up, the PDP comes back and the interface is still known to it.
    until(
        &mut pep.events,
        "connect-failed",
        |e| matches!(e, CopsEvent::ConnectFailed { addr, .. } if *addr == dead.addr.to_string()),
    )
    .await;
    until(&mut pep.events, "accepted again", |e| {
        matches!(e, CopsEvent::Accepted { .. })
    })
    .await;
    pep.commands.send(PrCommand::Quit).unwrap();
    pep.task.await.unwrap();
}
