//! The Diameter messages of the subscriber flows, built from domain values and read into them.
//! Plain functions, no I/O: what the actors send is decided here and unit-tested here. The
//! Juniper AVPs are written with the codes the node's dictionary gives them ([`JuniperCodes`]).

use std::collections::BTreeMap;

use sae_diameter::codes::{app, avp, command, result};
use sae_diameter::jsrc::{
    AcctRecord, InvalidAvp, JuniperCodes, PolicyDefinition, PolicyInstall, SubscriberMessage,
    Substitution, error_message, last_origin_host_with, policy_remove_with,
};
use sae_diameter::validate::{ErrorAnswer, Redirect};
use sae_diameter::{Avp, Message, Value};

use crate::model::{
    Attachment, LoginType, ServiceSession, SubscriberAttributes, SubscriberRecord, UsageKind,
    UsageRecord, now_ms,
};

/// Who we are on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub origin_host: String,
    pub origin_realm: String,
}

fn utf8(code: u32, s: &str) -> Avp {
    Avp::mandatory(code, &Value::Utf8String(s.to_owned()))
}

fn identity(code: u32, s: &str) -> Avp {
    Avp::mandatory(code, &Value::DiameterIdentity(s.to_owned()))
}

fn unsigned(code: u32, v: u32) -> Avp {
    Avp::mandatory(code, &Value::Unsigned32(v))
}

fn enumerated(code: u32, v: i32) -> Avp {
    Avp::mandatory(code, &Value::Enumerated(v))
}

