//! A router (initiator) and the SAE (responder) talking through their state machines: capabilities
//! exchange, watchdog, disconnect, requests and answers, timeouts.

use std::collections::BTreeSet;
use std::time::Duration;

use sae_diameter::codes::{DisconnectCause, app, avp, command, result, vendor};
use sae_diameter::jsrc::{PolicyDefinition, PolicyInstall, SubscriberMessage, Substitution};
use sae_diameter::peer::RequestFailure;
use sae_diameter::watchdog::WatchdogState;
use sae_diameter::{
    Avp, AvpFlags, CloseReason, Error, Event, Message, PeerFilter, PeerState, RequestId, Value,
};

use crate::support::*;

fn closed_with(events: &[Event]) -> Option<&CloseReason> {
    events.iter().find_map(|e| match e {
        Event::Closed(r) => Some(r),
        _ => None,
    })
}

fn requests(events: Vec<Event>) -> Vec<Message> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Request(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn watchdog_events(events: &[Event]) -> Vec<WatchdogState> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Watchdog(s) => Some(*s),
            _ => None,
        })
        .collect()
}

/// The single CEA the responder wrote.
fn only_cea(link: &Link) -> &Message {
    let [cea] = &link.responder.sent[..] else {
        panic!("expected one CEA, got {:?}", link.responder.sent);
    };
    assert_eq!(cea.header.command_code, command::CAPABILITIES_EXCHANGE);
    assert!(!cea.is_request());
    cea
}

fn sent_of(sent: &[Message], code: u32, request: bool) -> Vec<&Message> {
    sent.iter()
        .filter(|m| m.header.command_code == code && m.is_request() == request)
        .collect()
}

#[test]
fn capabilities_exchange_brings_both_ends_up_with_the_common_applications() {
    let mut link = Link::new(router_config(), sae_config());
    link.connect();
    assert_eq!(link.initiator.state(), PeerState::WaitCea);
    assert_eq!(link.responder.state(), PeerState::WaitAccept);

    let [cer] = &link.initiator.sent[..] else {
        panic!("one CER expected");
    };
    let cer = cer.clone();
    assert!(cer.is_request());
    assert_eq!(cer.header.command_code, command::CAPABILITIES_EXCHANGE);
    assert_ne!(cer.header.end_to_end, 0, "End-to-End identifier is set");

    let (at_initiator, at_responder) = link.accept();
    assert_eq!(at_initiator.applications, common_applications());
    assert_eq!(at_responder.applications, common_applications());
    assert_eq!(at_initiator.capabilities, sae_capabilities());
    assert_eq!(at_responder.capabilities, router_capabilities());
    assert_eq!(link.initiator.peer.remote(), Some(&at_initiator));
    assert_eq!(link.responder.peer.remote(), Some(&at_responder));

    let cea = only_cea(&link);
    assert_eq!(cea.result_code(), Some(result::SUCCESS));
    assert!(!cea.header.flags.is_error());
    assert_eq!(cea.header.hop_by_hop, cer.header.hop_by_hop);
    assert_eq!(cea.header.end_to_end, cer.header.end_to_end);
    assert_eq!(link.initiator.peer.watchdog_state(), WatchdogState::Okay);
    assert_eq!(link.responder.peer.watchdog_state(), WatchdogState::Okay);
    // Nothing else is in flight once both ends are up.
    assert!(link.initiator.peer.poll_transmit().is_none());
    assert!(link.responder.peer.poll_transmit().is_none());
}

