//! Typed views of the Juniper JSRC/PTSP AVPs and of the subscriber messages the SAE handles
//! (AAR, PPR, ACR, ASR, STR, SRQ): what the seed's flows carry, read and built without
//! touching raw AVP codes elsewhere.

use bytes::Bytes;

use crate::avp::{Avp, AvpFlags, Value};
use crate::codes::{avp, juniper, vendor};
use crate::error::AvpDataError;
use crate::message::Message;

fn jnpr(code: u32, value: &Value) -> Avp {
    Avp::vendor_mandatory(code, vendor::JUNIPER, value)
}

fn octets(s: &str) -> Value {
    Value::OctetString(Bytes::copy_from_slice(s.as_bytes()))
}

fn text(a: &Avp) -> Result<String, AvpDataError> {
    a.as_str().map(str::to_owned)
}

/// A name/value substitution applied to a policy template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substitution {
    pub name: String,
    pub value: String,
}

/// Juniper-Policy-Definition: the template a policy is built from and its substitutions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDefinition {
    pub policy_name: String,
    pub template_name: String,
    pub substitutions: Vec<Substitution>,
}

/// Juniper-Policy-Install: a policy to attach to the subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInstall {
    pub policy_name: String,
    pub definition: Option<PolicyDefinition>,
    /// Juniper-Acct-Collect present: collect statistics for the policy.
    pub collect_accounting: bool,
}

/// Usage counters for one policy (Juniper-Acct-Record).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AcctRecord {
    pub policy_name: String,
    pub input_octets: Option<u64>,
    pub output_octets: Option<u64>,
    pub input_packets: Option<u64>,
    pub output_packets: Option<u64>,
}

/// Juniper-Request-Type values (the project's numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    AddressAuthorization,
    Provisioning,
    Synchronization,
}

impl RequestType {
    /// Wire value.
    pub fn value(self) -> i32 {
        match self {
            RequestType::AddressAuthorization => 1,
            RequestType::Provisioning => 2,
            RequestType::Synchronization => 3,
        }
    }

    /// From the wire value.
    pub fn from_value(v: i32) -> Option<Self> {
        match v {
            1 => Some(RequestType::AddressAuthorization),
            2 => Some(RequestType::Provisioning),
            3 => Some(RequestType::Synchronization),
            _ => None,
        }
    }

    /// The AVP.
    pub fn to_avp(self) -> Avp {
        jnpr(juniper::REQUEST_TYPE, &Value::Enumerated(self.value()))
    }
}

impl PolicyDefinition {
    /// The Juniper-Policy-Definition AVP.
    pub fn to_avp(&self) -> Avp {
        let mut inner = vec![
            jnpr(juniper::POLICY_NAME, &octets(&self.policy_name)),
            jnpr(juniper::TEMPLATE_NAME, &octets(&self.template_name)),
        ];
        for s in &self.substitutions {
            let pair = vec![
                jnpr(juniper::SUBSTITUTION_NAME, &octets(&s.name)),
                jnpr(juniper::SUBSTITUTION_VALUE, &octets(&s.value)),
            ];
            inner.push(jnpr(juniper::SUBSTITUTION, &Value::Grouped(pair)));
        }
        jnpr(juniper::POLICY_DEFINITION, &Value::Grouped(inner))
    }

    fn from_avp(a: &Avp) -> Result<Self, AvpDataError> {
        let mut def = PolicyDefinition {
            policy_name: String::new(),
            template_name: String::new(),
            substitutions: vec![],
        };
        for i in a.grouped().map_err(AvpDataError::Grouped)? {
            match (i.code(), i.vendor()) {
                (juniper::POLICY_NAME, vendor::JUNIPER) => def.policy_name = text(&i)?,
                (juniper::TEMPLATE_NAME, vendor::JUNIPER) => def.template_name = text(&i)?,
                (juniper::SUBSTITUTION, vendor::JUNIPER) => {
                    let mut s = Substitution {
                        name: String::new(),
                        value: String::new(),
                    };
                    for p in i.grouped().map_err(AvpDataError::Grouped)? {
                        match (p.code(), p.vendor()) {
                            (juniper::SUBSTITUTION_NAME, vendor::JUNIPER) => s.name = text(&p)?,
                            (juniper::SUBSTITUTION_VALUE, vendor::JUNIPER) => s.value = text(&p)?,
                            _ => {}
                        }
                    }
                    def.substitutions.push(s);
                }
                _ => {}
            }
        }
        Ok(def)
    }
}

