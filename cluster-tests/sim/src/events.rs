//! What the simulated router reports: one flat JSON object per line on stdout, each with an
//! `"event"` field. The list of events and their fields is documented in the crate's `README.md`.

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
        /// The Origin-Host of the answer; without one, the SAE the AAR went to last (null:
        /// never sent).
        sae: Option<String>,
        result: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        latency_us: Option<u64>,
    },
    /// The answer to the provisioning confirmation AAR (Juniper-Request-Type 2).
    Confirmed {
        session_id: String,
        user: String,
        sae: String,
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
        /// No answer was sent: a PPR matched a `--drop-ppr` glob, or an SRQ was one of those
        /// `--drop-srq` (or the `drop-srq` command) leaves unanswered.
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
        /// The Origin-Host of the SRR (or `to` without one).
        sae: String,
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
        sae: String,
        result: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The STA to the router's STR; the session is gone.
    Logout {
        session_id: String,
        user: String,
        cause: i32,
        sae: String,
        result: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A request of the router was not served by the SAE it went to (3006 redirect, 3004 too
    /// busy or, with retries of failures, a timeout or a lost connection) and is sent again:
    /// at once to `to`, or (`to` null) held until an SAE sends SRQ or the back-off ends.
    Redirected {
        command: String,
        session_id: Option<String>,
        /// The SAE that answered (Origin-Host), or the one the request went to.
        from: String,
        to: Option<String>,
        result: Option<u32>,
        /// The host of the first Redirect-Host of a 3006.
        #[serde(skip_serializing_if = "Option::is_none")]
        redirect_host: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Sends of this request so far.
        attempt: u32,
    },
    /// A held request is sent again: `reason` `srq` (an SAE became active) or `backoff`.
    Resent {
        command: String,
        session_id: Option<String>,
        to: String,
        reason: String,
        /// Sends of this request so far, this one included.
        attempt: u32,
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

/// Events that report the answer to one of the router's requests, with the answering SAE in
/// their `sae` field.
const ANSWER_EVENTS: [&str; 7] = [
    "login",
    "login-failed",
    "confirmed",
    "replayed",
    "acct",
    "logout",
    "srq-answered",
];

/// Checks a router's event log (its stdout lines, parsed) for two SAEs acting on the router
/// in the same epoch.
///
/// An epoch starts with each `request` event of command `SRQ`: its `from` is the one SAE
/// allowed to act until the next SRQ. Acting is sending any other request (`request` events,
/// `from`) or answering one of the router's requests with 2001 (`login`, `login-failed`,
/// `confirmed`, `replayed`, `acct`, `logout`, `srq-answered`: their `sae` and `result`).
/// Before the first SRQ, the first SAE that acts holds the epoch (as the router's
/// Juniper-Last-Origin-Host rule does). Answers other than 2001 (redirects, refusals) and
/// other events do not count. Hosts compare case-insensitively (DiameterIdentity).
///
/// Returns the first violation, naming both events.
pub fn check_single_active(events: &[serde_json::Value]) -> Result<(), String> {
    // The SAE of the current epoch and the index of the event that made it so.
    let mut current: Option<(String, usize)> = None;
    for (i, e) in events.iter().enumerate() {
        let kind = e["event"].as_str().unwrap_or_default();
        let sae = if kind == "request" {
            let Some(from) = e["from"].as_str() else {
                continue;
            };
            if e["command"] == "SRQ" {
                current = Some((from.to_owned(), i));
                continue;
            }
            from
        } else if ANSWER_EVENTS.contains(&kind) && e["result"].as_u64() == Some(2001) {
            let Some(sae) = e["sae"].as_str() else {
                continue;
            };
            sae
        } else {
            continue;
        };
        match &current {
            None => current = Some((sae.to_owned(), i)),
            Some((active, at)) if !active.eq_ignore_ascii_case(sae) => {
                return Err(format!(
                    "event {i} {e}: {sae} acted on the router while {active} was the active \
                     SAE (since event {at} {})",
                    events[*at]
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// [`check_single_active`] over typed events.
pub fn check_single_active_events(events: &[SimEvent]) -> Result<(), String> {
    let values: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap_or_default())
        .collect();
    check_single_active(&values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log(lines: &[&str]) -> Vec<serde_json::Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_takeover_by_srq_is_a_new_epoch() {
        let events = log(&[
            r#"{"event":"connected","sae":"sae-1","realm":"r","addr":"a","application":1}"#,
            r#"{"event":"redirected","command":"AAR","session_id":"s","from":"sae-1","to":null,"result":3004,"attempt":1}"#,
            r#"{"event":"request","command":"SRQ","from":"sae-2","session_id":null,"result":2001}"#,
            r#"{"event":"login","session_id":"s","user":"u","ip":"1","nas_port_id":"p","result":2001,"policies":[],"accounting":[],"sae":"sae-2","latency_us":1}"#,
            r#"{"event":"request","command":"PPR","from":"SAE-2","session_id":"s","result":2001}"#,
            r#"{"event":"acct","session_id":"s","user":"u","type":"start","record_number":0,"policies":[],"sae":"sae-1","result":3006}"#,
            r#"{"event":"request","command":"SRQ","from":"sae-3","session_id":null,"result":2001}"#,
            r#"{"event":"replayed","session_id":"s","user":"u","sae":"sae-3","result":2001}"#,
            r#"{"event":"logout","session_id":"s","user":"u","cause":1,"sae":"sae-3","result":2001}"#,
        ]);
        assert_eq!(check_single_active(&events), Ok(()));
        assert_eq!(check_single_active(&[]), Ok(()));
    }

    #[test]
    fn two_saes_in_one_epoch_are_reported() {
        // A 2001 from the old owner after the new owner's SRQ.
        let mut events = log(&[
            r#"{"event":"request","command":"SRQ","from":"sae-1","session_id":null,"result":2001}"#,
            r#"{"event":"login","session_id":"s","user":"u","ip":"1","nas_port_id":"p","result":2001,"policies":[],"accounting":[],"sae":"sae-1","latency_us":1}"#,
            r#"{"event":"request","command":"SRQ","from":"sae-2","session_id":null,"result":2001}"#,
            r#"{"event":"confirmed","session_id":"s","user":"u","sae":"sae-1","result":2001}"#,
        ]);
        let err = check_single_active(&events).unwrap_err();
        assert!(err.starts_with("event 3 "), "{err}");
        assert!(
            err.contains("sae-1 acted") && err.contains("sae-2 was"),
            "{err}"
        );
        // A request from another SAE.
        events[3] = json!({"event": "request", "command": "PPR", "from": "sae-3",
            "session_id": "s", "result": 2001});
        assert!(check_single_active(&events).is_err());
        // Before any SRQ: the first SAE to act holds the epoch.
        let events = log(&[
            r#"{"event":"login","session_id":"s","user":"u","ip":"1","nas_port_id":"p","result":2001,"policies":[],"accounting":[],"sae":"sae-1","latency_us":1}"#,
            r#"{"event":"acct","session_id":"s","user":"u","type":"start","record_number":0,"policies":[],"sae":"sae-2","result":2001}"#,
        ]);
        assert!(check_single_active(&events).is_err());
        // Typed events.
        let typed = [
            SimEvent::Request {
                command: "SRQ".into(),
                from: "sae-1".into(),
                session_id: None,
                result: Some(2001),
                install: None,
                remove: None,
                policies: None,
                record_type: None,
                dropped: false,
                error: None,
            },
            SimEvent::Logout {
                session_id: "s".into(),
                user: "u".into(),
                cause: 1,
                sae: "sae-2".into(),
                result: Some(2001),
                error: None,
            },
        ];
        assert!(check_single_active_events(&typed).is_err());
        assert!(check_single_active_events(&typed[..1]).is_ok());
    }

    #[test]
    fn events_are_flat_json_with_an_event_field() {
        let e = SimEvent::Acct {
            session_id: "s".into(),
            user: "u".into(),
            kind: "start".into(),
            record_number: 0,
            policies: vec!["gold".into()],
            sae: "sae".into(),
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