#[test]
fn responder_refuses_a_peer_outside_its_filter_with_3010() {
    let mut sae = sae_config();
    sae.allowed_peers = PeerFilter::Only(BTreeSet::from(["mx2.example.net".to_string()]));
    let mut link = Link::new(router_config(), sae);
    link.connect();

    let cea = only_cea(&link);
    assert_eq!(cea.result_code(), Some(result::UNKNOWN_PEER));
    assert!(cea.header.flags.is_error(), "3xxx answers carry the E bit");
    assert!(cea.error_message().is_some_and(|m| m.contains(ROUTER_HOST)));
    assert_eq!(link.responder.state(), PeerState::Closed);
    let events = link.responder.take_events();
    assert!(
        matches!(
            closed_with(&events),
            Some(CloseReason::CapabilitiesFailed {
                result_code: 3010,
                ..
            })
        ),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::CapabilitiesReceived(_)))
    );

    assert_eq!(link.initiator.state(), PeerState::Closed);
    let events = link.initiator.take_events();
    assert!(
        matches!(
            closed_with(&events),
            Some(CloseReason::CapabilitiesFailed {
                result_code: 3010,
                ..
            })
        ),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Up(_))));
}

#[test]
fn peer_filter_matches_origin_host_case_insensitively() {
    let mut sae = sae_config();
    sae.allowed_peers = PeerFilter::Only(BTreeSet::from(["MX1.Example.NET".to_string()]));
    let mut link = Link::new(router_config(), sae);
    link.open();
}

#[test]
fn no_common_application_is_5010() {
    let mut router = router_capabilities();
    router.vendor_specific_applications.clear(); // NASREQ only
    let mut link = Link::new(config(sae_diameter::Role::Initiator, router), sae_config());
    link.connect();

    let cea = only_cea(&link);
    assert_eq!(cea.result_code(), Some(result::NO_COMMON_APPLICATION));
    assert!(!cea.header.flags.is_error());
    for end in [&mut link.initiator, &mut link.responder] {
        assert_eq!(end.state(), PeerState::Closed);
        let events = end.take_events();
        assert!(
            matches!(
                closed_with(&events),
                Some(CloseReason::CapabilitiesFailed {
                    result_code: 5010,
                    ..
                })
            ),
            "{events:?}"
        );
    }
}

/// What a node does with a CER: a second connection claiming an Origin-Host that is already up
/// loses the election.
fn decide(up: &mut BTreeSet<String>, link: &mut Link) {
    let events = link.responder.take_events();
    let [Event::CapabilitiesReceived(info)] = &events[..] else {
        panic!("expected the CER to be reported: {events:?}");
    };
    let host = info.capabilities.origin_host.clone();
    let now = link.now();
    if up.insert(host) {
        link.responder.peer.accept(now);
    } else {
        link.responder
            .peer
            .reject(now, result::ELECTION_LOST, "peer already connected");
    }
    link.pump();
}

#[test]
fn second_connection_of_a_connected_host_is_rejected_with_4003() {
    let mut up = BTreeSet::new();
    let mut first = Link::new(router_config(), sae_config());
    first.connect();
    decide(&mut up, &mut first);
    assert_eq!(first.initiator.state(), PeerState::Open);
    assert_eq!(first.responder.state(), PeerState::Open);

    let mut second = Link::new(router_config(), sae_config());
    second.connect();
    decide(&mut up, &mut second);
    let cea = only_cea(&second);
    assert_eq!(cea.result_code(), Some(result::ELECTION_LOST));
    assert!(!cea.header.flags.is_error());
    assert_eq!(cea.error_message(), Some("peer already connected"));
    let expected = CloseReason::CapabilitiesFailed {
        result_code: result::ELECTION_LOST,
        message: "peer already connected".into(),
    };
    assert_eq!(second.responder.state(), PeerState::Closed);
    assert_eq!(
        second.responder.take_events(),
        vec![Event::Closed(expected.clone())]
    );
    assert_eq!(second.initiator.state(), PeerState::Closed);
    assert_eq!(
        second.initiator.take_events(),
        vec![Event::Closed(expected)]
    );
    // The first connection is untouched.
    assert_eq!(first.responder.state(), PeerState::Open);
}

