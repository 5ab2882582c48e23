//! Validation of received messages against the dictionary, and the RFC 6733 error answers.
//!
//! A request is checked header first (bits, application, command: 3xxx, E bit), then AVP by AVP
//! in message order (5001 unknown and mandatory, 3009 M bit, 5014 length, 5004 value, nesting,
//! and a Grouped AVP's own content rules: 5005, 5008, 5009), then the command's occurrence
//! rules. The first failure found is answered. An answer gets the AVP-by-AVP checks
//! ([`validate_answer`]); its occurrence rules are a separate check ([`check_answer_rules`]).
//!
//! Failed-AVP for an AVP inside a Grouped AVP (RFC 6733 section 7.5): the Grouped AVP
//! hierarchy down to the single offending AVP, each enclosing Grouped AVP holding only the
//! next level. For a missing AVP, the innermost level is the example RFC 6733 asks for (its
//! header and a zero-filled payload of the type's minimum length).

use bytes::Bytes;

use crate::avp::{Avp, AvpFlags, AvpType, Value};
use crate::codes::{avp, result};
use crate::dictionary::{AvpDef, Dictionary, MBit, MessageRules};
use crate::error::{AvpDataError, DecodeError};
use crate::frame::Limits;
use crate::message::{Header, Message};

/// Why a message is rejected, and the answer's Result-Code, Failed-AVP and Error-Message.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolError {
    pub result_code: u32,
    pub failed_avp: Option<Avp>,
    pub message: String,
}

impl ProtocolError {
    /// An error without a Failed-AVP.
    pub fn new(result_code: u32, message: impl Into<String>) -> Self {
        ProtocolError {
            result_code,
            failed_avp: None,
            message: message.into(),
        }
    }

    fn with_avp(result_code: u32, failed: Avp, message: impl Into<String>) -> Self {
        ProtocolError {
            result_code,
            failed_avp: Some(failed),
            message: message.into(),
        }
    }

    /// The same error, found inside the Grouped AVP `group` (named `name`): Failed-AVP becomes
    /// `group`'s header around the offending AVP (or around nothing when there is none).
    fn within(mut self, group: &Avp, name: &str) -> Self {
        let data = match self.failed_avp.take() {
            Some(inner) => Value::Grouped(vec![inner]).encode(),
            None => Bytes::new(),
        };
        self.failed_avp = Some(Avp::from_raw(
            group.code(),
            group.flags(),
            group.vendor_id(),
            data,
        ));
        self.message = format!("in {name}: {}", self.message);
        self
    }

    /// The error for a frame that could not be decoded (RFC 6733 section 7). For an AVP with an
    /// invalid length, Failed-AVP carries the AVP header and, as section 7.1.5 asks, a
    /// zero-filled payload of the minimum length of the AVP's type (from `dict`).
    pub fn from_decode(dict: &Dictionary, error: &DecodeError) -> Self {
        match error {
            DecodeError::UnsupportedVersion(_) => {
                Self::new(result::UNSUPPORTED_VERSION, error.to_string())
            }
            DecodeError::TruncatedHeader { .. }
            | DecodeError::InvalidMessageLength { .. }
            | DecodeError::MessageTooLarge { .. }
            | DecodeError::TruncatedAvp { .. } => {
                Self::new(result::INVALID_MESSAGE_LENGTH, error.to_string())
            }
            DecodeError::InvalidAvpLength { .. } => Self {
                result_code: result::INVALID_AVP_LENGTH,
                failed_avp: invalid_length_example(dict, error),
                message: error.to_string(),
            },
        }
    }

    /// The error for the data of the Grouped AVP `group` (defined by `def`) that does not
    /// divide into AVPs: 5014 (RFC 6733 section 7.1.5), not 5015, since the message framing
    /// is intact and it is this AVP's length or one of its children's that is wrong. Failed-AVP
    /// is `group`'s header around the child with the invalid length (header and zero-filled
    /// payload), or with an empty payload when no child header can be read, as section 7.1.5
    /// allows for a Grouped AVP.
    fn from_grouped_decode(
        dict: &Dictionary,
        def: &AvpDef,
        group: &Avp,
        error: &DecodeError,
    ) -> Self {
        ProtocolError {
            result_code: result::INVALID_AVP_LENGTH,
            failed_avp: invalid_length_example(dict, error),
            message: error.to_string(),
        }
        .within(group, &def.name)
    }

    /// Builds the answer to a request with `header` (and Session-Id `session_id`, if it had
    /// one): Session-Id, Result-Code, Origin-Host, Origin-Realm, Error-Message, Failed-AVP.
    /// Protocol errors (3xxx) get the E bit and so the generic answer format
    /// ([`ErrorAnswer`]).
    pub fn answer(
        &self,
        header: &Header,
        session_id: Option<&Avp>,
        origin_host: &str,
        origin_realm: &str,
    ) -> Message {
        ErrorAnswer {
            result_code: self.result_code,
            message: self.message.clone(),
            failed_avp: self.failed_avp.clone(),
            redirect: None,
        }
        .build(header, session_id, origin_host, origin_realm)
    }
}

/// Where a 3006 DIAMETER_REDIRECT_INDICATION sends the peer (RFC 6733 section 6.13).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Redirect {
    /// DiameterURIs (`aaa://host:port`) of the nodes to ask instead, at least one.
    pub hosts: Vec<String>,
    /// How long the peer may keep using the redirect, with Redirect-Host-Usage (RFC 6733
    /// section 6.13; `None`: DONT_CACHE, the default, and neither AVP is sent).
    pub cache: Option<RedirectCache>,
}

/// A caching policy for a redirect: Redirect-Host-Usage with its Redirect-Max-Cache-Time,
/// which section 6.14 requires beside any usage other than DONT_CACHE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectCache {
    /// Redirect-Host-Usage (0 DONT_CACHE, 1 ALL_SESSION, 2 ALL_REALM,
    /// 3 REALM_AND_APPLICATION, 4 ALL_APPLICATION, 5 ALL_HOST, 6 ALL_USER).
    pub usage: i32,
    /// Redirect-Max-Cache-Time, seconds.
    pub max_cache_secs: u32,
}