impl PolicyInstall {
    /// The Juniper-Policy-Install AVP.
    pub fn to_avp(&self) -> Avp {
        let mut inner = vec![jnpr(juniper::POLICY_NAME, &octets(&self.policy_name))];
        if let Some(d) = &self.definition {
            inner.push(d.to_avp());
        }
        if self.collect_accounting {
            inner.push(jnpr(juniper::ACCT_COLLECT, &Value::Enumerated(1)));
        }
        jnpr(juniper::POLICY_INSTALL, &Value::Grouped(inner))
    }

    /// Reads a Juniper-Policy-Install AVP.
    pub fn from_avp(a: &Avp) -> Result<Self, AvpDataError> {
        let mut p = PolicyInstall {
            policy_name: String::new(),
            definition: None,
            collect_accounting: false,
        };
        for i in a.grouped().map_err(AvpDataError::Grouped)? {
            match (i.code(), i.vendor()) {
                (juniper::POLICY_NAME, vendor::JUNIPER) => p.policy_name = text(&i)?,
                (juniper::POLICY_DEFINITION, vendor::JUNIPER) => {
                    p.definition = Some(PolicyDefinition::from_avp(&i)?)
                }
                (juniper::ACCT_COLLECT, vendor::JUNIPER) => p.collect_accounting = true,
                _ => {}
            }
        }
        if p.policy_name.is_empty() {
            return Err(AvpDataError::Value(
                "Juniper-Policy-Install without Juniper-Policy-Name",
            ));
        }
        Ok(p)
    }
}

/// The Juniper-Policy-Remove AVP for a policy.
pub fn policy_remove(policy_name: &str) -> Avp {
    jnpr(
        juniper::POLICY_REMOVE,
        &Value::Grouped(vec![jnpr(juniper::POLICY_NAME, &octets(policy_name))]),
    )
}

impl AcctRecord {
    /// The Juniper-Acct-Record AVP.
    pub fn to_avp(&self) -> Avp {
        let mut inner = vec![jnpr(juniper::POLICY_NAME, &octets(&self.policy_name))];
        let counters = [
            (avp::ACCOUNTING_INPUT_OCTETS, self.input_octets),
            (avp::ACCOUNTING_OUTPUT_OCTETS, self.output_octets),
            (avp::ACCOUNTING_INPUT_PACKETS, self.input_packets),
            (avp::ACCOUNTING_OUTPUT_PACKETS, self.output_packets),
        ];
        for (code, v) in counters {
            if let Some(v) = v {
                inner.push(Avp::mandatory(code, &Value::Unsigned64(v)));
            }
        }
        jnpr(juniper::ACCT_RECORD, &Value::Grouped(inner))
    }

    /// Reads a Juniper-Acct-Record AVP.
    pub fn from_avp(a: &Avp) -> Result<Self, AvpDataError> {
        let mut r = AcctRecord::default();
        for i in a.grouped().map_err(AvpDataError::Grouped)? {
            match (i.code(), i.vendor()) {
                (juniper::POLICY_NAME, vendor::JUNIPER) => r.policy_name = text(&i)?,
                (avp::ACCOUNTING_INPUT_OCTETS, 0) => r.input_octets = Some(i.as_u64()?),
                (avp::ACCOUNTING_OUTPUT_OCTETS, 0) => r.output_octets = Some(i.as_u64()?),
                (avp::ACCOUNTING_INPUT_PACKETS, 0) => r.input_packets = Some(i.as_u64()?),
                (avp::ACCOUNTING_OUTPUT_PACKETS, 0) => r.output_packets = Some(i.as_u64()?),
                _ => {}
            }
        }
        Ok(r)
    }
}

/// Typed reads of the subscriber messages.
pub trait SubscriberMessage {
    /// User-Name.
    fn user_name(&self) -> Option<&str>;
    /// Framed-IP-Address as an IPv4 address.
    fn framed_ip(&self) -> Option<std::net::Ipv4Addr>;
    /// NAS-Port-Id (the subscriber's interface).
    fn nas_port_id(&self) -> Option<&str>;
    /// Juniper-Request-Type.
    fn request_type(&self) -> Option<RequestType>;
    /// Juniper-Last-Origin-Host.
    fn last_origin_host(&self) -> Option<&str>;
    /// Termination-Cause.
    fn termination_cause(&self) -> Option<i32>;
    /// Accounting-Record-Type.
    fn accounting_record_type(&self) -> Option<i32>;
    /// Every Juniper-Policy-Install.
    fn policy_installs(&self) -> Result<Vec<PolicyInstall>, AvpDataError>;
    /// Names in every Juniper-Policy-Remove.
    fn policy_removes(&self) -> Result<Vec<String>, AvpDataError>;
    /// Every Juniper-Acct-Record.
    fn acct_records(&self) -> Result<Vec<AcctRecord>, AvpDataError>;
}