#[test]
fn cer_without_host_ip_address_is_5005() {
    let mut router = router_capabilities();
    router.host_ip_addresses.clear();
    let mut link = Link::new(config(sae_diameter::Role::Initiator, router), sae_config());
    link.connect();

    let cea = only_cea(&link);
    assert_eq!(cea.result_code(), Some(result::MISSING_AVP));
    let failed = failed_avps(cea);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].code(), avp::HOST_IP_ADDRESS);
    let responder_events = link.responder.take_events();
    let Some(CloseReason::CapabilitiesFailed {
        result_code: 5005,
        message,
    }) = closed_with(&responder_events)
    else {
        panic!("{responder_events:?}");
    };
    assert!(message.contains("Host-IP-Address"), "{message}");
    // The router learns the reason from the CEA's Error-Message.
    assert_eq!(
        link.initiator.take_events(),
        vec![Event::Closed(CloseReason::CapabilitiesFailed {
            result_code: 5005,
            message: message.clone(),
        })]
    );
}

#[test]
fn watchdog_exchanges_dwr_and_dwa_at_every_interval() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    let tw = Duration::from_secs(30);
    let mut last = link.now();
    for _ in 0..6 {
        let t = link.fire_next_timeout();
        let gap = t - last;
        assert!(
            gap >= tw - Duration::from_secs(2) && gap <= tw + Duration::from_secs(2),
            "watchdog interval {gap:?}"
        );
        last = t;
    }
    for end in [&mut link.initiator, &mut link.responder] {
        assert_eq!(end.state(), PeerState::Open);
        assert_eq!(end.peer.watchdog_state(), WatchdogState::Okay);
        assert!(watchdog_events(&end.take_events()).is_empty());
    }
    let all: Vec<Message> = link
        .initiator
        .sent
        .iter()
        .chain(&link.responder.sent)
        .cloned()
        .collect();
    let dwrs = sent_of(&all, command::DEVICE_WATCHDOG, true);
    let dwas = sent_of(&all, command::DEVICE_WATCHDOG, false);
    assert_eq!(dwrs.len(), 6, "one DWR per expiry");
    assert_eq!(dwas.len(), 6);
    for dwr in &dwrs {
        let dwa = dwas
            .iter()
            .find(|a| a.header.hop_by_hop == dwr.header.hop_by_hop)
            .expect("every DWR answered");
        assert_eq!(dwa.header.end_to_end, dwr.header.end_to_end);
        assert_eq!(dwa.result_code(), Some(result::SUCCESS));
        assert_ne!(dwa.origin_host(), dwr.origin_host());
    }
}

#[test]
fn watchdog_goes_suspect_then_down_when_the_peer_stops_answering() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    let up_at = link.clock.elapsed();
    let dwrs_before = sent_of(&link.initiator.sent, command::DEVICE_WATCHDOG, true).len();
    link.responder_to_initiator = false;

    let mut events = Vec::new();
    for _ in 0..10 {
        if link.initiator.state() == PeerState::Closed {
            break;
        }
        link.fire_next_timeout();
        events.extend(link.initiator.take_events());
    }
    assert_eq!(link.initiator.state(), PeerState::Closed);
    assert_eq!(
        watchdog_events(&events),
        vec![WatchdogState::Suspect, WatchdogState::Down]
    );
    assert_eq!(
        events.last(),
        Some(&Event::Closed(CloseReason::WatchdogExpired))
    );
    assert_eq!(
        sent_of(&link.initiator.sent, command::DEVICE_WATCHDOG, true).len() - dwrs_before,
        1,
        "one DWR, then no more while it is unanswered"
    );
    // DWR at ~Tw, SUSPECT at ~2Tw, DOWN at ~3Tw, each Tw within the jitter.
    let took = link.clock.elapsed() - up_at;
    assert!(
        took >= Duration::from_secs(84) && took <= Duration::from_secs(96),
        "{took:?}"
    );
    assert_eq!(link.initiator.peer.poll_timeout(), None);

    // The responder still answered; it sees the transport go.
    link.responder.peer.transport_closed(link.now());
    assert_eq!(
        closed_with(&link.responder.take_events()),
        Some(&CloseReason::TransportClosed)
    );
}

