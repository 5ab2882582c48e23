//! tshark's COPS dissector against the COPS and COPS-PR bytes the code emits (being written).
//!
//! Every message type the SAE sends or receives as a COPS PDP is built with `sae-cops`: the
//! COPS-PR subscriber-provisioning exchange (client type 0x800B: OPN, CAT, SSQ, REQ with PRID/EPD
//! and LPDP decisions, DEC install/remove, RPT success/failure/accounting with RFC 3483 usage,
//! DRQ, SSC, KA, CC with and without redirect) and SBC call admission (client types 0x800A,
//! 0x7926, 0x7929), with the project's PIB classes (`sae_cops::pib`, `sae_cops::usage`) plus a
//! test-only class holding every EPD value type. The messages become one pcap via text2pcap
//! (PEP 127.0.0.1:40000 ⇄ PDP 127.0.0.2:3288, one packet per message, each in the direction it
//! travels), and tshark must find nothing malformed, no warning, and every field we put in:
//! op-code, client type, each object's C-Num/C-Type/length and content, each COPS-PR
//! sub-object and the OIDs and values of every PRID, PPRID, ErrorPRID and EPD. A second test
//! sends the same exchange over a real loopback TCP connection under a live capture.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use sae_cops::pib::{self, CallRequest, PolicyInstance, PolicySubstitution, SubscriberInterface};
use sae_cops::pr::{
    self, ClassReport, Cperr, CperrCode, Epd, EpdValue, Gperr, GperrCode, InstallDecision,
    OutcomeReport, PrInstance, PrObject, Prid, RemoveDecision, RemoveTarget, RequestClientSi,
};
use sae_cops::usage::{
    self, ActionKind, FeedbackAction, Linkage, SelUsageCombo, SelectionCriteria, Threshold,
    TrafficUsage, UsageClass,
};
use sae_cops::{
    Body, ClientAccept, ClientClose, ClientOpen, ClientSi, Command as Cmd, Context, Decision,
    DecisionContent, DecisionFlags, DecisionMessage, DeleteRequest, ErrorCode, ErrorObject, Frame,
    FrameDecoder, Handle, Interface, KeyTable, Limits, LpdpDecision, Message, Object, PdpAddress,
    RType, Reason, ReasonCode, Report, ReportType, Request, Signer, Verifier,
};

use crate::support::{LiveCapture, od_hexdump, require_tshark, run_ok, tshark_findings};

/// The COPS-PR subscriber-provisioning client type (Juniper Networks, registered).
const PR_CLIENT: u16 = 0x800b;
/// SBC call admission: PacketCable Multimedia, Acme Packet proprietary, Oracle CLF.
const SBC_CLIENTS: [u16; 3] = [0x800a, 0x7926, 0x7929];
const PEP_PORT: u16 = 40000;
const PDP_PORT: u16 = sae_cops::message::PORT;

/// **Test-only** class under IANA's documentation enterprise 32473 (RFC 5612), beside the
/// project's PIB: one attribute of every SMIv2/SPPI value type the codec encodes, and a filter
/// class an OID attribute points to.
const VALUE_TYPES_ENTRY: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 3084, 1, 2, 1];
const FILTER_ENTRY: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 3084, 1, 3, 1];

/// Which way a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    PepToPdp,
    PdpToPep,
}

/// One message on the wire, with the COPS-PR sub-objects of each of its named data objects
/// (Named ClientSI, Named Decision Data), in wire order, taken from the values we encoded, not
/// from decoding our bytes.
#[derive(Debug, Clone)]
struct Sent {
    dir: Dir,
    what: String,
    msg: Message,
    pr: Vec<Vec<PrObject>>,
    bytes: Bytes,
}

fn prid(arcs: &[u32]) -> Prid {
    Prid::new(arcs).expect("valid OID")
}

fn instance(prc: &[u32], id: u32, epd: Vec<EpdValue>) -> PrInstance {
    PrInstance {
        prid: Prid::instance_of(&prid(prc), id).expect("valid PRID"),
        epd: Epd(epd),
    }
}

/// `*(<PRID> <EPD>)` as sub-objects.
fn pairs(instances: &[PrInstance]) -> Vec<PrObject> {
    instances
        .iter()
        .flat_map(|i| [PrObject::Prid(i.prid.clone()), PrObject::Epd(i.epd.clone())])
        .collect()
}

/// The PDP's Integrity key.
const KEY_ID: u32 = 7;

fn shared_keys() -> KeyTable {
    KeyTable::new().with(KEY_ID, &b"cops-shared-key"[..])
}

fn handle(n: u32) -> Handle {
    Handle::from_u32(n)
}

fn addr(s: &str) -> IpAddr {
    s.parse().expect("IP address")
}

/// Builds the messages of the exchange, in order.
#[derive(Default)]
struct Exchange {
    sent: Vec<Sent>,
}

impl Exchange {
    fn push(&mut self, dir: Dir, what: &str, msg: Message, pr: Vec<Vec<PrObject>>) {
        let bytes = msg
            .encode()
            .unwrap_or_else(|e| panic!("{what}: encode: {e}"));
        self.push_bytes(dir, what, msg, pr, bytes);
    }

    fn push_bytes(&mut self, dir: Dir, what: &str, msg: Message, pr: Vec<Vec<PrObject>>, b: Bytes) {
        assert_eq!(
            Message::decode(b.clone()).as_ref(),
            Ok(&msg),
            "{what}: our own decoder disagrees"
        );
        self.sent.push(Sent {
            dir,
            what: what.to_owned(),
            msg,
            pr,
            bytes: b,
        });
    }
}

/// The subscriber interfaces the PEP asks to provision (the project's PIB).
fn subscriber_interfaces() -> Vec<SubscriberInterface> {
    vec![
        SubscriberInterface {
            id: 1,
            if_name: "fastEthernet 3/0.100".into(),
            address: [10, 0, 0, 1],
            login_name: "alice@isp.example".into(),
            virtual_router: "default@erx1".into(),
        },
        SubscriberInterface {
            id: 2,
            if_name: "ge-1/0/0.200".into(),
            address: [0, 0, 0, 0],
            login_name: String::new(),
            virtual_router: String::new(),
        },
    ]
}