/// The Juniper-Policy-Install for a service.
pub fn policy_install(s: &ServiceSession) -> PolicyInstall {
    let definition = (!s.template_name.is_empty()).then(|| PolicyDefinition {
        policy_name: s.policy_name.clone(),
        template_name: s.template_name.clone(),
        substitutions: s
            .substitutions
            .iter()
            .map(|(name, value)| Substitution {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    });
    PolicyInstall {
        policy_name: s.policy_name.clone(),
        definition,
        collect_accounting: s.accounting,
    }
}

/// A service session rebuilt from a policy the router reports it holds (synchronization).
pub fn service_from_install(p: &PolicyInstall, service: &str) -> ServiceSession {
    let (template_name, substitutions) = match &p.definition {
        Some(d) => (
            d.template_name.clone(),
            d.substitutions
                .iter()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect(),
        ),
        None => (String::new(), BTreeMap::new()),
    };
    ServiceSession {
        service: service.to_owned(),
        policy_name: p.policy_name.clone(),
        template_name,
        substitutions,
        accounting: p.collect_accounting,
        state: crate::model::ServiceState::Active,
        result_code: result::SUCCESS,
        error: String::new(),
        activated_ms: now_ms(),
    }
}

/// An answer to `request` with a Result-Code and our origin. A protocol error (3xxx, E bit)
/// has the generic answer-message format of RFC 6733 section 7.2 ([`ErrorAnswer`]); any other
/// answer echoes what its command's answer rules require of the request: Auth-Application-Id
/// for AAA and SRR, Accounting-Record-Type and -Number for ACA.
pub fn answer(request: &Message, local: &Local, code: u32) -> Message {
    refusal(request, local, code, "")
}

/// [`answer`] with an Error-Message (none when `message` is empty).
pub fn refusal(request: &Message, local: &Local, code: u32, message: &str) -> Message {
    if result::is_protocol_error(code) {
        return ErrorAnswer::new(code, message).to_request(
            request,
            &local.origin_host,
            &local.origin_realm,
        );
    }
    let mut a = Message::answer_to(request);
    let cmd = request.header.command_code;
    if matches!(cmd, command::AA | command::SESSION_RESYNC)
        && let Some(id) = request.find(avp::AUTH_APPLICATION_ID, 0)
    {
        a.push(id.clone());
    }
    a.set_result_code(code);
    a.push_origin(&local.origin_host, &local.origin_realm);
    if cmd == command::ACCOUNTING {
        for code in [avp::ACCOUNTING_RECORD_TYPE, avp::ACCOUNTING_RECORD_NUMBER] {
            match request.find(code, 0) {
                Some(v) => a.push(v.clone()),
                // Both are required in an ACA; an ACR without them never passes validation,
                // but an answer must still be well formed.
                None => a.push(unsigned(code, 0)),
            }
        }
    }
    if !message.is_empty() {
        a.push(error_message(message));
    }
    a
}

/// 5004 DIAMETER_INVALID_AVP_VALUE for a Juniper-Policy-Install that cannot be read (a
/// replay AAR), with that AVP in Failed-AVP as RFC 6733 section 7.1.5 asks.
pub fn bad_policy_install(
    request: &Message,
    local: &Local,
    codes: &JuniperCodes,
    error: &impl std::fmt::Display,
) -> Message {
    let mut a = refusal(
        request,
        local,
        result::INVALID_AVP_VALUE,
        &format!("Juniper-Policy-Install: {error}"),
    );
    if let Some(bad) = request
        .find_all(codes.policy_install, sae_diameter::codes::vendor::JUNIPER)
        .find(|p| PolicyInstall::from_avp_with(p, codes).is_err())
    {
        a.push(Avp::mandatory(
            avp::FAILED_AVP,
            &Value::Grouped(vec![bad.clone()]),
        ));
    }
    a
}

/// What a login AAR tells about the subscriber beside its identity (seed 003, Table 4). A
/// malformed IPv6 prefix is refused (the caller answers 5004 naming it).
pub fn login_attributes<'a>(
    request: &'a Message,
    codes: &JuniperCodes,
) -> Result<SubscriberAttributes, InvalidAvp<'a>> {
    let text = |prefixes: Vec<sae_diameter::Ipv6Prefix>| {
        prefixes.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    let classes: Vec<String> = request
        .classes()
        .into_iter()
        .map(|c| match std::str::from_utf8(c) {
            Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
            _ => crate::model::hex_bytes::format(c),
        })
        .collect();
    let port_id = request.nas_port_id().map(str::to_owned);
    Ok(SubscriberAttributes {
        login_type: LoginType::of_router_login(
            request.dhcp_options_with(codes).is_some(),
            request.user_name().is_some(),
        ),
        framed_ipv6_prefixes: text(request.framed_ipv6_prefixes()?),
        delegated_ipv6_prefixes: text(request.delegated_ipv6_prefixes()?),
        nas_ip: request.nas_ip_address(),
        mac_address: request.calling_station_id().map(str::to_owned),
        radius_class: (!classes.is_empty()).then(|| classes.join(",")),
        interface_name: port_id
            .as_deref()
            .map(|p| p.split_once(':').map_or(p, |(intf, _)| intf).to_owned()),
        port_id,
        primary_user_name: request.user_name().map(str::to_owned),
        ..SubscriberAttributes::default()
    })
}

/// 5004 DIAMETER_INVALID_AVP_VALUE naming the AVP a reader refused.
pub fn invalid_avp(request: &Message, local: &Local, bad: &InvalidAvp<'_>) -> Message {
    let mut a = refusal(
        request,
        local,
        result::INVALID_AVP_VALUE,
        &format!("AVP {}: {}", bad.avp.code(), bad.error),
    );
    a.push(Avp::mandatory(
        avp::FAILED_AVP,
        &Value::Grouped(vec![bad.avp.clone()]),
    ));
    a
}

/// 3006 DIAMETER_REDIRECT_INDICATION: another SAE (`owner_uri`, a DiameterURI such as
/// `aaa://sae-2.example.net:3868`) serves this router. The answer-message of RFC 6733 section
/// 7.2 with Redirect-Host (section 6.13) and no caching policy: ownership moves within seconds
/// on a failover, so the router is asked to cache nothing (Redirect-Host-Usage DONT_CACHE, the
/// default, not sent).
pub fn redirect(request: &Message, local: &Local, owner_uri: &str) -> Message {
    let to = Redirect {
        hosts: vec![owner_uri.to_owned()],
        cache: None,
    };
    ErrorAnswer::redirect(to, "another SAE serves this router").to_request(
        request,
        &local.origin_host,
        &local.origin_realm,
    )
}

/// AAA for an accepted login: 2001 with a Juniper-Policy-Install per service.
pub fn login_answer(
    request: &Message,
    local: &Local,
    codes: &JuniperCodes,
    services: &[ServiceSession],
) -> Message {
    let mut a = answer(request, local, result::SUCCESS);
    if let Some(u) = request.find(avp::USER_NAME, 0) {
        a.push(u.clone());
    }
    for s in services {
        a.push(policy_install(s).to_avp_with(codes));
    }
    a
}

/// ACA for the router's accounting request: [`answer`], which echoes Accounting-Record-Type
/// and -Number.
pub fn accounting_answer(request: &Message, local: &Local, code: u32) -> Message {
    answer(request, local, code)
}

/// The realm and application a Diameter session runs under (none for another attachment).
fn attached(record: &SubscriberRecord) -> (&str, u32) {
    match &record.attachment {
        Attachment::Diameter {
            realm,
            application_id,
        } => (realm, *application_id),
        Attachment::Cops { .. } => ("", 0),
    }
}

fn session_request(cmd: u32, record: &SubscriberRecord) -> Message {
    let mut m = Message::request(cmd, attached(record).1, true);
    m.push(utf8(avp::SESSION_ID, &record.session_id));
    m
}

fn push_destination(m: &mut Message, local: &Local, record: &SubscriberRecord) {
    m.push_origin(&local.origin_host, &local.origin_realm);
    m.push(identity(avp::DESTINATION_REALM, attached(record).0));
    m.push(identity(avp::DESTINATION_HOST, &record.router));
}

/// PPR installing and removing policies of one session.
pub fn push_profile(
    record: &SubscriberRecord,
    local: &Local,
    codes: &JuniperCodes,
    install: &[&ServiceSession],
    remove: &[&str],
) -> Message {
    let mut m = session_request(command::PUSH_PROFILE, record);
    m.push(unsigned(avp::AUTH_APPLICATION_ID, attached(record).1));
    push_destination(&mut m, local, record);
    if let Some(u) = &record.user_name {
        m.push(utf8(avp::USER_NAME, u));
    }
    for s in install {
        m.push(policy_install(s).to_avp_with(codes));
    }
    for p in remove {
        m.push(policy_remove_with(p, codes));
    }
    m
}

/// ASR: the operator logs the subscriber out.
pub fn abort_session(record: &SubscriberRecord, local: &Local) -> Message {
    let mut m = session_request(command::ABORT_SESSION, record);
    push_destination(&mut m, local, record);
    m.push(unsigned(avp::AUTH_APPLICATION_ID, attached(record).1));
    if let Some(u) = &record.user_name {
        m.push(utf8(avp::USER_NAME, u));
    }
    m
}

/// ACR from the SAE asking the router for the statistics of the session's accounted policies
/// (Accounting-Record-Type EVENT).
pub fn collect_usage(
    record: &SubscriberRecord,
    local: &Local,
    codes: &JuniperCodes,
    number: u32,
) -> Message {
    let mut m = session_request(command::ACCOUNTING, record);
    push_destination(&mut m, local, record);
    m.push(enumerated(avp::ACCOUNTING_RECORD_TYPE, 1));
    m.push(unsigned(avp::ACCOUNTING_RECORD_NUMBER, number));
    // RFC 6733 section 9.7.1: an ACR names its application with Acct-Application-Id.
    m.push(unsigned(avp::ACCT_APPLICATION_ID, attached(record).1));
    if let Some(u) = &record.user_name {
        m.push(utf8(avp::USER_NAME, u));
    }
    for s in record.services.iter().filter(|s| s.accounting) {
        m.push(
            AcctRecord {
                policy_name: s.policy_name.clone(),
                ..Default::default()
            }
            .to_avp_with(codes),
        );
    }
    m
}

/// SRQ to a router: replay your sessions.
pub fn session_resync_with(
    local: &Local,
    codes: &JuniperCodes,
    router: &str,
    router_realm: &str,
    application_id: u32,
) -> Message {
    let mut m = Message::request(command::SESSION_RESYNC, application_id, false);
    m.push_origin(&local.origin_host, &local.origin_realm);
    m.push(identity(avp::DESTINATION_REALM, router_realm));
    m.push(identity(avp::DESTINATION_HOST, router));
    m.push(unsigned(avp::AUTH_APPLICATION_ID, application_id));
    m.push(last_origin_host_with(&local.origin_host, codes));
    m
}

/// The application a router's sessions run under when it announced several: JSRC first.
pub fn preferred_application(applications: &[u32]) -> u32 {
    if applications.contains(&app::JSRC) || applications.is_empty() {
        app::JSRC
    } else {
        applications[0]
    }
}

/// Usage records from the Juniper-Acct-Record AVPs of a message.
pub fn usage_records(
    records: &[AcctRecord],
    record: &SubscriberRecord,
    kind: UsageKind,
    number: u32,
) -> Vec<UsageRecord> {
    let time_ms = now_ms();
    records
        .iter()
        .map(|r| UsageRecord {
            id: 0,
            session_id: record.session_id.clone(),
            user_name: record.user_name.clone(),
            router: record.router.clone(),
            policy_name: r.policy_name.clone(),
            kind,
            record_number: number,
            input_octets: r.input_octets.unwrap_or(0),
            output_octets: r.output_octets.unwrap_or(0),
            input_packets: r.input_packets.unwrap_or(0),
            output_packets: r.output_packets.unwrap_or(0),
            time_ms,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ServiceState, SessionState};
    use sae_diameter::jsrc::SubscriberMessage;

    fn local() -> Local {
        Local {
            origin_host: "sae-1.example".into(),
            origin_realm: "example".into(),
        }
    }

    fn service(accounting: bool) -> ServiceSession {
        ServiceSession {
            service: "gold".into(),
            policy_name: "gold-policy".into(),
            template_name: "rate".into(),
            substitutions: [("rate".to_string(), "100m".to_string())].into(),
            accounting,
            state: ServiceState::Installing,
            result_code: 0,
            error: String::new(),
            activated_ms: 0,
        }
    }

    fn record() -> SubscriberRecord {
        SubscriberRecord {
            session_id: "r1;1;2;3".into(),
            router: "r1.example".into(),
            attachment: Attachment::Diameter {
                realm: "example".into(),
                application_id: app::JSRC,
            },
            user_name: Some("alice@example".into()),
            framed_ip: None,
            nas_port_id: None,
            login_ms: 0,
            confirmed: false,
            state: SessionState::Active,
            services: vec![service(true)],
            attributes: Default::default(),
        }
    }

    fn round_trip(m: Message) -> Message {
        Message::decode(m.encode().unwrap()).unwrap()
    }

    #[test]
    fn login_answer_carries_a_policy_install_per_service() {
        let aar = Message::request(command::AA, app::JSRC, true)
            .with(utf8(avp::SESSION_ID, "r1;1;2;3"))
            .with(unsigned(avp::AUTH_APPLICATION_ID, app::JSRC))
            .with(utf8(avp::USER_NAME, "alice"));
        let aaa = round_trip(login_answer(
            &aar,
            &local(),
            &JuniperCodes::DEFAULT,
            &[service(true)],
        ));
        assert_eq!(aaa.result_code(), Some(2001));
        assert_eq!(aaa.session_id(), Some("r1;1;2;3"));
        let p = aaa.policy_installs().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].policy_name, "gold-policy");
        assert!(p[0].collect_accounting);
        let d = p[0].definition.as_ref().unwrap();
        assert_eq!(d.template_name, "rate");
        assert_eq!(d.substitutions[0].value, "100m");
        assert_eq!(
            service_from_install(&p[0], "gold").substitutions,
            service(true).substitutions
        );
    }

    #[test]
    fn push_profile_names_the_router_and_the_policies() {
        let rec = record();
        let s = service(false);
        let ppr = round_trip(push_profile(
            &rec,
            &local(),
            &JuniperCodes::DEFAULT,
            &[&s],
            &["old"],
        ));
        assert!(ppr.is_request());
        assert_eq!(ppr.header.application_id, app::JSRC);
        assert_eq!(
            ppr.find(avp::DESTINATION_HOST, 0)
                .unwrap()
                .as_str()
                .unwrap(),
            "r1.example"
        );
        assert_eq!(ppr.policy_installs().unwrap()[0].policy_name, "gold-policy");
        assert_eq!(ppr.policy_removes().unwrap(), vec!["old".to_string()]);
    }

    #[test]
    fn collect_usage_asks_for_accounted_policies_only() {
        let mut rec = record();
        rec.services.push(ServiceSession {
            policy_name: "no-acct".into(),
            ..service(false)
        });
        let acr = round_trip(collect_usage(&rec, &local(), &JuniperCodes::DEFAULT, 7));
        let asked = acr.acct_records().unwrap();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].policy_name, "gold-policy");
        assert_eq!(acr.accounting_record_type(), Some(1));
    }

    #[test]
    fn accounting_answer_echoes_type_and_number() {
        let acr = Message::request(command::ACCOUNTING, app::JSRC, true)
            .with(utf8(avp::SESSION_ID, "s"))
            .with(enumerated(avp::ACCOUNTING_RECORD_TYPE, 3))
            .with(unsigned(avp::ACCOUNTING_RECORD_NUMBER, 4));
        let aca = round_trip(accounting_answer(&acr, &local(), 2001));
        assert_eq!(aca.accounting_record_type(), Some(3));
        assert_eq!(
            aca.find(avp::ACCOUNTING_RECORD_NUMBER, 0)
                .unwrap()
                .as_u32()
                .unwrap(),
            4
        );
    }

    #[test]
    fn resync_request_carries_our_last_origin_host() {
        let srq = round_trip(session_resync_with(
            &local(),
            &JuniperCodes::DEFAULT,
            "r1.example",
            "example",
            app::PTSP,
        ));
        assert_eq!(srq.last_origin_host(), Some("sae-1.example"));
        assert_eq!(srq.header.application_id, app::PTSP);
        assert_eq!(preferred_application(&[app::PTSP, app::JSRC]), app::JSRC);
        assert_eq!(preferred_application(&[app::PTSP]), app::PTSP);
    }

    /// Router requests of every command the node answers, as a router sends them.
    fn router_requests() -> Vec<Message> {
        let dest = |m: Message| {
            m.with(identity(avp::ORIGIN_HOST, "r1.example"))
                .with(identity(avp::ORIGIN_REALM, "example"))
                .with(identity(avp::DESTINATION_REALM, "example"))
        };
        let sid = || utf8(avp::SESSION_ID, "r1;1;2;3");
        let app = || unsigned(avp::AUTH_APPLICATION_ID, app::JSRC);
        vec![
            dest(
                Message::request(command::AA, app::JSRC, true)
                    .with(sid())
                    .with(app()),
            )
            .with(utf8(avp::USER_NAME, "alice")),
            dest(Message::request(command::SESSION_TERMINATION, app::JSRC, true).with(sid()))
                .with(app())
                .with(enumerated(avp::TERMINATION_CAUSE, 1)),
            dest(Message::request(command::ACCOUNTING, app::JSRC, true).with(sid()))
                .with(enumerated(avp::ACCOUNTING_RECORD_TYPE, 3))
                .with(unsigned(avp::ACCOUNTING_RECORD_NUMBER, 4)),
            dest(Message::request(command::SESSION_RESYNC, app::JSRC, false))
                .with(app())
                .with(last_origin_host_with(
                    "sae-0.example",
                    &JuniperCodes::DEFAULT,
                )),
            // Commands a router must not send (the node answers 3001).
            dest(Message::request(command::PUSH_PROFILE, app::JSRC, true).with(sid()))
                .with(app())
                .with(identity(avp::DESTINATION_HOST, "sae-1.example")),
            dest(Message::request(command::ABORT_SESSION, app::JSRC, true).with(sid()))
                .with(identity(avp::DESTINATION_HOST, "sae-1.example"))
                .with(app()),
        ]
    }

    #[test]
    fn every_protocol_error_answer_is_an_answer_message() {
        let dict = sae_diameter::Dictionary::base();
        for request in router_requests() {
            sae_diameter::validate::validate_request(
                &dict,
                &request,
                &sae_diameter::Limits::default(),
            )
            .unwrap_or_else(|e| panic!("sample request invalid: {e:?}"));
            let answers = [
                redirect(&request, &local(), "aaa://sae-2.example:3868"),
                refusal(&request, &local(), result::TOO_BUSY, "nobody serves it yet"),
                refusal(
                    &request,
                    &local(),
                    result::COMMAND_UNSUPPORTED,
                    "not from a router",
                ),
                answer(&request, &local(), result::UNABLE_TO_DELIVER),
                accounting_answer(&request, &local(), result::TOO_BUSY),
            ];
            for a in answers {
                let a = round_trip(a);
                let what = format!(
                    "answer {} to command {}",
                    a.result_code().unwrap(),
                    request.header.command_code
                );
                assert!(a.header.flags.is_error(), "{what}: E bit");
                assert_eq!(
                    a.header.flags.is_proxiable(),
                    request.header.flags.is_proxiable(),
                    "{what}: P bit kept"
                );
                assert_eq!(
                    a.header.application_id, request.header.application_id,
                    "{what}"
                );
                sae_diameter::validate::check_strict(&dict, &a)
                    .unwrap_or_else(|e| panic!("{what}: {e:?}\n{a:?}"));
                for not_allowed in [
                    avp::AUTH_APPLICATION_ID,
                    avp::ACCOUNTING_RECORD_TYPE,
                    avp::ACCOUNTING_RECORD_NUMBER,
                    avp::USER_NAME,
                ] {
                    assert!(
                        a.find(not_allowed, 0).is_none(),
                        "{what}: AVP {not_allowed}"
                    );
                }
                assert_eq!(a.session_id(), request.session_id(), "{what}");
            }
            let r = round_trip(redirect(&request, &local(), "aaa://sae-2.example:3868"));
            assert_eq!(r.redirect_hosts(), vec!["aaa://sae-2.example:3868"]);
        }
    }

    #[test]
    fn other_answers_follow_their_command_grammar() {
        let dict = sae_diameter::Dictionary::base();
        for request in router_requests().into_iter().take(4) {
            let cmd = request.header.command_code;
            let a = if cmd == command::ACCOUNTING {
                accounting_answer(&request, &local(), result::SUCCESS)
            } else {
                answer(&request, &local(), result::SUCCESS)
            };
            sae_diameter::validate::check_strict(&dict, &round_trip(a))
                .unwrap_or_else(|e| panic!("answer to {cmd}: {e:?}"));
            let refused = refusal(&request, &local(), result::UNABLE_TO_COMPLY, "no");
            sae_diameter::validate::check_strict(&dict, &round_trip(refused))
                .unwrap_or_else(|e| panic!("5012 to {cmd}: {e:?}"));
        }
    }

    #[test]
    fn every_request_the_node_originates_follows_its_grammar() {
        let dict = sae_diameter::Dictionary::base();
        let rec = record();
        let s = service(true);
        let codes = JuniperCodes::DEFAULT;
        let requests = [
            session_resync_with(&local(), &codes, "r1.example", "example", app::JSRC),
            session_resync_with(&local(), &codes, "r1.example", "example", app::PTSP),
            push_profile(&rec, &local(), &codes, &[&s], &["old"]),
            abort_session(&rec, &local()),
            collect_usage(&rec, &local(), &codes, 7),
        ];
        for r in requests {
            let r = round_trip(r);
            sae_diameter::validate::check_strict(&dict, &r)
                .unwrap_or_else(|e| panic!("request {}: {e:?}\n{r:?}", r.header.command_code));
        }
        // The ACR names its application as an accounting message does (RFC 6733 9.7.1).
        let acr = collect_usage(&rec, &local(), &codes, 7);
        assert!(acr.find(avp::AUTH_APPLICATION_ID, 0).is_none());
        assert_eq!(
            acr.find(avp::ACCT_APPLICATION_ID, 0)
                .unwrap()
                .as_u32()
                .unwrap(),
            app::JSRC
        );
    }

    #[test]
    fn an_unreadable_policy_install_is_5004_with_failed_avp() {
        let bad = Avp::from_raw(
            2020,
            sae_diameter::AvpFlags::from_bits(0xC0),
            Some(sae_diameter::codes::vendor::JUNIPER),
            bytes::Bytes::from_static(b"not grouped"),
        );
        let replay = router_requests()[0].clone().with(bad.clone());
        let codes = JuniperCodes::DEFAULT;
        let e = replay.policy_installs_with(&codes).unwrap_err();
        let a = round_trip(bad_policy_install(&replay, &local(), &codes, &e));
        assert_eq!(a.result_code(), Some(result::INVALID_AVP_VALUE));
        let failed = a.find(avp::FAILED_AVP, 0).unwrap().grouped().unwrap();
        assert_eq!(failed, vec![bad]);
        sae_diameter::validate::check_strict(&sae_diameter::Dictionary::base(), &a).unwrap();
    }

    /// The Juniper codes of an operator's dictionary: the project's own AVPs moved.
    fn moved() -> JuniperCodes {
        JuniperCodes {
            template_name: 3023,
            substitution: 3024,
            substitution_name: 3025,
            substitution_value: 3026,
            policy_remove: 3027,
            acct_record: 3053,
            last_origin_host: 3055,
            ..JuniperCodes::DEFAULT
        }
    }

    #[test]
    fn the_builders_write_the_codes_they_are_given() {
        let codes = moved();
        let aar = Message::request(command::AA, app::JSRC, true)
            .with(utf8(avp::SESSION_ID, "r1;1;2;3"))
            .with(utf8(avp::USER_NAME, "alice"));
        let aaa = round_trip(login_answer(&aar, &local(), &codes, &[service(true)]));
        let p = aaa.policy_installs_with(&codes).unwrap();
        assert_eq!(p, vec![policy_install(&service(true))]);
        assert!(
            aaa.policy_installs().is_err(),
            "read with the default codes"
        );

        let rec = record();
        let s = service(false);
        let ppr = round_trip(push_profile(&rec, &local(), &codes, &[&s], &["old"]));
        assert_eq!(
            ppr.policy_installs_with(&codes).unwrap()[0]
                .definition
                .as_ref()
                .unwrap()
                .template_name,
            "rate"
        );
        assert_eq!(ppr.policy_removes_with(&codes).unwrap(), vec!["old"]);
        assert!(ppr.policy_removes().unwrap().is_empty());

        let acr = round_trip(collect_usage(&rec, &local(), &codes, 7));
        assert_eq!(acr.acct_records_with(&codes).unwrap().len(), 1);
        assert!(acr.acct_records().unwrap().is_empty());

        let srq = round_trip(session_resync_with(
            &local(),
            &codes,
            "r1.example",
            "example",
            app::JSRC,
        ));
        assert_eq!(srq.last_origin_host_with(&codes), Some("sae-1.example"));
        assert_eq!(srq.last_origin_host(), None);
    }
}
