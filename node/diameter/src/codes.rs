//! Numeric constants of the Diameter base protocol and of the applications the SAE speaks.
//!
//! The dictionary (`dictionary/base.toml`) is the source of truth for names, types and command
//! rules; these constants exist so the code that builds and reads the handful of messages it
//! understands says what it means.

/// Vendor identifiers (IANA SMI Private Enterprise Numbers).
pub mod vendor {
    /// IETF (no vendor).
    pub const IETF: u32 = 0;
    /// Juniper Networks.
    pub const JUNIPER: u32 = 2636;
}

/// Application identifiers.
pub mod app {
    /// Diameter common messages (CER/CEA, DWR/DWA, DPR/DPA).
    pub const COMMON: u32 = 0;
    /// NASREQ (RFC 7155).
    pub const NASREQ: u32 = 1;
    /// Base accounting.
    pub const BASE_ACCOUNTING: u32 = 3;
    /// Juniper Policy-Control-JSRC.
    pub const JSRC: u32 = 16_777_244;
    /// Juniper JGx, used by the packet-triggered subscriber policy (PTSP) client.
    pub const PTSP: u32 = 16_777_273;
    /// Juniper session recovery.
    pub const JUNIPER_SESSION_RECOVERY: u32 = 16_777_296;
    /// The relay application: matches every application in capabilities exchange.
    pub const RELAY: u32 = 0xffff_ffff;
}

/// Command codes.
pub mod command {
    pub const CAPABILITIES_EXCHANGE: u32 = 257;
    pub const AA: u32 = 265;
    pub const ACCOUNTING: u32 = 271;
    pub const ABORT_SESSION: u32 = 274;
    pub const SESSION_TERMINATION: u32 = 275;
    pub const SESSION_RESYNC: u32 = 277;
    pub const DEVICE_WATCHDOG: u32 = 280;
    pub const DISCONNECT_PEER: u32 = 282;
    pub const PUSH_PROFILE: u32 = 288;
}

/// AVP codes of the IETF (vendor 0) AVPs the code reads or writes directly.
pub mod avp {
    pub const USER_NAME: u32 = 1;
    pub const NAS_IP_ADDRESS: u32 = 4;
    pub const FRAMED_IP_ADDRESS: u32 = 8;
    pub const CLASS: u32 = 25;
    pub const CALLING_STATION_ID: u32 = 31;
    pub const EVENT_TIMESTAMP: u32 = 55;
    pub const ACCT_INTERIM_INTERVAL: u32 = 85;
    pub const NAS_PORT_ID: u32 = 87;
    pub const FRAMED_IPV6_PREFIX: u32 = 97;
    pub const DELEGATED_IPV6_PREFIX: u32 = 123;
    pub const HOST_IP_ADDRESS: u32 = 257;
    pub const AUTH_APPLICATION_ID: u32 = 258;
    pub const ACCT_APPLICATION_ID: u32 = 259;
    pub const VENDOR_SPECIFIC_APPLICATION_ID: u32 = 260;
    pub const SESSION_ID: u32 = 263;
    pub const ORIGIN_HOST: u32 = 264;
    pub const SUPPORTED_VENDOR_ID: u32 = 265;
    pub const VENDOR_ID: u32 = 266;
    pub const FIRMWARE_REVISION: u32 = 267;
    pub const RESULT_CODE: u32 = 268;
    pub const PRODUCT_NAME: u32 = 269;
    pub const DISCONNECT_CAUSE: u32 = 273;
    pub const AUTH_SESSION_STATE: u32 = 277;
    pub const ORIGIN_STATE_ID: u32 = 278;
    pub const FAILED_AVP: u32 = 279;
    pub const ERROR_MESSAGE: u32 = 281;
    pub const DESTINATION_REALM: u32 = 283;
    pub const REDIRECT_HOST_USAGE: u32 = 261;
    pub const REDIRECT_MAX_CACHE_TIME: u32 = 262;
    pub const REDIRECT_HOST: u32 = 292;
    pub const DESTINATION_HOST: u32 = 293;
    pub const ERROR_REPORTING_HOST: u32 = 294;
    pub const TERMINATION_CAUSE: u32 = 295;
    pub const ORIGIN_REALM: u32 = 296;
    pub const ACCOUNTING_INPUT_OCTETS: u32 = 363;
    pub const ACCOUNTING_OUTPUT_OCTETS: u32 = 364;
    pub const ACCOUNTING_INPUT_PACKETS: u32 = 365;
    pub const ACCOUNTING_OUTPUT_PACKETS: u32 = 366;
    pub const ACCOUNTING_RECORD_TYPE: u32 = 480;
    pub const ACCOUNTING_RECORD_NUMBER: u32 = 485;
}

