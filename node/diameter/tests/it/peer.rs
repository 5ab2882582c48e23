//! A router (initiator) and the SAE (responder) talking through their state machines: capabilities
//! exchange, watchdog, disconnect, requests and answers, timeouts.

use std::collections::BTreeSet;
use std::time::Duration;

use sae_diameter::codes::{DisconnectCause, app, avp, command, result, vendor};
use sae_diameter::jsrc::{PolicyDefinition, PolicyInstall, SubscriberMessage, Substitution};
use sae_diameter::peer::{EndToEndIds, PeerConfig, RequestFailure, SendRequestError, election_won};
use sae_diameter::watchdog::WatchdogState;
use sae_diameter::{
    Avp, AvpFlags, CloseReason, CommandFlags, Event, Message, PeerFilter, PeerState, RequestId,
    Role, Value,
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
        Err(SendRequestError::NotOpen)
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
        Err(SendRequestError::NotOpen)
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

// ---- Watchdog gating, failover and DWA matching (RFC 3539) ----

/// Moves the clock forward until the initiator's watchdog is in `state` (at most `rounds`
/// timeouts), collecting the initiator's events on the way.
fn run_until_initiator_watchdog(link: &mut Link, state: WatchdogState) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..10 {
        if link.initiator.peer.watchdog_state() == state {
            return events;
        }
        link.fire_next_timeout();
        events.extend(link.initiator.take_events());
    }
    panic!("watchdog never reached {state:?}: {events:?}");
}

#[test]
fn requests_are_refused_while_the_watchdog_is_reopen_or_suspect() {
    // REOPEN: up, but not usable before three DWAs.
    let mut link = Link::with_reopen(router_config(), sae_config(), true);
    link.connect();
    link.responder.peer.accept(link.now());
    link.pump();
    assert_eq!(link.initiator.state(), PeerState::Open);
    let refused = link
        .initiator
        .peer
        .send_request(link.now(), aar("mx1;8;1", "kim"));
    assert!(
        matches!(
            refused,
            Err(SendRequestError::WatchdogNotOkay(WatchdogState::Reopen))
        ),
        "{refused:?}"
    );
    assert_eq!(link.initiator.peer.pending_requests(), 0);
    assert!(
        sent_of(&link.initiator.sent, command::AA, true).is_empty(),
        "nothing written"
    );
    run_until_initiator_watchdog(&mut link, WatchdogState::Okay);
    link.responder.take_events();
    link.router_request(aar("mx1;8;2", "kim"), None);

    // SUSPECT: the SAE stopped answering.
    link.responder_to_initiator = false;
    run_until_initiator_watchdog(&mut link, WatchdogState::Suspect);
    let refused = link
        .initiator
        .peer
        .send_request(link.now(), aar("mx1;8;3", "kim"));
    assert!(
        matches!(
            refused,
            Err(SendRequestError::WatchdogNotOkay(WatchdogState::Suspect))
        ),
        "{refused:?}"
    );
    let text = refused.unwrap_err().to_string();
    assert!(text.contains("suspect"), "{text}");
}

#[test]
fn entering_suspect_fails_the_pending_requests_over() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    link.responder_to_initiator = false;
    let long = Some(Duration::from_secs(600));
    let (first, lea) = link.router_request(aar("mx1;9;1", "lea"), long);
    let (second, max) = link.router_request(aar("mx1;9;2", "max"), long);
    let mut ids = [first, second];
    ids.sort();

    let events = run_until_initiator_watchdog(&mut link, WatchdogState::Suspect);
    // The state change first, then one failure per request: the application can resend.
    assert_eq!(
        events,
        vec![
            Event::Watchdog(WatchdogState::Suspect),
            Event::RequestFailed {
                id: ids[0],
                reason: RequestFailure::Failover
            },
            Event::RequestFailed {
                id: ids[1],
                reason: RequestFailure::Failover
            },
        ]
    );
    assert_eq!(link.initiator.peer.pending_requests(), 0);
    assert_eq!(link.initiator.state(), PeerState::Open);

    // The SAE comes back and answers late: the watchdog fails back, the answers are dropped.
    link.responder_to_initiator = true;
    for req in [&lea, &max] {
        let mut aaa = Message::answer_to(req);
        aaa.set_result_code(result::SUCCESS);
        aaa.push(ident(avp::ORIGIN_HOST, SAE_HOST));
        aaa.push(ident(avp::ORIGIN_REALM, REALM));
        link.responder.peer.send_answer(aaa).unwrap();
    }
    link.pump();
    assert_eq!(
        link.initiator.take_events(),
        vec![Event::Watchdog(WatchdogState::Okay)]
    );
}

