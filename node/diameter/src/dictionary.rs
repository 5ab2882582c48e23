//! The Diameter dictionary, held as data: AVP definitions, applications and command rules.
//!
//! [`Dictionary::base`] loads the built-in `dictionary/base.toml`; [`Dictionary::load_str`]
//! merges an operator's file in the same format over it.
//!
//! Rules (of a command, or of the content of a Grouped AVP) name AVPs; a name is bound to its
//! code and vendor again after every merge, so a rule follows an AVP whose code an operator
//! moves. A rule whose name no longer exists keeps the code it had.

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
    /// `values` is the whole set (the RFC closes it): a received value not listed is answered
    /// with 5004 (DIAMETER_INVALID_AVP_VALUE). Open lists (IANA registries that grow, values
    /// the project assigns) only name values.
    pub closed: bool,
    /// The content rules of a Grouped AVP, in the syntax of command rules. `None`: the
    /// children are checked one by one (known, well-typed) but not counted.
    pub rules: Option<MessageRules>,
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
    /// `None` for no upper bound; `Some(0)`: the AVP must not be present (5008).
    pub max: Option<u32>,
    /// Fixed position (`<AVP>`): fixed rules come first, and the AVPs they name, when
    /// present, must open the message (or Grouped AVP) in the order of the rules.
    pub fixed: bool,
}

/// The rules of a request or answer, or of the content of a Grouped AVP.
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
    /// The application these rules are for; `None`: every application listing the command
    /// that has no rules of its own.
    pub application: Option<u32>,
    pub name: String,
    pub request_name: String,
    pub answer_name: String,
    /// Whether requests carry the P bit, where a published definition says so; a request that
    /// says otherwise is answered with 3008. `None`: either is accepted (the vendor commands
    /// whose definition is not public).
    pub proxiable: Option<bool>,
    pub request: MessageRules,
    pub answer: MessageRules,
}