impl SubscriberMessage for Message {
    fn user_name(&self) -> Option<&str> {
        self.find(avp::USER_NAME, 0).and_then(|a| a.as_str().ok())
    }
    fn framed_ip(&self) -> Option<std::net::Ipv4Addr> {
        let a = self.find(avp::FRAMED_IP_ADDRESS, 0)?;
        <[u8; 4]>::try_from(&a.data()[..])
            .ok()
            .map(std::net::Ipv4Addr::from)
    }
    fn nas_port_id(&self) -> Option<&str> {
        self.find(avp::NAS_PORT_ID, 0).and_then(|a| a.as_str().ok())
    }
    fn request_type(&self) -> Option<RequestType> {
        let a = self.find(juniper::REQUEST_TYPE, vendor::JUNIPER)?;
        RequestType::from_value(a.as_i32().ok()?)
    }
    fn last_origin_host(&self) -> Option<&str> {
        self.find(juniper::LAST_ORIGIN_HOST, vendor::JUNIPER)
            .and_then(|a| a.as_str().ok())
    }
    fn termination_cause(&self) -> Option<i32> {
        self.find(avp::TERMINATION_CAUSE, 0)
            .and_then(|a| a.as_i32().ok())
    }
    fn accounting_record_type(&self) -> Option<i32> {
        self.find(avp::ACCOUNTING_RECORD_TYPE, 0)
            .and_then(|a| a.as_i32().ok())
    }
    fn policy_installs(&self) -> Result<Vec<PolicyInstall>, AvpDataError> {
        self.find_all(juniper::POLICY_INSTALL, vendor::JUNIPER)
            .map(PolicyInstall::from_avp)
            .collect()
    }
    fn policy_removes(&self) -> Result<Vec<String>, AvpDataError> {
        let mut names = Vec::new();
        for a in self.find_all(juniper::POLICY_REMOVE, vendor::JUNIPER) {
            for i in a.grouped().map_err(AvpDataError::Grouped)? {
                if i.is(juniper::POLICY_NAME, vendor::JUNIPER) {
                    names.push(text(&i)?);
                }
            }
        }
        Ok(names)
    }
    fn acct_records(&self) -> Result<Vec<AcctRecord>, AvpDataError> {
        self.find_all(juniper::ACCT_RECORD, vendor::JUNIPER)
            .map(AcctRecord::from_avp)
            .collect()
    }
}

/// Juniper-Last-Origin-Host AVP.
pub fn last_origin_host(host: &str) -> Avp {
    jnpr(
        juniper::LAST_ORIGIN_HOST,
        &Value::DiameterIdentity(host.to_owned()),
    )
}

/// A plain (non-mandatory) Error-Message AVP.
pub fn error_message(text: &str) -> Avp {
    Avp::new(
        avp::ERROR_MESSAGE,
        0,
        AvpFlags::none(),
        &Value::Utf8String(text.to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::{app, command};

    #[test]
    fn policy_install_round_trips() {
        let p = PolicyInstall {
            policy_name: "gold-100M".into(),
            definition: Some(PolicyDefinition {
                policy_name: "gold-100M".into(),
                template_name: "rate-limit".into(),
                substitutions: vec![Substitution {
                    name: "rate".into(),
                    value: "100m".into(),
                }],
            }),
            collect_accounting: true,
        };
        let aaa = Message::request(command::AA, app::JSRC, true)
            .with(p.to_avp())
            .with(policy_remove("old"));
        let bytes = aaa.encode().unwrap();
        let back = Message::decode(bytes).unwrap();
        assert_eq!(back.policy_installs().unwrap(), vec![p]);
        assert_eq!(back.policy_removes().unwrap(), vec!["old".to_string()]);
    }

    #[test]
    fn acct_record_round_trips() {
        let r = AcctRecord {
            policy_name: "p".into(),
            input_octets: Some(10),
            output_octets: Some(20),
            ..Default::default()
        };
        let acr = Message::request(command::ACCOUNTING, app::JSRC, true).with(r.to_avp());
        assert_eq!(
            Message::decode(acr.encode().unwrap())
                .unwrap()
                .acct_records()
                .unwrap(),
            vec![r]
        );
    }
}