#[test]
fn traffic_in_suspect_brings_the_watchdog_back_to_okay() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    link.responder_to_initiator = false;
    while link.initiator.peer.watchdog_state() != WatchdogState::Suspect {
        link.fire_next_timeout();
    }
    link.initiator.take_events();
    link.responder_to_initiator = true;
    // The SAE pushes a profile: any message from the peer proves it alive.
    let request = ppr("mx1;1;1");
    link.responder
        .peer
        .send_request(link.now(), request)
        .unwrap();
    link.pump();
    let events = link.initiator.take_events();
    assert_eq!(watchdog_events(&events), vec![WatchdogState::Okay]);
    assert_eq!(requests(events).len(), 1);
    assert_eq!(link.initiator.state(), PeerState::Open);
}

fn disconnect_from(initiator_disconnects: bool, cause: DisconnectCause) {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    let now = link.now();
    let from = if initiator_disconnects {
        &mut link.initiator
    } else {
        &mut link.responder
    };
    from.peer.disconnect(now, cause);
    assert_eq!(from.state(), PeerState::Closing);
    link.pump();
    let (from, to) = if initiator_disconnects {
        (&mut link.initiator, &mut link.responder)
    } else {
        (&mut link.responder, &mut link.initiator)
    };

    let [.., dpr] = &from.sent[..] else {
        panic!("DPR sent")
    };
    assert!(dpr.is_request());
    assert_eq!(dpr.header.command_code, command::DISCONNECT_PEER);
    let wire_cause = dpr
        .find(avp::DISCONNECT_CAUSE, 0)
        .unwrap()
        .as_i32()
        .unwrap();
    assert_eq!(wire_cause, cause.value());
    let [.., dpa] = &to.sent[..] else {
        panic!("DPA sent")
    };
    assert!(!dpa.is_request());
    assert_eq!(dpa.header.command_code, command::DISCONNECT_PEER);
    assert_eq!(dpa.header.hop_by_hop, dpr.header.hop_by_hop);
    assert_eq!(dpa.result_code(), Some(result::SUCCESS));

    assert_eq!(to.state(), PeerState::Closed);
    assert_eq!(
        to.take_events(),
        vec![Event::Closed(CloseReason::PeerDisconnected(Some(cause)))]
    );
    assert_eq!(from.state(), PeerState::Closed);
    assert_eq!(
        from.take_events(),
        vec![Event::Closed(CloseReason::LocalDisconnect)]
    );
    assert_eq!(from.peer.poll_timeout(), None);
}

#[test]
fn router_disconnects_with_a_cause_the_sae_sees() {
    disconnect_from(true, DisconnectCause::Busy);
}

#[test]
fn sae_disconnects_with_a_cause_the_router_sees() {
    disconnect_from(false, DisconnectCause::Rebooting);
    disconnect_from(false, DisconnectCause::DoNotWantToTalkToYou);
}

#[test]
fn unanswered_dpr_closes_after_the_disconnect_timeout() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    link.initiator_to_responder = false;
    let start = link.now();
    link.initiator
        .peer
        .disconnect(start, DisconnectCause::Rebooting);
    assert!(matches!(
        link.initiator.peer.send_request(start, aar("s;1", "u")),
        Err(Error::NotOpen)
    ));
    let t = link.fire_next_timeout();
    assert_eq!(t - start, Duration::from_secs(5));
    assert_eq!(
        link.initiator.take_events(),
        vec![Event::Closed(CloseReason::LocalDisconnect)]
    );
}