fn subscriber_interface_prid(id: u32) -> Prid {
    Prid::instance_of(&prid(pib::SUBSCRIBER_INTERFACE_ENTRY), id).unwrap()
}

/// The subscriber's policies (the project's PIB).
fn policies() -> Vec<PrInstance> {
    vec![
        PolicyInstance {
            id: 1,
            interface: 1,
            policy_name: "gold-100m".into(),
            template_name: "rate-limit".into(),
            accounting: true,
        }
        .to_instance()
        .unwrap(),
        PolicySubstitution {
            id: 1,
            policy: 1,
            name: "rate".into(),
            value: "100m".into(),
        }
        .to_instance()
        .unwrap(),
        PolicyInstance {
            id: 2,
            interface: 1,
            policy_name: "parental-control".into(),
            template_name: String::new(),
            accounting: false,
        }
        .to_instance()
        .unwrap(),
    ]
}

/// One instance with every SMIv2/SPPI value type, and a filter instance.
fn value_type_instances() -> Vec<PrInstance> {
    vec![
        instance(
            VALUE_TYPES_ENTRY,
            10,
            vec![
                EpdValue::Integer32(i32::MIN),
                EpdValue::Integer32(i32::MAX),
                EpdValue::OctetString(Bytes::from_static(b"gold")),
                EpdValue::Oid(prid(FILTER_ENTRY)),
                EpdValue::IpAddress([192, 0, 2, 10]),
                EpdValue::Counter32(4_000_000_000),
                EpdValue::Unsigned32(u32::MAX),
                EpdValue::TimeTicks(360_000),
                EpdValue::Opaque(Bytes::from_static(&[0xca, 0xfe])),
                EpdValue::Counter64(u64::MAX),
                EpdValue::Integer64(i64::MIN),
                EpdValue::Unsigned64(1 << 40),
                EpdValue::Null,
            ],
        ),
        instance(
            FILTER_ENTRY,
            11,
            vec![
                EpdValue::Unsigned32(11),
                EpdValue::IpAddress([0, 0, 0, 0]),
                EpdValue::Unsigned32(0),
                EpdValue::Integer32(6),
            ],
        ),
    ]
}

/// The RFC 3483 usage policy the PDP installs: selection, threshold, linkage.
fn usage_policy() -> Vec<PrInstance> {
    let selection = SelectionCriteria {
        id: 1,
        target: subscriber_interface_prid(1),
        all_instances: false,
    };
    let threshold = Threshold {
        id: 1,
        packets: None,
        octets: Some(10_000_000),
    };
    let linkage = Linkage {
        id: 1,
        selection: selection.prid().unwrap(),
        usage_prc: prid(usage::TRAFFIC_USAGE_ENTRY),
        interval_count: 2,
        threshold: Some(threshold.prid().unwrap()),
        report_on_change: true,
        clear_on_report: false,
    };
    vec![
        selection.to_instance().unwrap(),
        threshold.to_instance().unwrap(),
        linkage.to_instance().unwrap(),
    ]
}

fn linkage_prid() -> Prid {
    Prid::instance_of(&prid(usage::LINKAGE_ENTRY), 1).unwrap()
}

/// A call as the SBC asks to admit it (the project's PIB: call id, realm, media streams,
/// bandwidth), in the REQ's named ClientSI.
fn call_request(client_type: u16, id: u32) -> PrInstance {
    CallRequest {
        id,
        call_id: format!("call-{client_type:04x}-{id}@sbc.example"),
        realm: if id.is_multiple_of(2) {
            "voice.example".into()
        } else {
            String::new()
        },
        media_streams: 2,
        bandwidth_kbps: 174,
    }
    .to_instance()
    .unwrap()
}

fn named_si(data: Result<Bytes, pr::PrEncodeError>) -> ClientSi {
    ClientSi::Named(data.expect("COPS-PR encoding"))
}