/// The DWR the initiator sent last, and a DWA to it from the SAE with `result_code`.
fn dwa_to_last_dwr(link: &Link, result_code: u32) -> (Message, Message) {
    let dwr = sent_of(&link.initiator.sent, command::DEVICE_WATCHDOG, true)
        .last()
        .copied()
        .expect("a DWR was sent")
        .clone();
    let mut dwa = Message::answer_to(&dwr);
    dwa.set_result_code(result_code);
    dwa.push(ident(avp::ORIGIN_HOST, SAE_HOST));
    dwa.push(ident(avp::ORIGIN_REALM, REALM));
    (dwr, dwa)
}

/// Open link whose SAE end no longer reaches the router, right after the router's first DWR.
fn dwr_outstanding() -> Link {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    link.responder_to_initiator = false;
    link.fire_next_timeout();
    assert_eq!(
        sent_of(&link.initiator.sent, command::DEVICE_WATCHDOG, true).len(),
        1
    );
    link
}

#[test]
fn only_the_dwa_of_the_outstanding_dwr_counts() {
    // A DWA with another Hop-by-Hop identifier leaves the DWR outstanding: SUSPECT follows.
    let mut link = dwr_outstanding();
    let (dwr, mut stray) = dwa_to_last_dwr(&link, result::SUCCESS);
    stray.header.hop_by_hop = dwr.header.hop_by_hop.wrapping_add(1);
    let now = link.now();
    link.initiator.receive(now, &stray.encode().unwrap());
    link.fire_next_timeout();
    assert_eq!(link.initiator.peer.watchdog_state(), WatchdogState::Suspect);

    // The matching DWA clears it: the next expiry sends a new DWR instead.
    let mut link = dwr_outstanding();
    let (_, dwa) = dwa_to_last_dwr(&link, result::SUCCESS);
    let now = link.now();
    link.initiator.receive(now, &dwa.encode().unwrap());
    link.fire_next_timeout();
    assert_eq!(link.initiator.peer.watchdog_state(), WatchdogState::Okay);
    assert_eq!(
        sent_of(&link.initiator.sent, command::DEVICE_WATCHDOG, true).len(),
        2
    );
    // The same DWA again is stale now: it answers no outstanding DWR.
    let (_, second) = dwa_to_last_dwr(&link, result::SUCCESS);
    let now = link.now();
    link.initiator.receive(now, &dwa.encode().unwrap());
    link.fire_next_timeout();
    assert_eq!(link.initiator.peer.watchdog_state(), WatchdogState::Suspect);
    // ... while the current one brings it back.
    let now = link.now();
    link.initiator.receive(now, &second.encode().unwrap());
    assert_eq!(link.initiator.peer.watchdog_state(), WatchdogState::Okay);
}

#[test]
fn a_dwa_that_is_not_2001_is_still_a_sign_of_life() {
    let mut link = dwr_outstanding();
    let (_, dwa) = dwa_to_last_dwr(&link, result::TOO_BUSY);
    let now = link.now();
    link.initiator.receive(now, &dwa.encode().unwrap());
    link.fire_next_timeout();
    assert_eq!(link.initiator.peer.watchdog_state(), WatchdogState::Okay);
    assert_eq!(
        sent_of(&link.initiator.sent, command::DEVICE_WATCHDOG, true).len(),
        2,
        "a new DWR, not SUSPECT"
    );
}