/// The content of an answer in the answer-message format of RFC 6733 section 7.2, the one
/// format of every answer with the E bit set (3xxx), whatever the command:
///
/// ```text
/// <answer-message> ::= < Diameter Header: code, ERR [, PXY] >
///                  0*1< Session-Id >
///                     { Origin-Host } { Origin-Realm } { Result-Code }
///                     [ Origin-State-Id ] [ Error-Message ] [ Error-Reporting-Host ]
///                     [ Failed-AVP ] [ Experimental-Result ]
///                   * [ Redirect-Host ] [ Redirect-Host-Usage ] [ Redirect-Max-Cache-Time ]
///                   * [ Proxy-Info ] * [ AVP ]
/// ```
///
/// Nothing of the command's own answer grammar goes in (no Auth-Application-Id, no
/// Accounting-Record-Type, …): a peer that checks M-bit AVPs against the grammar refuses them.
/// Every E-bit answer the stack and the node send is built here.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorAnswer {
    pub result_code: u32,
    /// Error-Message (no M bit); empty: none.
    pub message: String,
    pub failed_avp: Option<Avp>,
    /// Redirect-Host and its caching policy (3006 only).
    pub redirect: Option<Redirect>,
}

impl ErrorAnswer {
    /// An answer with this Result-Code and Error-Message.
    pub fn new(result_code: u32, message: impl Into<String>) -> Self {
        ErrorAnswer {
            result_code,
            message: message.into(),
            ..Default::default()
        }
    }

    /// 3006 DIAMETER_REDIRECT_INDICATION to `redirect`'s hosts.
    pub fn redirect(redirect: Redirect, message: impl Into<String>) -> Self {
        ErrorAnswer {
            result_code: result::REDIRECT_INDICATION,
            message: message.into(),
            failed_avp: None,
            redirect: Some(redirect),
        }
    }

    /// The answer to `request`, from `origin_host` in `origin_realm`.
    pub fn to_request(&self, request: &Message, origin_host: &str, origin_realm: &str) -> Message {
        self.build(
            &request.header,
            request.find(avp::SESSION_ID, 0),
            origin_host,
            origin_realm,
        )
    }

    /// The answer to a request with `header` and Session-Id `session_id` (if it had one).
    pub fn build(
        &self,
        header: &Header,
        session_id: Option<&Avp>,
        origin_host: &str,
        origin_realm: &str,
    ) -> Message {
        let mut answer = Message {
            header: header.answer(),
            avps: Vec::with_capacity(8),
        };
        if let Some(sid) = session_id {
            answer.push(sid.clone());
        }
        answer.set_result_code(self.result_code);
        answer.push_origin(origin_host, origin_realm);
        if !self.message.is_empty() {
            answer.push(Avp::new(
                avp::ERROR_MESSAGE,
                0,
                AvpFlags::none(),
                &Value::Utf8String(self.message.clone()),
            ));
        }
        if let Some(failed) = &self.failed_avp {
            answer.push(Avp::mandatory(
                avp::FAILED_AVP,
                &Value::Grouped(vec![failed.clone()]),
            ));
        }
        if let Some(redirect) = &self.redirect {
            for host in &redirect.hosts {
                answer.push(Avp::mandatory(
                    avp::REDIRECT_HOST,
                    &Value::DiameterUri(host.clone()),
                ));
            }
            if let Some(cache) = redirect.cache {
                answer.push(Avp::mandatory(
                    avp::REDIRECT_HOST_USAGE,
                    &Value::Enumerated(cache.usage),
                ));
                answer.push(Avp::mandatory(
                    avp::REDIRECT_MAX_CACHE_TIME,
                    &Value::Unsigned32(cache.max_cache_secs),
                ));
            }
        }
        answer
    }
}

impl ProtocolError {
    /// The answer to a request this error refuses. A protocol error (3xxx, E bit) has the
    /// generic answer-message format of RFC 6733 section 7.2; any other answer also follows its
    /// command's answer rules, so the AVPs they require that the request carries (the
    /// application id, Auth-Request-Type, Accounting-Record-Type and -Number, …) are echoed.
    pub fn answer_to(
        &self,
        dict: &Dictionary,
        request: &Message,
        origin_host: &str,
        origin_realm: &str,
    ) -> Message {
        let mut answer = self.answer(
            &request.header,
            request.find(avp::SESSION_ID, 0),
            origin_host,
            origin_realm,
        );
        if result::is_protocol_error(self.result_code) {
            return answer;
        }
        let Some(def) =
            dict.command_for(request.header.application_id, request.header.command_code)
        else {
            return answer;
        };
        for rule in def.answer.avps.iter().filter(|r| r.min > 0) {
            if answer.find(rule.code, rule.vendor).is_some() {
                continue;
            }
            // Not the AVP being refused: echoing a bad value would make the answer bad too.
            let copies: Vec<Avp> = request
                .avps
                .iter()
                .filter(|a| a.is(rule.code, rule.vendor) && self.failed_avp.as_ref() != Some(a))
                .take(rule.min as usize)
                .cloned()
                .collect();
            // Behind the header AVPs, ahead of Error-Message and Failed-AVP.
            let at = answer
                .avps
                .iter()
                .position(|a| a.is(avp::ERROR_MESSAGE, 0) || a.is(avp::FAILED_AVP, 0))
                .unwrap_or(answer.avps.len());
            answer.avps.splice(at..at, copies);
        }
        answer
    }
}

/// The AVP header of an [`DecodeError::InvalidAvpLength`] with a zero-filled payload.
fn invalid_length_example(dict: &Dictionary, error: &DecodeError) -> Option<Avp> {
    match error {
        DecodeError::InvalidAvpLength {
            code,
            vendor_id,
            flags,
            ..
        } => Some(Avp::from_raw(
            *code,
            *flags,
            *vendor_id,
            zero_payload(dict, *code, vendor_id.unwrap_or(0)),
        )),
        _ => None,
    }
}

/// Checks a received request: header bits, application, command, every AVP (known, well-typed,
/// Enumerated values listed, nesting within the limit) and the occurrence rules of the command
/// and of every Grouped AVP.
pub fn validate_request(
    dict: &Dictionary,
    msg: &Message,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    let header = &msg.header;
    debug_assert!(header.flags.is_request());
    if header.flags.is_error() {
        return Err(ProtocolError::new(
            result::INVALID_HDR_BITS,
            "E bit set in a request",
        ));
    }
    let app = dict.application(header.application_id).ok_or_else(|| {
        ProtocolError::new(
            result::APPLICATION_UNSUPPORTED,
            format!("application {} is not supported", header.application_id),
        )
    })?;
    let command = dict
        .command_for(header.application_id, header.command_code)
        .filter(|_| app.commands.contains(&header.command_code))
        .ok_or_else(|| {
            ProtocolError::new(
                result::COMMAND_UNSUPPORTED,
                format!(
                    "command {} is not part of application {}",
                    header.command_code, app.name
                ),
            )
        })?;
    if let Some(proxiable) = command.proxiable
        && header.flags.is_proxiable() != proxiable
    {
        return Err(ProtocolError::new(
            result::INVALID_HDR_BITS,
            format!(
                "P bit {} in {}, which is {}proxiable",
                if proxiable { "clear" } else { "set" },
                command.request_name,
                if proxiable { "" } else { "not " },
            ),
        ));
    }
    let walk = Walk {
        dict,
        max_depth: limits.max_grouped_depth,
        values: true,
        rules: true,
        strict: false,
    };
    walk.avps(&msg.avps, 1)?;
    check_rules(dict, &command.request, &msg.avps)
}