/// Every message of the exchange.
fn every_message() -> Vec<Sent> {
    use Dir::*;
    let mut x = Exchange::default();
    let v4_pdp = PdpAddress {
        address: addr("192.0.2.1"),
        port: PDP_PORT,
    };
    let v6_pdp = PdpAddress {
        address: addr("2001:db8::1"),
        port: PDP_PORT,
    };

    // --- COPS-PR subscriber provisioning (0x800B) ---------------------------------------------
    let combo = SelUsageCombo {
        id: 1,
        selection_prc: prid(pib::SUBSCRIBER_INTERFACE_ENTRY),
        usage_prc: prid(usage::TRAFFIC_USAGE_ENTRY),
    }
    .to_instance()
    .unwrap();
    let caps = RequestClientSi(vec![combo]);
    x.push(
        PepToPdp,
        "OPN with PEPID, COPS-PR ClientSI, Last-PDP-Addr IPv4",
        Message::new(
            PR_CLIENT,
            Body::ClientOpen(ClientOpen {
                pep_id: "erx-1.example".into(),
                client_si: Some(named_si(pr::encode_request_client_si(&caps))),
                last_pdp_addr: Some(v4_pdp),
            }),
        ),
        vec![pairs(&caps.0)],
    );
    x.push(
        PdpToPep,
        "CC redirect to the active PDP (IPv4)",
        Message::new(
            PR_CLIENT,
            Body::ClientClose(ClientClose {
                error: ErrorObject::new(ErrorCode::RedirectToPreferredServer),
                redirect: Some(v4_pdp),
            }),
        ),
        vec![],
    );
    x.push(
        PepToPdp,
        "OPN again, Last-PDP-Addr IPv6",
        Message::new(
            PR_CLIENT,
            Body::ClientOpen(ClientOpen {
                pep_id: "erx-1.example".into(),
                client_si: None,
                last_pdp_addr: Some(v6_pdp),
            }),
        ),
        vec![],
    );
    // CAT signed with Integrity.
    let mut signer = Signer::new(shared_keys(), KEY_ID, 100).expect("the key exists");
    let mut cat = Message::new(
        PR_CLIENT,
        Body::ClientAccept(ClientAccept {
            ka_timer: 45,
            acct_timer: Some(30),
        }),
    );
    let cat_bytes = signer.sign(&mut cat).expect("sign CAT");
    x.push_bytes(
        PdpToPep,
        "CAT with KA timer, Accounting timer, Integrity",
        cat,
        vec![],
        cat_bytes,
    );
    x.push(
        PdpToPep,
        "SSQ for all state",
        Message::new(PR_CLIENT, Body::SyncStateRequest(None)),
        vec![],
    );
    let req_si = RequestClientSi(
        subscriber_interfaces()
            .iter()
            .map(|i| i.to_instance().unwrap())
            .collect(),
    );
    // The PEP's own (local) decision: the policy it applied while waiting.
    let lpdp_named = InstallDecision(vec![policies()[2].clone()]);
    x.push(
        PepToPdp,
        "REQ subscriber interface with In/Out-Interface, COPS-PR ClientSI, LPDP decisions",
        Message::new(
            PR_CLIENT,
            Body::Request(Request {
                handle: handle(1),
                context: Context::configuration(),
                in_interface: Some(Interface {
                    address: addr("10.0.0.1"),
                    if_index: 7,
                }),
                out_interface: Some(Interface {
                    address: addr("2001:db8:0:1::1"),
                    if_index: 8,
                }),
                client_si: vec![
                    named_si(pr::encode_request_client_si(&req_si)),
                    ClientSi::Signaled(Bytes::from_static(b"junose-7.1")),
                ],
                lpdp_decisions: vec![
                    LpdpDecision {
                        context: Some(Context {
                            r_type: RType::INCOMING,
                            m_type: 1,
                        }),
                        flags: DecisionFlags::new(Cmd::Install),
                        stateless: None,
                        replacement: None,
                        client_specific: None,
                        named: Some(pr::encode_install_decision(&lpdp_named).unwrap()),
                    },
                    LpdpDecision {
                        context: None,
                        flags: DecisionFlags::new(Cmd::Null),
                        stateless: Some(Bytes::from_static(b"stateless")),
                        replacement: Some(Bytes::from_static(b"repl")),
                        client_specific: Some(Bytes::from_static(&[1, 2, 3, 4, 5])),
                        named: None,
                    },
                ],
            }),
        ),
        vec![pairs(&req_si.0), pairs(&lpdp_named.0)],
    );
    let mut install = policies();
    install.extend(value_type_instances());
    install.extend(usage_policy());
    let install = InstallDecision(install);
    let remove = RemoveDecision(vec![
        RemoveTarget::Instance(Prid::instance_of(&prid(pib::POLICY_ENTRY), 2).unwrap()),
        RemoveTarget::Prefix(prid(pib::POLICY_SUBSTITUTION_ENTRY)),
    ]);
    let remove_pr = vec![
        PrObject::Prid(Prid::instance_of(&prid(pib::POLICY_ENTRY), 2).unwrap()),
        PrObject::Pprid(prid(pib::POLICY_SUBSTITUTION_ENTRY)),
    ];
    x.push(
        PdpToPep,
        "DEC install *(PRID EPD) and remove *(PRID|PPRID)",
        Message::new(
            PR_CLIENT,
            Body::Decision(DecisionMessage {
                handle: handle(1),
                content: DecisionContent::Decisions(vec![
                    Decision::new(Context::configuration(), DecisionFlags::new(Cmd::Install))
                        .with_named(pr::encode_install_decision(&install).unwrap()),
                    Decision::new(Context::configuration(), DecisionFlags::new(Cmd::Remove))
                        .with_named(pr::encode_remove_decision(&remove).unwrap()),
                ]),
            }),
        )
        .solicited(),
        vec![pairs(&install.0), remove_pr],
    );
    x.push(
        PepToPdp,
        "RPT success",
        Message::new(
            PR_CLIENT,
            Body::Report(Report {
                handle: handle(1),
                report_type: ReportType::Success,
                client_si: None,
            }),
        )
        .solicited(),
        vec![],
    );
    x.push(
        PepToPdp,
        "SSC for all state",
        Message::new(PR_CLIENT, Body::SyncComplete(None)),
        vec![],
    );
    // A second decision on the same handle: every decision data C-Type, Trigger-Error set.
    let resolicit = FeedbackAction {
        id: 1,
        action: ActionKind::Solicit,
        target: Some(linkage_prid()),
        report_now: true,
    }
    .to_instance()
    .unwrap();
    let solicit = InstallDecision(vec![resolicit]);
    x.push(
        PdpToPep,
        "DEC with stateless, replacement, client-specific and named data (usage solicit)",
        Message::new(
            PR_CLIENT,
            Body::Decision(DecisionMessage {
                handle: handle(1),
                content: DecisionContent::Decisions(vec![Decision {
                    context: Context::configuration(),
                    flags: DecisionFlags {
                        command: Cmd::Install,
                        flags: DecisionFlags::TRIGGER_ERROR,
                    },
                    stateless: Some(Bytes::from_static(b"stateless-policy")),
                    replacement: Some(Bytes::from_static(b"replace")),
                    client_specific: Some(Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef, 0x01])),
                    named: Some(pr::encode_install_decision(&solicit).unwrap()),
                }]),
            }),
        ),
        vec![pairs(&solicit.0)],
    );
    let failure = OutcomeReport {
        gperr: Some(Gperr {
            code: GperrCode::UnknownPibData,
            sub_code: 0,
        }),
        reports: vec![ClassReport {
            error_prid: Prid::instance_of(&prid(pib::POLICY_ENTRY), 1).unwrap(),
            cperr: Cperr {
                code: CperrCode::AttrValueInvalid,
                sub_code: 4,
            },
            instances: vec![policies()[0].clone()],
        }],
    };
    let failure_pr = vec![
        PrObject::Gperr(failure.gperr.unwrap()),
        PrObject::ErrorPrid(failure.reports[0].error_prid.clone()),
        PrObject::Cperr(failure.reports[0].cperr),
    ];
    x.push(
        PepToPdp,
        "RPT failure with GPERR, ErrorPRID, CPERR, PRID EPD",
        Message::new(
            PR_CLIENT,
            Body::Report(Report {
                handle: handle(1),
                report_type: ReportType::Failure,
                client_si: Some(named_si(pr::encode_outcome_report(&failure))),
            }),
        )
        .solicited(),
        vec![[failure_pr, pairs(&failure.reports[0].instances)].concat()],
    );
    let traffic = |id: u32, packets: u64, octets: u64, assignment: &'static [u8]| TrafficUsage {
        id,
        linkage: linkage_prid(),
        selected: subscriber_interface_prid(1),
        assignment: Bytes::from_static(assignment),
        packets,
        octets,
    };
    let acct = pr::AccountingReport(vec![
        traffic(1, 12_345, 9_876_543_210, b"fe-0/0/1.100")
            .to_instance()
            .unwrap(),
        traffic(2, 0, 0, b"").to_instance().unwrap(),
    ]);
    x.push(
        PepToPdp,
        "RPT accounting with RFC 3483 traffic usage instances",
        Message::new(
            PR_CLIENT,
            Body::Report(Report {
                handle: handle(1),
                report_type: ReportType::Accounting,
                client_si: Some(named_si(pr::encode_accounting_report(&acct))),
            }),
        ),
        vec![pairs(&acct.0)],
    );
    x.push(
        PepToPdp,
        "REQ outgoing context, no ClientSI",
        Message::new(
            PR_CLIENT,
            Body::Request(Request {
                handle: handle(2),
                context: Context {
                    r_type: RType::OUTGOING,
                    m_type: 0x0102,
                },
                in_interface: Some(Interface {
                    address: addr("2001:db8::7"),
                    if_index: 9,
                }),
                out_interface: Some(Interface {
                    address: addr("10.0.0.9"),
                    if_index: 10,
                }),
                client_si: vec![],
                lpdp_decisions: vec![],
            }),
        ),
        vec![],
    );
    x.push(
        PdpToPep,
        "DEC with Error",
        Message::new(
            PR_CLIENT,
            Body::Decision(DecisionMessage {
                handle: handle(2),
                content: DecisionContent::Error(ErrorObject::unknown_object(20, 1)),
            }),
        )
        .solicited(),
        vec![],
    );
    x.push(PepToPdp, "KA", Message::keep_alive(), vec![]);
    x.push(
        PdpToPep,
        "KA answer",
        Message::keep_alive().solicited(),
        vec![],
    );
    x.push(
        PdpToPep,
        "SSQ for one handle",
        Message::new(PR_CLIENT, Body::SyncStateRequest(Some(handle(1)))),
        vec![],
    );
    x.push(
        PepToPdp,
        "SSC for one handle",
        Message::new(PR_CLIENT, Body::SyncComplete(Some(handle(1)))),
        vec![],
    );
    x.push(
        PepToPdp,
        "DRQ with Reason 13 and its sub-code (C-Num, C-Type)",
        Message::new(
            PR_CLIENT,
            Body::DeleteRequest(DeleteRequest {
                handle: handle(2),
                reason: Reason {
                    code: ReasonCode::UnknownObject,
                    sub_code: 0x1401,
                },
            }),
        ),
        vec![],
    );
    x.push(
        PepToPdp,
        "DRQ logout (Management)",
        Message::new(
            PR_CLIENT,
            Body::DeleteRequest(DeleteRequest {
                handle: handle(1),
                reason: Reason {
                    code: ReasonCode::Management,
                    sub_code: 0x0005,
                },
            }),
        ),
        vec![],
    );
    x.push(
        PdpToPep,
        "CC shutting down",
        Message::new(
            PR_CLIENT,
            Body::ClientClose(ClientClose {
                error: ErrorObject {
                    code: ErrorCode::ShuttingDown,
                    sub_code: 0,
                },
                redirect: None,
            }),
        ),
        vec![],
    );

    // --- SBC call admission --------------------------------------------------------------------
    for (i, &ct) in SBC_CLIENTS.iter().enumerate() {
        let n = u32::try_from(i).unwrap();
        x.push(
            PepToPdp,
            &format!("OPN SBC {ct:#06x}"),
            Message::new(
                ct,
                Body::ClientOpen(ClientOpen {
                    pep_id: format!("sbc-{n}.example"),
                    client_si: None,
                    last_pdp_addr: (i == 1).then_some(v6_pdp),
                }),
            ),
            vec![],
        );
        if i == 1 {
            x.push(
                PdpToPep,
                &format!("CC SBC {ct:#06x} redirect (IPv6)"),
                Message::new(
                    ct,
                    Body::ClientClose(ClientClose {
                        error: ErrorObject::new(ErrorCode::RedirectToPreferredServer),
                        redirect: Some(v6_pdp),
                    }),
                ),
                vec![],
            );
            continue;
        }
        x.push(
            PdpToPep,
            &format!("CAT SBC {ct:#06x}"),
            Message::new(
                ct,
                Body::ClientAccept(ClientAccept {
                    ka_timer: 30,
                    acct_timer: None,
                }),
            ),
            vec![],
        );
        for (call, admit) in [(100 + n, true), (200 + n, false)] {
            let call_si = RequestClientSi(vec![call_request(ct, call)]);
            x.push(
                PepToPdp,
                &format!("REQ call admission {ct:#06x}"),
                Message::new(
                    ct,
                    Body::Request(Request {
                        handle: handle(call),
                        context: Context {
                            r_type: RType(RType::INCOMING.0 | RType::RESOURCE_ALLOCATION.0),
                            m_type: 1,
                        },
                        in_interface: Some(Interface {
                            address: addr("198.51.100.7"),
                            if_index: 1,
                        }),
                        out_interface: None,
                        client_si: vec![named_si(pr::encode_request_client_si(&call_si))],
                        lpdp_decisions: vec![],
                    }),
                ),
                vec![pairs(&call_si.0)],
            );
            let command = if admit { Cmd::Install } else { Cmd::Remove };
            x.push(
                PdpToPep,
                &format!(
                    "DEC call {} {ct:#06x}",
                    if admit { "admit" } else { "deny" }
                ),
                Message::new(
                    ct,
                    Body::Decision(DecisionMessage {
                        handle: handle(call),
                        content: DecisionContent::Decisions(vec![Decision::new(
                            Context {
                                r_type: RType(RType::INCOMING.0 | RType::RESOURCE_ALLOCATION.0),
                                m_type: 1,
                            },
                            DecisionFlags::new(command),
                        )]),
                    }),
                )
                .solicited(),
                vec![],
            );
            x.push(
                PepToPdp,
                &format!("RPT call {ct:#06x}"),
                Message::new(
                    ct,
                    Body::Report(Report {
                        handle: handle(call),
                        report_type: if admit {
                            ReportType::Success
                        } else {
                            ReportType::Failure
                        },
                        client_si: None,
                    }),
                )
                .solicited(),
                vec![],
            );
            if admit {
                x.push(
                    PepToPdp,
                    &format!("DRQ call end {ct:#06x}"),
                    Message::new(
                        ct,
                        Body::DeleteRequest(DeleteRequest {
                            handle: handle(call),
                            reason: Reason::new(ReasonCode::Tear),
                        }),
                    ),
                    vec![],
                );
            }
        }
    }
    x.sent
}