#[test]
fn a_reopened_connection_does_not_count_stray_dwas() {
    let mut link = Link::with_reopen(router_config(), sae_config(), true);
    link.connect();
    link.responder_to_initiator = false;
    link.responder.peer.accept(link.now());
    link.pump();
    // The CEA was lost with everything else: deliver it by hand, then three stray DWAs.
    let cea = link.responder.sent[0].clone();
    let now = link.now();
    link.initiator.receive(now, &cea.encode().unwrap());
    link.pump();
    assert_eq!(link.initiator.peer.watchdog_state(), WatchdogState::Reopen);
    let (dwr, mut stray) = dwa_to_last_dwr(&link, result::SUCCESS);
    for i in 1..=3 {
        stray.header.hop_by_hop = dwr.header.hop_by_hop.wrapping_add(i);
        link.initiator.receive(now, &stray.encode().unwrap());
    }
    assert_eq!(link.initiator.peer.watchdog_state(), WatchdogState::Reopen);
    let events = link.initiator.take_events();
    assert!(
        !watchdog_events(&events).contains(&WatchdogState::Okay),
        "{events:?}"
    );
}

#[test]
fn application_traffic_in_okay_postpones_the_dwr() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    let t0 = link.now();
    let first = link.initiator.peer.poll_timeout().expect("watchdog armed");
    assert!(first <= t0 + Duration::from_secs(32));
    // 20 s in, the SAE pushes a profile to the router.
    let t = link.clock.set(t0 + Duration::from_secs(20));
    link.responder
        .peer
        .send_request(t, ppr("mx1;10;1"))
        .unwrap();
    link.pump();
    assert_eq!(requests(link.initiator.take_events()).len(), 1);
    let postponed = link.initiator.peer.poll_timeout().unwrap();
    assert!(postponed >= t + Duration::from_secs(28), "{postponed:?}");
    // The original deadline passes without a DWR from the router ...
    let t = link.clock.set(first + Duration::from_secs(1));
    link.initiator.peer.handle_timeout(t);
    let dwrs = |link: &mut Link| {
        link.initiator
            .take_sent_messages()
            .iter()
            .filter(|m| m.is_request() && m.header.command_code == command::DEVICE_WATCHDOG)
            .count()
    };
    assert_eq!(dwrs(&mut link), 0);
    // ... which goes out at the postponed one.
    let t = link.clock.set(postponed);
    link.initiator.peer.handle_timeout(t);
    assert_eq!(dwrs(&mut link), 1);
}

#[test]
fn a_malformed_message_is_traffic_for_the_watchdog() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    let t0 = link.now();
    let first = link.responder.peer.poll_timeout().expect("watchdog armed");
    let t = link.clock.set(t0 + Duration::from_secs(20));
    // A DWR whose Result-Code AVP overruns the message: framed, not decodable; answered 5014.
    let overrun = raw::avp(
        avp::RESULT_CODE,
        AvpFlags::MANDATORY,
        None,
        &[0; 4],
        Some(99),
        true,
    );
    let mut body = raw::origin_avps();
    body.extend(overrun);
    let bytes = raw::message(1, 0x80, command::DEVICE_WATCHDOG, 0, 0x42, &body, None);
    link.responder.receive(t, &bytes);
    let [answer] = &link.responder.take_sent_messages()[..] else {
        panic!("one answer");
    };
    assert_eq!(answer.result_code(), Some(result::INVALID_AVP_LENGTH));
    let postponed = link.responder.peer.poll_timeout().unwrap();
    assert!(postponed > first, "{postponed:?} vs {first:?}");
    assert!(postponed >= t + Duration::from_secs(28), "{postponed:?}");
}

#[test]
fn a_malformed_message_brings_a_suspect_watchdog_back_to_okay() {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    link.responder_to_initiator = false;
    run_until_initiator_watchdog(&mut link, WatchdogState::Suspect);
    // An answer to nothing, with an AVP whose length overruns the message.
    let overrun = raw::avp(
        avp::RESULT_CODE,
        AvpFlags::MANDATORY,
        None,
        &[0; 4],
        Some(99),
        true,
    );
    let bytes = raw::message(1, 0, command::AA, app::JSRC, 0x43, &overrun, None);
    let now = link.now();
    link.initiator.receive(now, &bytes);
    assert_eq!(
        link.initiator.take_events(),
        vec![Event::Watchdog(WatchdogState::Okay)]
    );
}

// ---- Pending-request limit ----

