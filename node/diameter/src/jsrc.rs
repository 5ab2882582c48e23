//! Typed views of the Juniper JSRC/PTSP AVPs and of the subscriber messages the SAE handles
//! (AAR, PPR, ACR, ASR, STR, SRQ): what the seed's flows carry, read and built without
//! touching raw AVP codes elsewhere.
//!
//! The Juniper AVP codes come from a [`JuniperCodes`]: [`JuniperCodes::DEFAULT`] holds the
//! built-in dictionary's codes, [`JuniperCodes::from_dictionary`] the codes of a dictionary an
//! operator has merged a file over (some of these codes are the project's own and an operator
//! may move them). Every builder and reader has a `…_with(&JuniperCodes)` form; the plain form
//! uses the default codes.

use std::net::Ipv4Addr;

use bytes::Bytes;

use crate::avp::{Avp, AvpFlags, AvpType, DiameterTime, Value};
use crate::codes::{avp, juniper, vendor};
use crate::dictionary::Dictionary;
use crate::error::{AvpDataError, Error};
use crate::message::Message;

/// The codes of the Juniper AVPs (vendor 2636) the typed builders and readers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JuniperCodes {
    pub dhcp_options: u32,
    pub dhcp_gi_address: u32,
    pub policy_install: u32,
    pub policy_name: u32,
    pub policy_definition: u32,
    pub template_name: u32,
    pub substitution: u32,
    pub substitution_name: u32,
    pub substitution_value: u32,
    pub policy_remove: u32,
    pub request_type: u32,
    pub acct_record: u32,
    pub acct_collect: u32,
    pub last_origin_host: u32,
}

impl Default for JuniperCodes {
    fn default() -> Self {
        JuniperCodes::DEFAULT
    }
}

type Field = fn(&mut JuniperCodes) -> &mut u32;

/// Dictionary name, whether the typed layer writes the AVP as Grouped, and the field.
const NAMED: [(&str, bool, Field); 14] = [
    ("Juniper-DHCP-Options", false, |c| &mut c.dhcp_options),
    ("Juniper-DHCP-GI-Address", false, |c| &mut c.dhcp_gi_address),
    ("Juniper-Policy-Install", true, |c| &mut c.policy_install),
    ("Juniper-Policy-Name", false, |c| &mut c.policy_name),
    ("Juniper-Policy-Definition", true, |c| {
        &mut c.policy_definition
    }),
    ("Juniper-Template-Name", false, |c| &mut c.template_name),
    ("Juniper-Substitution", true, |c| &mut c.substitution),
    ("Juniper-Substitution-Name", false, |c| {
        &mut c.substitution_name
    }),
    ("Juniper-Substitution-Value", false, |c| {
        &mut c.substitution_value
    }),
    ("Juniper-Policy-Remove", true, |c| &mut c.policy_remove),
    ("Juniper-Request-Type", false, |c| &mut c.request_type),
    ("Juniper-Acct-Record", true, |c| &mut c.acct_record),
    ("Juniper-Acct-Collect", false, |c| &mut c.acct_collect),
    ("Juniper-Last-Origin-Host", false, |c| {
        &mut c.last_origin_host
    }),
];

impl JuniperCodes {
    /// The codes of the built-in dictionary.
    pub const DEFAULT: JuniperCodes = JuniperCodes {
        dhcp_options: juniper::DHCP_OPTIONS,
        dhcp_gi_address: juniper::DHCP_GI_ADDRESS,
        policy_install: juniper::POLICY_INSTALL,
        policy_name: juniper::POLICY_NAME,
        policy_definition: juniper::POLICY_DEFINITION,
        template_name: juniper::TEMPLATE_NAME,
        substitution: juniper::SUBSTITUTION,
        substitution_name: juniper::SUBSTITUTION_NAME,
        substitution_value: juniper::SUBSTITUTION_VALUE,
        policy_remove: juniper::POLICY_REMOVE,
        request_type: juniper::REQUEST_TYPE,
        acct_record: juniper::ACCT_RECORD,
        acct_collect: juniper::ACCT_COLLECT,
        last_origin_host: juniper::LAST_ORIGIN_HOST,
    };

    /// The codes a dictionary gives the Juniper AVPs, looked up by name. Each must be defined,
    /// with vendor 2636, and be Grouped exactly when the typed layer writes it as Grouped.
    pub fn from_dictionary(dictionary: &Dictionary) -> Result<JuniperCodes, Error> {
        let mut codes = JuniperCodes::DEFAULT;
        for (name, grouped, field) in NAMED {
            let def = dictionary.avp_by_name(name).ok_or_else(|| {
                Error::Dictionary(format!(
                    "{name} is not defined; the Juniper messages need it"
                ))
            })?;
            if def.vendor != vendor::JUNIPER {
                return Err(Error::Dictionary(format!(
                    "{name} has vendor {}; it must be {}",
                    def.vendor,
                    vendor::JUNIPER
                )));
            }
            if (def.ty == AvpType::Grouped) != grouped {
                return Err(Error::Dictionary(format!(
                    "{name} has type {}; it must {}be Grouped",
                    def.ty.name(),
                    if grouped { "" } else { "not " }
                )));
            }
            *field(&mut codes) = def.code;
        }
        Ok(codes)
    }