/// Checks a received answer's AVPs: known when mandatory, well-typed (Enumerated values
/// included), nesting within the limit. Occurrence rules, of the command and of Grouped AVPs,
/// are not enforced on answers, so that a peer's terse error answer still reaches the
/// request's owner; [`check_answer_rules`] applies them where wanted.
pub fn validate_answer(
    dict: &Dictionary,
    msg: &Message,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    let walk = Walk {
        dict,
        max_depth: limits.max_grouped_depth,
        values: true,
        rules: false,
        strict: false,
    };
    walk.avps(&msg.avps, 1)
}

/// Applies the occurrence rules of the command's answer (the answer's application's own rules
/// if it has them), or for an answer with the E bit those of the generic answer-message
/// (RFC 6733 section 7.2), and of every Grouped AVP, to an answer that passed
/// [`validate_answer`]. Grouped AVPs nested deeper than [`Limits::MAX_GROUPED_DEPTH`] are not
/// looked into.
pub fn check_answer_rules(dict: &Dictionary, msg: &Message) -> Result<(), ProtocolError> {
    let Some(rules) = grammar(dict, msg) else {
        return Ok(());
    };
    let walk = Walk {
        dict,
        max_depth: Limits::MAX_GROUPED_DEPTH,
        values: false,
        rules: true,
        strict: false,
    };
    walk.avps(&msg.avps, 1)?;
    check_rules(dict, rules, &msg.avps)
}

/// The rules a message is held to: its command's request or answer rules (its application's
/// own when it has them), the answer-message's for an answer with the E bit.
fn grammar<'a>(dict: &'a Dictionary, msg: &Message) -> Option<&'a MessageRules> {
    let header = &msg.header;
    if !header.flags.is_request() && header.flags.is_error() {
        return Some(dict.answer_message());
    }
    let c = dict.command_for(header.application_id, header.command_code)?;
    Some(if header.flags.is_request() {
        &c.request
    } else {
        &c.answer
    })
}

/// The check a strict peer makes of a message we send: the grammar's occurrence rules (the
/// command's request or answer, or the answer-message for an E-bit answer; Grouped AVPs' content
/// rules down every level), and every AVP with the M bit named by the grammar of where it
/// stands. RFC 6733 lets `*[AVP]` admit any AVP, but a stack that checks the M bit against the
/// grammar (Erlang/OTP `diameter` with `strict_mbit`, the default) answers 5001 for an M-bit
/// AVP that only `*[AVP]` admits, so nothing we send may rely on it. The error names the first
/// offending AVP.
pub fn check_strict(dict: &Dictionary, msg: &Message) -> Result<(), ProtocolError> {
    let header = &msg.header;
    let rules = grammar(dict, msg).ok_or_else(|| {
        ProtocolError::new(
            result::COMMAND_UNSUPPORTED,
            format!(
                "command {} of application {} is not in the dictionary",
                header.command_code, header.application_id
            ),
        )
    })?;
    if header.flags.is_request() && header.flags.is_error() {
        return Err(ProtocolError::new(
            result::INVALID_HDR_BITS,
            "E bit set in a request",
        ));
    }
    let walk = Walk {
        dict,
        max_depth: Limits::MAX_GROUPED_DEPTH,
        values: true,
        rules: true,
        strict: true,
    };
    walk.avps(&msg.avps, 1)?;
    check_rules(dict, rules, &msg.avps)?;
    check_named(dict, rules, &msg.avps)
}

/// Every AVP with the M bit is named by `rules` (not only admitted by `*[AVP]`): 5001.
fn check_named(dict: &Dictionary, rules: &MessageRules, avps: &[Avp]) -> Result<(), ProtocolError> {
    match avps
        .iter()
        .find(|a| a.flags().is_mandatory() && rules.rule(a.code(), a.vendor()).is_none())
    {
        Some(a) => {
            let name = dict
                .avp(a.code(), a.vendor())
                .map_or_else(|| format!("AVP {}", a.code()), |d| d.name.clone());
            Err(ProtocolError::with_avp(
                result::AVP_UNSUPPORTED,
                a.clone(),
                format!("{name} has the M bit and is not in the grammar"),
            ))
        }
        None => Ok(()),
    }
}

/// A walk over a message's AVPs, into Grouped AVPs.
#[derive(Clone, Copy)]
struct Walk<'a> {
    dict: &'a Dictionary,
    /// Deepest Grouped level looked into (a top-level Grouped AVP is depth 1).
    max_depth: usize,
    /// Check each AVP: known when mandatory, M bit, well-typed, Enumerated values, nesting
    /// within `max_depth`.
    values: bool,
    /// Check the content rules of Grouped AVPs.
    rules: bool,
    /// As a peer that checks the M bit against the grammar does ([`check_strict`]): the M bit
    /// as the definition says (set where it must be too), and every M-bit AVP inside a Grouped
    /// AVP named by its rules.
    strict: bool,
}

impl Walk<'_> {
    fn avps(&self, avps: &[Avp], depth: usize) -> Result<(), ProtocolError> {
        avps.iter().try_for_each(|a| self.avp(a, depth))
    }

    fn avp(&self, a: &Avp, depth: usize) -> Result<(), ProtocolError> {
        let Some(def) = self.dict.avp(a.code(), a.vendor()) else {
            if self.values && a.flags().is_mandatory() {
                return Err(ProtocolError::with_avp(
                    result::AVP_UNSUPPORTED,
                    a.clone(),
                    format!("AVP {} (vendor {}) is not supported", a.code(), a.vendor()),
                ));
            }
            return Ok(());
        };
        if self.values && def.m_bit == MBit::MustNot && a.flags().is_mandatory() {
            return Err(ProtocolError::with_avp(
                result::INVALID_AVP_BITS,
                a.clone(),
                format!("{} must not have the M bit", def.name),
            ));
        }
        if self.strict && def.m_bit == MBit::Must && !a.flags().is_mandatory() {
            return Err(ProtocolError::with_avp(
                result::INVALID_AVP_BITS,
                a.clone(),
                format!("{} must have the M bit", def.name),
            ));
        }
        if a.is(avp::FAILED_AVP, 0) {
            // The peer's copy of what it could not process: unknown or malformed by nature,
            // so its content is not held to the dictionary.
            return Ok(());
        }
        if def.ty != AvpType::Grouped {
            return if self.values {
                check_value(def, a)
            } else {
                Ok(())
            };
        }
        if depth > self.max_depth {
            if !self.values {
                return Ok(());
            }
            return Err(ProtocolError::with_avp(
                result::INVALID_AVP_VALUE,
                a.clone(),
                format!("Grouped AVPs nested deeper than {}", self.max_depth),
            ));
        }
        let children = match a.grouped() {
            Ok(children) => children,
            Err(e) if self.values => {
                return Err(ProtocolError::from_grouped_decode(self.dict, def, a, &e));
            }
            Err(_) => return Ok(()),
        };
        self.avps(&children, depth + 1)
            .map_err(|e| e.within(a, &def.name))?;
        if self.rules
            && let Some(rules) = &def.rules
        {
            check_rules(self.dict, rules, &children).map_err(|e| e.within(a, &def.name))?;
            if self.strict {
                check_named(self.dict, rules, &children).map_err(|e| e.within(a, &def.name))?;
            }
        }
        Ok(())
    }
}

