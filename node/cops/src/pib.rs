//! The project's provisioning classes (PIB) for its two COPS profiles, as typed values that
//! travel as `<PRID> <EPD>` pairs:
//!
//! - subscriber provisioning (COPS-PR, default client type 0x800B): the PEP requests per
//!   subscriber interface ([`SubscriberInterface`] in the REQ's named ClientSI); the PDP installs
//!   the subscriber's policies ([`PolicyInstance`] with its [`PolicySubstitution`]s in a named
//!   decision) and removes them by PRID;
//! - call admission (SBC client types 0x800A, 0x7926, 0x7929): the PEP requests per call
//!   ([`CallRequest`]: call id, realm, media streams and bandwidth); the PDP admits (Install) or
//!   denies (Remove) it.
//!
//! No public PIB defines these, so every class lives under [`OURS_PIB`], the project's own arc
//! (beside [`crate::usage::OURS_USAGE_PIB`], and like it a placeholder under IANA's documentation
//! enterprise number until the project registers its own).

use bytes::Bytes;

use crate::pr::{Epd, EpdValue, PrInstance, Prid};
use crate::usage::{Attrs, UsageClass, UsageError};

/// **Ours.** Root of the project's provisioning PIB.
pub const OURS_PIB: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 2748];

/// **Ours.** Subscriber interface entry (`OURS_PIB.1.1.1`).
pub const SUBSCRIBER_INTERFACE_ENTRY: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 2748, 1, 1, 1];
/// **Ours.** Policy entry (`OURS_PIB.1.2.1`).
pub const POLICY_ENTRY: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 2748, 1, 2, 1];
/// **Ours.** Policy substitution entry (`OURS_PIB.1.3.1`).
pub const POLICY_SUBSTITUTION_ENTRY: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 2748, 1, 3, 1];
/// **Ours.** Call admission request entry (`OURS_PIB.2.1.1`).
pub const CALL_ENTRY: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 2748, 2, 1, 1];

fn text(b: &Bytes, index: usize) -> Result<String, UsageError> {
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| UsageError::BadValue { index })
}

fn octets(s: &str) -> EpdValue {
    EpdValue::OctetString(Bytes::copy_from_slice(s.as_bytes()))
}

/// A subscriber interface the PEP asks the PDP to provision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriberInterface {
    /// Instance id.
    pub id: u32,
    /// Interface name (e.g. `fastEthernet 3/0.100`): the NAS-Port-Id equivalent.
    pub if_name: String,
    /// The subscriber's IPv4 address (0.0.0.0 when none yet).
    pub address: [u8; 4],
    /// Login name, empty when the interface is not authenticated.
    pub login_name: String,
    /// Virtual router the interface belongs to (`vr@router`), may be empty.
    pub virtual_router: String,
}

impl UsageClass for SubscriberInterface {
    const PRC: &'static [u32] = SUBSCRIBER_INTERFACE_ENTRY;
    fn id(&self) -> u32 {
        self.id
    }
    fn to_epd(&self) -> Epd {
        Epd(vec![
            EpdValue::Unsigned32(self.id),
            octets(&self.if_name),
            EpdValue::IpAddress(self.address),
            octets(&self.login_name),
            octets(&self.virtual_router),
        ])
    }
    fn from_epd(epd: &Epd) -> Result<Self, UsageError> {
        let mut a = Attrs::new(epd, 5)?;
        let id = a.instance_id()?;
        let if_name = text(&a.octets()?, 1)?;
        let address = match a.next() {
            (_, EpdValue::IpAddress(ip)) => *ip,
            (index, _) => return Err(UsageError::WrongType { index }),
        };
        Ok(SubscriberInterface {
            id,
            if_name,
            address,
            login_name: text(&a.octets()?, 3)?,
            virtual_router: text(&a.octets()?, 4)?,
        })
    }
}

/// A policy the PDP installs for a subscriber interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyInstance {
    /// Instance id.
    pub id: u32,
    /// The interface instance it applies to.
    pub interface: u32,
    pub policy_name: String,
    /// May be empty (the PEP's own policy of that name).
    pub template_name: String,
    /// Collect usage for it.
    pub accounting: bool,
}

impl UsageClass for PolicyInstance {
    const PRC: &'static [u32] = POLICY_ENTRY;
    fn id(&self) -> u32 {
        self.id
    }
    fn to_epd(&self) -> Epd {
        Epd(vec![
            EpdValue::Unsigned32(self.id),
            EpdValue::Unsigned32(self.interface),
            octets(&self.policy_name),
            octets(&self.template_name),
            EpdValue::Integer32(if self.accounting { 1 } else { 2 }),
        ])
    }
    fn from_epd(epd: &Epd) -> Result<Self, UsageError> {
        let mut a = Attrs::new(epd, 5)?;
        Ok(PolicyInstance {
            id: a.instance_id()?,
            interface: a.unsigned32()?,
            policy_name: text(&a.octets()?, 2)?,
            template_name: text(&a.octets()?, 3)?,
            accounting: a.truth()?,
        })
    }
}

/// One substitution of a policy's template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySubstitution {
    /// Instance id.
    pub id: u32,
    /// The policy instance it belongs to.
    pub policy: u32,
    pub name: String,
    pub value: String,
}

