//! Validation of received messages against the dictionary, and the RFC 6733 error answers.

use bytes::Bytes;

use crate::avp::{Avp, AvpFlags, AvpType, Value};
use crate::codes::{avp, result};
use crate::dictionary::{Dictionary, MBit, MessageRules};
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
            DecodeError::InvalidAvpLength {
                code,
                vendor_id,
                flags,
                ..
            } => Self::with_avp(
                result::INVALID_AVP_LENGTH,
                Avp::from_raw(
                    *code,
                    *flags,
                    *vendor_id,
                    zero_payload(dict, *code, vendor_id.unwrap_or(0)),
                ),
                error.to_string(),
            ),
        }
    }

    /// Builds the answer to a request with `header` (and Session-Id `session_id`, if it had
    /// one). Protocol errors (3xxx) get the E bit and the generic answer format.
    pub fn answer(
        &self,
        header: &Header,
        session_id: Option<&Avp>,
        origin_host: &str,
        origin_realm: &str,
    ) -> Message {
        let mut answer = Message {
            header: header.answer(),
            avps: Vec::with_capacity(6),
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
        answer
    }
}

/// Checks a received request: header bits, application, command, every AVP (known, well-typed,
/// nesting within the limit) and the command's occurrence rules.
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
        .command(header.command_code)
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
    check_avps(dict, &msg.avps, 1, limits)?;
    check_rules(dict, &command.request, &msg.avps)
}

/// Checks a received answer's AVPs: known when mandatory, well-typed, nesting within the limit.
/// Occurrence rules are not enforced on answers, so that a peer's terse error answer still
/// reaches the request's owner; [`check_answer_rules`] applies them where wanted.
pub fn validate_answer(
    dict: &Dictionary,
    msg: &Message,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    check_avps(dict, &msg.avps, 1, limits)
}

/// Applies the command's answer rules (skipped for answers with the E bit).
pub fn check_answer_rules(dict: &Dictionary, msg: &Message) -> Result<(), ProtocolError> {
    match dict.command(msg.header.command_code) {
        Some(c) if !msg.header.flags.is_error() => check_rules(dict, &c.answer, &msg.avps),
        _ => Ok(()),
    }
}

fn check_avps(
    dict: &Dictionary,
    avps: &[Avp],
    depth: usize,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    for a in avps {
        let Some(def) = dict.avp(a.code(), a.vendor()) else {
            if a.flags().is_mandatory() {
                return Err(ProtocolError::with_avp(
                    result::AVP_UNSUPPORTED,
                    a.clone(),
                    format!("AVP {} (vendor {}) is not supported", a.code(), a.vendor()),
                ));
            }
            continue;
        };
        if def.m_bit == MBit::MustNot && a.flags().is_mandatory() {
            return Err(ProtocolError::with_avp(
                result::INVALID_AVP_BITS,
                a.clone(),
                format!("{} must not have the M bit", def.name),
            ));
        }
        if a.is(avp::FAILED_AVP, 0) {
            // The peer's copy of what it could not process: unknown or malformed by nature,
            // so its content is not held to the dictionary.
            continue;
        }
        if def.ty == AvpType::Grouped {
            if depth > limits.max_grouped_depth {
                return Err(ProtocolError::with_avp(
                    result::INVALID_AVP_VALUE,
                    a.clone(),
                    format!(
                        "Grouped AVPs nested deeper than {}",
                        limits.max_grouped_depth
                    ),
                ));
            }
            let children = a.grouped().map_err(|e| {
                let mut err = ProtocolError::from_decode(dict, &e);
                err.message = format!("in {}: {err_msg}", def.name, err_msg = err.message);
                if err.failed_avp.is_none() {
                    err.failed_avp = Some(a.clone());
                }
                err
            })?;
            check_avps(dict, &children, depth + 1, limits)?;
            continue;
        }
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

fn check_rules(dict: &Dictionary, rules: &MessageRules, avps: &[Avp]) -> Result<(), ProtocolError> {
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
            return Err(ProtocolError::with_avp(
                result::AVP_OCCURS_TOO_MANY_TIMES,
                extra,
                format!("{} occurs {count} times, at most {max} allowed", rule.name),
            ));
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
                "AVP {} (vendor {}) is not allowed in this message",
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

    fn ident(code: u32, s: &str) -> Avp {
        Avp::mandatory(code, &Value::DiameterIdentity(s.into()))
    }

    fn aar() -> Message {
        Message::request(command::AA, app::JSRC, true)
            .with(Avp::mandatory(
                avp::SESSION_ID,
                &Value::Utf8String("r1;1;1".into()),
            ))
            .with(Avp::mandatory(
                avp::AUTH_APPLICATION_ID,
                &Value::Unsigned32(app::JSRC),
            ))
            .with(ident(avp::ORIGIN_HOST, "r1.example"))
            .with(ident(avp::ORIGIN_REALM, "example"))
            .with(ident(avp::DESTINATION_REALM, "example"))
    }

    fn check(m: &Message) -> Result<(), ProtocolError> {
        validate_request(&Dictionary::base(), m, &Limits::default())
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
        let err = check(&aar().with(ident(avp::ORIGIN_HOST, "again.example"))).unwrap_err();
        assert_eq!(err.result_code, result::AVP_OCCURS_TOO_MANY_TIMES);
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
        let name = Avp::vendor_mandatory(
            juniper::POLICY_NAME,
            vendor::JUNIPER,
            &Value::OctetString(Bytes::from_static(b"p")),
        );
        let mut inner = name;
        for _ in 0..10 {
            inner = Avp::vendor_mandatory(
                juniper::POLICY_INSTALL,
                vendor::JUNIPER,
                &Value::Grouped(vec![inner]),
            );
        }
        let err = check(&aar().with(inner)).unwrap_err();
        assert_eq!(err.result_code, result::INVALID_AVP_VALUE);
        assert!(err.message.contains("nested"), "{}", err.message);
    }

    #[test]
    fn header_application_and_command_errors() {
        let mut m = aar();
        m.header.flags = m
            .header
            .flags
            .with(crate::message::CommandFlags::ERROR, true);
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
