//! The Diameter dictionary, held as data: AVP definitions, applications and command rules.
//!
//! [`Dictionary::base`] loads the built-in `dictionary/base.toml`; [`Dictionary::load_str`]
//! merges an operator's file in the same format over it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;

use crate::avp::AvpType;
use crate::error::Error;

const BASE: &str = include_str!("../dictionary/base.toml");

/// How the M bit of an AVP must be set by a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MBit {
    #[default]
    Must,
    May,
    MustNot,
}

/// One AVP definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvpDef {
    pub code: u32,
    pub vendor: u32,
    pub name: String,
    pub ty: AvpType,
    pub m_bit: MBit,
    /// Names of Enumerated values.
    pub values: BTreeMap<i32, String>,
}

/// Whether an application is an authorization or an accounting application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    #[default]
    Auth,
    Acct,
}

/// One application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationDef {
    pub id: u32,
    pub name: String,
    /// Vendor of a vendor-specific application, 0 for IETF ones.
    pub vendor: u32,
    pub kind: AppKind,
    pub commands: BTreeSet<u32>,
}

/// How often an AVP may or must appear in a message (RFC 6733 section 3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvpRule {
    pub code: u32,
    pub vendor: u32,
    pub name: String,
    pub min: u32,
    /// `None` for no upper bound.
    pub max: Option<u32>,
    /// Must be the first AVP (`<AVP>`).
    pub fixed: bool,
}

/// The rules of a request or answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageRules {
    pub avps: Vec<AvpRule>,
    /// `*[AVP]`: AVPs not listed are allowed.
    pub open: bool,
}

impl MessageRules {
    /// The rule for an AVP, if it is listed.
    pub fn rule(&self, code: u32, vendor: u32) -> Option<&AvpRule> {
        self.avps
            .iter()
            .find(|r| r.code == code && r.vendor == vendor)
    }
}

/// One command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandDef {
    pub code: u32,
    pub name: String,
    pub request_name: String,
    pub answer_name: String,
    pub proxiable: bool,
    pub request: MessageRules,
    pub answer: MessageRules,
}