fn policy(name: &str, rate: &str) -> PolicyInstall {
    PolicyInstall {
        policy_name: name.into(),
        definition: Some(PolicyDefinition {
            policy_name: name.into(),
            template_name: "rate-limit".into(),
            substitutions: vec![Substitution {
                name: "rate".into(),
                value: rate.into(),
            }],
        }),
        collect_accounting: true,
    }
}

#[test]
fn request_is_delivered_answered_and_matched_by_request_id() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    let now = link.now();
    let first = link
        .initiator
        .peer
        .send_request(now, aar("mx1;1;1", "alice"))
        .unwrap();
    let second = link
        .initiator
        .peer
        .send_request(now, aar("mx1;1;2", "bob"))
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(link.initiator.peer.pending_requests(), 2);
    link.pump();

    let delivered = requests(link.responder.take_events());
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[0].session_id(), Some("mx1;1;1"));
    assert_eq!(delivered[0].header.hop_by_hop, first.0);
    assert_eq!(delivered[1].header.hop_by_hop, second.0);
    assert_ne!(
        delivered[0].header.end_to_end,
        delivered[1].header.end_to_end
    );

    // Answer in reverse order, each with the user's own policy.
    for req in delivered.iter().rev() {
        let user = req.user_name().unwrap().to_owned();
        let mut aaa = Message::answer_to(req);
        aaa.set_result_code(result::SUCCESS);
        aaa.push(Avp::mandatory(
            avp::AUTH_APPLICATION_ID,
            &Value::Unsigned32(app::JSRC),
        ));
        aaa.push(ident(avp::ORIGIN_HOST, SAE_HOST));
        aaa.push(ident(avp::ORIGIN_REALM, REALM));
        aaa.push(policy(&user, "100m").to_avp());
        link.responder.peer.send_answer(aaa).unwrap();
    }
    link.pump();

    let events = link.initiator.take_events();
    assert_eq!(events.len(), 2, "{events:?}");
    let mut by_id = std::collections::HashMap::new();
    for e in events {
        let Event::Answer { id, answer } = e else {
            panic!("expected an answer: {e:?}");
        };
        by_id.insert(id, answer);
    }
    for (id, session, user) in [(first, "mx1;1;1", "alice"), (second, "mx1;1;2", "bob")] {
        let answer = &by_id[&id];
        assert_eq!(answer.session_id(), Some(session));
        assert_eq!(answer.result_code(), Some(result::SUCCESS));
        assert_eq!(
            answer.policy_installs().unwrap(),
            vec![policy(user, "100m")]
        );
    }
    assert_eq!(link.initiator.peer.pending_requests(), 0);
}

#[test]
fn unanswered_request_fails_with_timeout_and_a_late_answer_is_dropped() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    let sent_at = link.now();
    let (id, req) = link.router_request(aar("mx1;1;9", "carol"), Some(Duration::from_secs(3)));

    assert_eq!(link.next_deadline(), Some(sent_at + Duration::from_secs(3)));
    link.fire_next_timeout();
    assert_eq!(
        link.initiator.take_events(),
        vec![Event::RequestFailed {
            id,
            reason: RequestFailure::Timeout
        }]
    );
    assert_eq!(link.initiator.peer.pending_requests(), 0);

    let mut late = Message::answer_to(&req);
    late.set_result_code(result::SUCCESS);
    late.push(ident(avp::ORIGIN_HOST, SAE_HOST));
    late.push(ident(avp::ORIGIN_REALM, REALM));
    link.responder.peer.send_answer(late).unwrap();
    link.pump();
    assert_eq!(link.initiator.take_events(), vec![]);
    assert_eq!(link.initiator.state(), PeerState::Open);
}