    fn avp(&self, code: u32, value: &Value) -> Avp {
        Avp::vendor_mandatory(code, vendor::JUNIPER, value)
    }
}

fn octets(s: &str) -> Value {
    Value::OctetString(Bytes::copy_from_slice(s.as_bytes()))
}

fn text(a: &Avp) -> Result<String, AvpDataError> {
    a.as_str().map(str::to_owned)
}

fn members(a: &Avp) -> Result<Vec<Avp>, AvpDataError> {
    a.grouped().map_err(AvpDataError::Grouped)
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

/// Juniper-Request-Type values. 4 and 5 are Juniper's (the `dualstack-support (JSRC)`
/// statement of the Junos documentation: the AAR of a second address family coming up, and of
/// the next-to-last one going down); 1–3 are the project's numbering, as Juniper publishes the
/// three kinds but not their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    AddressAuthorization,
    Provisioning,
    Synchronization,
    FamilyActivation,
    FamilyDeactivation,
}

impl RequestType {
    /// Wire value.
    pub fn value(self) -> i32 {
        match self {
            RequestType::AddressAuthorization => 1,
            RequestType::Provisioning => 2,
            RequestType::Synchronization => 3,
            RequestType::FamilyActivation => 4,
            RequestType::FamilyDeactivation => 5,
        }
    }

    /// From the wire value.
    pub fn from_value(v: i32) -> Option<Self> {
        match v {
            1 => Some(RequestType::AddressAuthorization),
            2 => Some(RequestType::Provisioning),
            3 => Some(RequestType::Synchronization),
            4 => Some(RequestType::FamilyActivation),
            5 => Some(RequestType::FamilyDeactivation),
            _ => None,
        }
    }

    /// The AVP, with the default codes.
    pub fn to_avp(self) -> Avp {
        self.to_avp_with(&JuniperCodes::DEFAULT)
    }

    /// The AVP.
    pub fn to_avp_with(self, codes: &JuniperCodes) -> Avp {
        codes.avp(codes.request_type, &Value::Enumerated(self.value()))
    }
}

impl PolicyDefinition {
    /// The Juniper-Policy-Definition AVP, with the default codes.
    pub fn to_avp(&self) -> Avp {
        self.to_avp_with(&JuniperCodes::DEFAULT)
    }

    /// The Juniper-Policy-Definition AVP.
    pub fn to_avp_with(&self, codes: &JuniperCodes) -> Avp {
        let mut inner = vec![
            codes.avp(codes.policy_name, &octets(&self.policy_name)),
            codes.avp(codes.template_name, &octets(&self.template_name)),
        ];
        for s in &self.substitutions {
            let pair = vec![
                codes.avp(codes.substitution_name, &octets(&s.name)),
                codes.avp(codes.substitution_value, &octets(&s.value)),
            ];
            inner.push(codes.avp(codes.substitution, &Value::Grouped(pair)));
        }
        codes.avp(codes.policy_definition, &Value::Grouped(inner))
    }

    /// Reads a Juniper-Policy-Definition AVP, with the default codes.
    pub fn from_avp(a: &Avp) -> Result<Self, AvpDataError> {
        Self::from_avp_with(a, &JuniperCodes::DEFAULT)
    }

    /// Reads a Juniper-Policy-Definition AVP: Juniper-Template-Name is required, and so are
    /// the name and the value of each Juniper-Substitution.
    pub fn from_avp_with(a: &Avp, codes: &JuniperCodes) -> Result<Self, AvpDataError> {
        let mut policy_name = String::new();
        let mut template_name = None;
        let mut substitutions = Vec::new();
        for i in members(a)? {
            match (i.code(), i.vendor()) {
                (c, vendor::JUNIPER) if c == codes.policy_name => policy_name = text(&i)?,
                (c, vendor::JUNIPER) if c == codes.template_name => template_name = Some(text(&i)?),
                (c, vendor::JUNIPER) if c == codes.substitution => {
                    substitutions.push(Substitution::from_avp(&i, codes)?)
                }
                _ => {}
            }
        }
        let template_name = template_name.ok_or(AvpDataError::Value(
            "Juniper-Policy-Definition without Juniper-Template-Name",
        ))?;
        Ok(PolicyDefinition {
            policy_name,
            template_name,
            substitutions,
        })
    }
}

impl Substitution {
    fn from_avp(a: &Avp, codes: &JuniperCodes) -> Result<Self, AvpDataError> {
        let (mut name, mut value) = (None, None);
        for p in members(a)? {
            match (p.code(), p.vendor()) {
                (c, vendor::JUNIPER) if c == codes.substitution_name => name = Some(text(&p)?),
                (c, vendor::JUNIPER) if c == codes.substitution_value => value = Some(text(&p)?),
                _ => {}
            }
        }
        match (name, value) {
            (Some(name), Some(value)) => Ok(Substitution { name, value }),
            _ => Err(AvpDataError::Value(
                "Juniper-Substitution without Juniper-Substitution-Name and -Value",
            )),
        }
    }
}

