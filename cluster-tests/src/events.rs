//! What the simulated router reports: one flat JSON object per line on stdout, each with an
//! `"event"` field. The list of events and their fields is documented in `main.rs`.

use serde::Serialize;

/// One event of the simulated router.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum SimEvent {
    /// Capabilities exchanged with an SAE.
    Connected {
        sae: String,
        realm: String,
        addr: String,
        application: u32,
    },
    /// The TCP connection or the capabilities exchange failed.
    ConnectFailed { addr: String, error: String },
    /// The RFC 3539 watchdog of a connection changed state.
    Watchdog { sae: String, state: String },
    /// A connection ended.
    Disconnected { sae: String, reason: String },
    /// `--reconnect-secs`: the next connection attempt to `addr` is in `after_s` seconds.
    Reconnecting { addr: String, after_s: f64 },
    /// Connected (and the startup SRQ answered, when sent): commands and logins run now.
    Ready { sae: String },
    /// The remembered active SAE (Juniper-Last-Origin-Host) changed.
    ActiveSae {
        sae: String,
        previous: Option<String>,
    },
    /// AAA 2001 to a login AAR: the session is kept.
    Login {
        session_id: String,
        user: String,
        ip: String,
        nas_port_id: String,
        result: u32,
        policies: Vec<String>,
        accounting: Vec<String>,
        sae: String,
        latency_us: u64,
    },
    /// The login did not succeed: no session is kept.
    LoginFailed {
        session_id: String,
        user: String,
        result: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        latency_us: Option<u64>,
    },
    /// The answer to the provisioning confirmation AAR (Juniper-Request-Type 2).
    Confirmed {
        session_id: String,
        user: String,
        result: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A request from an SAE, and what the router answered (`result` null: not answered).
    Request {
        command: String,
        from: String,
        session_id: Option<String>,
        result: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        install: Option<Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        remove: Option<Vec<String>>,
        /// ACR: the policies reported in the ACA.
        #[serde(skip_serializing_if = "Option::is_none")]
        policies: Option<Vec<String>>,
        /// ACR: Accounting-Record-Type.
        #[serde(skip_serializing_if = "Option::is_none")]
        record_type: Option<i32>,
        /// PPR matched a `--drop-ppr` glob: no answer was sent.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        dropped: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The router sent an SRQ.
    SrqSent {
        to: String,
        reason: String,
        last_origin_host: Option<String>,
    },
    /// The SRR to the router's SRQ; on 2001 every live session is replayed (`sessions`).
    SrqAnswered {
        to: String,
        reason: String,
        result: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        sessions: usize,
    },
    /// The answer to one synchronization AAR (Juniper-Request-Type 3).
    Replayed {
        session_id: String,
        user: String,
        sae: String,
        result: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The answer to an ACR sent by the router.
    Acct {
        session_id: String,
        user: String,
        #[serde(rename = "type")]
        kind: String,
        record_number: u32,
        policies: Vec<String>,
        result: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The STA to the router's STR; the session is gone.
    Logout {
        session_id: String,
        user: String,
        cause: i32,
        result: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// One session, for the `list` command.
    Session {
        session_id: String,
        user: String,
        ip: String,
        nas_port_id: String,
        policies: Vec<String>,
        accounting: Vec<String>,
        idle_s: u64,
        ending: bool,
    },
    /// After the `session` lines of a `list`.
    Listed { count: usize },
    /// Every login of `--subscribers` or `--scenario` has been answered (or failed).
    LoginsDone { ok: u64, failed: u64 },
    /// A control command took effect.
    Control {
        command: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// Something the router could not do (bad control command, unknown session, …).
    Error { error: String },
}

impl SimEvent {
    /// The event as one line of JSON.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"event\":\"error\",\"error\":\"cannot serialize event: {e}\"}}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_flat_json_with_an_event_field() {
        let e = SimEvent::Acct {
            session_id: "s".into(),
            user: "u".into(),
            kind: "start".into(),
            record_number: 0,
            policies: vec!["gold".into()],
            result: Some(2001),
            error: None,
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json_line()).unwrap();
        assert_eq!(v["event"], "acct");
        assert_eq!(v["type"], "start");
        assert_eq!(v["result"], 2001);
        assert!(v.get("error").is_none());
        let e = SimEvent::SrqSent {
            to: "sae".into(),
            reason: "startup".into(),
            last_origin_host: None,
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json_line()).unwrap();
        assert_eq!(v["event"], "srq-sent");
        assert!(v["last_origin_host"].is_null());
    }
}
