//! What the simulated COPS PEPs (`sae-sim sbc`, `sae-sim copspr`) report: one flat JSON object
//! per line on stdout, each with an `"event"` field. The list is documented in the crate's
//! `README.md`.

use serde::Serialize;

use sae_cops::object::Handle;

/// A handle as hex octets (the form the node's control API takes).
pub fn handle_hex(h: &Handle) -> String {
    h.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// One event of a simulated PEP.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum CopsEvent {
    /// TCP connected to a PDP; OPN sent.
    Connected {
        pdp: String,
        addr: String,
        pepid: String,
        client_type: String,
    },
    /// The TCP connection could not be opened.
    ConnectFailed { addr: String, error: String },
    /// CAT received: the connection is up.
    Accepted {
        keepalive_s: Option<u64>,
        accounting_timer_s: Option<u64>,
    },
    /// The PEP sent a KA (`count` since the process started).
    KaSent { count: u64 },
    /// The connection ended (`reason`: `ka-timeout`, `pdp-cc …`, `transport-closed`,
    /// `dropped`, `local-cc`, `accept-timeout`, `protocol-error …`).
    Disconnected { pdp: String, reason: String },
    /// The next connection attempt goes to `addr` in `after_s` seconds.
    Reconnecting {
        addr: String,
        after_s: f64,
        attempt: u32,
    },
    /// The PDP closed with Error 12 and PDP-Redirect: the next attempt goes there at once.
    Redirected { to: String },
    /// SBC: the outcome of a new call.
    Call {
        call_id: String,
        result: String,
        latency_us: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        handle: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// SBC: a call ended. `by`: `local` or `pdp`; `drq`: `sent`, `queued` (until reconnected)
    /// or `none` (admitted while down, or denied).
    Hangup {
        call_id: String,
        by: String,
        drq: String,
    },
    /// SBC, `list`: one call.
    CallEntry {
        call_id: String,
        state: String,
        handle: Option<String>,
        realm: String,
        bandwidth_kbps: u32,
    },
    /// SBC: every call of `--calls` has an outcome.
    CallsDone { admitted: u64, denied: u64 },
    /// COPS-PR: DEC Install for a subscriber interface.
    Installed {
        if_name: String,
        handle: String,
        policies: Vec<String>,
        accounting: Vec<String>,
    },
    /// COPS-PR: the PDP refused the subscriber interface (DEC Remove or DEC Error).
    Refused {
        if_name: String,
        handle: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// COPS-PR: an RPT sent. `type`: `success`, `failure`, `accounting`; `trigger` for
    /// accounting: `periodic`, `threshold`, `solicited`, `suspended`, `final`, `reconnected`.
    Report {
        if_name: String,
        handle: String,
        #[serde(rename = "type")]
        kind: String,
        solicited: bool,
        policies: Vec<String>,
        octets: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        trigger: Option<String>,
    },
    /// COPS-PR: a FeedbackAction from the PDP was applied.
    Feedback {
        if_name: String,
        handle: String,
        action: String,
    },
    /// COPS-PR: the subscriber is gone (DRQ sent). `by`: `local` or `pdp`.
    Logout {
        if_name: String,
        handle: String,
        by: String,
    },
    /// COPS-PR, `list`: one subscriber interface.
    Subscriber {
        if_name: String,
        handle: String,
        state: String,
        policies: Vec<String>,
        octets: u64,
    },
    /// COPS-PR: SSQ answered; `handles` states re-sent, then SSC.
    Sync { handles: usize },
    /// COPS-PR: every subscriber of `--subscribers` has an outcome.
    LoginsDone { installed: u64, refused: u64 },
    /// After the entries of a `list`.
    Listed { count: usize },
    /// Something the PEP could not do (bad command, unknown call, …).
    Error { error: String },
}

impl CopsEvent {
    /// The event as one line of JSON.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"event\":\"error\",\"error\":\"cannot serialize event: {e}\"}}")
        })
    }

    /// The `event` name.
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("event").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_flat_json_with_an_event_field() {
        let e = CopsEvent::Report {
            if_name: "fastEthernet 3/0.1".into(),
            handle: handle_hex(&Handle::from_u32(42)),
            kind: "accounting".into(),
            solicited: true,
            policies: vec!["gold".into()],
            octets: 7,
            trigger: Some("solicited".into()),
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json_line()).unwrap();
        assert_eq!(v["event"], "report");
        assert_eq!(v["type"], "accounting");
        assert_eq!(v["handle"], "0000002a");
        assert_eq!(e.name(), "report");
        let e = CopsEvent::KaSent { count: 1 };
        assert_eq!(e.name(), "ka-sent");
    }
}