/// Writes the messages as a pcap via text2pcap: one packet each, PEP 127.0.0.1:40000 →
/// PDP 127.0.0.2:3288 or back.
fn write_pcap(sent: &[Sent], dir: &Path) -> PathBuf {
    let mut dump = String::new();
    for s in sent {
        // text2pcap -D: 'I' keeps the -4/-T order (PEP → PDP), 'O' swaps it.
        let d = match s.dir {
            Dir::PepToPdp => 'I',
            Dir::PdpToPep => 'O',
        };
        od_hexdump(d, &s.bytes, &mut dump);
    }
    let hex = dir.join("cops.hex");
    let pcap = dir.join("cops.pcap");
    std::fs::write(&hex, dump).expect("write hexdump");
    let mut cmd = Command::new("text2pcap");
    cmd.args(["-q", "-D", "-4", "127.0.0.1,127.0.0.2", "-T"])
        .arg(format!("{PEP_PORT},{PDP_PORT}"))
        .arg(&hex)
        .arg(&pcap);
    run_ok(cmd);
    pcap
}

/// The tshark fields compared, frame by frame, with what we encoded.
const FIELDS: &[&str] = &[
    "tcp.dstport",
    "cops.version",
    "cops.flags",
    "cops.op_code",
    "cops.client_type",
    "cops.msg_len",
    "cops.obj.len",
    "cops.c_num",
    "cops.c_type",
    "cops.handle",
    "cops.context.r_type",
    "cops.context.m_type",
    "cops.in-int.ipv4",
    "cops.in-int.ipv6",
    "cops.out-int.ipv4",
    "cops.out-int.ipv6",
    "cops.in-out-int.ifindex",
    "cops.reason",
    "cops.reason_sub",
    "cops.decision.cmd",
    "cops.decision.flags",
    "cops.error",
    "cops.error_sub",
    "cops.katimer.value",
    "cops.pepid.id",
    "cops.report_type",
    "cops.pdprediraddr.ipv4",
    "cops.pdprediraddr.ipv6",
    "cops.lastpdpaddr.ipv4",
    "cops.lastpdpaddr.ipv6",
    "cops.pdp.tcp_port",
    "cops.accttimer.value",
    "cops.integrity.key_id",
    "cops.integrity.seq_num",
    "cops.integrity.keyed_message_digest",
    "cops.s_num",
    "cops.s_type",
    "cops.prid.instance_id",
    "cops.pprid.prefix_id",
    "cops.errprid.instance_id",
    "cops.gperror",
    "cops.gperror_sub",
    "cops.cperror",
    "cops.cperror_sub",
    "cops.epd.null",
    "cops.epd.int",
    "cops.epd.octets",
    "cops.epd.oid",
    "cops.epd.ipv4",
    "cops.epd.unsigned32",
    "cops.epd.timeticks",
    "cops.epd.opaque",
    "cops.epd.integer64",
    "cops.epd.unsigned64",
    "cops.epd.unknown",
];

