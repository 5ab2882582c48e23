//! Subscriber references: the text that names one or more subscriber sessions of the cluster,
//! such as `ip=10.0.0.5`, `loginName=alice@example.net`, `dn=uniqueID=alice,ou=example.net,o=users`
//! or `interfaceName=ge-0/0/0.100;router=bng1`.
//!
//! A reference is a list of `name=value` items separated by `;`. Each name appears at most once;
//! names are matched without regard to case and printed in the camelCase below. A value runs to
//! the next `;`, with the spaces around it trimmed, unless it starts with `"`: then it is a quoted
//! string in which `\"` and `\\` stand for `"` and `\` (the printer quotes the values that need
//! it, so printing and parsing again gives the same reference).
//!
//! | name | value |
//! |---|---|
//! | `ip` | an IPv4 or IPv6 address, or a prefix (`2001:db8:1::/56`) |
//! | `loginName` | the login name the subscriber logged in with |
//! | `primaryUserName` | the PPP or DHCP user name |
//! | `dn` | the subscriber's distinguished name |
//! | `interfaceName` | an interface; needs `router` or `vr` beside it |
//! | `router` | the router's Origin-Host or the PEP's PEPID |
//! | `vr` | a virtual router, `vrname@hostname` |
//! | `accountingId` (or `acctId`) | the subscriber's accounting id |
//! | `sessionId` | the session's Session-Id |
//!
//! Several items narrow the reference: `ip=10.0.0.5;vr=cust1@bng1` names the session with that
//! address in that virtual router only (shared address spaces).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// Longest reference accepted, in bytes.
pub const MAX_REFERENCE_LEN: usize = 4096;

/// Why a reference or a virtual router name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subscriber reference {text:?}: {message}")]
pub struct ReferenceError {
    /// The text refused (cut to 200 characters).
    pub text: String,
    pub message: String,
}

impl ReferenceError {
    fn new(text: &str, message: impl Into<String>) -> Self {
        ReferenceError {
            text: text.chars().take(200).collect(),
            message: message.into(),
        }
    }
}

/// A virtual router: `vrname@hostname`. The hostname is the router (its Origin-Host or PEPID,
/// lower case); a router's only or first routing instance is `default`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vr {
    pub name: String,
    pub router: String,
}

impl Vr {
    pub fn new(name: impl Into<String>, router: impl Into<String>) -> Self {
        Vr {
            name: name.into(),
            router: router.into().to_ascii_lowercase(),
        }
    }

    /// The default virtual router of a router: `default@<router>`.
    pub fn default_of(router: &str) -> Self {
        Vr::new("default", router)
    }
}

impl fmt::Display for Vr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.router)
    }
}

impl FromStr for Vr {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((name, router)) = s.rsplit_once('@') else {
            return Err(ReferenceError::new(
                s,
                "a virtual router is written vrname@hostname",
            ));
        };
        if name.is_empty() || router.is_empty() {
            return Err(ReferenceError::new(
                s,
                "a virtual router needs both a name and a hostname (vrname@hostname)",
            ));
        }
        if s.chars().any(|c| c.is_control() || c == ';') {
            return Err(ReferenceError::new(
                s,
                "a virtual router name holds no control character or ';'",
            ));
        }
        Ok(Vr::new(name, router))
    }
}

/// The kinds of key a reference can carry, in the order references are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    Ip,
    LoginName,
    PrimaryUserName,
    Dn,
    InterfaceName,
    Router,
    Vr,
    AccountingId,
    SessionId,
}

impl KeyKind {
    pub const ALL: [KeyKind; 9] = [
        KeyKind::Ip,
        KeyKind::LoginName,
        KeyKind::PrimaryUserName,
        KeyKind::Dn,
        KeyKind::InterfaceName,
        KeyKind::Router,
        KeyKind::Vr,
        KeyKind::AccountingId,
        KeyKind::SessionId,
    ];