impl PolicyInstall {
    /// The Juniper-Policy-Install AVP, with the default codes.
    pub fn to_avp(&self) -> Avp {
        self.to_avp_with(&JuniperCodes::DEFAULT)
    }

    /// The Juniper-Policy-Install AVP.
    pub fn to_avp_with(&self, codes: &JuniperCodes) -> Avp {
        let mut inner = vec![codes.avp(codes.policy_name, &octets(&self.policy_name))];
        if let Some(d) = &self.definition {
            inner.push(d.to_avp_with(codes));
        }
        if self.collect_accounting {
            inner.push(codes.avp(codes.acct_collect, &Value::Enumerated(1)));
        }
        codes.avp(codes.policy_install, &Value::Grouped(inner))
    }

    /// Reads a Juniper-Policy-Install AVP, with the default codes.
    pub fn from_avp(a: &Avp) -> Result<Self, AvpDataError> {
        Self::from_avp_with(a, &JuniperCodes::DEFAULT)
    }

    /// Reads a Juniper-Policy-Install AVP.
    pub fn from_avp_with(a: &Avp, codes: &JuniperCodes) -> Result<Self, AvpDataError> {
        let mut p = PolicyInstall {
            policy_name: String::new(),
            definition: None,
            collect_accounting: false,
        };
        for i in members(a)? {
            match (i.code(), i.vendor()) {
                (c, vendor::JUNIPER) if c == codes.policy_name => p.policy_name = text(&i)?,
                (c, vendor::JUNIPER) if c == codes.policy_definition => {
                    p.definition = Some(PolicyDefinition::from_avp_with(&i, codes)?)
                }
                (c, vendor::JUNIPER) if c == codes.acct_collect => p.collect_accounting = true,
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

/// The Juniper-Policy-Remove AVP for a policy, with the default codes.
pub fn policy_remove(policy_name: &str) -> Avp {
    policy_remove_with(policy_name, &JuniperCodes::DEFAULT)
}

/// The Juniper-Policy-Remove AVP for a policy.
pub fn policy_remove_with(policy_name: &str, codes: &JuniperCodes) -> Avp {
    codes.avp(
        codes.policy_remove,
        &Value::Grouped(vec![codes.avp(codes.policy_name, &octets(policy_name))]),
    )
}

impl AcctRecord {
    /// The Juniper-Acct-Record AVP, with the default codes.
    pub fn to_avp(&self) -> Avp {
        self.to_avp_with(&JuniperCodes::DEFAULT)
    }

    /// The Juniper-Acct-Record AVP.
    pub fn to_avp_with(&self, codes: &JuniperCodes) -> Avp {
        let mut inner = vec![codes.avp(codes.policy_name, &octets(&self.policy_name))];
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
        codes.avp(codes.acct_record, &Value::Grouped(inner))
    }

    /// Reads a Juniper-Acct-Record AVP, with the default codes.
    pub fn from_avp(a: &Avp) -> Result<Self, AvpDataError> {
        Self::from_avp_with(a, &JuniperCodes::DEFAULT)
    }

    /// Reads a Juniper-Acct-Record AVP.
    pub fn from_avp_with(a: &Avp, codes: &JuniperCodes) -> Result<Self, AvpDataError> {
        let mut r = AcctRecord::default();
        for i in members(a)? {
            match (i.code(), i.vendor()) {
                (c, vendor::JUNIPER) if c == codes.policy_name => r.policy_name = text(&i)?,
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

/// Typed reads of the subscriber messages. The Juniper readers come in two forms: `…_with`
/// takes the codes, the plain one uses [`JuniperCodes::DEFAULT`].
pub trait SubscriberMessage {
    /// User-Name.
    fn user_name(&self) -> Option<&str>;
    /// Framed-IP-Address as an IPv4 address.
    fn framed_ip(&self) -> Option<Ipv4Addr>;
    /// NAS-Port-Id (the subscriber's interface).
    fn nas_port_id(&self) -> Option<&str>;
    /// NAS-IP-Address (four octets: RADIUS's IPv4 form).
    fn nas_ip_address(&self) -> Option<Ipv4Addr>;
    /// Calling-Station-Id (for a DHCP subscriber, its MAC address as text).
    fn calling_station_id(&self) -> Option<&str>;
    /// Every Class, raw.
    fn classes(&self) -> Vec<&Bytes>;
    /// Every Framed-IPv6-Prefix; the first malformed one is the error, with its AVP.
    fn framed_ipv6_prefixes(&self) -> Result<Vec<Ipv6Prefix>, InvalidAvp<'_>>;
    /// Every Delegated-IPv6-Prefix; the first malformed one is the error, with its AVP.
    fn delegated_ipv6_prefixes(&self) -> Result<Vec<Ipv6Prefix>, InvalidAvp<'_>>;
    /// Termination-Cause.
    fn termination_cause(&self) -> Option<i32>;
    /// Accounting-Record-Type.
    fn accounting_record_type(&self) -> Option<i32>;
    /// Accounting-Record-Number.
    fn accounting_record_number(&self) -> Option<u32>;
    /// Event-Timestamp.
    fn event_timestamp(&self) -> Option<DiameterTime>;
    /// Acct-Interim-Interval, in seconds.
    fn acct_interim_interval(&self) -> Option<u32>;
    /// Destination-Host.
    fn destination_host(&self) -> Option<&str>;
    /// Auth-Session-State (0 STATE_MAINTAINED, 1 NO_STATE_MAINTAINED).
    fn auth_session_state(&self) -> Option<i32>;
    /// The first Redirect-Host (a DiameterURI).
    fn redirect_host(&self) -> Option<&str> {
        self.redirect_hosts().into_iter().next()
    }
    /// Every Redirect-Host, in order.
    fn redirect_hosts(&self) -> Vec<&str>;

    /// Juniper-Request-Type.
    fn request_type_with(&self, codes: &JuniperCodes) -> Option<RequestType>;
    /// Juniper-Last-Origin-Host.
    fn last_origin_host_with(&self, codes: &JuniperCodes) -> Option<&str>;
    /// Juniper-DHCP-Options (the client's DHCP options, raw).
    fn dhcp_options_with(&self, codes: &JuniperCodes) -> Option<&Bytes>;
    /// Juniper-DHCP-GI-Address, four octets read as an IPv4 address (the relay agent's
    /// address).
    fn dhcp_gi_address_with(&self, codes: &JuniperCodes) -> Option<Ipv4Addr>;
    /// Juniper-Acct-Collect at the message level.
    fn acct_collect_with(&self, codes: &JuniperCodes) -> Option<i32>;
    /// Every Juniper-Policy-Install.
    fn policy_installs_with(
        &self,
        codes: &JuniperCodes,
    ) -> Result<Vec<PolicyInstall>, AvpDataError>;
    /// Names in every Juniper-Policy-Remove.
    fn policy_removes_with(&self, codes: &JuniperCodes) -> Result<Vec<String>, AvpDataError>;
    /// Every Juniper-Acct-Record.
    fn acct_records_with(&self, codes: &JuniperCodes) -> Result<Vec<AcctRecord>, AvpDataError>;

    /// Juniper-Request-Type, with the default codes.
    fn request_type(&self) -> Option<RequestType> {
        self.request_type_with(&JuniperCodes::DEFAULT)
    }
    /// Juniper-Last-Origin-Host, with the default codes.
    fn last_origin_host(&self) -> Option<&str> {
        self.last_origin_host_with(&JuniperCodes::DEFAULT)
    }
    /// Juniper-DHCP-Options, with the default codes.
    fn dhcp_options(&self) -> Option<&Bytes> {
        self.dhcp_options_with(&JuniperCodes::DEFAULT)
    }
    /// Juniper-DHCP-GI-Address, with the default codes.
    fn dhcp_gi_address(&self) -> Option<Ipv4Addr> {
        self.dhcp_gi_address_with(&JuniperCodes::DEFAULT)
    }
    /// Juniper-Acct-Collect at the message level, with the default codes.
    fn acct_collect(&self) -> Option<i32> {
        self.acct_collect_with(&JuniperCodes::DEFAULT)
    }
    /// Every Juniper-Policy-Install, with the default codes.
    fn policy_installs(&self) -> Result<Vec<PolicyInstall>, AvpDataError> {
        self.policy_installs_with(&JuniperCodes::DEFAULT)
    }
    /// Names in every Juniper-Policy-Remove, with the default codes.
    fn policy_removes(&self) -> Result<Vec<String>, AvpDataError> {
        self.policy_removes_with(&JuniperCodes::DEFAULT)
    }
    /// Every Juniper-Acct-Record, with the default codes.
    fn acct_records(&self) -> Result<Vec<AcctRecord>, AvpDataError> {
        self.acct_records_with(&JuniperCodes::DEFAULT)
    }
}

/// An AVP whose data its reader refused, for the Failed-AVP of the answer.
#[derive(Debug, Clone)]
pub struct InvalidAvp<'a> {
    pub avp: &'a Avp,
    pub error: AvpDataError,
}

impl std::fmt::Display for InvalidAvp<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AVP {}: {}", self.avp.code(), self.error)
    }
}

/// An IPv6 prefix in the layout of RFC 3162 section 2.3 (Framed-IPv6-Prefix) and RFC 4818
/// (Delegated-IPv6-Prefix): a reserved octet, the prefix length (0 to 128), then the prefix,
/// at least as many octets as the length needs and at most 16. Bits beyond the length are
/// cleared when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix {
    pub addr: std::net::Ipv6Addr,
    pub len: u8,
}

impl Ipv6Prefix {
    /// Reads the AVP data.
    pub fn from_data(data: &[u8]) -> Result<Ipv6Prefix, AvpDataError> {
        let [_reserved, len, prefix @ ..] = data else {
            return Err(AvpDataError::Length {
                expected: 2,
                actual: data.len(),
            });
        };
        if *len > 128 {
            return Err(AvpDataError::Value("prefix length above 128"));
        }
        let needed = usize::from(*len).div_ceil(8);
        if prefix.len() < needed || prefix.len() > 16 {
            return Err(AvpDataError::Length {
                expected: 2 + needed,
                actual: data.len(),
            });
        }
        let mut octets = [0u8; 16];
        octets[..prefix.len()].copy_from_slice(prefix);
        let bits = u128::from_be_bytes(octets);
        let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
        Ok(Ipv6Prefix {
            addr: std::net::Ipv6Addr::from(bits & mask),
            len: *len,
        })
    }

    /// The AVP data: the reserved octet, the length and the octets the length needs.
    pub fn to_data(self) -> Bytes {
        let needed = usize::from(self.len).div_ceil(8);
        let mut data = Vec::with_capacity(2 + needed);
        data.extend_from_slice(&[0, self.len]);
        data.extend_from_slice(&self.addr.octets()[..needed]);
        Bytes::from(data)
    }
}

impl std::fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn ipv6_prefixes(message: &Message, code: u32) -> Result<Vec<Ipv6Prefix>, InvalidAvp<'_>> {
    message
        .find_all(code, 0)
        .map(|avp| Ipv6Prefix::from_data(avp.data()).map_err(|error| InvalidAvp { avp, error }))
        .collect()
}

fn ipv4(a: &Avp) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(&a.data()[..]).ok().map(Ipv4Addr::from)
}

impl SubscriberMessage for Message {
    fn user_name(&self) -> Option<&str> {
        self.find(avp::USER_NAME, 0).and_then(|a| a.as_str().ok())
    }
    fn framed_ip(&self) -> Option<Ipv4Addr> {
        self.find(avp::FRAMED_IP_ADDRESS, 0).and_then(ipv4)
    }
    fn nas_port_id(&self) -> Option<&str> {
        self.find(avp::NAS_PORT_ID, 0).and_then(|a| a.as_str().ok())
    }
    fn nas_ip_address(&self) -> Option<Ipv4Addr> {
        self.find(avp::NAS_IP_ADDRESS, 0).and_then(ipv4)
    }
    fn calling_station_id(&self) -> Option<&str> {
        self.find(avp::CALLING_STATION_ID, 0)
            .and_then(|a| a.as_str().ok())
    }
    fn classes(&self) -> Vec<&Bytes> {
        self.find_all(avp::CLASS, 0).map(Avp::data).collect()
    }
    fn framed_ipv6_prefixes(&self) -> Result<Vec<Ipv6Prefix>, InvalidAvp<'_>> {
        ipv6_prefixes(self, avp::FRAMED_IPV6_PREFIX)
    }
    fn delegated_ipv6_prefixes(&self) -> Result<Vec<Ipv6Prefix>, InvalidAvp<'_>> {
        ipv6_prefixes(self, avp::DELEGATED_IPV6_PREFIX)
    }
    fn termination_cause(&self) -> Option<i32> {
        self.find(avp::TERMINATION_CAUSE, 0)
            .and_then(|a| a.as_i32().ok())
    }
    fn accounting_record_type(&self) -> Option<i32> {
        self.find(avp::ACCOUNTING_RECORD_TYPE, 0)
            .and_then(|a| a.as_i32().ok())
    }
    fn accounting_record_number(&self) -> Option<u32> {
        self.find(avp::ACCOUNTING_RECORD_NUMBER, 0)
            .and_then(|a| a.as_u32().ok())
    }
    fn event_timestamp(&self) -> Option<DiameterTime> {
        match self.find(avp::EVENT_TIMESTAMP, 0)?.value(AvpType::Time) {
            Ok(Value::Time(t)) => Some(t),
            _ => None,
        }
    }
    fn acct_interim_interval(&self) -> Option<u32> {
        self.find(avp::ACCT_INTERIM_INTERVAL, 0)
            .and_then(|a| a.as_u32().ok())
    }
    fn destination_host(&self) -> Option<&str> {
        self.find(avp::DESTINATION_HOST, 0)
            .and_then(|a| a.as_str().ok())
    }
    fn auth_session_state(&self) -> Option<i32> {
        self.find(avp::AUTH_SESSION_STATE, 0)
            .and_then(|a| a.as_i32().ok())
    }
    fn redirect_hosts(&self) -> Vec<&str> {
        self.find_all(avp::REDIRECT_HOST, 0)
            .filter_map(|a| a.as_str().ok())
            .collect()
    }