#[test]
fn requests_beyond_the_pending_limit_are_refused() {
    assert_eq!(router_config().max_pending_requests, 4096, "default");
    let mut router = router_config();
    router.max_pending_requests = 3;
    let mut link = Link::new(router, sae_config());
    link.open();
    let now = link.now();
    for i in 0..3 {
        link.initiator
            .peer
            .send_request(now, aar(&format!("mx1;11;{i}"), "ned"))
            .unwrap();
    }
    let refused = link
        .initiator
        .peer
        .send_request(now, aar("mx1;11;3", "ned"));
    assert!(
        matches!(refused, Err(SendRequestError::TooManyPending { limit: 3 })),
        "{refused:?}"
    );
    assert_eq!(link.initiator.peer.pending_requests(), 3);
    link.pump();
    // One answer frees a place.
    let delivered = requests(link.responder.take_events());
    let mut aaa = Message::answer_to(&delivered[0]);
    aaa.set_result_code(result::SUCCESS);
    aaa.push(ident(avp::ORIGIN_HOST, SAE_HOST));
    aaa.push(ident(avp::ORIGIN_REALM, REALM));
    link.responder.peer.send_answer(aaa).unwrap();
    link.pump();
    assert_eq!(link.initiator.peer.pending_requests(), 2);
    link.initiator
        .peer
        .send_request(link.now(), aar("mx1;11;4", "ned"))
        .unwrap();
}

// ---- CEA checks (initiator) and CER content checks (responder) ----

/// The initiator alone, CER sent; returns it and the CER.
fn router_waiting_for_cea() -> (Endpoint, Message, std::time::Instant) {
    let mut router = Endpoint::new(router_config(), 0x3333, false);
    let now = std::time::Instant::now();
    router.peer.connected(now);
    let [cer] = &router.take_sent_messages()[..] else {
        panic!("one CER");
    };
    let cer = cer.clone();
    (router, cer, now)
}

/// A CEA 2001 to `cer` carrying `avps` after the Result-Code.
fn cea_with(cer: &Message, avps: Vec<Avp>) -> Message {
    let mut cea = Message::answer_to(cer);
    cea.set_result_code(result::SUCCESS);
    cea.avps.extend(avps);
    cea
}

fn capabilities_failure(router: &mut Endpoint) -> (u32, String) {
    assert_eq!(router.state(), PeerState::Closed);
    let events = router.take_events();
    assert!(
        !events.iter().any(|e| matches!(e, Event::Up(_))),
        "{events:?}"
    );
    match closed_with(&events) {
        Some(CloseReason::CapabilitiesFailed {
            result_code,
            message,
        }) => (*result_code, message.clone()),
        other => panic!("{other:?} in {events:?}"),
    }
}

#[test]
fn a_cea_missing_a_required_avp_fails_the_exchange() {
    for (missing, name) in [
        (avp::HOST_IP_ADDRESS, "Host-IP-Address"),
        (avp::PRODUCT_NAME, "Product-Name"),
        (avp::VENDOR_ID, "Vendor-Id"),
        (avp::ORIGIN_REALM, "Origin-Realm"),
    ] {
        let (mut router, cer, now) = router_waiting_for_cea();
        let mut avps = sae_capabilities().to_avps();
        avps.retain(|a| a.code() != missing);
        router.receive(now, &cea_with(&cer, avps).encode().unwrap());
        let (code, message) = capabilities_failure(&mut router);
        assert_eq!(code, result::MISSING_AVP, "{name}: {message}");
        assert!(message.contains(name), "{name}: {message}");
    }
    // Without Result-Code at all.
    let (mut router, cer, now) = router_waiting_for_cea();
    let mut cea = cea_with(&cer, sae_capabilities().to_avps());
    cea.avps.retain(|a| a.code() != avp::RESULT_CODE);
    router.receive(now, &cea.encode().unwrap());
    let (code, message) = capabilities_failure(&mut router);
    assert_eq!(code, result::MISSING_AVP);
    assert!(message.contains("Result-Code"), "{message}");
}