/// A dictionary: what the codec needs to validate and name messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dictionary {
    vendors: BTreeMap<u32, String>,
    avps: BTreeMap<(u32, u32), AvpDef>,
    by_name: HashMap<String, (u32, u32)>,
    applications: BTreeMap<u32, ApplicationDef>,
    /// Rules for a command code in every application without rules of its own.
    commands: BTreeMap<u32, CommandDef>,
    /// Rules for a command code in one application: (application, code).
    app_commands: BTreeMap<(u32, u32), CommandDef>,
    /// The generic answer-message format (RFC 6733 section 7.2) every answer with the E bit
    /// follows, whatever its command.
    answer_message: MessageRules,
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
    /// The format of every answer with the E bit (RFC 6733 section 7.2).
    answer_message: Option<Vec<String>>,
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
    /// The values listed are all there are.
    closed: Option<bool>,
    rules: Option<Vec<String>>,
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
    application: Option<u32>,
    name: String,
    request_name: Option<String>,
    answer_name: Option<String>,
    proxiable: Option<bool>,
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

    /// Merges a dictionary file: its entries add to or replace this dictionary's. An `[[avp]]`
    /// entry with the code, vendor, name and type of a known AVP extends it: its values are
    /// added to the known ones and its `rules`, when given, replace the known rules. Any other
    /// entry with a known key replaces the definition. On error the dictionary is unchanged.
    pub fn load_str(&mut self, toml_text: &str) -> Result<(), Error> {
        let file: File = toml::from_str(toml_text)?;
        let mut merged = self.clone();
        merged.merge(file)?;
        *self = merged;
        Ok(())
    }

    fn merge(&mut self, file: File) -> Result<(), Error> {
        for v in file.vendor {
            self.vendors.insert(v.id, v.name);
        }
        let mut grouped_rules = Vec::new();
        // Keys this file defines (a name may not be given twice in one file).
        let mut defined_here = std::collections::HashSet::new();
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
            if a.rules.is_some() && ty != AvpType::Grouped {
                return Err(Error::Dictionary(format!(
                    "AVP {}: rules on a non-Grouped AVP",
                    a.name
                )));
            }
            let key = (a.code, a.vendor);
            let mut old = self.avps.remove(&key);
            if let Some(old) = &old {
                self.by_name.remove(&old.name);
            }
            if let Some(&other) = self.by_name.get(&a.name) {
                if defined_here.contains(&other) {
                    return Err(Error::Dictionary(format!(
                        "AVP name {} is given to code {} vendor {} and code {} vendor {}",
                        a.name, other.0, other.1, a.code, a.vendor
                    )));
                }
                // A known name at a new code: the AVP moves (its old code is forgotten; its
                // values and rules come along unless the entry gives its own).
                tracing::debug!(name = %a.name, from = ?other, to = ?key, "AVP moved");
                self.by_name.remove(&a.name);
                let moved = self.avps.remove(&other);
                grouped_rules.retain(|(k, _)| *k != other);
                if moved.is_some() {
                    old = moved;
                }
            }
            if !defined_here.insert(key) {
                return Err(Error::Dictionary(format!(
                    "AVP code {} vendor {} is defined twice",
                    a.code, a.vendor
                )));
            }
            let (mut values, mut rules, closed) = match old {
                Some(old) if old.name == a.name && old.ty == ty => {
                    (old.values, old.rules, a.closed.unwrap_or(old.closed))
                }
                _ => (BTreeMap::new(), None, a.closed.unwrap_or(false)),
            };
            if closed && ty != AvpType::Enumerated {
                return Err(Error::Dictionary(format!(
                    "AVP {}: closed on a non-Enumerated AVP",
                    a.name
                )));
            }
            values.extend(a.values.into_iter().map(|(name, v)| (v, name)));
            grouped_rules.retain(|(k, _)| *k != key);
            if let Some(items) = a.rules {
                grouped_rules.push((key, items));
                rules = None;
            }
            self.by_name.insert(a.name.clone(), key);
            let def = AvpDef {
                code: a.code,
                vendor: a.vendor,
                name: a.name,
                ty,
                m_bit: a.m_bit,
                values,
                closed,
                rules,
            };
            self.avps.insert(key, def);
        }
        // Content rules may name AVPs defined further down the file.
        for (key, items) in grouped_rules {
            let name = self.avps[&key].name.clone();
            let rules = self.parse_rules(&format!("AVP {name}"), &items)?;
            self.avps.get_mut(&key).expect("defined above").rules = Some(rules);
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
            let what = format!("command {}", c.name);
            let request = self.parse_rules(&what, &c.request)?;
            let answer = self.parse_rules(&what, &c.answer)?;
            let def = CommandDef {
                code: c.code,
                application: c.application,
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
            match c.application {
                Some(app) => self.app_commands.insert((app, c.code), def),
                None => self.commands.insert(c.code, def),
            };
        }
        if let Some(items) = file.answer_message {
            self.answer_message = self.parse_rules("answer_message", &items)?;
        }
        self.rebind_rules();
        self.check_references()
    }

    /// Binds every rule to the code and vendor its AVP name has now.
    fn rebind_rules(&mut self) {
        let by_name = &self.by_name;
        let rebind = |rules: &mut MessageRules| {
            for r in &mut rules.avps {
                if let Some(&(code, vendor)) = by_name.get(&r.name) {
                    (r.code, r.vendor) = (code, vendor);
                }
            }
        };
        for c in self
            .commands
            .values_mut()
            .chain(self.app_commands.values_mut())
        {
            rebind(&mut c.request);
            rebind(&mut c.answer);
        }
        rebind(&mut self.answer_message);
        for rules in self.avps.values_mut().filter_map(|d| d.rules.as_mut()) {
            rebind(rules);
        }
    }

    /// Every command an application lists has rules, and every command with an application
    /// belongs to one that lists it.
    fn check_references(&self) -> Result<(), Error> {
        for app in self.applications.values() {
            if let Some(code) = app
                .commands
                .iter()
                .find(|&&c| self.command_for(app.id, c).is_none())
            {
                return Err(Error::Dictionary(format!(
                    "application {} lists command {code}, which is not defined",
                    app.name
                )));
            }
        }
        for (&(app, code), c) in &self.app_commands {
            let listed = self
                .applications
                .get(&app)
                .is_some_and(|a| a.commands.contains(&code));
            if !listed {
                return Err(Error::Dictionary(format!(
                    "command {} is defined for application {app}, which does not list it",
                    c.name
                )));
            }
        }
        Ok(())
    }

    fn parse_rules(&self, owner: &str, items: &[String]) -> Result<MessageRules, Error> {
        let mut rules = MessageRules::default();
        for item in items {
            let bad = |why: &str| Error::Dictionary(format!("{owner}: rule {item:?}: {why}"));
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
            if max.is_some_and(|max| min > max) {
                return Err(bad("minimum above maximum"));
            }
            if name == "AVP" {
                rules.open = true;
                continue;
            }
            if fixed && rules.avps.iter().any(|r| !r.fixed) {
                return Err(bad("fixed-position <AVP> rules must come first"));
            }
            let &(code, vendor) = self
                .by_name
                .get(name)
                .ok_or_else(|| bad("AVP not defined in the dictionary"))?;
            if rules.rule(code, vendor).is_some() {
                return Err(bad("AVP listed twice"));
            }
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

    /// The rules of every answer with the E bit set (a protocol error, 3xxx): RFC 6733
    /// section 7.2's answer-message, whatever the command.
    pub fn answer_message(&self) -> &MessageRules {
        &self.answer_message
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

    /// The command with this code, as defined for every application (not the rules an
    /// application has of its own: see [`Dictionary::command_for`]).
    pub fn command(&self, code: u32) -> Option<&CommandDef> {
        self.commands.get(&code)
    }

    /// The command with this code in `application`: the application's own rules if it has
    /// them, otherwise the rules for every application.
    pub fn command_for(&self, application: u32, code: u32) -> Option<&CommandDef> {
        self.app_commands
            .get(&(application, code))
            .or_else(|| self.commands.get(&code))
    }

    /// Vendor name.
    pub fn vendor_name(&self, id: u32) -> Option<&str> {
        self.vendors.get(&id).map(String::as_str)
    }

    /// A short name for a message, such as "CER" or "AAA", for logs and metrics.
    pub fn message_name(&self, command_code: u32, request: bool) -> String {
        let def = self
            .commands
            .get(&command_code)
            .or_else(|| self.app_commands.values().find(|c| c.code == command_code));
        match def {
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
    use crate::codes::{app, avp, command, juniper, vendor};

    #[test]
    fn a_known_name_at_a_new_code_moves_the_avp() {
        let mut d = Dictionary::base();
        d.load_str(
            r#"
            [[avp]]
            code = 3023
            vendor = 2636
            name = "Juniper-Template-Name"
            type = "OctetString"

            [[avp]]
            code = 3024
            vendor = 2636
            name = "Juniper-Substitution"
            type = "Grouped"
            "#,
        )
        .unwrap();
        assert_eq!(d.avp_by_name("Juniper-Template-Name").unwrap().code, 3023);
        assert!(
            d.avp(2023, vendor::JUNIPER).is_none(),
            "the old code is forgotten"
        );
        // The moved Grouped AVP keeps its content rules; the rules naming it follow it.
        assert!(
            d.avp_by_name("Juniper-Substitution")
                .unwrap()
                .rules
                .is_some()
        );
        let def = d.avp_by_name("Juniper-Policy-Definition").unwrap();
        let rules = def.rules.as_ref().unwrap();
        assert!(rules.rule(3023, vendor::JUNIPER).is_some());
        assert!(rules.rule(2023, vendor::JUNIPER).is_none());

        // One name for two codes in one file is a mistake, not a move.
        let twice = r#"
            [[avp]]
            code = 3023
            vendor = 2636
            name = "Juniper-Template-Name"
            type = "OctetString"

            [[avp]]
            code = 4023
            vendor = 2636
            name = "Juniper-Template-Name"
            type = "OctetString"
        "#;
        let before = Dictionary::base();
        let mut d = before.clone();
        let e = d.load_str(twice).unwrap_err();
        assert!(e.to_string().contains("Juniper-Template-Name"), "{e}");
        assert!(d == before, "a failed load changes nothing");
    }

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
    fn the_p_bit_is_checked_where_a_published_definition_fixes_it() {
        let d = Dictionary::base();
        let proxiable = |code| d.command(code).unwrap().proxiable;
        // RFC 6733: CER, DWR, DPR without PXY; ACR, ASR, STR with it; RFC 7155: AAR with it.
        for code in [
            command::CAPABILITIES_EXCHANGE,
            command::DEVICE_WATCHDOG,
            command::DISCONNECT_PEER,
        ] {
            assert_eq!(proxiable(code), Some(false), "command {code}");
        }
        for code in [
            command::AA,
            command::ACCOUNTING,
            command::ABORT_SESSION,
            command::SESSION_TERMINATION,
        ] {
            assert_eq!(proxiable(code), Some(true), "command {code}");
        }
        // Juniper's SRQ and PPR have no public definition: either is accepted.
        for code in [command::SESSION_RESYNC, command::PUSH_PROFILE] {
            assert_eq!(proxiable(code), None, "command {code}");
        }
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
        let rule = |items: &[&str]| {
            let list: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
            Dictionary::base()
                .load_str(&format!(
                    "[[command]]\ncode=280\nname=\"DW\"\nrequest=[{}]\n",
                    list.join(", ")
                ))
                .unwrap_err()
                .to_string()
        };
        assert!(rule(&["2*1[Origin-Host]"]).contains("minimum above maximum"));
        assert!(rule(&["{Origin-Host}", "<Session-Id>"]).contains("must come first"));
        assert!(rule(&["{Origin-Host}", "[Origin-Host]"]).contains("listed twice"));
        let err = d
            .load_str(
                "[[avp]]\ncode=9001\nname=\"N\"\ntype=\"Unsigned32\"\nrules=[\"{Origin-Host}\"]\n",
            )
            .unwrap_err();
        assert!(err.to_string().contains("non-Grouped"), "{err}");
    }

    #[test]
    fn a_failed_load_leaves_the_dictionary_unchanged() {
        let mut d = Dictionary::base();
        // Valid entries first, then one that fails: none of them may stay.
        let err = d
            .load_str(
                r#"
                [[vendor]]
                id = 9
                name = "Site"

                [[avp]]
                code = 1
                name = "Renamed-User-Name"
                type = "OctetString"

                [[avp]]
                code = 9000
                name = "Site-Tag"
                type = "Unsigned32"

                [[application]]
                id = 16777299
                name = "Site application"
                commands = [265]

                [[command]]
                code = 280
                name = "Device-Watchdog"
                request = ["{Origin-Host}"]

                [[application]]
                id = 16777300
                name = "Broken"
                commands = [4242]
                "#,
            )
            .unwrap_err();
        assert!(err.to_string().contains("4242"), "{err}");
        assert_eq!(d, Dictionary::base());
        assert_eq!(d.avp(avp::USER_NAME, 0).unwrap().name, "User-Name");
        assert!(d.avp_by_name("Site-Tag").is_none());
        assert!(d.vendor_name(9).is_none());
        // TOML that does not parse changes nothing either.
        assert!(d.load_str("[[avp]]\ncode = ").is_err());
        assert_eq!(d, Dictionary::base());
    }

    #[test]
    fn enumerated_values_are_complete_and_an_operator_adds_to_them() {
        let d = Dictionary::base();
        let values = |name: &str| -> Vec<i32> {
            d.avp_by_name(name)
                .unwrap()
                .values
                .keys()
                .copied()
                .collect()
        };
        let termination: Vec<i32> = (1..=8).chain(11..=28).collect();
        assert_eq!(values("Termination-Cause"), termination);
        assert_eq!(values("Disconnect-Cause"), vec![0, 1, 2]);
        assert_eq!(values("Auth-Session-State"), vec![0, 1]);
        assert_eq!(values("Accounting-Record-Type"), vec![1, 2, 3, 4]);
        assert_eq!(values("Re-Auth-Request-Type"), vec![0, 1]);
        assert_eq!(values("Session-Server-Failover"), vec![0, 1, 2, 3]);
        assert_eq!(values("Auth-Request-Type"), vec![1, 2, 3]);
        assert_eq!(values("Redirect-Host-Usage"), (0..=6).collect::<Vec<_>>());
        assert_eq!(values("Accounting-Realtime-Required"), vec![1, 2, 3]);
        assert_eq!(
            d.avp_by_name("Termination-Cause").unwrap().values[&14],
            "IDLE_TIMEOUT"
        );

        let mut site = d.clone();
        site.load_str(
            r#"
            [[avp]]
            code = 295
            name = "Termination-Cause"
            type = "Enumerated"
            values = { SITE_POLICY_CHANGE = 1000 }
            "#,
        )
        .unwrap();
        let tc = site.avp_by_name("Termination-Cause").unwrap();
        assert_eq!(tc.values.len(), termination.len() + 1);
        assert_eq!(tc.values[&1], "DIAMETER_LOGOUT");
        assert_eq!(tc.values[&1000], "SITE_POLICY_CHANGE");
        // A new type is a new definition: the old values do not carry over.
        site.load_str("[[avp]]\ncode = 295\nname = \"Termination-Cause\"\ntype = \"Unsigned32\"\n")
            .unwrap();
        assert!(
            site.avp(avp::TERMINATION_CAUSE, 0)
                .unwrap()
                .values
                .is_empty()
        );
    }

    #[test]
    fn grouped_avps_have_content_rules() {
        let d = Dictionary::base();
        let rules = |name: &str| d.avp_by_name(name).unwrap().rules.clone().unwrap();
        let install = rules("Juniper-Policy-Install");
        // The project's reading of Juniper's layout: listed, at most once, never required.
        let name = install.rule(juniper::POLICY_NAME, vendor::JUNIPER).unwrap();
        assert_eq!((name.min, name.max), (0, Some(1)));
        let vsai = rules("Vendor-Specific-Application-Id");
        let vendor_id = vsai.rule(avp::VENDOR_ID, 0).unwrap();
        // At least one (RFC 3588 peers send several; the first counts).
        assert_eq!((vendor_id.min, vendor_id.max), (1, None));
        assert!(!vsai.open, "RFC 6733 allows nothing else in it");
        let sub = rules("Juniper-Substitution");
        assert_eq!(
            sub.avps
                .iter()
                .filter(|r| r.min == 0 && r.max == Some(1))
                .count(),
            2
        );
        assert!(rules("Proxy-Info").open);
        assert!(
            d.avp_by_name("Failed-AVP").unwrap().rules.is_none(),
            "Failed-AVP holds whatever the peer could not process"
        );
        // An operator's file may give rules to a Grouped AVP, naming AVPs it defines later.
        let mut site = Dictionary::base();
        site.load_str(
            r#"
            [[avp]]
            code = 9100
            vendor = 2636
            name = "Site-Group"
            type = "Grouped"
            rules = ["{Site-Member}", "*0[User-Name]", "*[AVP]"]

            [[avp]]
            code = 9101
            vendor = 2636
            name = "Site-Member"
            type = "Unsigned32"
            "#,
        )
        .unwrap();
        let group = site
            .avp(9100, vendor::JUNIPER)
            .unwrap()
            .rules
            .clone()
            .unwrap();
        assert_eq!(group.avps[0].code, 9101);
        assert_eq!(group.avps[1].max, Some(0));
        // Redefined with the same name and type and no rules: the rules stay.
        site.load_str(
            "[[avp]]\ncode = 9100\nvendor = 2636\nname = \"Site-Group\"\ntype = \"Grouped\"\n",
        )
        .unwrap();
        assert_eq!(site.avp(9100, vendor::JUNIPER).unwrap().rules, Some(group));
    }

    #[test]
    fn rules_follow_an_avp_whose_code_moves() {
        let mut d = Dictionary::base();
        d.load_str(
            r#"
            [[avp]]
            code = 2023
            vendor = 2636
            name = "Retired-Template-Name"
            type = "OctetString"

            [[avp]]
            code = 3023
            vendor = 2636
            name = "Juniper-Template-Name"
            type = "OctetString"
            "#,
        )
        .unwrap();
        let def = d.avp_by_name("Juniper-Policy-Definition").unwrap();
        let rule = def.rules.as_ref().unwrap();
        assert!(rule.rule(3023, vendor::JUNIPER).is_some());
        assert!(rule.rule(juniper::TEMPLATE_NAME, vendor::JUNIPER).is_none());
        // A name that disappears leaves its rules on the code they had.
        let mut d = Dictionary::base();
        d.load_str(
            "[[avp]]\ncode = 2021\nvendor = 2636\nname = \"Site-Name\"\ntype = \"OctetString\"\n",
        )
        .unwrap();
        let install = d.avp_by_name("Juniper-Policy-Install").unwrap();
        assert!(
            install
                .rules
                .as_ref()
                .unwrap()
                .rule(juniper::POLICY_NAME, vendor::JUNIPER)
                .is_some()
        );
    }

    #[test]
    fn commands_may_have_rules_per_application() {
        let mut d = Dictionary::base();
        d.load_str(
            r#"
            [[command]]
            code = 271
            application = 16777244
            name = "Accounting"
            request_name = "ACR"
            answer_name = "ACA"
            proxiable = true
            request = ["<Session-Id>", "{Origin-Host}", "{Origin-Realm}", "{Destination-Realm}",
              "{Accounting-Record-Type}", "{Accounting-Record-Number}", "{Event-Timestamp}", "*[AVP]"]
            answer = ["<Session-Id>", "{Result-Code}", "{Origin-Host}", "{Origin-Realm}", "*[AVP]"]
            "#,
        )
        .unwrap();
        let jsrc = d.command_for(app::JSRC, command::ACCOUNTING).unwrap();
        assert_eq!(jsrc.application, Some(app::JSRC));
        assert_eq!(jsrc.request.rule(avp::EVENT_TIMESTAMP, 0).unwrap().min, 1);
        // PTSP and Base Accounting keep the rules for every application.
        for other in [app::PTSP, app::BASE_ACCOUNTING] {
            let c = d.command_for(other, command::ACCOUNTING).unwrap();
            assert_eq!(c.application, None);
            assert_eq!(c.request.rule(avp::EVENT_TIMESTAMP, 0).unwrap().min, 0);
        }
        assert_eq!(d.command(command::ACCOUNTING).unwrap().application, None);
        assert_eq!(d.message_name(command::ACCOUNTING, true), "ACR");

        // Rules for an application that does not list the command are refused.
        let err = Dictionary::base()
            .load_str("[[command]]\ncode = 280\napplication = 16777244\nname = \"DW\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("does not list it"), "{err}");
        // An application's own rules are enough for it to list the command.
        let mut d = Dictionary::base();
        d.load_str(
            "[[application]]\nid = 7\nname = \"Site\"\ncommands = [9000]\n\
             [[command]]\ncode = 9000\napplication = 7\nname = \"Site-Cmd\"\n",
        )
        .unwrap();
        assert_eq!(d.command_for(7, 9000).unwrap().name, "Site-Cmd");
        assert!(d.command(9000).is_none());
        assert_eq!(d.message_name(9000, false), "Site-Cmd-Answer");
    }
}