    /// The name a reference spells it with.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Ip => "ip",
            KeyKind::LoginName => "loginName",
            KeyKind::PrimaryUserName => "primaryUserName",
            KeyKind::Dn => "dn",
            KeyKind::InterfaceName => "interfaceName",
            KeyKind::Router => "router",
            KeyKind::Vr => "vr",
            KeyKind::AccountingId => "accountingId",
            KeyKind::SessionId => "sessionId",
        }
    }

    /// The kind a reference names `name` (without regard to case; `acctId` is accounting id).
    pub fn from_name(name: &str) -> Option<KeyKind> {
        if name.eq_ignore_ascii_case("acctId") {
            return Some(KeyKind::AccountingId);
        }
        KeyKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed subscriber reference. At least one key is set; `interface_name` comes with `router`
/// or `vr`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Reference {
    /// An address (a full-length prefix) or a prefix.
    pub ip: Option<IpNet>,
    pub login_name: Option<String>,
    pub primary_user_name: Option<String>,
    pub dn: Option<String>,
    pub interface_name: Option<String>,
    /// Lower case, as routers are indexed.
    pub router: Option<String>,
    pub vr: Option<Vr>,
    pub accounting_id: Option<String>,
    pub session_id: Option<String>,
}

impl Reference {
    /// Parses a reference; see the module documentation for the syntax.
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        if text.len() > MAX_REFERENCE_LEN {
            return Err(ReferenceError::new(
                text,
                format!("longer than {MAX_REFERENCE_LEN} bytes"),
            ));
        }
        let mut reference = Reference::default();
        let mut rest = text;
        loop {
            let Some((name, after)) = rest.split_once('=') else {
                let item = rest.split(';').next().unwrap_or_default().trim();
                let message = if item.is_empty() {
                    "expected name=value".to_string()
                } else {
                    format!("{item:?} is not name=value")
                };
                return Err(ReferenceError::new(text, message));
            };
            let name = name.trim();
            let kind = KeyKind::from_name(name).ok_or_else(|| {
                ReferenceError::new(
                    text,
                    format!(
                        "unknown key {name:?} (known: {})",
                        KeyKind::ALL.map(KeyKind::name).join(", ")
                    ),
                )
            })?;
            let (value, after) = split_value(text, after)?;
            if value.is_empty() {
                return Err(ReferenceError::new(text, format!("{kind} has no value")));
            }
            if value.chars().any(char::is_control) {
                return Err(ReferenceError::new(
                    text,
                    format!("the value of {kind} holds a control character"),
                ));
            }
            reference.set(kind, &value, text)?;
            match after {
                Some(next) => rest = next,
                None => break,
            }
        }
        reference
            .check()
            .map_err(|m| ReferenceError::new(text, m))?;
        Ok(reference)
    }

    fn set(&mut self, kind: KeyKind, value: &str, text: &str) -> Result<(), ReferenceError> {
        if self.has(kind) {
            return Err(ReferenceError::new(
                text,
                format!("{kind} appears more than once"),
            ));
        }
        let owned = value.to_string();
        match kind {
            KeyKind::Ip => {
                let net = match value.parse::<IpAddr>() {
                    Ok(addr) => IpNet::from(addr),
                    Err(_) => value.parse::<IpNet>().map_err(|_| {
                        ReferenceError::new(
                            text,
                            format!("{value:?} is not an IP address or prefix"),
                        )
                    })?,
                };
                if net != net.trunc() {
                    return Err(ReferenceError::new(
                        text,
                        format!(
                            "prefix {value} has bits set beyond its length (did you mean {}?)",
                            net.trunc()
                        ),
                    ));
                }
                self.ip = Some(net);
            }
            KeyKind::LoginName => self.login_name = Some(owned),
            KeyKind::PrimaryUserName => self.primary_user_name = Some(owned),
            KeyKind::Dn => self.dn = Some(owned),
            KeyKind::InterfaceName => self.interface_name = Some(owned),
            KeyKind::Router => self.router = Some(owned.to_ascii_lowercase()),
            KeyKind::Vr => self.vr = Some(value.parse()?),
            KeyKind::AccountingId => self.accounting_id = Some(owned),
            KeyKind::SessionId => self.session_id = Some(owned),
        }
        Ok(())
    }

    /// Whether the reference carries a key of this kind.
    pub fn has(&self, kind: KeyKind) -> bool {
        match kind {
            KeyKind::Ip => self.ip.is_some(),
            KeyKind::LoginName => self.login_name.is_some(),
            KeyKind::PrimaryUserName => self.primary_user_name.is_some(),
            KeyKind::Dn => self.dn.is_some(),
            KeyKind::InterfaceName => self.interface_name.is_some(),
            KeyKind::Router => self.router.is_some(),
            KeyKind::Vr => self.vr.is_some(),
            KeyKind::AccountingId => self.accounting_id.is_some(),
            KeyKind::SessionId => self.session_id.is_some(),
        }
    }

    /// The kinds this reference carries, in printing order.
    pub fn kinds(&self) -> impl Iterator<Item = KeyKind> + '_ {
        KeyKind::ALL.into_iter().filter(|k| self.has(*k))
    }

    /// The address, when `ip` is one address rather than a shorter prefix.
    pub fn address(&self) -> Option<IpAddr> {
        self.ip
            .filter(|net| net.prefix_len() == net.max_prefix_len())
            .map(|net| net.addr())
    }

    fn check(&self) -> Result<(), String> {
        if self.kinds().next().is_none() {
            return Err("names no key".into());
        }
        if self.interface_name.is_some() && self.router.is_none() && self.vr.is_none() {
            return Err("interfaceName needs router or vr beside it".into());
        }
        if let (Some(router), Some(vr)) = (&self.router, &self.vr)
            && *router != vr.router
        {
            return Err(format!("vr {vr} is not on router {router}"));
        }
        if self.router.is_some()
            && self.interface_name.is_none()
            && self.session_id.is_none()
            && self.kinds().count() == 1
        {
            return Err(
                "router alone names no subscriber: add interfaceName, sessionId or another key"
                    .into(),
            );
        }
        Ok(())
    }

    fn value(&self, kind: KeyKind) -> Option<String> {
        match kind {
            KeyKind::Ip => self.ip.map(|net| match self.address() {
                Some(addr) => addr.to_string(),
                None => net.to_string(),
            }),
            KeyKind::LoginName => self.login_name.clone(),
            KeyKind::PrimaryUserName => self.primary_user_name.clone(),
            KeyKind::Dn => self.dn.clone(),
            KeyKind::InterfaceName => self.interface_name.clone(),
            KeyKind::Router => self.router.clone(),
            KeyKind::Vr => self.vr.as_ref().map(Vr::to_string),
            KeyKind::AccountingId => self.accounting_id.clone(),
            KeyKind::SessionId => self.session_id.clone(),
        }
    }
}