#[test]
fn transport_loss_fails_every_pending_request() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    let now = link.now();
    let mut ids: Vec<RequestId> = (0..3)
        .map(|i| {
            link.initiator
                .peer
                .send_request(now, aar(&format!("mx1;1;{i}"), "dave"))
                .unwrap()
        })
        .collect();
    ids.sort();
    link.initiator.peer.transport_closed(now);
    let mut expected: Vec<Event> = ids
        .into_iter()
        .map(|id| Event::RequestFailed {
            id,
            reason: RequestFailure::ConnectionClosed,
        })
        .collect();
    expected.push(Event::Closed(CloseReason::TransportClosed));
    assert_eq!(link.initiator.take_events(), expected);
    assert_eq!(link.initiator.peer.pending_requests(), 0);
    assert_eq!(link.initiator.peer.poll_timeout(), None);
    assert!(matches!(
        link.initiator.peer.send_request(now, aar("s", "u")),
        Err(Error::NotOpen)
    ));
}

#[test]
fn request_for_an_application_not_negotiated_is_3007() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    // NASREQ is in the SAE's dictionary but the SAE did not advertise it.
    let mut request = aar("mx1;2;1", "erin");
    request.header.application_id = app::NASREQ;
    request.avps.retain(|a| !a.is(avp::AUTH_APPLICATION_ID, 0));
    request.avps.insert(
        1,
        Avp::mandatory(avp::AUTH_APPLICATION_ID, &Value::Unsigned32(app::NASREQ)),
    );
    let id = link
        .initiator
        .peer
        .send_request(link.now(), request)
        .unwrap();
    link.pump();
    assert!(requests(link.responder.take_events()).is_empty());

    let events = link.initiator.take_events();
    let [Event::Answer { id: got, answer }] = &events[..] else {
        panic!("{events:?}");
    };
    assert_eq!(*got, id);
    assert_eq!(answer.result_code(), Some(result::APPLICATION_UNSUPPORTED));
    assert!(answer.header.flags.is_error());
    assert_eq!(answer.header.application_id, app::NASREQ);
    assert_eq!(answer.session_id(), Some("mx1;2;1"));
    assert_eq!(answer.origin_host(), Some(SAE_HOST));
    assert_eq!(link.responder.state(), PeerState::Open);
}

#[test]
fn unknown_mandatory_avp_is_answered_5001_with_failed_avp() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    let odd = Avp::vendor_mandatory(4242, vendor::JUNIPER, &Value::Unsigned32(7));
    let id = link
        .initiator
        .peer
        .send_request(link.now(), aar("mx1;3;1", "frank").with(odd.clone()))
        .unwrap();
    link.pump();
    assert!(requests(link.responder.take_events()).is_empty());

    let events = link.initiator.take_events();
    let [Event::Answer { id: got, answer }] = &events[..] else {
        panic!("{events:?}");
    };
    assert_eq!(*got, id);
    assert_eq!(answer.result_code(), Some(result::AVP_UNSUPPORTED));
    assert!(!answer.header.flags.is_error());
    assert_eq!(answer.avps[0].code(), avp::SESSION_ID);
    assert_eq!(failed_avps(answer), vec![odd]);
}

#[test]
fn answer_with_an_unknown_hop_by_hop_is_discarded() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    let (id, req) = link.router_request(aar("mx1;4;1", "gina"), None);
    let mut stray = Message::answer_to(&req);
    stray.header.hop_by_hop = id.0.wrapping_add(1000);
    stray.set_result_code(result::SUCCESS);
    stray.push(ident(avp::ORIGIN_HOST, SAE_HOST));
    stray.push(ident(avp::ORIGIN_REALM, REALM));
    link.responder.peer.send_answer(stray).unwrap();
    link.pump();
    assert_eq!(link.initiator.take_events(), vec![]);
    assert_eq!(link.initiator.peer.pending_requests(), 1);
    assert_eq!(link.initiator.state(), PeerState::Open);
}