impl UsageClass for PolicySubstitution {
    const PRC: &'static [u32] = POLICY_SUBSTITUTION_ENTRY;
    fn id(&self) -> u32 {
        self.id
    }
    fn to_epd(&self) -> Epd {
        Epd(vec![
            EpdValue::Unsigned32(self.id),
            EpdValue::Unsigned32(self.policy),
            octets(&self.name),
            octets(&self.value),
        ])
    }
    fn from_epd(epd: &Epd) -> Result<Self, UsageError> {
        let mut a = Attrs::new(epd, 4)?;
        Ok(PolicySubstitution {
            id: a.instance_id()?,
            policy: a.unsigned32()?,
            name: text(&a.octets()?, 2)?,
            value: text(&a.octets()?, 3)?,
        })
    }
}

/// A call an SBC asks to admit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRequest {
    /// Instance id.
    pub id: u32,
    /// The SBC's call identifier.
    pub call_id: String,
    /// The realm the call's budget is taken from (empty: the PEP's own budget).
    pub realm: String,
    /// Media streams in the call.
    pub media_streams: u32,
    /// Bandwidth the call needs, kbit/s.
    pub bandwidth_kbps: u32,
}

impl UsageClass for CallRequest {
    const PRC: &'static [u32] = CALL_ENTRY;
    fn id(&self) -> u32 {
        self.id
    }
    fn to_epd(&self) -> Epd {
        Epd(vec![
            EpdValue::Unsigned32(self.id),
            octets(&self.call_id),
            octets(&self.realm),
            EpdValue::Unsigned32(self.media_streams),
            EpdValue::Unsigned32(self.bandwidth_kbps),
        ])
    }
    fn from_epd(epd: &Epd) -> Result<Self, UsageError> {
        let mut a = Attrs::new(epd, 5)?;
        Ok(CallRequest {
            id: a.instance_id()?,
            call_id: text(&a.octets()?, 1)?,
            realm: text(&a.octets()?, 2)?,
            media_streams: a.unsigned32()?,
            bandwidth_kbps: a.unsigned32()?,
        })
    }
}

/// The first instance of class `C` among `instances`, decoded.
pub fn find<C: UsageClass>(instances: &[PrInstance]) -> Option<Result<C, UsageError>> {
    let prc = Prid::new(C::PRC)?;
    instances
        .iter()
        .find(|i| i.prid.prc().as_ref() == Some(&prc))
        .map(C::from_instance)
}

/// Every instance of class `C` among `instances`, decoded; the first that does not decode is
/// the error.
pub fn all<C: UsageClass>(instances: &[PrInstance]) -> Result<Vec<C>, UsageError> {
    let Some(prc) = Prid::new(C::PRC) else {
        return Ok(Vec::new());
    };
    instances
        .iter()
        .filter(|i| i.prid.prc().as_ref() == Some(&prc))
        .map(C::from_instance)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pr::{
        InstallDecision, RequestClientSi, decode_install_decision, decode_request_client_si,
        encode_install_decision, encode_request_client_si,
    };

    fn interface() -> SubscriberInterface {
        SubscriberInterface {
            id: 7,
            if_name: "fastEthernet 3/0.100".into(),
            address: [10, 1, 2, 3],
            login_name: "alice@isp.example".into(),
            virtual_router: "default@erx1".into(),
        }
    }

    #[test]
    fn a_subscriber_interface_request_round_trips_through_a_named_client_si() {
        let req = RequestClientSi(vec![interface().to_instance().unwrap()]);
        let bytes = encode_request_client_si(&req).unwrap();
        let back = decode_request_client_si(&bytes).unwrap();
        assert_eq!(
            find::<SubscriberInterface>(&back.0).unwrap().unwrap(),
            interface()
        );
        assert!(find::<CallRequest>(&back.0).is_none());
    }

    #[test]
    fn policies_and_their_substitutions_round_trip_through_an_install_decision() {
        let policy = PolicyInstance {
            id: 1,
            interface: 7,
            policy_name: "gold-100m".into(),
            template_name: "rate-limit".into(),
            accounting: true,
        };
        let sub = PolicySubstitution {
            id: 1,
            policy: 1,
            name: "rate".into(),
            value: "100m".into(),
        };
        let dec = InstallDecision(vec![
            policy.to_instance().unwrap(),
            sub.to_instance().unwrap(),
        ]);
        let back = decode_install_decision(&encode_install_decision(&dec).unwrap()).unwrap();
        assert_eq!(all::<PolicyInstance>(&back.0).unwrap(), vec![policy]);
        assert_eq!(all::<PolicySubstitution>(&back.0).unwrap(), vec![sub]);
    }

    #[test]
    fn a_call_request_round_trips_and_a_wrong_type_is_reported() {
        let call = CallRequest {
            id: 3,
            call_id: "c-42@sbc1".into(),
            realm: "voice.example".into(),
            media_streams: 2,
            bandwidth_kbps: 174,
        };
        let pri = call.to_instance().unwrap();
        assert_eq!(CallRequest::from_instance(&pri).unwrap(), call);
        let mut bad = pri.clone();
        bad.epd.0[4] = octets("fast");
        assert!(matches!(
            CallRequest::from_instance(&bad),
            Err(UsageError::WrongType { index: 4 })
        ));
        let mut short = pri;
        short.epd.0.truncate(3);
        assert!(CallRequest::from_instance(&short).is_err());
    }

    #[test]
    fn non_utf8_text_is_an_invalid_value() {
        let mut pri = interface().to_instance().unwrap();
        pri.epd.0[1] = EpdValue::OctetString(Bytes::from_static(&[0xff, 0xfe]));
        assert!(matches!(
            SubscriberInterface::from_instance(&pri),
            Err(UsageError::BadValue { index: 1 })
        ));
    }
}