    fn request_type_with(&self, codes: &JuniperCodes) -> Option<RequestType> {
        let a = self.find(codes.request_type, vendor::JUNIPER)?;
        RequestType::from_value(a.as_i32().ok()?)
    }
    fn last_origin_host_with(&self, codes: &JuniperCodes) -> Option<&str> {
        self.find(codes.last_origin_host, vendor::JUNIPER)
            .and_then(|a| a.as_str().ok())
    }
    fn dhcp_options_with(&self, codes: &JuniperCodes) -> Option<&Bytes> {
        self.find(codes.dhcp_options, vendor::JUNIPER)
            .map(Avp::data)
    }
    fn dhcp_gi_address_with(&self, codes: &JuniperCodes) -> Option<Ipv4Addr> {
        self.find(codes.dhcp_gi_address, vendor::JUNIPER)
            .and_then(ipv4)
    }
    fn acct_collect_with(&self, codes: &JuniperCodes) -> Option<i32> {
        self.find(codes.acct_collect, vendor::JUNIPER)
            .and_then(|a| a.as_i32().ok())
    }
    fn policy_installs_with(
        &self,
        codes: &JuniperCodes,
    ) -> Result<Vec<PolicyInstall>, AvpDataError> {
        self.find_all(codes.policy_install, vendor::JUNIPER)
            .map(|a| PolicyInstall::from_avp_with(a, codes))
            .collect()
    }
    fn policy_removes_with(&self, codes: &JuniperCodes) -> Result<Vec<String>, AvpDataError> {
        let mut names = Vec::new();
        for a in self.find_all(codes.policy_remove, vendor::JUNIPER) {
            for i in members(a)? {
                if i.is(codes.policy_name, vendor::JUNIPER) {
                    names.push(text(&i)?);
                }
            }
        }
        Ok(names)
    }
    fn acct_records_with(&self, codes: &JuniperCodes) -> Result<Vec<AcctRecord>, AvpDataError> {
        self.find_all(codes.acct_record, vendor::JUNIPER)
            .map(|a| AcctRecord::from_avp_with(a, codes))
            .collect()
    }
}