#[test]
fn answer_with_another_command_fails_the_request() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    let (id, req) = link.router_request(aar("mx1;5;1", "hank"), None);
    let mut wrong = Message::answer_to(&req);
    wrong.header.command_code = command::SESSION_TERMINATION;
    wrong.set_result_code(result::SUCCESS);
    link.responder.peer.send_answer(wrong).unwrap();
    link.pump();
    let events = link.initiator.take_events();
    assert!(
        matches!(
            &events[..],
            [Event::RequestFailed { id: got, reason: RequestFailure::InvalidAnswer(e) }]
                if *got == id && e.result_code == result::UNABLE_TO_COMPLY
        ),
        "{events:?}"
    );
}

#[test]
fn no_cea_in_time_closes_the_initiator() {
    let mut link = Link::new(router_config(), sae_config());
    link.responder_to_initiator = false;
    let start = link.now();
    link.initiator.peer.connected(start);
    link.pump();
    assert_eq!(
        link.initiator.peer.poll_timeout(),
        Some(start + Duration::from_secs(10))
    );
    link.clock.set(start + Duration::from_secs(9));
    link.initiator.peer.handle_timeout(link.now());
    assert_eq!(link.initiator.state(), PeerState::WaitCea);
    link.clock.set(start + Duration::from_secs(10));
    link.initiator.peer.handle_timeout(link.now());
    assert_eq!(
        link.initiator.take_events(),
        vec![Event::Closed(CloseReason::CapabilitiesTimeout)]
    );
    assert_eq!(link.initiator.peer.poll_timeout(), None);
}

#[test]
fn no_cer_in_time_closes_the_responder() {
    let mut link = Link::new(router_config(), sae_config());
    let start = link.now();
    link.responder.peer.connected(start);
    let deadline = link.responder.peer.poll_timeout().unwrap();
    assert_eq!(deadline - start, Duration::from_secs(10));
    link.clock.set(deadline);
    link.responder.peer.handle_timeout(deadline);
    assert_eq!(
        link.responder.take_events(),
        vec![Event::Closed(CloseReason::CapabilitiesTimeout)]
    );
    assert!(
        link.responder.take_transmit().is_empty(),
        "nothing to answer"
    );
}

#[test]
fn reopened_connection_needs_three_dwas_before_okay() {
    let mut link = Link::with_reopen(router_config(), sae_config(), true);
    link.connect();
    link.responder.peer.accept(link.now());
    link.pump();

    let events = link.initiator.take_events();
    assert_eq!(watchdog_events(&events), vec![WatchdogState::Reopen]);
    assert!(events.iter().any(|e| matches!(e, Event::Up(_))));
    assert_eq!(link.initiator.peer.watchdog_state(), WatchdogState::Reopen);
    assert_eq!(
        sent_of(&link.initiator.sent, command::DEVICE_WATCHDOG, true).len(),
        1,
        "a DWR goes out as soon as the connection opens"
    );
    link.responder.take_events();

    // While reopening, application traffic from the SAE is not taken.
    let request = ppr("mx1;1;1");
    let ppr_id = link
        .responder
        .peer
        .send_request(link.now(), request)
        .unwrap();
    link.pump();
    assert!(requests(link.initiator.take_events()).is_empty());
    let events = link.responder.take_events();
    let [Event::Answer { id, answer }] = &events[..] else {
        panic!("{events:?}");
    };
    assert_eq!(*id, ppr_id);
    assert_eq!(answer.result_code(), Some(result::UNABLE_TO_DELIVER));

    let mut okay_after = None;
    for round in 1..=6 {
        link.fire_next_timeout();
        let events = link.initiator.take_events();
        if watchdog_events(&events).contains(&WatchdogState::Okay) {
            okay_after = Some(round);
            break;
        }
        assert_eq!(link.initiator.peer.watchdog_state(), WatchdogState::Reopen);
    }
    assert!(okay_after.is_some(), "watchdog never left REOPEN");
    let dwas_received = sent_of(&link.responder.sent, command::DEVICE_WATCHDOG, false).len();
    assert_eq!(dwas_received, 3, "OKAY on the third DWA");
    assert_eq!(link.initiator.peer.watchdog_state(), WatchdogState::Okay);

    // Once OKAY, requests get through.
    let request = ppr("mx1;1;2");
    link.responder
        .peer
        .send_request(link.now(), request)
        .unwrap();
    link.pump();
    assert_eq!(requests(link.initiator.take_events()).len(), 1);
}