#[test]
fn a_cea_with_an_unknown_mandatory_avp_fails_the_exchange() {
    let (mut router, cer, now) = router_waiting_for_cea();
    let mut avps = sae_capabilities().to_avps();
    avps.push(Avp::vendor_mandatory(
        4242,
        vendor::JUNIPER,
        &Value::Unsigned32(1),
    ));
    router.receive(now, &cea_with(&cer, avps).encode().unwrap());
    let (code, _) = capabilities_failure(&mut router);
    assert_eq!(code, result::AVP_UNSUPPORTED);
}

/// A Vendor-Specific-Application-Id naming JSRC without a Vendor-Id.
fn vsai_without_vendor() -> Avp {
    Avp::mandatory(
        avp::VENDOR_SPECIFIC_APPLICATION_ID,
        &Value::Grouped(vec![Avp::mandatory(
            avp::AUTH_APPLICATION_ID,
            &Value::Unsigned32(app::JSRC),
        )]),
    )
}

#[test]
fn a_cea_with_a_vendor_application_without_vendor_id_fails_the_exchange() {
    let (mut router, cer, now) = router_waiting_for_cea();
    let mut avps = sae_capabilities().to_avps();
    avps.retain(|a| a.code() != avp::VENDOR_SPECIFIC_APPLICATION_ID);
    avps.push(vsai_without_vendor());
    router.receive(now, &cea_with(&cer, avps).encode().unwrap());
    let (code, message) = capabilities_failure(&mut router);
    assert_eq!(code, result::MISSING_AVP);
    assert!(message.contains("Vendor-Id"), "{message}");
}

#[test]
fn a_cea_refusal_keeps_the_peers_result_code() {
    // A terse 3010 (generic error answer, no capabilities) is reported as 3010, not as the
    // AVPs it lacks.
    let (mut router, cer, now) = router_waiting_for_cea();
    let mut cea = Message::answer_to(&cer);
    cea.set_result_code(result::UNKNOWN_PEER);
    cea.push(ident(avp::ORIGIN_HOST, SAE_HOST));
    cea.push(ident(avp::ORIGIN_REALM, REALM));
    router.receive(now, &cea.encode().unwrap());
    let (code, _) = capabilities_failure(&mut router);
    assert_eq!(code, result::UNKNOWN_PEER);
}

/// The router's CER with `edit` applied, delivered to the SAE; returns the SAE's CEA.
fn sae_answers_cer(edit: impl FnOnce(&mut Vec<Avp>)) -> (Message, Endpoint) {
    let mut sae = Endpoint::new(sae_config(), 0x4444, false);
    let now = std::time::Instant::now();
    sae.peer.connected(now);
    let mut cer = Message::request(command::CAPABILITIES_EXCHANGE, 0, false);
    cer.avps = router_capabilities().to_avps();
    edit(&mut cer.avps);
    cer.header.hop_by_hop = 0x77;
    cer.header.end_to_end = 0x88;
    sae.receive(now, &cer.encode().unwrap());
    let [cea] = &sae.take_sent_messages()[..] else {
        panic!("one CEA");
    };
    (cea.clone(), sae)
}

#[test]
fn a_cer_with_a_vendor_application_without_vendor_id_is_5005() {
    let (cea, mut sae) = sae_answers_cer(|avps| {
        avps.retain(|a| a.code() != avp::VENDOR_SPECIFIC_APPLICATION_ID);
        avps.push(vsai_without_vendor());
    });
    assert_eq!(cea.result_code(), Some(result::MISSING_AVP));
    let failed = failed_avps(&cea);
    assert_eq!(failed[0].code(), avp::VENDOR_SPECIFIC_APPLICATION_ID);
    let inner = failed[0].grouped().unwrap();
    assert_eq!(inner[0].code(), avp::VENDOR_ID);
    assert_eq!(sae.state(), PeerState::Closed);
    assert!(matches!(
        closed_with(&sae.take_events()),
        Some(CloseReason::CapabilitiesFailed {
            result_code: 5005,
            ..
        })
    ));
}