/// The data of a non-Grouped AVP: its type (5014 for a wrong length, 5004 otherwise) and, for
/// an Enumerated AVP whose definition lists values, one of them (5004).
fn check_value(def: &AvpDef, a: &Avp) -> Result<(), ProtocolError> {
    if let Err(e) = Value::check(def.ty, a.data()) {
        let code = match e {
            AvpDataError::Length { .. } => result::INVALID_AVP_LENGTH,
            _ => result::INVALID_AVP_VALUE,
        };
        return Err(ProtocolError::with_avp(
            code,
            a.clone(),
            format!("{}: {e}", def.name),
        ));
    }
    if def.ty == AvpType::Enumerated
        && def.closed
        && let Ok(value) = a.as_i32()
        && !def.values.contains_key(&value)
    {
        return Err(ProtocolError::with_avp(
            result::INVALID_AVP_VALUE,
            a.clone(),
            format!("{}: {value} is not a defined value", def.name),
        ));
    }
    Ok(())
}

/// A zero-filled payload of the minimum length of the AVP's type (empty when the type has no
/// fixed length or the AVP is unknown).
fn zero_payload(dict: &Dictionary, code: u32, vendor: u32) -> Bytes {
    let len = dict
        .avp(code, vendor)
        .and_then(|d| d.ty.fixed_len())
        .unwrap_or(0);
    Bytes::from(vec![0; len])
}