/// Juniper-Last-Origin-Host AVP, with the default codes.
pub fn last_origin_host(host: &str) -> Avp {
    last_origin_host_with(host, &JuniperCodes::DEFAULT)
}

/// Juniper-Last-Origin-Host AVP.
pub fn last_origin_host_with(host: &str, codes: &JuniperCodes) -> Avp {
    codes.avp(
        codes.last_origin_host,
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

    #[test]
    fn ipv6_prefixes_read_as_rfc_3162_lays_them_out() {
        let p = Ipv6Prefix::from_data(&[0, 56, 0x20, 0x01, 0x0d, 0xb8, 0, 0x01, 0xff]).unwrap();
        assert_eq!(p.to_string(), "2001:db8:1:ff00::/56");
        assert_eq!(
            &p.to_data()[..],
            &[0, 56, 0x20, 0x01, 0x0d, 0xb8, 0, 0x01, 0xff]
        );
        // Octets beyond the length are allowed up to 16; bits beyond it are cleared.
        let p =
            Ipv6Prefix::from_data(&[0, 60, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0xff, 0xee]).unwrap();
        assert_eq!(p.to_string(), "2001:db8:0:f0::/60");
        assert_eq!(Ipv6Prefix::from_data(&[0, 0]).unwrap().to_string(), "::/0");
        assert!(Ipv6Prefix::from_data(&[0]).is_err());
        assert!(Ipv6Prefix::from_data(&[0, 129]).is_err());
        assert!(Ipv6Prefix::from_data(&[0, 64, 0x20, 0x01]).is_err());
        assert!(Ipv6Prefix::from_data(&[0u8; 19]).is_err());
    }
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

    /// The example operator file moving the project's own Juniper AVPs to 3023–3026.
    const MOVED: &str = include_str!("../dictionary/examples/move-juniper-codes.toml");

    fn moved() -> JuniperCodes {
        let mut d = Dictionary::base();
        d.load_str(MOVED).unwrap();
        JuniperCodes::from_dictionary(&d).unwrap()
    }

    fn gold() -> PolicyInstall {
        PolicyInstall {
            policy_name: "gold-100M".into(),
            definition: Some(PolicyDefinition {
                policy_name: "gold-100M".into(),
                template_name: "rate-limit".into(),
                substitutions: vec![
                    Substitution {
                        name: "rate".into(),
                        value: "100m".into(),
                    },
                    Substitution {
                        name: "burst".into(),
                        value: "10m".into(),
                    },
                ],
            }),
            collect_accounting: true,
        }
    }

    fn codes_in(a: &Avp) -> Vec<u32> {
        a.grouped().unwrap().iter().map(Avp::code).collect()
    }

    #[test]
    fn the_built_in_dictionary_gives_the_default_codes() {
        assert_eq!(
            JuniperCodes::from_dictionary(&Dictionary::base()).unwrap(),
            JuniperCodes::DEFAULT
        );
        assert_eq!(JuniperCodes::default(), JuniperCodes::DEFAULT);
    }

    #[test]
    fn an_override_moves_the_codes_encoded_and_decoded() {
        let codes = moved();
        assert_eq!(
            (
                codes.template_name,
                codes.substitution,
                codes.substitution_name,
                codes.substitution_value
            ),
            (3023, 3024, 3025, 3026)
        );
        assert_eq!(codes.policy_definition, juniper::POLICY_DEFINITION);
        let aaa = Message::request(command::AA, app::JSRC, true).with(gold().to_avp_with(&codes));
        let back = Message::decode(aaa.encode().unwrap()).unwrap();

        let install = back.find(juniper::POLICY_INSTALL, vendor::JUNIPER).unwrap();
        let definition = install
            .grouped()
            .unwrap()
            .into_iter()
            .find(|a| a.is(juniper::POLICY_DEFINITION, vendor::JUNIPER))
            .unwrap();
        assert_eq!(codes_in(&definition), vec![2021, 3023, 3024, 3024]);
        let substitution = definition.grouped().unwrap().pop().unwrap();
        assert_eq!(codes_in(&substitution), vec![3025, 3026]);

        assert_eq!(back.policy_installs_with(&codes).unwrap(), vec![gold()]);
    }

    #[test]
    fn reading_with_other_codes_than_the_sender_fails_instead_of_dropping_the_definition() {
        let codes = moved();
        let overridden = Message::decode(
            Message::request(command::AA, app::JSRC, true)
                .with(gold().to_avp_with(&codes))
                .encode()
                .unwrap(),
        )
        .unwrap();
        let err = overridden.policy_installs().unwrap_err();
        assert!(
            err.to_string().contains("Juniper-Policy-Definition"),
            "{err}"
        );

        let default = Message::decode(
            Message::request(command::AA, app::JSRC, true)
                .with(gold().to_avp())
                .encode()
                .unwrap(),
        )
        .unwrap();
        assert!(default.policy_installs_with(&codes).is_err());
        assert_eq!(default.policy_installs().unwrap(), vec![gold()]);

        // Only some codes differing: never read as the policy that was sent.
        for change in [
            (|c: &mut JuniperCodes| c.template_name = 4000) as fn(&mut JuniperCodes),
            |c| c.substitution = 4000,
            |c| c.substitution_name = 4000,
            |c| c.substitution_value = 4000,
        ] {
            let mut other = JuniperCodes::DEFAULT;
            change(&mut other);
            let m = Message::decode(
                Message::request(command::AA, app::JSRC, true)
                    .with(gold().to_avp_with(&other))
                    .encode()
                    .unwrap(),
            )
            .unwrap();
            assert_ne!(m.policy_installs().ok(), Some(vec![gold()]), "{other:?}");
            assert_eq!(m.policy_installs_with(&other).unwrap(), vec![gold()]);
        }
    }

    #[test]
    fn every_builder_and_reader_follows_the_codes() {
        let d = JuniperCodes::DEFAULT;
        let codes = JuniperCodes {
            dhcp_options: d.dhcp_options + 1000,
            dhcp_gi_address: d.dhcp_gi_address + 1000,
            policy_install: d.policy_install + 1000,
            policy_name: d.policy_name + 1000,
            policy_definition: d.policy_definition + 1000,
            template_name: d.template_name + 1000,
            substitution: d.substitution + 1000,
            substitution_name: d.substitution_name + 1000,
            substitution_value: d.substitution_value + 1000,
            policy_remove: d.policy_remove + 1000,
            request_type: d.request_type + 1000,
            acct_record: d.acct_record + 1000,
            acct_collect: d.acct_collect + 1000,
            last_origin_host: d.last_origin_host + 1000,
        };
        let record = AcctRecord {
            policy_name: "gold-100M".into(),
            input_octets: Some(5),
            ..Default::default()
        };
        let m = Message::request(command::PUSH_PROFILE, app::JSRC, true)
            .with(RequestType::Synchronization.to_avp_with(&codes))
            .with(last_origin_host_with("sae-1.example", &codes))
            .with(gold().to_avp_with(&codes))
            .with(policy_remove_with("old", &codes))
            .with(record.to_avp_with(&codes))
            .with(Avp::vendor_mandatory(
                codes.dhcp_options,
                vendor::JUNIPER,
                &Value::OctetString(Bytes::from_static(&[53, 1, 1])),
            ))
            .with(Avp::vendor_mandatory(
                codes.dhcp_gi_address,
                vendor::JUNIPER,
                &Value::OctetString(Bytes::from_static(&[10, 1, 2, 3])),
            ))
            .with(Avp::vendor_mandatory(
                codes.acct_collect,
                vendor::JUNIPER,
                &Value::Enumerated(1),
            ));
        let m = Message::decode(m.encode().unwrap()).unwrap();
        for a in &m.avps {
            assert!(a.code() > 3000, "{a:?}");
        }
        assert_eq!(
            m.request_type_with(&codes),
            Some(RequestType::Synchronization)
        );
        assert_eq!(m.last_origin_host_with(&codes), Some("sae-1.example"));
        assert_eq!(m.policy_installs_with(&codes).unwrap(), vec![gold()]);
        assert_eq!(m.policy_removes_with(&codes).unwrap(), vec!["old"]);
        assert_eq!(m.acct_records_with(&codes).unwrap(), vec![record]);
        assert_eq!(m.dhcp_options_with(&codes).unwrap()[..], [53, 1, 1]);
        assert_eq!(
            m.dhcp_gi_address_with(&codes),
            Some(Ipv4Addr::new(10, 1, 2, 3))
        );
        assert_eq!(m.acct_collect_with(&codes), Some(1));

        // With the default codes none of it is there.
        assert_eq!(m.request_type(), None);
        assert_eq!(m.last_origin_host(), None);
        assert!(m.policy_installs().unwrap().is_empty());
        assert!(m.policy_removes().unwrap().is_empty());
        assert!(m.acct_records().unwrap().is_empty());
        assert_eq!(m.dhcp_options(), None);
        assert_eq!(m.dhcp_gi_address(), None);
        assert_eq!(m.acct_collect(), None);
    }

    #[test]
    fn a_dictionary_that_cannot_serve_the_juniper_messages_is_refused() {
        let refused = |text: &str| {
            let mut d = Dictionary::base();
            d.load_str(text).unwrap();
            JuniperCodes::from_dictionary(&d).unwrap_err().to_string()
        };
        // The name taken away from its code and given to none.
        let err = refused(
            "[[avp]]\ncode = 2023\nvendor = 2636\nname = \"Site-Template\"\ntype = \"OctetString\"\n",
        );
        assert!(
            err.contains("Juniper-Template-Name is not defined"),
            "{err}"
        );
        // Grouped where the messages need a value, and the reverse.
        let err = refused(
            "[[avp]]\ncode = 2023\nvendor = 2636\nname = \"Juniper-Template-Name\"\ntype = \"Grouped\"\n",
        );
        assert!(err.contains("must not be Grouped"), "{err}");
        let err = refused(
            "[[avp]]\ncode = 2024\nvendor = 2636\nname = \"Juniper-Substitution\"\ntype = \"OctetString\"\n",
        );
        assert!(err.contains("must be Grouped"), "{err}");
        // Another vendor.
        let err = refused(
            "[[avp]]\ncode = 2023\nvendor = 2636\nname = \"Retired\"\ntype = \"OctetString\"\n\
             [[avp]]\ncode = 2023\nvendor = 9\nname = \"Juniper-Template-Name\"\ntype = \"OctetString\"\n",
        );
        assert!(err.contains("vendor 9"), "{err}");
    }

    #[test]
    fn the_message_getters_read_their_avps() {
        let m = Message::request(command::ACCOUNTING, app::JSRC, true)
            .with(Avp::mandatory(
                avp::EVENT_TIMESTAMP,
                &Value::Time(DiameterTime::from_unix_seconds(1_700_000_000)),
            ))
            .with(Avp::mandatory(
                avp::ACCT_INTERIM_INTERVAL,
                &Value::Unsigned32(600),
            ))
            .with(Avp::mandatory(
                avp::ACCOUNTING_RECORD_NUMBER,
                &Value::Unsigned32(7),
            ))
            .with(Avp::mandatory(
                avp::DESTINATION_HOST,
                &Value::DiameterIdentity("r1.example".into()),
            ))
            .with(Avp::mandatory(
                avp::AUTH_SESSION_STATE,
                &Value::Enumerated(1),
            ))
            .with(Avp::mandatory(
                avp::REDIRECT_HOST,
                &Value::DiameterUri("aaa://sae-2.example:3868".into()),
            ))
            .with(Avp::mandatory(
                avp::REDIRECT_HOST,
                &Value::DiameterUri("aaa://sae-3.example:3868".into()),
            ))
            .with(Avp::vendor_mandatory(
                juniper::DHCP_OPTIONS,
                vendor::JUNIPER,
                &Value::OctetString(Bytes::from_static(&[53, 1, 3, 61, 2, 1, 9])),
            ))
            .with(Avp::vendor_mandatory(
                juniper::DHCP_GI_ADDRESS,
                vendor::JUNIPER,
                &Value::OctetString(Bytes::from_static(&[192, 0, 2, 1])),
            ))
            .with(Avp::vendor_mandatory(
                juniper::ACCT_COLLECT,
                vendor::JUNIPER,
                &Value::Enumerated(1),
            ));
        let m = Message::decode(m.encode().unwrap()).unwrap();
        assert_eq!(
            m.event_timestamp().map(DiameterTime::to_unix_seconds),
            Some(1_700_000_000)
        );
        assert_eq!(m.acct_interim_interval(), Some(600));
        assert_eq!(m.accounting_record_number(), Some(7));
        assert_eq!(m.destination_host(), Some("r1.example"));
        assert_eq!(m.auth_session_state(), Some(1));
        assert_eq!(m.redirect_host(), Some("aaa://sae-2.example:3868"));
        assert_eq!(
            m.redirect_hosts(),
            vec!["aaa://sae-2.example:3868", "aaa://sae-3.example:3868"]
        );
        assert_eq!(m.dhcp_options().unwrap()[..], [53, 1, 3, 61, 2, 1, 9]);
        assert_eq!(m.dhcp_gi_address(), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(m.acct_collect(), Some(1));

        let empty = Message::request(command::ACCOUNTING, app::JSRC, true);
        assert_eq!(empty.event_timestamp(), None);
        assert_eq!(empty.acct_interim_interval(), None);
        assert_eq!(empty.accounting_record_number(), None);
        assert_eq!(empty.destination_host(), None);
        assert_eq!(empty.auth_session_state(), None);
        assert_eq!(empty.redirect_host(), None);
        assert!(empty.redirect_hosts().is_empty());
        assert_eq!(empty.dhcp_options(), None);
        assert_eq!(empty.dhcp_gi_address(), None);
        assert_eq!(empty.acct_collect(), None);

        // Data of the wrong size is no value.
        let short = Message::request(command::ACCOUNTING, app::JSRC, true)
            .with(Avp::mandatory(
                avp::EVENT_TIMESTAMP,
                &Value::OctetString(Bytes::from_static(&[1, 2])),
            ))
            .with(Avp::vendor_mandatory(
                juniper::DHCP_GI_ADDRESS,
                vendor::JUNIPER,
                &Value::OctetString(Bytes::from_static(&[10, 0, 0])),
            ));
        assert_eq!(short.event_timestamp(), None);
        assert_eq!(short.dhcp_gi_address(), None);
    }
}