/// Juniper AVP codes (vendor 2636) of the built-in dictionary. Template-Name and the
/// Substitution AVPs have no public code: the values here are the project's, and an operator's
/// dictionary file can move them. Code that builds or reads these AVPs takes its codes from a
/// [`JuniperCodes`](crate::jsrc::JuniperCodes) (these values are its default) rather than from
/// here.
pub mod juniper {
    pub const DHCP_OPTIONS: u32 = 2010;
    pub const DHCP_GI_ADDRESS: u32 = 2011;
    pub const POLICY_INSTALL: u32 = 2020;
    pub const POLICY_NAME: u32 = 2021;
    pub const POLICY_DEFINITION: u32 = 2022;
    pub const TEMPLATE_NAME: u32 = 2023;
    pub const SUBSTITUTION: u32 = 2024;
    pub const SUBSTITUTION_NAME: u32 = 2025;
    pub const SUBSTITUTION_VALUE: u32 = 2026;
    pub const POLICY_REMOVE: u32 = 2027;
    pub const REQUEST_TYPE: u32 = 2050;
    pub const ACCT_RECORD: u32 = 2053;
    pub const ACCT_COLLECT: u32 = 2054;
    pub const LAST_ORIGIN_HOST: u32 = 2055;
}

/// Result-Code values (RFC 6733 section 7.1).
pub mod result {
    pub const MULTI_ROUND_AUTH: u32 = 1001;
    pub const SUCCESS: u32 = 2001;
    pub const LIMITED_SUCCESS: u32 = 2002;
    pub const COMMAND_UNSUPPORTED: u32 = 3001;
    pub const UNABLE_TO_DELIVER: u32 = 3002;
    pub const REALM_NOT_SERVED: u32 = 3003;
    pub const TOO_BUSY: u32 = 3004;
    pub const LOOP_DETECTED: u32 = 3005;
    pub const REDIRECT_INDICATION: u32 = 3006;
    pub const APPLICATION_UNSUPPORTED: u32 = 3007;
    pub const INVALID_HDR_BITS: u32 = 3008;
    pub const INVALID_AVP_BITS: u32 = 3009;
    pub const UNKNOWN_PEER: u32 = 3010;
    pub const AUTHENTICATION_REJECTED: u32 = 4001;
    pub const OUT_OF_SPACE: u32 = 4002;
    pub const ELECTION_LOST: u32 = 4003;
    pub const AVP_UNSUPPORTED: u32 = 5001;
    pub const UNKNOWN_SESSION_ID: u32 = 5002;
    pub const AUTHORIZATION_REJECTED: u32 = 5003;
    pub const INVALID_AVP_VALUE: u32 = 5004;
    pub const MISSING_AVP: u32 = 5005;
    pub const RESOURCES_EXCEEDED: u32 = 5006;
    pub const CONTRADICTING_AVPS: u32 = 5007;
    pub const AVP_NOT_ALLOWED: u32 = 5008;
    pub const AVP_OCCURS_TOO_MANY_TIMES: u32 = 5009;
    pub const NO_COMMON_APPLICATION: u32 = 5010;
    pub const UNSUPPORTED_VERSION: u32 = 5011;
    pub const UNABLE_TO_COMPLY: u32 = 5012;
    pub const INVALID_BIT_IN_HEADER: u32 = 5013;
    pub const INVALID_AVP_LENGTH: u32 = 5014;
    pub const INVALID_MESSAGE_LENGTH: u32 = 5015;
    pub const INVALID_AVP_BIT_COMBO: u32 = 5016;
    pub const NO_COMMON_SECURITY: u32 = 5017;

    /// Protocol errors (3xxx) are sent in answers with the E bit set.
    pub fn is_protocol_error(code: u32) -> bool {
        (3000..4000).contains(&code)
    }

    /// Success class (2xxx).
    pub fn is_success(code: u32) -> bool {
        (2000..3000).contains(&code)
    }
}

/// Disconnect-Cause values (RFC 6733 section 5.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectCause {
    /// The peer is about to restart; reconnect when it is back.
    Rebooting,
    /// The peer is busy; do not reconnect for a while.
    Busy,
    /// The peer does not want to talk to us; do not reconnect unless something changes.
    DoNotWantToTalkToYou,
}

impl DisconnectCause {
    /// The on-the-wire value.
    pub fn value(self) -> i32 {
        match self {
            DisconnectCause::Rebooting => 0,
            DisconnectCause::Busy => 1,
            DisconnectCause::DoNotWantToTalkToYou => 2,
        }
    }

    /// Reads the on-the-wire value.
    pub fn from_value(value: i32) -> Option<Self> {
        match value {
            0 => Some(DisconnectCause::Rebooting),
            1 => Some(DisconnectCause::Busy),
            2 => Some(DisconnectCause::DoNotWantToTalkToYou),
            _ => None,
        }
    }
}