/// Per frame, per field: every occurrence as `tshark -T fields -E occurrence=a` prints it.
type Rows = Vec<BTreeMap<&'static str, Vec<String>>>;

/// Occurrences are joined with this (no field value we use contains it).
const AGGREGATOR: &str = "|";

/// Every COPS frame of `pcap`, decoded with `extra` options (decode-as, preferences).
fn tshark_rows(pcap: &Path, extra: &[&str]) -> Rows {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap).args(extra).args([
        "-Y",
        "cops",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        &format!("aggregator={AGGREGATOR}"),
    ]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    run_ok(cmd)
        .lines()
        .map(|row| {
            let cols: Vec<&str> = row.split('\t').collect();
            assert_eq!(cols.len(), FIELDS.len(), "unexpected tshark row {row:?}");
            FIELDS
                .iter()
                .zip(cols)
                .map(|(f, c)| {
                    let v = if c.is_empty() {
                        vec![]
                    } else {
                        c.split(AGGREGATOR).map(str::to_owned).collect()
                    };
                    (*f, v)
                })
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What tshark must show, derived from the values we encoded
// ---------------------------------------------------------------------------------------------

/// Expected occurrences per field for one frame.
#[derive(Default)]
struct Expect(BTreeMap<&'static str, Vec<String>>);

impl Expect {
    fn add(&mut self, field: &'static str, value: impl ToString) {
        assert!(FIELDS.contains(&field), "{field} is not queried");
        self.0.entry(field).or_default().push(value.to_string());
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// tshark prints an empty byte field as `<MISSING>`.
fn tshark_bytes(b: &[u8]) -> String {
    if b.is_empty() {
        "<MISSING>".into()
    } else {
        hex(b)
    }
}

/// BER contents of an OBJECT IDENTIFIER (X.690 8.19), written out here independently of the
/// codec's BER library.
fn ber_oid(arcs: &[u32]) -> Vec<u8> {
    let mut subs = vec![u64::from(arcs[0]) * 40 + u64::from(arcs[1])];
    subs.extend(arcs[2..].iter().map(|&a| u64::from(a)));
    let mut out = Vec::new();
    for mut v in subs {
        let mut groups = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            groups.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        out.extend(groups.iter().rev());
    }
    out
}

/// BER contents of an INTEGER (X.690 8.3): minimal two's complement.
fn ber_int(v: i128) -> Vec<u8> {
    let b = v.to_be_bytes();
    let mut i = 0;
    while i < b.len() - 1
        && ((b[i] == 0 && b[i + 1] & 0x80 == 0) || (b[i] == 0xff && b[i + 1] & 0x80 != 0))
    {
        i += 1;
    }
    b[i..].to_vec()
}

/// Identifier octet and contents of one EPD attribute value (SMIv2 / SPPI tags).
fn ber_value(v: &EpdValue) -> (u8, Vec<u8>) {
    match v {
        EpdValue::Null => (0x05, vec![]),
        EpdValue::Integer32(i) => (0x02, ber_int(i128::from(*i))),
        EpdValue::OctetString(b) => (0x04, b.to_vec()),
        EpdValue::Oid(p) => (0x06, ber_oid(p.arcs())),
        EpdValue::IpAddress(a) => (0x40, a.to_vec()),
        EpdValue::Counter32(n) => (0x41, ber_int(i128::from(*n))),
        EpdValue::Unsigned32(n) => (0x42, ber_int(i128::from(*n))),
        EpdValue::TimeTicks(n) => (0x43, ber_int(i128::from(*n))),
        EpdValue::Opaque(b) => (0x44, b.to_vec()),
        EpdValue::Counter64(n) => (0x46, ber_int(i128::from(*n))),
        EpdValue::Integer64(n) => (0x4a, ber_int(i128::from(*n))),
        EpdValue::Unsigned64(n) => (0x4b, ber_int(i128::from(*n))),
        EpdValue::Raw(_) => panic!("the exchange has no raw EPD values"),
    }
}

/// Length of a BER TLV with short-form length (every value here is under 128 octets).
fn ber_tlv_len(contents: usize) -> usize {
    assert!(contents < 128, "short-form lengths only");
    2 + contents
}

/// The data length of a COPS-PR sub-object.
fn sub_object_data_len(o: &PrObject) -> usize {
    match o {
        PrObject::Prid(p) | PrObject::Pprid(p) | PrObject::ErrorPrid(p) => {
            ber_tlv_len(ber_oid(p.arcs()).len())
        }
        PrObject::Epd(e) => e.0.iter().map(|v| ber_tlv_len(ber_value(v).1.len())).sum(),
        PrObject::Gperr(_) | PrObject::Cperr(_) => 4,
    }
}

fn expect_pr(o: &PrObject, e: &mut Expect) {
    e.add("cops.obj.len", 4 + sub_object_data_len(o));
    // tshark 4.0 shows the S-Num twice (object title and field) and the S-Type once.
    let s_num = o.s_num() as u8;
    e.add("cops.s_num", s_num);
    e.add("cops.s_num", s_num);
    e.add("cops.s_type", pr::S_TYPE_BER);
    match o {
        PrObject::Prid(p) => e.add("cops.prid.instance_id", p),
        PrObject::Pprid(p) => e.add("cops.pprid.prefix_id", p),
        PrObject::ErrorPrid(p) => e.add("cops.errprid.instance_id", p),
        PrObject::Gperr(g) => {
            e.add("cops.gperror", g.code.to_u16());
            e.add("cops.gperror_sub", format!("0x{:04x}", g.sub_code));
        }
        PrObject::Cperr(c) => {
            e.add("cops.cperror", c.code.to_u16());
            e.add("cops.cperror_sub", format!("0x{:04x}", c.sub_code));
        }
        PrObject::Epd(epd) => {
            for v in &epd.0 {
                match v {
                    EpdValue::Null => e.add("cops.epd.null", "<MISSING>"),
                    EpdValue::Integer32(i) => e.add("cops.epd.int", i),
                    EpdValue::OctetString(b) => e.add("cops.epd.octets", tshark_bytes(b)),
                    EpdValue::Oid(p) => e.add("cops.epd.oid", p),
                    EpdValue::IpAddress(a) => e.add("cops.epd.ipv4", std::net::Ipv4Addr::from(*a)),
                    EpdValue::Unsigned32(n) => e.add("cops.epd.unsigned32", n),
                    EpdValue::TimeTicks(n) => e.add("cops.epd.timeticks", n),
                    EpdValue::Opaque(b) => e.add("cops.epd.opaque", tshark_bytes(b)),
                    EpdValue::Integer64(n) => e.add("cops.epd.integer64", n),
                    EpdValue::Unsigned64(n) => e.add("cops.epd.unsigned64", n),
                    // tshark 4.0 has no Counter32/Counter64 in its EPD type table: it shows
                    // their BER contents as "EPD Unknown Data" (no expert info).
                    EpdValue::Counter32(_) | EpdValue::Counter64(_) => {
                        e.add("cops.epd.unknown", hex(&ber_value(v).1))
                    }
                    EpdValue::Raw(_) => panic!("the exchange has no raw EPD values"),
                }
            }
        }
    }
}

fn ip_field(a: &IpAddr, v4: &'static str, v6: &'static str) -> &'static str {
    if a.is_ipv4() { v4 } else { v6 }
}

/// What tshark must show for one message.
fn expected(s: &Sent, pep_port: u16, pdp_port: u16) -> BTreeMap<&'static str, Vec<String>> {
    let m = &s.msg;
    let mut e = Expect::default();
    e.add(
        "tcp.dstport",
        match s.dir {
            Dir::PepToPdp => pdp_port,
            Dir::PdpToPep => pep_port,
        },
    );
    e.add("cops.version", 1);
    e.add("cops.flags", if m.solicited { "0x01" } else { "0x00" });
    e.add("cops.op_code", m.op_code() as u8);
    e.add("cops.client_type", m.client_type);
    e.add("cops.msg_len", s.bytes.len());
    let mut named = s.pr.iter();
    for o in m.objects() {
        let (c_num, c_type) = o.kind();
        e.add("cops.obj.len", 4 + o.data_len());
        // tshark 4.0 shows the C-Num twice (object title and field) and the C-Type once.
        e.add("cops.c_num", c_num);
        e.add("cops.c_num", c_num);
        e.add("cops.c_type", c_type);
        let mut subs = None;
        match &o {
            Object::Handle(h) => e.add(
                "cops.handle",
                format!("0x{:08x}", h.as_u32().expect("4-octet handles")),
            ),
            Object::Context(c) => {
                e.add("cops.context.r_type", format!("0x{:04x}", c.r_type.0));
                e.add("cops.context.m_type", format!("0x{:04x}", c.m_type));
            }
            Object::InInterface(i) => {
                e.add(
                    ip_field(&i.address, "cops.in-int.ipv4", "cops.in-int.ipv6"),
                    i.address,
                );
                e.add("cops.in-out-int.ifindex", i.if_index);
            }
            Object::OutInterface(i) => {
                e.add(
                    ip_field(&i.address, "cops.out-int.ipv4", "cops.out-int.ipv6"),
                    i.address,
                );
                e.add("cops.in-out-int.ifindex", i.if_index);
            }
            Object::Reason(r) => {
                e.add("cops.reason", u16::from(r.code));
                e.add("cops.reason_sub", format!("0x{:04x}", r.sub_code));
            }
            Object::Decision(d) | Object::LpdpDecision(d) => match d {
                sae_cops::DecisionObject::Flags(f) => {
                    e.add("cops.decision.cmd", f.command as u16);
                    e.add("cops.decision.flags", format!("0x{:04x}", f.flags));
                }
                sae_cops::DecisionObject::Named(_) => subs = named.next(),
                _ => {}
            },
            Object::Error(x) => {
                e.add("cops.error", u16::from(x.code));
                e.add("cops.error_sub", format!("0x{:04x}", x.sub_code));
            }
            Object::ClientSi(ClientSi::Named(_)) => subs = named.next(),
            Object::ClientSi(ClientSi::Signaled(_)) => {}
            Object::KaTimer(t) => e.add("cops.katimer.value", t),
            Object::PepId(p) => e.add("cops.pepid.id", p),
            Object::ReportType(t) => e.add("cops.report_type", u16::from(*t)),
            Object::PdpRedirect(a) => {
                e.add(
                    ip_field(
                        &a.address,
                        "cops.pdprediraddr.ipv4",
                        "cops.pdprediraddr.ipv6",
                    ),
                    a.address,
                );
                e.add("cops.pdp.tcp_port", a.port);
            }
            Object::LastPdpAddr(a) => {
                e.add(
                    ip_field(&a.address, "cops.lastpdpaddr.ipv4", "cops.lastpdpaddr.ipv6"),
                    a.address,
                );
                e.add("cops.pdp.tcp_port", a.port);
            }
            Object::AcctTimer(t) => e.add("cops.accttimer.value", t),
            Object::Integrity(i) => {
                e.add("cops.integrity.key_id", i.key_id);
                e.add("cops.integrity.seq_num", i.sequence);
                e.add("cops.integrity.keyed_message_digest", hex(&i.digest));
            }
            Object::Unknown(r) => panic!("{}: unknown object {r:?}", s.what),
        }
        if matches!(
            (&o, c_type),
            (Object::ClientSi(_), 2) | (Object::Decision(_) | Object::LpdpDecision(_), 5)
        ) {
            let subs = subs.unwrap_or_else(|| panic!("{}: no sub-objects given", s.what));
            assert!(!subs.is_empty(), "{}: empty named data", s.what);
            for sub in subs {
                expect_pr(sub, &mut e);
            }
        }
    }
    assert!(
        named.next().is_none(),
        "{}: more sub-object lists than named objects",
        s.what
    );
    e.0
}

/// Field by field differences between what tshark shows and what we encoded.
fn differences(sent: &[Sent], rows: &Rows, pep_port: u16, pdp_port: u16) -> Vec<String> {
    let mut diffs = Vec::new();
    if rows.len() != sent.len() {
        diffs.push(format!(
            "tshark shows {} COPS frames, we sent {} messages",
            rows.len(),
            sent.len()
        ));
    }
    for (i, (s, row)) in sent.iter().zip(rows).enumerate() {
        let want = expected(s, pep_port, pdp_port);
        for f in FIELDS {
            let w = want.get(f).cloned().unwrap_or_default();
            let got = row.get(f).cloned().unwrap_or_default();
            if w != got {
                diffs.push(format!(
                    "frame {} ({}): {f}: tshark {got:?}, we encoded {w:?}",
                    i + 1,
                    s.what
                ));
            }
        }
    }
    diffs
}

/// `tshark -V` of the frames tshark complains about, and our bytes, for failure messages.
fn explain(pcap: &Path, extra: &[&str], findings: &str, sent: &[Sent]) -> String {
    let mut out = String::new();
    let frames: std::collections::BTreeSet<usize> = findings
        .lines()
        .filter_map(|l| l.split('\t').next()?.parse().ok())
        .collect();
    for n in frames {
        let mut cmd = Command::new("tshark");
        cmd.arg("-r").arg(pcap).args(extra).args([
            "-V",
            "-O",
            "cops",
            "-Y",
            &format!("frame.number == {n}"),
        ]);
        let _ = writeln!(out, "--- frame {n} ---\n{}", run_ok(cmd));
        if let Some(s) = sent.get(n - 1) {
            let _ = writeln!(out, "our message: {}\nour bytes: {}", s.what, hex(&s.bytes));
        }
    }
    out
}

/// The exchange covers every op-code, every object C-Num/C-Type the codec knows, every
/// COPS-PR S-Num and EPD value type, and the client types the product serves.
fn assert_coverage(sent: &[Sent]) {
    let ops: std::collections::BTreeSet<u8> = sent.iter().map(|s| s.msg.op_code() as u8).collect();
    assert_eq!(ops, (1..=10).collect(), "op-codes covered");
    let kinds: std::collections::BTreeSet<(u8, u8)> = sent
        .iter()
        .flat_map(|s| s.msg.objects())
        .map(|o| o.kind())
        .collect();
    for c_num in 1..=16 {
        for c_type in 1..=5 {
            if sae_cops::object::is_known(c_num, c_type) {
                assert!(
                    kinds.contains(&(c_num, c_type)),
                    "object C-Num {c_num} C-Type {c_type} is not covered"
                );
            }
        }
    }
    let s_nums: std::collections::BTreeSet<u8> = sent
        .iter()
        .flat_map(|s| s.pr.iter().flatten())
        .map(|o| o.s_num() as u8)
        .collect();
    assert_eq!(s_nums, (1..=6).collect(), "S-Nums covered");
    let mut epd_types = std::collections::BTreeSet::new();
    for o in sent.iter().flat_map(|s| s.pr.iter().flatten()) {
        if let PrObject::Epd(e) = o {
            epd_types.extend(e.0.iter().map(|v| ber_value(v).0));
        }
    }
    assert_eq!(
        epd_types,
        [
            0x02, 0x04, 0x05, 0x06, 0x40, 0x41, 0x42, 0x43, 0x44, 0x46, 0x4a, 0x4b
        ]
        .into_iter()
        .collect(),
        "EPD value types covered"
    );
    let client_types: std::collections::BTreeSet<u16> =
        sent.iter().map(|s| s.msg.client_type).collect();
    for ct in [0, PR_CLIENT].into_iter().chain(SBC_CLIENTS) {
        assert!(client_types.contains(&ct), "client type {ct:#06x} covered");
    }
}

fn assert_clean_and_equal(
    pcap: &Path,
    extra: &[&str],
    sent: &[Sent],
    pep_port: u16,
    pdp_port: u16,
) {
    // interop.md's pass/fail check (with COPS reassembly on, as tshark runs by default).
    let findings = tshark_findings(pcap, extra, None);
    assert!(
        findings.trim().is_empty(),
        "tshark reports problems in our COPS bytes (frame, expert message):\n{findings}\n{}",
        explain(pcap, extra, &findings, sent)
    );
    let rows = tshark_rows(pcap, extra);
    let diffs = differences(sent, &rows, pep_port, pdp_port);
    assert!(
        diffs.is_empty(),
        "tshark reads other values than we encoded:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn every_cops_message_is_clean_for_tshark() {
    require_tshark();
    let sent = every_message();
    assert_coverage(&sent);
    let dir = tempfile::tempdir().unwrap();
    let pcap = write_pcap(&sent, dir.path());
    // text2pcap's -T port 3288 is COPS's registered port: no decode-as needed.
    assert_clean_and_equal(&pcap, &[], &sent, PEP_PORT, PDP_PORT);
    // And once more without TCP reassembly: every packet holds exactly one message.
    assert_clean_and_equal(
        &pcap,
        &["-o", "cops.desegment:FALSE"],
        &sent,
        PEP_PORT,
        PDP_PORT,
    );
}

#[test]
fn cops_exchange_over_loopback_tcp_is_clean_for_tshark() {
    require_tshark();
    let sent = every_message();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let pdp_port = listener.local_addr().unwrap().port();
    let capture = LiveCapture::start(pdp_port);
    let mut pep = TcpStream::connect(("127.0.0.1", pdp_port)).expect("connect");
    let (mut pdp, _) = listener.accept().expect("accept");
    let pep_port = pep.local_addr().unwrap().port();
    for s in [&pep, &pdp] {
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    // Lock step: each message is read whole by the other end before the next one is written,
    // so every TCP segment carries one message. The PEP checks the PDP's Integrity.
    let mut pdp_rx = FrameDecoder::new(Limits::default());
    let mut pep_rx =
        FrameDecoder::with_verifier(Limits::default(), Verifier::new(shared_keys(), false));
    for s in &sent {
        let (tx, rx, decoder) = match s.dir {
            Dir::PepToPdp => (&mut pep, &mut pdp, &mut pdp_rx),
            Dir::PdpToPep => (&mut pdp, &mut pep, &mut pep_rx),
        };
        tx.write_all(&s.bytes).expect("write");
        let mut buf = vec![0; s.bytes.len()];
        rx.read_exact(&mut buf).expect("read");
        let mut stream = bytes::BytesMut::from(&buf[..]);
        match decoder.decode(&mut stream) {
            Ok(Some(Frame::Message(m))) => assert_eq!(m, s.msg, "{}", s.what),
            other => panic!("{}: received {other:?}", s.what),
        }
    }
    drop(pep);
    drop(pdp);
    let file = capture.finish();
    let decode_as = format!("tcp.port=={pdp_port},cops");
    assert_clean_and_equal(&file.file, &["-d", &decode_as], &sent, pep_port, pdp_port);
}