#[test]
fn a_cer_with_a_host_ip_address_that_is_not_an_ip_address_is_5004() {
    // E.164 (family 8): a valid Address, but no IP address to know the router by.
    let e164 = Avp::from_raw(
        avp::HOST_IP_ADDRESS,
        AvpFlags::mandatory(),
        None,
        bytes::Bytes::from_static(&[0, 8, b'5', b'5', b'5']),
    );
    let added = e164.clone();
    let (cea, sae) = sae_answers_cer(move |avps| avps.insert(3, added));
    assert_eq!(cea.result_code(), Some(result::INVALID_AVP_VALUE));
    assert_eq!(failed_avps(&cea), vec![e164]);
    assert_eq!(sae.state(), PeerState::Closed);
}

// ---- Identifiers and election ----

#[test]
fn end_to_end_ids_have_the_clock_in_the_high_12_bits_and_increment() {
    // Seconds 0x6553_f1a0: low 12 bits 0x1a0; random 0xabc1_2345: low 20 bits 0x12345.
    let ids = EndToEndIds::new(0x6553_f1a0, 0xabc1_2345);
    let first = ids.next();
    assert_eq!(first >> 20, 0x1a0);
    assert_eq!(first & 0xf_ffff, 0x1_2345);
    assert_eq!(first, 0x1a01_2345);
    let next: Vec<u32> = (0..1000).map(|_| ids.next()).collect();
    assert_eq!(next[0], first + 1);
    assert!(next.windows(2).all(|w| w[1] == w[0] + 1));
    // With the time given, the low 20 bits are random.
    let a = EndToEndIds::with_time(0x6553_f1a0).next();
    assert_eq!(a >> 20, 0x1a0);
}

#[test]
fn end_to_end_id_0_is_never_handed_out() {
    let zero = EndToEndIds::new(0, 0);
    assert_eq!(zero.next(), 1);
    let wrapping = EndToEndIds::new(0xfff, 0xf_ffff);
    assert_eq!(wrapping.next(), u32::MAX);
    assert_eq!(wrapping.next(), 1, "0 is skipped on wrap-around");
}

#[test]
fn default_config_does_not_start_end_to_end_ids_at_0() {
    // Two connections built from the bare defaults: neither sends End-to-End 0, and they do not
    // share a sequence starting at a fixed value.
    let first_cer = |seed| {
        let config = PeerConfig::new(Role::Initiator, router_capabilities(), dictionary());
        let mut router = Endpoint::new(config, seed, false);
        router.peer.connected(std::time::Instant::now());
        router.take_sent_messages()[0].header.end_to_end
    };
    let (a, b) = (first_cer(1), first_cer(2));
    assert_ne!(a, 0);
    assert_ne!(b, 0);
    assert_ne!(a, b, "random seeds");
}

#[test]
fn end_to_end_ids_are_unique_across_a_nodes_connections_and_kept_when_set() {
    // Two connections of one router share its generator (the configuration's Arc).
    let router = router_config();
    let mut links = [
        Link::new(router.clone(), sae_config()),
        Link::new(router, sae_config()),
    ];
    let mut seen = BTreeSet::new();
    for (n, link) in links.iter_mut().enumerate() {
        link.open();
        let now = link.now();
        for i in 0..50 {
            link.initiator
                .peer
                .send_request(now, aar(&format!("mx1;12;{n}-{i}"), "ola"))
                .unwrap();
        }
        let mut kept = aar(&format!("mx1;12;{n}-kept"), "ola");
        kept.header.end_to_end = 0x0bad_ca00 + n as u32;
        link.initiator.peer.send_request(now, kept).unwrap();
        link.pump();
        let received = requests(link.responder.take_events());
        assert_eq!(received.len(), 51);
        for r in &received {
            assert_ne!(r.header.end_to_end, 0);
            assert!(seen.insert(r.header.end_to_end), "duplicate End-to-End");
        }
    }
    assert!(seen.contains(&0x0bad_ca00) && seen.contains(&0x0bad_ca01));
}

#[test]
fn election_compares_origin_hosts_as_octet_strings() {
    assert!(election_won("sae2.example.net", "sae1.example.net"));
    assert!(!election_won("sae1.example.net", "sae2.example.net"));
    assert!(!election_won("sae1.example.net", "sae1.example.net"));
    // Octets, not case-folded text: 'a' (0x61) is above 'B' (0x42).
    assert!(election_won("a.example.net", "B.example.net"));
    // A longer host with the other as prefix is the higher.
    assert!(election_won("sae1.example.net.", "sae1.example.net"));
}