/// Applies occurrence rules to the AVPs of a message or of a Grouped AVP.
///
/// A fixed-position AVP (`<AVP>`) found away from its position is answered like freeDiameter
/// does: 5005 DIAMETER_MISSING_AVP, since the position the Command Code Format requires it in
/// holds something else. RFC 6733 names no code for it; 5005 keeps the answer within what a
/// peer expects for a CCF violation, and Failed-AVP carries the misplaced AVP itself (a
/// complete example of what is missing from the position). A fixed AVP that is absent
/// altogether is 5005 with a zero-filled example, as any missing AVP.
fn check_rules(dict: &Dictionary, rules: &MessageRules, avps: &[Avp]) -> Result<(), ProtocolError> {
    let mut next_fixed = 0;
    for rule in &rules.avps {
        let mut matching = avps.iter().filter(|a| a.is(rule.code, rule.vendor));
        let count = matching.clone().count() as u32;
        if count < rule.min {
            let zeros = zero_payload(dict, rule.code, rule.vendor);
            let vendor = (rule.vendor != 0).then_some(rule.vendor);
            let example = Avp::from_raw(rule.code, AvpFlags::mandatory(), vendor, zeros);
            return Err(ProtocolError::with_avp(
                result::MISSING_AVP,
                example,
                format!("missing {}", rule.name),
            ));
        }
        if let Some(max) = rule.max
            && count > max
        {
            let extra = matching.nth(max as usize).expect("count > max").clone();
            return Err(if max == 0 {
                ProtocolError::with_avp(
                    result::AVP_NOT_ALLOWED,
                    extra,
                    format!("{} is not allowed here", rule.name),
                )
            } else {
                ProtocolError::with_avp(
                    result::AVP_OCCURS_TOO_MANY_TIMES,
                    extra,
                    format!("{} occurs {count} times, at most {max} allowed", rule.name),
                )
            });
        }
        // Fixed rules come first (the dictionary refuses others): the fixed AVPs present
        // must open the list, in the order of their rules. An optional one that is absent
        // lets the next one move up.
        if rule.fixed
            && let Some(found) = avps.iter().position(|a| a.is(rule.code, rule.vendor))
        {
            if found != next_fixed {
                return Err(ProtocolError::with_avp(
                    result::MISSING_AVP,
                    avps[found].clone(),
                    format!(
                        "{} must be AVP number {} but is number {}",
                        rule.name,
                        next_fixed + 1,
                        found + 1
                    ),
                ));
            }
            next_fixed += 1;
        }
    }
    if !rules.open
        && let Some(a) = avps
            .iter()
            .find(|a| rules.rule(a.code(), a.vendor()).is_none())
    {
        return Err(ProtocolError::with_avp(
            result::AVP_NOT_ALLOWED,
            a.clone(),
            format!(
                "AVP {} (vendor {}) is not allowed here",
                a.code(),
                a.vendor()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::{app, command, juniper, vendor};
    use crate::message::CommandFlags;

    fn ident(code: u32, s: &str) -> Avp {
        Avp::mandatory(code, &Value::DiameterIdentity(s.into()))
    }

    fn u32_avp(code: u32, v: u32) -> Avp {
        Avp::mandatory(code, &Value::Unsigned32(v))
    }

    fn jnpr(code: u32, value: &Value) -> Avp {
        Avp::vendor_mandatory(code, vendor::JUNIPER, value)
    }

    fn octets(s: &'static str) -> Value {
        Value::OctetString(Bytes::from_static(s.as_bytes()))
    }

    fn session_id() -> Avp {
        Avp::mandatory(avp::SESSION_ID, &Value::Utf8String("r1;1;1".into()))
    }

    fn aar() -> Message {
        Message::request(command::AA, app::JSRC, true)
            .with(session_id())
            .with(u32_avp(avp::AUTH_APPLICATION_ID, app::JSRC))
            .with(ident(avp::ORIGIN_HOST, "r1.example"))
            .with(ident(avp::ORIGIN_REALM, "example"))
            .with(ident(avp::DESTINATION_REALM, "example"))
    }

    fn str_(cause: i32) -> Message {
        Message::request(command::SESSION_TERMINATION, app::JSRC, true)
            .with(session_id())
            .with(ident(avp::ORIGIN_HOST, "r1.example"))
            .with(ident(avp::ORIGIN_REALM, "example"))
            .with(ident(avp::DESTINATION_REALM, "example"))
            .with(u32_avp(avp::AUTH_APPLICATION_ID, app::JSRC))
            .with(Avp::mandatory(
                avp::TERMINATION_CAUSE,
                &Value::Enumerated(cause),
            ))
    }

    fn acr(application: u32) -> Message {
        Message::request(command::ACCOUNTING, application, true)
            .with(session_id())
            .with(ident(avp::ORIGIN_HOST, "r1.example"))
            .with(ident(avp::ORIGIN_REALM, "example"))
            .with(ident(avp::DESTINATION_REALM, "example"))
            .with(Avp::mandatory(
                avp::ACCOUNTING_RECORD_TYPE,
                &Value::Enumerated(2),
            ))
            .with(u32_avp(avp::ACCOUNTING_RECORD_NUMBER, 0))
    }

    fn dwr() -> Message {
        Message::request(command::DEVICE_WATCHDOG, app::COMMON, false)
            .with(ident(avp::ORIGIN_HOST, "r1.example"))
            .with(ident(avp::ORIGIN_REALM, "example"))
    }

    fn check(m: &Message) -> Result<(), ProtocolError> {
        validate_request(&Dictionary::base(), m, &Limits::default())
    }

    fn check_with(site: &str, m: &Message) -> Result<(), ProtocolError> {
        let mut d = Dictionary::base();
        d.load_str(site).unwrap();
        validate_request(&d, m, &Limits::default())
    }

    /// The Failed-AVP path: codes from the outermost AVP down to the innermost, each level
    /// holding exactly one AVP.
    fn failed_path(err: &ProtocolError) -> (Vec<u32>, Avp) {
        let mut a = err.failed_avp.clone().expect("Failed-AVP");
        let mut path = vec![a.code()];
        while let Ok([inner]) = <[Avp; 1]>::try_from(a.grouped().unwrap_or_default()) {
            path.push(inner.code());
            a = inner;
        }
        (path, a)
    }

    fn policy_install(inner: Vec<Avp>) -> Avp {
        jnpr(juniper::POLICY_INSTALL, &Value::Grouped(inner))
    }

    fn substitution(inner: Vec<Avp>) -> Avp {
        jnpr(juniper::SUBSTITUTION, &Value::Grouped(inner))
    }

    fn definition(substitutions: Vec<Avp>) -> Avp {
        let mut inner = vec![jnpr(juniper::TEMPLATE_NAME, &octets("rate-limit"))];
        inner.extend(substitutions);
        jnpr(juniper::POLICY_DEFINITION, &Value::Grouped(inner))
    }

    #[test]
    fn a_valid_aar_passes() {
        check(&aar()).unwrap();
    }

    #[test]
    fn unknown_mandatory_avp_is_5001_with_failed_avp() {
        let odd = Avp::vendor_mandatory(4242, vendor::JUNIPER, &Value::Unsigned32(1));
        let err = check(&aar().with(odd.clone())).unwrap_err();
        assert_eq!(err.result_code, result::AVP_UNSUPPORTED);
        assert_eq!(err.failed_avp, Some(odd));
        // Without the M bit it is ignored.
        let quiet = Avp::new(
            4242,
            vendor::JUNIPER,
            AvpFlags::none(),
            &Value::Unsigned32(1),
        );
        check(&aar().with(quiet)).unwrap();
    }

    #[test]
    fn missing_required_avp_is_5005_with_an_example() {
        let mut m = aar();
        m.avps.retain(|a| !a.is(avp::DESTINATION_REALM, 0));
        let err = check(&m).unwrap_err();
        assert_eq!(err.result_code, result::MISSING_AVP);
        assert_eq!(err.failed_avp.unwrap().code(), avp::DESTINATION_REALM);
    }

    #[test]
    fn repeated_single_avp_is_5009() {
        let again = ident(avp::ORIGIN_HOST, "again.example");
        let err = check(&aar().with(again.clone())).unwrap_err();
        assert_eq!(err.result_code, result::AVP_OCCURS_TOO_MANY_TIMES);
        assert_eq!(err.failed_avp, Some(again), "the first one too many");
    }

    #[test]
    fn an_avp_a_rule_forbids_is_5008_not_5009() {
        let site = r#"
            [[command]]
            code = 280
            name = "Device-Watchdog"
            request_name = "DWR"
            answer_name = "DWA"
            request = ["{Origin-Host}", "{Origin-Realm}", "0*0[Origin-State-Id]", "*[AVP]"]
            answer = ["{Result-Code}", "{Origin-Host}", "{Origin-Realm}", "*[AVP]"]
        "#;
        let state = u32_avp(avp::ORIGIN_STATE_ID, 7);
        let err = check_with(site, &dwr().with(state.clone())).unwrap_err();
        assert_eq!(err.result_code, result::AVP_NOT_ALLOWED);
        assert_eq!(err.failed_avp, Some(state));
        assert!(err.message.contains("Origin-State-Id"), "{}", err.message);
        check_with(site, &dwr()).unwrap();
        // "*0" says the same.
        let short = site.replace("0*0[Origin-State-Id]", "*0[Origin-State-Id]");
        let err = check_with(&short, &dwr().with(u32_avp(avp::ORIGIN_STATE_ID, 7))).unwrap_err();
        assert_eq!(err.result_code, result::AVP_NOT_ALLOWED);
        // An AVP not listed in a closed rule set is 5008 too.
        let closed = site.replace(", \"*[AVP]\"]\n            answer", "]\n            answer");
        let user = Avp::mandatory(avp::USER_NAME, &Value::Utf8String("u".into()));
        let err = check_with(&closed, &dwr().with(user.clone())).unwrap_err();
        assert_eq!(
            (err.result_code, err.failed_avp),
            (result::AVP_NOT_ALLOWED, Some(user))
        );
    }

    #[test]
    fn wrong_type_length_is_5014_and_bad_value_5004() {
        let short = Avp::from_raw(
            avp::ORIGIN_STATE_ID,
            AvpFlags::mandatory(),
            None,
            Bytes::from_static(b"abc"),
        );
        assert_eq!(
            check(&aar().with(short)).unwrap_err().result_code,
            result::INVALID_AVP_LENGTH
        );
        let bad = Avp::from_raw(
            avp::USER_NAME,
            AvpFlags::mandatory(),
            None,
            Bytes::from_static(b"\xff\xfe"),
        );
        assert_eq!(
            check(&aar().with(bad)).unwrap_err().result_code,
            result::INVALID_AVP_VALUE
        );
    }

    #[test]
    fn nesting_past_the_limit_is_rejected() {
        let mut inner = jnpr(juniper::POLICY_NAME, &octets("p"));
        for _ in 0..10 {
            inner = policy_install(vec![inner]);
        }
        let err = check(&aar().with(inner)).unwrap_err();
        assert_eq!(err.result_code, result::INVALID_AVP_VALUE);
        assert!(err.message.contains("nested"), "{}", err.message);
        // Failed-AVP: the hierarchy down to the first AVP past the limit (depth 9), which is
        // there whole, with the levels below it.
        let (path, _) = failed_path(&err);
        let mut expected = vec![juniper::POLICY_INSTALL; 10];
        expected.push(juniper::POLICY_NAME);
        assert_eq!(path, expected);
    }

    #[test]
    fn header_application_and_command_errors() {
        let mut m = aar();
        m.header.flags = m.header.flags.with(CommandFlags::ERROR, true);
        assert_eq!(check(&m).unwrap_err().result_code, result::INVALID_HDR_BITS);
        let mut m = aar();
        m.header.application_id = 16_777_238;
        assert_eq!(
            check(&m).unwrap_err().result_code,
            result::APPLICATION_UNSUPPORTED
        );
        let mut m = aar();
        m.header.command_code = 272;
        assert_eq!(
            check(&m).unwrap_err().result_code,
            result::COMMAND_UNSUPPORTED
        );
    }

    #[test]
    fn a_p_bit_that_contradicts_the_command_is_3008() {
        let flip = |mut m: Message| {
            m.header.flags = m
                .header
                .flags
                .with(CommandFlags::PROXIABLE, !m.header.flags.is_proxiable());
            m
        };
        check(&dwr()).unwrap();
        let err = check(&flip(dwr())).unwrap_err();
        assert_eq!(err.result_code, result::INVALID_HDR_BITS);
        assert_eq!(err.message, "P bit set in DWR, which is not proxiable");
        let err = check(&flip(aar())).unwrap_err();
        assert_eq!(err.result_code, result::INVALID_HDR_BITS);
        assert_eq!(err.message, "P bit clear in AAR, which is proxiable");
        // Juniper's SRQ has no published definition: either P bit passes the header check.
        for p in [true, false] {
            let srq = Message::request(command::SESSION_RESYNC, app::JSRC, p);
            assert_ne!(
                check(&srq).unwrap_err().result_code,
                result::INVALID_HDR_BITS,
                "P {p}"
            );
        }
        let dpr = Message::request(command::DISCONNECT_PEER, app::COMMON, true);
        assert_eq!(
            check(&dpr).unwrap_err().result_code,
            result::INVALID_HDR_BITS
        );
        // The protocol error answer has the E bit and keeps the request's P bit.
        let req = flip(dwr());
        let ans = check(&req).unwrap_err().answer(&req.header, None, "s", "r");
        assert!(ans.header.flags.is_error());
        assert!(ans.header.flags.is_proxiable());
    }

    #[test]
    fn a_fixed_avp_out_of_place_is_5005_with_the_avp() {
        let mut m = aar();
        m.avps.swap(0, 1);
        let err = check(&m).unwrap_err();
        assert_eq!(err.result_code, result::MISSING_AVP);
        assert_eq!(err.failed_avp, Some(session_id()));
        assert_eq!(
            err.message,
            "Session-Id must be AVP number 1 but is number 2"
        );
        // Absent altogether: 5005 with an example (Session-Id has no fixed length: empty).
        let mut m = aar();
        m.avps.remove(0);
        let err = check(&m).unwrap_err();
        assert_eq!(err.result_code, result::MISSING_AVP);
        let example = err.failed_avp.unwrap();
        assert_eq!(example.code(), avp::SESSION_ID);
        assert!(example.data().is_empty());
        assert_eq!(err.message, "missing Session-Id");
        // SRQ's Session-Id is optional and not fixed: anywhere is fine.
        let srq = Message::request(command::SESSION_RESYNC, app::JSRC, false)
            .with(ident(avp::ORIGIN_HOST, "r1.example"))
            .with(ident(avp::ORIGIN_REALM, "example"))
            .with(ident(avp::DESTINATION_REALM, "example"))
            .with(u32_avp(avp::AUTH_APPLICATION_ID, app::JSRC))
            .with(session_id());
        check(&srq).unwrap();
    }

    #[test]
    fn optional_fixed_avps_move_up_when_absent() {
        let site = r#"
            [[command]]
            code = 280
            name = "Device-Watchdog"
            request_name = "DWR"
            request = ["0*1<Session-Id>", "<Origin-Host>", "{Origin-Realm}", "*[AVP]"]
        "#;
        check_with(site, &dwr()).unwrap();
        let mut with_sid = dwr();
        with_sid.avps.insert(0, session_id());
        check_with(site, &with_sid).unwrap();
        let mut late = dwr();
        late.avps.swap(0, 1);
        let err = check_with(site, &late).unwrap_err();
        assert_eq!(err.result_code, result::MISSING_AVP);
        assert_eq!(err.failed_avp.unwrap().code(), avp::ORIGIN_HOST);
    }

    #[test]
    fn enumerated_values_outside_a_closed_list_are_5004_and_open_lists_are_not_checked() {
        // Disconnect-Cause: RFC 6733 fixes the set.
        let dpr = |cause: i32| {
            Message::request(command::DISCONNECT_PEER, app::COMMON, false)
                .with(ident(avp::ORIGIN_HOST, "mx1.example"))
                .with(ident(avp::ORIGIN_REALM, "example"))
                .with(Avp::mandatory(
                    avp::DISCONNECT_CAUSE,
                    &Value::Enumerated(cause),
                ))
        };
        check(&dpr(2)).unwrap();
        for bad in [3, -1] {
            let err = check(&dpr(bad)).unwrap_err();
            assert_eq!(err.result_code, result::INVALID_AVP_VALUE, "cause {bad}");
            let failed = err.failed_avp.unwrap();
            assert_eq!(failed.code(), avp::DISCONNECT_CAUSE);
            assert_eq!(failed.as_i32(), Ok(bad));
            assert!(
                err.message
                    .contains(&format!("Disconnect-Cause: {bad} is not a defined value")),
                "{}",
                err.message
            );
        }
        // Termination-Cause grows with the RADIUS registry; Juniper-Request-Type values are
        // the project's: a router's other values are not refused.
        for cause in [1, 14, 29, 40] {
            check(&str_(cause)).unwrap();
        }
        let rt = Avp::vendor_mandatory(
            juniper::REQUEST_TYPE,
            vendor::JUNIPER,
            &Value::Enumerated(4),
        );
        check(&aar().with(rt)).unwrap();
        // An operator may close a list; values are then checked inside Grouped AVPs too.
        let site = "[[avp]]\ncode = 2054\nvendor = 2636\nname = \"Juniper-Acct-Collect\"\n\
                    type = \"Enumerated\"\nclosed = true\n";
        let collect = jnpr(juniper::ACCT_COLLECT, &Value::Enumerated(2));
        let install = policy_install(vec![jnpr(juniper::POLICY_NAME, &octets("p")), collect]);
        check(&aar().with(install.clone())).unwrap();
        let err = check_with(site, &aar().with(install)).unwrap_err();
        assert_eq!(err.result_code, result::INVALID_AVP_VALUE);
        assert_eq!(
            failed_path(&err).0,
            vec![juniper::POLICY_INSTALL, juniper::ACCT_COLLECT]
        );
        // And in answers.
        let mut answer = Message::answer_to(&str_(1));
        answer.set_result_code(result::SUCCESS);
        answer.push(Avp::mandatory(
            avp::AUTH_SESSION_STATE,
            &Value::Enumerated(9),
        ));
        let err = validate_answer(&Dictionary::base(), &answer, &Limits::default()).unwrap_err();
        assert_eq!(err.result_code, result::INVALID_AVP_VALUE);
    }

    #[test]
    fn grouped_content_rules_are_enforced_with_the_hierarchy_in_failed_avp() {
        // What the SAE and the routers send passes.
        let name = jnpr(juniper::POLICY_NAME, &octets("gold"));
        let pair = substitution(vec![
            jnpr(juniper::SUBSTITUTION_NAME, &octets("rate")),
            jnpr(juniper::SUBSTITUTION_VALUE, &octets("100m")),
        ]);
        let full = policy_install(vec![
            name.clone(),
            definition(vec![pair]),
            jnpr(juniper::ACCT_COLLECT, &Value::Enumerated(1)),
        ]);
        check(&aar().with(full)).unwrap();

        // The Juniper layouts are the project's reading: nothing in them is required.
        check(&aar().with(policy_install(vec![]))).unwrap();
        let record = jnpr(
            juniper::ACCT_RECORD,
            &Value::Grouped(vec![Avp::mandatory(
                avp::ACCOUNTING_INPUT_OCTETS,
                &Value::Unsigned64(0),
            )]),
        );
        check(&str_(1).with(record)).unwrap();

        // Proxy-Info (RFC 6733) without its Proxy-State: 5005, Failed-AVP the group around a
        // zero-length example of the missing AVP.
        let err = check(&aar().with(proxy_info_without_state())).unwrap_err();
        assert_eq!(err.result_code, result::MISSING_AVP);
        let (path, example) = failed_path(&err);
        assert_eq!(path, vec![PROXY_INFO, PROXY_STATE]);
        assert_eq!(example.vendor_id(), None);
        assert!(example.data().is_empty());
        assert_eq!(err.message, "in Proxy-Info: missing Proxy-State");

        // An operator who requires a substitution's value: checked three levels down.
        let site = r#"
            [[avp]]
            code = 2024
            vendor = 2636
            name = "Juniper-Substitution"
            type = "Grouped"
            rules = ["{Juniper-Substitution-Name}", "{Juniper-Substitution-Value}", "*[AVP]"]
        "#;
        let half = substitution(vec![jnpr(juniper::SUBSTITUTION_NAME, &octets("rate"))]);
        let install = policy_install(vec![name.clone(), definition(vec![half])]);
        check(&aar().with(install.clone())).unwrap();
        let err = check_with(site, &aar().with(install)).unwrap_err();
        assert_eq!(err.result_code, result::MISSING_AVP);
        assert_eq!(
            failed_path(&err).0,
            vec![
                juniper::POLICY_INSTALL,
                juniper::POLICY_DEFINITION,
                juniper::SUBSTITUTION,
                juniper::SUBSTITUTION_VALUE
            ]
        );

        // Two names in one substitution: 5009 naming the second.
        let second = jnpr(juniper::SUBSTITUTION_NAME, &octets("burst"));
        let twice = substitution(vec![
            jnpr(juniper::SUBSTITUTION_NAME, &octets("rate")),
            second.clone(),
            jnpr(juniper::SUBSTITUTION_VALUE, &octets("1")),
        ]);
        let install = policy_install(vec![name.clone(), definition(vec![twice])]);
        let err = check(&aar().with(install)).unwrap_err();
        assert_eq!(err.result_code, result::AVP_OCCURS_TOO_MANY_TIMES);
        assert_eq!(failed_path(&err).1, second);
    }

    const PROXY_INFO: u32 = 284;
    const PROXY_HOST: u32 = 280;
    const PROXY_STATE: u32 = 33;

    fn proxy_info_without_state() -> Avp {
        Avp::mandatory(
            PROXY_INFO,
            &Value::Grouped(vec![ident(PROXY_HOST, "relay.example")]),
        )
    }

    #[test]
    fn vendor_specific_application_id_follows_rfc_6733() {
        let cer = |vsai: Vec<Avp>| {
            Message::request(command::CAPABILITIES_EXCHANGE, app::COMMON, false)
                .with(ident(avp::ORIGIN_HOST, "r1.example"))
                .with(ident(avp::ORIGIN_REALM, "example"))
                .with(Avp::mandatory(
                    avp::HOST_IP_ADDRESS,
                    &Value::Address(crate::avp::Address::V4([192, 0, 2, 1].into())),
                ))
                .with(u32_avp(avp::VENDOR_ID, vendor::JUNIPER))
                .with(Avp::new(
                    avp::PRODUCT_NAME,
                    0,
                    AvpFlags::none(),
                    &Value::Utf8String("MX".into()),
                ))
                .with(Avp::mandatory(
                    avp::VENDOR_SPECIFIC_APPLICATION_ID,
                    &Value::Grouped(vsai),
                ))
        };
        let vendor_id = u32_avp(avp::VENDOR_ID, vendor::JUNIPER);
        let auth = u32_avp(avp::AUTH_APPLICATION_ID, app::JSRC);
        check(&cer(vec![vendor_id.clone(), auth.clone()])).unwrap();
        let err = check(&cer(vec![auth.clone()])).unwrap_err();
        assert_eq!(err.result_code, result::MISSING_AVP);
        let (path, example) = failed_path(&err);
        assert_eq!(
            path,
            vec![avp::VENDOR_SPECIFIC_APPLICATION_ID, avp::VENDOR_ID]
        );
        assert_eq!(&example.data()[..], &[0; 4], "zero-filled Unsigned32");
        // RFC 3588 peers send several Vendor-Ids: accepted.
        check(&cer(vec![
            vendor_id.clone(),
            u32_avp(avp::VENDOR_ID, 10415),
            auth.clone(),
        ]))
        .unwrap();
        let err = check(&cer(vec![vendor_id.clone(), auth.clone(), auth.clone()])).unwrap_err();
        assert_eq!(err.result_code, result::AVP_OCCURS_TOO_MANY_TIMES);
        // Nothing else belongs in it.
        let extra = u32_avp(avp::SUPPORTED_VENDOR_ID, 9);
        let err = check(&cer(vec![vendor_id, auth, extra.clone()])).unwrap_err();
        assert_eq!(err.result_code, result::AVP_NOT_ALLOWED);
        assert_eq!(failed_path(&err).1, extra);
    }

    #[test]
    fn an_operator_forbids_a_child_of_a_grouped_avp() {
        let site = r#"
            [[avp]]
            code = 2020
            vendor = 2636
            name = "Juniper-Policy-Install"
            type = "Grouped"
            rules = ["{Juniper-Policy-Name}", "*0[Juniper-Acct-Collect]", "*[AVP]"]
        "#;
        let name = jnpr(juniper::POLICY_NAME, &octets("p"));
        let collect = jnpr(juniper::ACCT_COLLECT, &Value::Enumerated(1));
        check_with(site, &aar().with(policy_install(vec![name.clone()]))).unwrap();
        let err = check_with(
            site,
            &aar().with(policy_install(vec![name, collect.clone()])),
        )
        .unwrap_err();
        assert_eq!(err.result_code, result::AVP_NOT_ALLOWED);
        assert_eq!(failed_path(&err).1, collect);
    }

    #[test]
    fn grouped_rules_apply_to_answers_only_through_check_answer_rules() {
        let dict = Dictionary::base();
        let mut ppa = Message::answer_to(&aar());
        ppa.header.command_code = command::PUSH_PROFILE;
        ppa.set_result_code(result::SUCCESS);
        ppa.push_origin("r1.example", "example");
        ppa.push(proxy_info_without_state());
        validate_answer(&dict, &ppa, &Limits::default()).unwrap();
        let err = check_answer_rules(&dict, &ppa).unwrap_err();
        assert_eq!(err.result_code, result::MISSING_AVP);
        assert_eq!(failed_path(&err).0, vec![PROXY_INFO, PROXY_STATE]);
    }

    #[test]
    fn rules_per_application_take_precedence_over_the_common_ones() {
        let site = r#"
            [[command]]
            code = 271
            application = 16777244
            name = "Accounting"
            request_name = "ACR"
            answer_name = "ACA"
            proxiable = true
            request = ["<Session-Id>", "{Origin-Host}", "{Origin-Realm}", "{Destination-Realm}",
              "{Accounting-Record-Type}", "{Accounting-Record-Number}", "{Event-Timestamp}",
              "*[AVP]"]
        "#;
        let err = check_with(site, &acr(app::JSRC)).unwrap_err();
        assert_eq!(err.result_code, result::MISSING_AVP);
        assert_eq!(err.failed_avp.unwrap().code(), avp::EVENT_TIMESTAMP);
        check_with(site, &acr(app::PTSP)).unwrap();
        check(&acr(app::JSRC)).unwrap();
        let stamped = acr(app::JSRC).with(Avp::mandatory(
            avp::EVENT_TIMESTAMP,
            &Value::Time(crate::avp::DiameterTime::from_unix_seconds(1_700_000_000)),
        ));
        check_with(site, &stamped).unwrap();
    }

    #[test]
    fn a_bad_child_header_in_a_grouped_avp_is_5014_not_5015() {
        // A Policy-Name whose length field (200) runs past the Policy-Install's data.
        let mut child = bytes::BytesMut::new();
        jnpr(juniper::POLICY_NAME, &octets("gold")).encode_to(&mut child);
        child[7] = 200;
        let broken = Avp::from_raw(
            juniper::POLICY_INSTALL,
            AvpFlags::mandatory(),
            Some(vendor::JUNIPER),
            child.freeze(),
        );
        let err = check(&aar().with(broken.clone())).unwrap_err();
        assert_eq!(err.result_code, result::INVALID_AVP_LENGTH);
        let (path, inner) = failed_path(&err);
        assert_eq!(path, vec![juniper::POLICY_INSTALL, juniper::POLICY_NAME]);
        assert_eq!(inner.vendor_id(), Some(vendor::JUNIPER));
        assert!(inner.data().is_empty(), "OctetString has no minimum length");
        assert!(
            err.message.starts_with("in Juniper-Policy-Install: "),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("invalid length 200"),
            "{}",
            err.message
        );

        // Data too short for any AVP header: the Grouped AVP with an empty payload.
        let stub = Avp::from_raw(
            juniper::POLICY_INSTALL,
            AvpFlags::mandatory(),
            Some(vendor::JUNIPER),
            Bytes::from_static(&[0, 0, 7, 0xe5]),
        );
        let err = check(&aar().with(stub)).unwrap_err();
        assert_eq!(err.result_code, result::INVALID_AVP_LENGTH);
        let failed = err.failed_avp.unwrap();
        assert!(failed.is(juniper::POLICY_INSTALL, vendor::JUNIPER));
        assert!(failed.data().is_empty());

        // The same in an answer.
        let mut ppa = Message::answer_to(&aar());
        ppa.set_result_code(result::SUCCESS);
        ppa.push(broken);
        let err = validate_answer(&Dictionary::base(), &ppa, &Limits::default()).unwrap_err();
        assert_eq!(err.result_code, result::INVALID_AVP_LENGTH);
    }

    #[test]
    fn m_bit_on_a_must_not_avp_is_3009() {
        let em = Avp::mandatory(avp::ERROR_MESSAGE, &Value::Utf8String("x".into()));
        assert_eq!(
            check(&aar().with(em)).unwrap_err().result_code,
            result::INVALID_AVP_BITS
        );
    }

    #[test]
    fn error_answer_carries_failed_avp() {
        let err = check(&aar().with(Avp::vendor_mandatory(4242, 2636, &Value::Unsigned32(1))))
            .unwrap_err();
        let req = aar();
        let ans = err.answer(
            &req.header,
            req.find(avp::SESSION_ID, 0),
            "sae.example",
            "example",
        );
        assert_eq!(ans.result_code(), Some(5001));
        assert!(!ans.header.flags.is_error(), "5xxx is not a protocol error");
        assert_eq!(ans.avps[0].code(), avp::SESSION_ID);
        let failed = ans.find(avp::FAILED_AVP, 0).unwrap().grouped().unwrap();
        assert_eq!(failed[0].code(), 4242);
    }
}