#[test]
fn reopened_connection_without_dwas_closes() {
    let mut link = Link::with_reopen(router_config(), sae_config(), true);
    link.connect();
    link.responder.peer.accept(link.now());
    link.pump();
    link.initiator.take_events();
    link.responder_to_initiator = false;
    for _ in 0..6 {
        if link.initiator.state() == PeerState::Closed {
            break;
        }
        link.fire_next_timeout();
    }
    let events = link.initiator.take_events();
    assert_eq!(
        closed_with(&events),
        Some(&CloseReason::WatchdogExpired),
        "{events:?}"
    );
}

#[test]
fn second_cer_on_an_open_connection_is_5012() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    let mut cer = Message::request(command::CAPABILITIES_EXCHANGE, 0, false);
    cer.avps = router_capabilities().to_avps();
    cer.header.hop_by_hop = 0xdead_beef;
    cer.header.end_to_end = 0x1234_5678;
    let now = link.now();
    link.responder.receive(now, &cer.encode().unwrap());
    let [cea] = &link.responder.take_sent_messages()[..] else {
        panic!("one answer");
    };
    assert_eq!(cea.result_code(), Some(result::UNABLE_TO_COMPLY));
    assert_eq!(cea.header.hop_by_hop, 0xdead_beef);
    assert_eq!(link.responder.state(), PeerState::Open);
}

#[test]
fn responder_closes_when_the_first_message_is_not_a_cer() {
    let mut link = Link::new(router_config(), sae_config());
    let now = link.now();
    link.responder.peer.connected(now);
    link.responder.receive(now, &raw::dwr(1));
    let events = link.responder.take_events();
    assert!(
        matches!(
            closed_with(&events),
            Some(CloseReason::ProtocolViolation(_))
        ),
        "{events:?}"
    );
    assert!(link.responder.take_transmit().is_empty());
}

#[test]
fn non_mandatory_unknown_avp_is_ignored() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    let quiet = Avp::new(
        4242,
        vendor::JUNIPER,
        AvpFlags::none(),
        &Value::OctetString(bytes::Bytes::from_static(b"x")),
    );
    link.initiator
        .peer
        .send_request(link.now(), aar("mx1;6;1", "ivy").with(quiet))
        .unwrap();
    link.pump();
    assert_eq!(requests(link.responder.take_events()).len(), 1);
}

#[test]
fn error_answer_with_an_undecodable_failed_avp_still_reaches_the_requester() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    let (id, req) = link.router_request(aar("mx1;7;1", "jack"), None);
    // As RFC 6733 allows for 5014: the offending AVP's header with its bad length field.
    let reported = raw::avp(
        avp::USER_NAME,
        AvpFlags::MANDATORY,
        None,
        &[],
        Some(3),
        true,
    );
    let mut answer = Message::answer_to(&req);
    answer.set_result_code(result::INVALID_AVP_LENGTH);
    answer.push(ident(avp::ORIGIN_HOST, SAE_HOST));
    answer.push(ident(avp::ORIGIN_REALM, REALM));
    answer.push(Avp::from_raw(
        avp::FAILED_AVP,
        AvpFlags::mandatory(),
        None,
        bytes::Bytes::from(reported),
    ));
    link.responder.peer.send_answer(answer).unwrap();
    link.pump();
    let events = link.initiator.take_events();
    let [Event::Answer { id: got, answer }] = &events[..] else {
        panic!("{events:?}");
    };
    assert_eq!(*got, id);
    assert_eq!(answer.result_code(), Some(result::INVALID_AVP_LENGTH));
}