/// What a strict peer (M-bit AVPs checked against the grammar) makes of every message the SAE's
/// peer layer writes: CEA (2001 and 3010), DWA, DWR, the protocol-error answers (3001, 3007,
/// 3008, 3009, in the answer-message format of RFC 6733 section 7.2), 5xxx answers, DPR.
#[test]
fn every_message_the_responder_writes_passes_a_strict_grammar_check() {
    let dict = dictionary();
    let check = |m: &Message| {
        sae_diameter::validate::check_strict(&dict, m).unwrap_or_else(|e| panic!("{e:?} in {m:?}"));
        if m.header.flags.is_error() {
            assert!(!m.is_request());
            assert!(
                m.find(avp::AUTH_APPLICATION_ID, 0).is_none(),
                "an E-bit answer has no application AVPs: {m:?}"
            );
        }
    };

    let mut refused = sae_config();
    refused.allowed_peers = PeerFilter::Only(BTreeSet::from(["mx2.example.net".to_string()]));
    let mut link = Link::new(router_config(), refused);
    link.connect();
    let cea = only_cea(&link);
    assert_eq!(cea.result_code(), Some(result::UNKNOWN_PEER));
    check(cea);

    let mut link = Link::new(router_config(), sae_config());
    link.open();
    // Requests the peer layer refuses, written as raw bytes so that the router side's own
    // checks do not stop them.
    let mut unknown_command = aar("mx1;9;1", "gil");
    unknown_command.header.command_code = 8_388_000;
    let mut e_bit = aar("mx1;9;2", "gil");
    e_bit.header.flags = e_bit.header.flags.with(CommandFlags::ERROR, true);
    let mut not_negotiated = aar("mx1;9;3", "gil");
    not_negotiated.header.application_id = app::NASREQ;
    let m_bit_on_error_message = aar("mx1;9;4", "gil").with(Avp::mandatory(
        avp::ERROR_MESSAGE,
        &Value::Utf8String("not allowed".into()),
    ));
    let unknown_avp = aar("mx1;9;5", "gil").with(Avp::vendor_mandatory(
        4242,
        vendor::JUNIPER,
        &Value::Unsigned32(7),
    ));
    let mut expected = Vec::new();
    for (i, (mut request, code)) in [
        (unknown_command, result::COMMAND_UNSUPPORTED),
        (e_bit, result::INVALID_HDR_BITS),
        (not_negotiated, result::APPLICATION_UNSUPPORTED),
        (m_bit_on_error_message, result::INVALID_AVP_BITS),
        (unknown_avp, result::AVP_UNSUPPORTED),
    ]
    .into_iter()
    .enumerate()
    {
        request.header.hop_by_hop = 0x7000 + i as u32;
        request.header.end_to_end = 0x7000 + i as u32;
        let now = link.now();
        link.responder.receive(now, &request.encode().unwrap());
        let sent = link.responder.take_sent_messages();
        let [answer] = &sent[..] else {
            panic!("one answer to {request:?}, got {sent:?}");
        };
        assert_eq!(answer.result_code(), Some(code), "{answer:?}");
        assert_eq!(answer.header.hop_by_hop, request.header.hop_by_hop);
        expected.push(code);
    }
    // Watchdog both ways, then the SAE disconnects.
    for _ in 0..3 {
        link.fire_next_timeout();
    }
    link.responder
        .peer
        .disconnect(link.now(), DisconnectCause::Rebooting);
    link.pump();
    let sent = &link.responder.sent;
    for code in [command::CAPABILITIES_EXCHANGE, command::DISCONNECT_PEER] {
        assert!(
            sent.iter().any(|m| m.header.command_code == code),
            "command {code} written"
        );
    }
    assert!(
        sent.iter()
            .any(|m| m.header.command_code == command::DEVICE_WATCHDOG),
        "DWR or DWA written"
    );
    let codes: Vec<u32> = sent.iter().filter_map(Message::result_code).collect();
    for code in expected {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    sent.iter().for_each(check);
}