/// Splits the value that starts at `rest` from what follows its `;`.
fn split_value<'a>(text: &str, rest: &'a str) -> Result<(String, Option<&'a str>), ReferenceError> {
    let trimmed = rest.trim_start();
    if let Some(quoted) = trimmed.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => value.push(e),
                    _ => {
                        return Err(ReferenceError::new(
                            text,
                            "in a quoted value only \\\" and \\\\ are escapes",
                        ));
                    }
                },
                '"' => {
                    let after = quoted[i + 1..].trim_start();
                    return match after.strip_prefix(';') {
                        Some(next) => Ok((value, Some(next))),
                        None if after.is_empty() => Ok((value, None)),
                        None => Err(ReferenceError::new(
                            text,
                            "expected ';' after a quoted value",
                        )),
                    };
                }
                c => value.push(c),
            }
        }
        return Err(ReferenceError::new(text, "a quoted value is not closed"));
    }
    Ok(match rest.split_once(';') {
        Some((value, next)) => (value.trim().to_string(), Some(next)),
        None => (rest.trim().to_string(), None),
    })
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for kind in self.kinds() {
            let value = self.value(kind).unwrap_or_default();
            if !first {
                f.write_str(";")?;
            }
            first = false;
            let plain =
                !value.contains([';', '"', '\\']) && value.trim() == value && !value.is_empty();
            if plain {
                write!(f, "{kind}={value}")?;
            } else {
                write!(f, "{kind}=\"")?;
                for c in value.chars() {
                    if c == '"' || c == '\\' {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn refused(s: &str) -> String {
        Reference::parse(s).unwrap_err().message
    }

    #[test]
    fn every_key_kind_parses_and_prints() {
        let r = parse("ip=10.0.0.5");
        assert_eq!(r.address(), Some("10.0.0.5".parse().unwrap()));
        assert_eq!(r.to_string(), "ip=10.0.0.5");
        let r = parse("ip=2001:db8:1::/56");
        assert_eq!(r.address(), None);
        assert_eq!(r.to_string(), "ip=2001:db8:1::/56");
        assert_eq!(parse("ip=2001:db8::7").to_string(), "ip=2001:db8::7");
        assert_eq!(
            parse(" LOGINNAME = alice@example.net ").to_string(),
            "loginName=alice@example.net"
        );
        assert_eq!(
            parse("primaryUserName=ppp-7").primary_user_name.as_deref(),
            Some("ppp-7")
        );
        let r = parse("dn=uniqueID=alice,ou=example.net,o=users");
        assert_eq!(
            r.dn.as_deref(),
            Some("uniqueID=alice,ou=example.net,o=users")
        );
        assert_eq!(r.to_string(), "dn=uniqueID=alice,ou=example.net,o=users");
        let r = parse("interfaceName=ge-0/0/0.100;router=BNG1");
        assert_eq!(r.router.as_deref(), Some("bng1"));
        assert_eq!(r.to_string(), "interfaceName=ge-0/0/0.100;router=bng1");
        let r = parse("interfaceName=FastEthernet3/1;vr=cust1@erx1");
        assert_eq!(r.vr, Some(Vr::new("cust1", "erx1")));
        assert_eq!(parse("vr=default@bng1").to_string(), "vr=default@bng1");
        assert_eq!(parse("acctId=A-17").to_string(), "accountingId=A-17");
        assert_eq!(parse("sessionId=s-1").session_id.as_deref(), Some("s-1"));
        assert!(refused("sessionId=bng1;1;7").contains("\"1\" is not name=value"));
    }

    #[test]
    fn combinations_print_in_a_fixed_order() {
        let r = parse("vr=cust1@bng1; ip=10.0.0.5");
        assert_eq!(r.to_string(), "ip=10.0.0.5;vr=cust1@bng1");
        assert_eq!(r.kinds().collect::<Vec<_>>(), [KeyKind::Ip, KeyKind::Vr]);
    }

    #[test]
    fn quoted_values_carry_separators() {
        let r = parse(r#"sessionId="bng1;1;7";router=bng1"#);
        assert_eq!(r.session_id.as_deref(), Some("bng1;1;7"));
        assert_eq!(r.to_string(), r#"router=bng1;sessionId="bng1;1;7""#);
        let r = parse(r#"loginName="a\"b\\c""#);
        assert_eq!(r.login_name.as_deref(), Some(r#"a"b\c"#));
        assert_eq!(parse(&r.to_string()), r);
    }

    #[test]
    fn bad_references_say_why() {
        assert!(refused("").contains("name=value"));
        assert!(refused("10.0.0.5").contains("not name=value"));
        assert!(refused("address=10.0.0.5").contains("unknown key \"address\""));
        assert!(refused("ip=10.0.0.300").contains("not an IP address"));
        assert!(refused("ip=10.0.0.5/24").contains("did you mean 10.0.0.0/24"));
        assert!(refused("ip=").contains("ip has no value"));
        assert!(refused("ip=10.0.0.5;ip=10.0.0.6").contains("more than once"));
        assert!(refused("interfaceName=ge-0/0/0").contains("needs router or vr"));
        assert!(refused("vr=default").contains("vrname@hostname"));
        assert!(refused("vr=@bng1").contains("both a name"));
        assert!(refused("router=bng1").contains("router alone"));
        assert!(refused("interfaceName=x;router=a;vr=v@b").contains("not on router a"));
        assert!(refused("loginName=\"abc").contains("not closed"));
        assert!(refused("loginName=\"a\\n\"").contains("escapes"));
        assert!(refused("loginName=\"a\" x").contains("expected ';'"));
        assert!(refused("loginName=a\u{0}b").contains("control character"));
        assert!(refused(&format!("dn={}", "x".repeat(5000))).contains("longer than"));
        assert!(refused("ip=10.0.0.5;").contains("expected name=value"));
    }

    fn value() -> impl Strategy<Value = String> {
        "[ -~]{1,20}".prop_filter("trimmed", |s| s.trim() == s && !s.is_empty())
    }

    fn reference() -> impl Strategy<Value = Reference> {
        (
            proptest::option::of(any::<[u8; 4]>()),
            proptest::option::of(value()),
            proptest::option::of(value()),
            proptest::option::of((value(), "[a-z0-9.-]{1,12}")),
            proptest::option::of(value()),
        )
            .prop_filter_map("a key", |(ip, login, dn, intf, acct)| {
                let mut r = Reference {
                    ip: ip.map(|o| IpNet::from(IpAddr::from(o))),
                    login_name: login,
                    dn,
                    accounting_id: acct,
                    ..Reference::default()
                };
                if let Some((name, router)) = intf {
                    r.interface_name = Some(name);
                    r.router = Some(router);
                }
                r.check().ok().map(|_| r)
            })
    }

    proptest! {
        #[test]
        fn printing_then_parsing_gives_the_same_reference(r in reference()) {
            prop_assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
        }

        #[test]
        fn any_text_parses_or_is_refused_with_a_reason(s in "\\PC{0,80}|[a-zA-Z=;\" \\\\]{0,40}") {
            if let Err(e) = Reference::parse(&s) {
                prop_assert!(!e.message.is_empty());
            }
        }
    }
}