/// A dictionary: what the codec needs to validate and name messages.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    vendors: BTreeMap<u32, String>,
    avps: BTreeMap<(u32, u32), AvpDef>,
    by_name: HashMap<String, (u32, u32)>,
    applications: BTreeMap<u32, ApplicationDef>,
    commands: BTreeMap<u32, CommandDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    vendor: Vec<VendorEntry>,
    #[serde(default)]
    avp: Vec<AvpEntry>,
    #[serde(default)]
    application: Vec<AppEntry>,
    #[serde(default)]
    command: Vec<CommandEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorEntry {
    id: u32,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AvpEntry {
    code: u32,
    #[serde(default)]
    vendor: u32,
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    m_bit: MBit,
    #[serde(default)]
    values: BTreeMap<String, i32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppEntry {
    id: u32,
    name: String,
    #[serde(default)]
    vendor: u32,
    #[serde(default)]
    kind: AppKind,
    #[serde(default)]
    commands: Vec<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandEntry {
    code: u32,
    name: String,
    request_name: Option<String>,
    answer_name: Option<String>,
    #[serde(default)]
    proxiable: bool,
    #[serde(default)]
    request: Vec<String>,
    #[serde(default)]
    answer: Vec<String>,
}

impl Dictionary {
    /// The built-in dictionary.
    pub fn base() -> Dictionary {
        let mut d = Dictionary::default();
        d.load_str(BASE).expect("the built-in dictionary is valid");
        d
    }

    /// Merges a dictionary file: its entries add to or replace this dictionary's.
    pub fn load_str(&mut self, toml_text: &str) -> Result<(), Error> {
        let file: File = toml::from_str(toml_text)?;
        for v in file.vendor {
            self.vendors.insert(v.id, v.name);
        }
        for a in file.avp {
            let ty = AvpType::from_name(&a.ty).ok_or_else(|| {
                Error::Dictionary(format!("AVP {}: unknown type {:?}", a.name, a.ty))
            })?;
            if !a.values.is_empty() && ty != AvpType::Enumerated {
                return Err(Error::Dictionary(format!(
                    "AVP {}: values on a non-Enumerated AVP",
                    a.name
                )));
            }
            if let Some(old) = self.avps.get(&(a.code, a.vendor)) {
                self.by_name.remove(&old.name);
            }
            if let Some(&other) = self.by_name.get(&a.name)
                && other != (a.code, a.vendor)
            {
                return Err(Error::Dictionary(format!(
                    "AVP name {} is already used by code {} vendor {}",
                    a.name, other.0, other.1
                )));
            }
            self.by_name.insert(a.name.clone(), (a.code, a.vendor));
            let values = a.values.into_iter().map(|(name, v)| (v, name)).collect();
            let def = AvpDef {
                code: a.code,
                vendor: a.vendor,
                name: a.name,
                ty,
                m_bit: a.m_bit,
                values,
            };
            self.avps.insert((a.code, a.vendor), def);
        }
        for app in file.application {
            let def = ApplicationDef {
                id: app.id,
                name: app.name,
                vendor: app.vendor,
                kind: app.kind,
                commands: app.commands.into_iter().collect(),
            };
            self.applications.insert(app.id, def);
        }
        for c in file.command {
            let request = self.parse_rules(&c.name, &c.request)?;
            let answer = self.parse_rules(&c.name, &c.answer)?;
            let def = CommandDef {
                code: c.code,
                request_name: c
                    .request_name
                    .unwrap_or_else(|| format!("{}-Request", c.name)),
                answer_name: c
                    .answer_name
                    .unwrap_or_else(|| format!("{}-Answer", c.name)),
                name: c.name,
                proxiable: c.proxiable,
                request,
                answer,
            };
            self.commands.insert(c.code, def);
        }
        for app in self.applications.values() {
            if let Some(code) = app.commands.iter().find(|c| !self.commands.contains_key(c)) {
                return Err(Error::Dictionary(format!(
                    "application {} lists command {code}, which is not defined",
                    app.name
                )));
            }
        }
        Ok(())
    }

    fn parse_rules(&self, command: &str, items: &[String]) -> Result<MessageRules, Error> {
        let mut rules = MessageRules::default();
        for item in items {
            let bad =
                |why: &str| Error::Dictionary(format!("command {command}: rule {item:?}: {why}"));
            let (qualifier, body) = match item.find(['<', '{', '[']) {
                Some(i) => item.split_at(i),
                None => return Err(bad("expected <AVP>, {AVP} or [AVP]")),
            };
            let (open, close, fixed, required) = match body.as_bytes()[0] {
                b'<' => ('<', '>', true, true),
                b'{' => ('{', '}', false, true),
                _ => ('[', ']', false, false),
            };
            let name = body
                .strip_prefix(open)
                .and_then(|b| b.strip_suffix(close))
                .ok_or_else(|| bad("unbalanced brackets"))?
                .trim();
            let (mut min, mut max) = (u32::from(required), Some(1));
            if !qualifier.is_empty() {
                let (lo, hi) = qualifier
                    .split_once('*')
                    .ok_or_else(|| bad("qualifier needs '*'"))?;
                let num = |s: &str| s.trim().parse::<u32>().map_err(|_| bad("bad number"));
                min = if lo.trim().is_empty() { min } else { num(lo)? };
                max = if hi.trim().is_empty() {
                    None
                } else {
                    Some(num(hi)?)
                };
            }
            if name == "AVP" {
                rules.open = true;
                continue;
            }
            let &(code, vendor) = self
                .by_name
                .get(name)
                .ok_or_else(|| bad("AVP not defined in the dictionary"))?;
            rules.avps.push(AvpRule {
                code,
                vendor,
                name: name.to_owned(),
                min,
                max,
                fixed,
            });
        }
        Ok(rules)
    }

    /// The AVP definition for code and vendor.
    pub fn avp(&self, code: u32, vendor: u32) -> Option<&AvpDef> {
        self.avps.get(&(code, vendor))
    }

    /// The AVP definition by name.
    pub fn avp_by_name(&self, name: &str) -> Option<&AvpDef> {
        self.by_name.get(name).and_then(|k| self.avps.get(k))
    }

    /// Every AVP definition, ordered by vendor and code.
    pub fn avps(&self) -> impl Iterator<Item = &AvpDef> {
        let mut all: Vec<_> = self.avps.values().collect();
        all.sort_by_key(|d| (d.vendor, d.code));
        all.into_iter()
    }

    /// The application with this id.
    pub fn application(&self, id: u32) -> Option<&ApplicationDef> {
        self.applications.get(&id)
    }

    /// The command with this code.
    pub fn command(&self, code: u32) -> Option<&CommandDef> {
        self.commands.get(&code)
    }

    /// Vendor name.
    pub fn vendor_name(&self, id: u32) -> Option<&str> {
        self.vendors.get(&id).map(String::as_str)
    }

    /// A short name for a message, such as "CER" or "AAA", for logs and metrics.
    pub fn message_name(&self, command_code: u32, request: bool) -> String {
        match self.commands.get(&command_code) {
            Some(c) if request => c.request_name.clone(),
            Some(c) => c.answer_name.clone(),
            None => format!(
                "{}{command_code}",
                if request { "request-" } else { "answer-" }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::{app, command, juniper, vendor};

    #[test]
    fn base_dictionary_has_the_jsrc_application_and_juniper_avps() {
        let d = Dictionary::base();
        let jsrc = d.application(app::JSRC).unwrap();
        assert_eq!(jsrc.vendor, vendor::JUNIPER);
        assert!(jsrc.commands.contains(&command::PUSH_PROFILE));
        let install = d.avp(juniper::POLICY_INSTALL, vendor::JUNIPER).unwrap();
        assert_eq!(install.name, "Juniper-Policy-Install");
        assert_eq!(install.ty, AvpType::Grouped);
        assert_eq!(d.message_name(command::CAPABILITIES_EXCHANGE, true), "CER");
    }

    #[test]
    fn command_rules_follow_the_ccf() {
        let d = Dictionary::base();
        let cer = &d.command(command::CAPABILITIES_EXCHANGE).unwrap().request;
        let host_ip = cer
            .avps
            .iter()
            .find(|r| r.name == "Host-IP-Address")
            .unwrap();
        assert_eq!((host_ip.min, host_ip.max), (1, None));
        let ost = cer
            .avps
            .iter()
            .find(|r| r.name == "Origin-State-Id")
            .unwrap();
        assert_eq!((ost.min, ost.max), (0, Some(1)));
        assert!(cer.open);
        let aar = &d.command(command::AA).unwrap().request;
        assert!(aar.avps[0].fixed && aar.avps[0].name == "Session-Id");
    }

    #[test]
    fn operator_file_adds_and_overrides() {
        let mut d = Dictionary::base();
        d.load_str(
            r#"
            [[avp]]
            code = 2023
            vendor = 2636
            name = "Juniper-Template-Name"
            type = "UTF8String"

            [[avp]]
            code = 9000
            vendor = 2636
            name = "Site-Tag"
            type = "Unsigned32"
            m_bit = "may"

            [[application]]
            id = 16777299
            name = "Site application"
            vendor = 2636
            commands = [265]
            "#,
        )
        .unwrap();
        assert_eq!(d.avp(2023, 2636).unwrap().ty, AvpType::Utf8String);
        assert_eq!(d.avp_by_name("Site-Tag").unwrap().m_bit, MBit::May);
        assert!(d.application(16_777_299).is_some());
    }

    #[test]
    fn bad_files_are_rejected_with_a_reason() {
        let mut d = Dictionary::base();
        let err = d
            .load_str("[[avp]]\ncode=1\nname=\"X\"\ntype=\"Nope\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("unknown type"), "{err}");
        let err = d
            .load_str("[[command]]\ncode=5\nname=\"C\"\nrequest=[\"{No-Such-AVP}\"]\n")
            .unwrap_err();
        assert!(err.to_string().contains("not defined"), "{err}");
        assert!(d.load_str("[[avp]]\nbogus = 1\n").is_err());
        let err = d
            .load_str("[[application]]\nid=9\nname=\"A\"\ncommands=[4242]\n")
            .unwrap_err();
        assert!(err.to_string().contains("4242"), "{err}");
    }
}
