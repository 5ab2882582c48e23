//! Responses as text for people (aligned tables with a header row, `key: value` blocks,
//! sentences with the router's Result-Code) and as JSON for programs.
//!
//! Every function returns the text; the caller writes it. Times are UTC (RFC 3339), empty
//! values show as `-`, and control characters from the server are replaced so that a value
//! cannot break a table or the terminal.

use std::collections::HashMap;
use std::fmt::Write as _;

use sae_proto::v1::{
    AdmissionBudget, AggregateSession, ClusterStatus, CollectUsageResponse, ControlUsageRequest,
    ControlUsageResponse, CopsConnection, DiameterPeer, EvaluateExpressionReply, Fragment,
    ListBindingsReply, ListSubscribersResponse, LogoutResponse, NicMatch, NodeStatus, ResolveReply,
    ResyncRouterResponse, RouterOwner, Rule, Service, ServiceChangeResult, SessionEvent,
    Subscriber, UsageRecord,
};
use serde::Serialize;
use tonic_health::pb::health_check_response::ServingStatus;

/// A table: a header row and aligned columns separated by two spaces.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns named by `header`; a name starting with '>' is right-aligned (the '>' is not
    /// shown), for numbers.
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.iter().map(|h| h.trim_start_matches('>')).collect(),
            right: header.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per column; an empty cell shows as `-`).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows
            .push(cells.into_iter().map(|c| cell(&c)).collect());
    }

    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, c) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i] - c.chars().count();
                if self.right[i] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A value for a table cell or a line: control characters (newlines, escapes) become '?', and
/// empty shows as `-`.
fn cell(s: &str) -> String {
    if s.is_empty() {
        return "-".into();
    }
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `key: value` lines with the values aligned.
fn block(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let key = format!("{k}:");
        let _ = writeln!(out, "{key:<width$}  {}", cell(v));
    }
    out
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// Substitutions sorted by key: `k1=v1, k2=v2`.
pub fn substitutions(map: &HashMap<String, String>) -> String {
    let mut pairs: Vec<_> = map.iter().collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// UTC date and time of a Unix time in milliseconds: `2024-05-01T12:00:00Z` (with
/// milliseconds when `millis`), or `-` for 0.
pub fn time(unix_ms: i64, millis: bool) -> String {
    if unix_ms == 0 {
        return "-".into();
    }
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss, ms) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    if millis {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A duration in seconds as `2d 3h 4m 5s` (leading zero units left out).
pub fn duration(secs: u64) -> String {
    let parts = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    parts[first..]
        .iter()
        .map(|(n, u)| format!("{n}{u}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A Diameter Result-Code with its RFC 6733 name when it is a common one: `2001
/// (DIAMETER_SUCCESS)`; 0 means the router never answered.
pub fn result_code(code: u32) -> String {
    let name = match code {
        0 => return "none (no answer from the router)".into(),
        1001 => "DIAMETER_MULTI_ROUND_AUTH",
        2001 => "DIAMETER_SUCCESS",
        2002 => "DIAMETER_LIMITED_SUCCESS",
        3001 => "DIAMETER_COMMAND_UNSUPPORTED",
        3002 => "DIAMETER_UNABLE_TO_DELIVER",
        3003 => "DIAMETER_REALM_NOT_SERVED",
        3004 => "DIAMETER_TOO_BUSY",
        3005 => "DIAMETER_LOOP_DETECTED",
        3007 => "DIAMETER_APPLICATION_UNSUPPORTED",
        3008 => "DIAMETER_INVALID_HDR_BITS",
        3009 => "DIAMETER_INVALID_AVP_BITS",
        4001 => "DIAMETER_AUTHENTICATION_REJECTED",
        5001 => "DIAMETER_AVP_UNSUPPORTED",
        5002 => "DIAMETER_UNKNOWN_SESSION_ID",
        5003 => "DIAMETER_AUTHORIZATION_REJECTED",
        5004 => "DIAMETER_INVALID_AVP_VALUE",
        5005 => "DIAMETER_MISSING_AVP",
        5006 => "DIAMETER_RESOURCES_EXCEEDED",
        5012 => "DIAMETER_UNABLE_TO_COMPLY",
        _ => return code.to_string(),
    };
    format!("{code} ({name})")
}

/// A Result-Code of the 2xxx (success) class.
pub fn is_success(code: u32) -> bool {
    (2000..3000).contains(&code)
}

/// Diameter application ids by name where known: `jsrc,ptsp`.
fn applications(ids: &[u32]) -> String {
    ids.iter()
        .map(|id| match id {
            0 => "common".to_string(),
            1 => "nasreq".to_string(),
            3 => "accounting".to_string(),
            16_777_244 => "jsrc".to_string(),
            16_777_273 => "ptsp".to_string(),
            16_777_296 => "session-recovery".to_string(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `saectl status`: the node, then its routers.
pub fn node_status(s: &NodeStatus) -> String {
    let mut out = block(&[
        ("node", s.node_name.clone()),
        ("version", s.version.clone()),
        ("uptime", duration(s.uptime_seconds)),
        ("origin-host", s.origin_host.clone()),
        ("origin-realm", s.origin_realm.clone()),
        ("sessions", s.subscriber_sessions.to_string()),
        ("usage records", s.usage_records.to_string()),
        ("routers", s.diameter_peers.len().to_string()),
    ]);
    if !s.diameter_peers.is_empty() {
        out.push('\n');
        out.push_str(&routers(&s.diameter_peers));
    }
    out
}

/// The connected routers.
pub fn routers(peers: &[DiameterPeer]) -> String {
    let mut t = Table::new(&[
        "ROUTER",
        "REALM",
        "ADDRESS",
        "STATE",
        "WATCHDOG",
        "APPLICATIONS",
        "PRODUCT",
        ">SESSIONS",
        ">PENDING",
    ]);
    for p in peers {
        t.row(vec![
            p.origin_host.clone(),
            p.origin_realm.clone(),
            p.remote_address.clone(),
            p.state.clone(),
            p.watchdog.clone(),
            applications(&p.applications),
            p.product_name.clone(),
            p.subscriber_sessions.to_string(),
            p.pending_requests.to_string(),
        ]);
    }
    t.render()
}

/// `service list`.
pub fn services(services: &[Service]) -> String {
    let mut t = Table::new(&[
        "NAME",
        "KIND",
        "POLICY",
        "TEMPLATE",
        "ACCOUNTING",
        "SUBSTITUTIONS",
        "DESCRIPTION",
    ]);
    for s in services {
        t.row(vec![
            s.name.clone(),
            kind(s),
            s.policy_name.clone(),
            s.template_name.clone(),
            yes_no(s.accounting),
            substitutions(&s.substitutions),
            s.description.clone(),
        ]);
    }
    t.render()
}

fn kind(s: &Service) -> String {
    if s.kind.is_empty() {
        "normal".into()
    } else {
        s.kind.clone()
    }
}

/// One fragment on a line: `q1: qos 'ip=%s' % user_IpAddress (mandatory, group g)`.
fn fragment(f: &Fragment) -> String {
    let mut notes = Vec::new();
    if f.mandatory {
        notes.push("mandatory".to_owned());
    }
    if !f.redundancy_group.is_empty() {
        notes.push(format!("group {}", f.redundancy_group));
    }
    if f.require_subscription {
        notes.push("requires subscription".to_owned());
    }
    if !f.substitutions.is_empty() {
        notes.push(format!("passes {}", f.substitutions.join(", ")));
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    format!("{}: {} {}{notes}", f.name, f.service, f.expression)
}

/// `service get` and `service put`: one service.
pub fn service(s: &Service) -> String {
    let mut fields = vec![
        ("name", s.name.clone()),
        ("kind", kind(s)),
        ("policy-name", s.policy_name.clone()),
        ("template", s.template_name.clone()),
        ("accounting", yes_no(s.accounting)),
        ("substitutions", substitutions(&s.substitutions)),
        ("description", s.description.clone()),
    ];
    if s.deny_modification {
        fields.push(("modification", "denied to aggregates".into()));
    }
    for f in &s.fragments {
        fields.push(("fragment", fragment(f)));
    }
    block(&fields)
}

/// A rule pattern: empty matches everything.
fn pattern(p: &str) -> String {
    if p.is_empty() { "*".into() } else { p.into() }
}

fn action(r: &Rule) -> String {
    if r.reject { "reject" } else { "accept" }.into()
}

/// `rule list`, in the order the node gave.
pub fn rules(rules: &[Rule]) -> String {
    let mut t = Table::new(&[
        "NAME",
        ">PRIORITY",
        "LOGIN-NAME",
        "DOMAIN",
        "NAS-PORT-ID",
        "ROUTER",
        "ACTION",
        "SERVICES",
        "SUBSTITUTIONS",
    ]);
    for r in rules {
        t.row(vec![
            r.name.clone(),
            r.priority.to_string(),
            pattern(&r.login_name),
            pattern(&r.domain),
            pattern(&r.nas_port_id),
            pattern(&r.router),
            action(r),
            r.services.join(","),
            substitutions(&r.substitutions),
        ]);
    }
    t.render()
}

/// `rule put`: one rule.
pub fn rule(r: &Rule) -> String {
    let mut pairs = vec![
        ("name", r.name.clone()),
        ("priority", r.priority.to_string()),
        ("login-name", pattern(&r.login_name)),
        ("domain", pattern(&r.domain)),
        ("nas-port-id", pattern(&r.nas_port_id)),
        ("router", pattern(&r.router)),
        ("action", action(r)),
        ("services", r.services.join(", ")),
        ("substitutions", substitutions(&r.substitutions)),
    ];
    let assigned = [
        ("subscriber-dn", r.subscriber_dn.clone()),
        ("retailer-dn", r.retailer_dn.clone()),
        ("accounting-id", r.accounting_id.clone()),
        ("subscriptions", r.subscriptions.join(", ")),
        ("virtual-router", r.virtual_router.clone()),
    ];
    pairs.extend(non_empty(&assigned));
    block(&pairs)
}

/// The pairs whose value is not empty.
fn non_empty(pairs: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .cloned()
        .collect()
}

/// The services of a subscriber in one cell: names, with the state when not active.
fn service_names(s: &Subscriber) -> String {
    s.services
        .iter()
        .map(|x| {
            if x.state == "active" || x.state.is_empty() {
                x.service.clone()
            } else {
                format!("{}({})", x.service, x.state)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `subscriber list`.
pub fn subscribers(subscribers: &[Subscriber], with_node: bool) -> String {
    let mut head = vec![
        "SESSION-ID",
        "USER",
        "IP",
        "PORT",
        "ROUTER",
        "STATE",
        "SERVICES",
    ];
    if with_node {
        head.push("NODE");
    }
    let mut t = Table::new(&head);
    for s in subscribers {
        let mut row = vec![
            s.session_id.clone(),
            s.user_name.clone(),
            s.framed_ip.clone(),
            s.nas_port_id.clone(),
            s.router.clone(),
            s.state.clone(),
            service_names(s),
        ];
        if with_node {
            row.push(node_label(s.node, &s.node_name));
        }
        t.row(row);
    }
    t.render()
}

/// `name (id)`, or the id alone.
fn node_label(id: u64, name: &str) -> String {
    if name.is_empty() {
        id.to_string()
    } else {
        format!("{name} ({id})")
    }
}

/// `nic resolve`: the chain that answered and one line per match.
pub fn resolution(r: &ResolveReply) -> String {
    format!(
        "{} resolved by {}\n{}",
        r.reference,
        r.chain,
        matches_table(&r.matches)
    )
}

/// The nodes and sessions a resolution found.
fn matches_table(matches: &[NicMatch]) -> String {
    let mut t = Table::new(&["NODE", "ROUTER", "EPOCH", "SESSION-ID"]);
    for m in matches {
        t.row(vec![
            node_label(m.node, &m.node_name),
            m.router.clone(),
            m.epoch.to_string(),
            if m.session_id.is_empty() {
                "(none bound)".into()
            } else {
                m.session_id.clone()
            },
        ]);
    }
    t.render()
}

/// `nic eval`: the value, the reference it is and where the NIC finds it.
pub fn evaluation(r: &EvaluateExpressionReply) -> String {
    let mut pairs = vec![
        ("value", r.value.clone()),
        ("type", r.value_type.clone()),
        ("names", r.names.join(", ")),
    ];
    if r.reference.is_empty() {
        pairs.push(("reference", format!("none: {}", r.reference_error)));
    } else {
        pairs.push(("reference", r.reference.clone()));
        if !r.resolve_error.is_empty() {
            pairs.push(("resolved", format!("no: {}", r.resolve_error)));
        }
    }
    let mut out = block(&pairs);
    if !r.matches.is_empty() {
        out.push('\n');
        out.push_str(&matches_table(&r.matches));
    }
    out
}

/// `nic bindings`.
pub fn bindings(r: &ListBindingsReply) -> String {
    let mut t = Table::new(&[
        "ROUTER",
        "SESSION-ID",
        "NODE",
        "EPOCH",
        "ADDRESSES",
        "LOGIN",
        "DN",
        "INTERFACE",
        "VR",
        "ACCOUNTING-ID",
    ]);
    for b in &r.bindings {
        let mut addresses = b.addresses.clone();
        addresses.extend(b.prefixes.iter().cloned());
        t.row(vec![
            b.router.clone(),
            b.session_id.clone(),
            b.node.to_string(),
            b.epoch.to_string(),
            addresses.join(","),
            b.login_name.clone(),
            b.dn.clone(),
            b.interface_name.clone(),
            b.vr.clone(),
            b.accounting_id.clone(),
        ]);
    }
    t.render()
}

/// The line after a page of `subscriber list` (for stderr): how many, and the next page.
pub fn subscribers_footer(page: &ListSubscribersResponse) -> String {
    let shown = page.subscribers.len();
    let noun = if page.total == 1 {
        "subscriber"
    } else {
        "subscribers"
    };
    if page.next_page_token.is_empty() {
        format!("{shown} of {} {noun}", page.total)
    } else {
        format!(
            "{shown} of {} {noun}; next page: --page-token {} (or --all)",
            page.total, page.next_page_token
        )
    }
}

/// `subscriber get`: the session, then its services.
pub fn subscriber(s: &Subscriber) -> String {
    let mut pairs = vec![
        ("session-id", s.session_id.clone()),
        ("user", s.user_name.clone()),
        ("ip", s.framed_ip.clone()),
        ("port", s.nas_port_id.clone()),
        ("router", s.router.clone()),
        ("application", s.application.clone()),
        ("state", s.state.clone()),
        ("confirmed", yes_no(s.confirmed)),
        ("login", time(s.login_unix_ms, false)),
        ("services", s.services.len().to_string()),
    ];
    let known_by = [
        (
            "node",
            if s.node_name.is_empty() {
                String::new()
            } else {
                node_label(s.node, &s.node_name)
            },
        ),
        ("login-type", s.login_type.clone()),
        ("user-name", s.user_part.clone()),
        ("domain", s.domain.clone()),
        ("primary-user", s.primary_user_name.clone()),
        ("interface", s.interface_name.clone()),
        ("vr", s.virtual_router.clone()),
        ("nas-ip", s.nas_ip.clone()),
        ("mac", s.mac_address.clone()),
        ("class", s.radius_class.clone()),
        ("ipv6-prefix", s.framed_ipv6_prefixes.join(", ")),
        ("delegated-prefix", s.delegated_ipv6_prefixes.join(", ")),
        ("dn", s.subscriber_dn.clone()),
        ("retailer-dn", s.retailer_dn.clone()),
        ("accounting-id", s.accounting_id.clone()),
        ("subscriptions", s.subscriptions.join(", ")),
    ];
    pairs.extend(non_empty(&known_by));
    let mut out = block(&pairs);
    if !s.services.is_empty() {
        let mut t = Table::new(&[
            "SERVICE",
            "POLICY",
            "STATE",
            "RESULT-CODE",
            "ACCOUNTING",
            "ACTIVATED",
            "SUBSTITUTIONS",
            "ERROR",
        ]);
        for x in &s.services {
            t.row(vec![
                x.service.clone(),
                x.policy_name.clone(),
                x.state.clone(),
                if x.result_code == 0 {
                    String::new()
                } else {
                    x.result_code.to_string()
                },
                yes_no(x.accounting),
                time(x.activated_unix_ms, false),
                substitutions(&x.substitutions),
                x.error.clone(),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    out
}

/// Whether a service change was an activation or a deactivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Activate,
    Deactivate,
}

/// `subscriber activate|deactivate`: a sentence, then the router's Result-Code.
pub fn service_change(r: &ServiceChangeResult, change: Change) -> String {
    let done = match change {
        Change::Activate => "activated",
        Change::Deactivate => "deactivated",
    };
    let attempts = if r.attempts == 1 {
        "1 attempt".to_string()
    } else {
        format!("{} attempts", r.attempts)
    };
    let mut out = if r.success {
        format!(
            "service {} {done} for session {} (policy {}, state {}, {attempts})",
            r.service,
            r.session_id,
            cell(&r.policy_name),
            cell(&r.state)
        )
    } else {
        format!(
            "service {} NOT {done} for session {} (policy {}, state {}, {attempts})",
            r.service,
            r.session_id,
            cell(&r.policy_name),
            cell(&r.state)
        )
    };
    if !r.message.is_empty() {
        let _ = write!(out, ": {}", cell(&r.message));
    }
    let _ = writeln!(out, "\nResult-Code: {}", result_code(r.result_code));
    out
}

/// `subscriber logout`.
pub fn logout(r: &LogoutResponse) -> String {
    let mut out = format!(
        "logout sent for session {}\nResult-Code: {}\n",
        r.session_id,
        result_code(r.result_code)
    );
    if !r.usage.is_empty() {
        out.push('\n');
        out.push_str(&usage(&r.usage));
    }
    out
}

/// `subscriber collect-usage`.
pub fn collect_usage(r: &CollectUsageResponse) -> String {
    let n = r.usage.len();
    let mut out = format!(
        "usage collected for session {}: {n} record{}\nResult-Code: {}\n",
        r.session_id,
        if n == 1 { "" } else { "s" },
        result_code(r.result_code)
    );
    if n > 0 {
        out.push('\n');
        out.push_str(&usage(&r.usage));
    }
    out
}

/// `usage list` (and the records of logout and collect-usage).
pub fn usage(records: &[UsageRecord]) -> String {
    let mut t = Table::new(&[
        ">ID",
        "TIME",
        "SESSION-ID",
        "USER",
        "ROUTER",
        "POLICY",
        "KIND",
        ">RECORD",
        ">IN-OCTETS",
        ">OUT-OCTETS",
        ">IN-PACKETS",
        ">OUT-PACKETS",
    ]);
    for r in records {
        t.row(vec![
            r.id.to_string(),
            time(r.time_unix_ms, false),
            r.session_id.clone(),
            r.user_name.clone(),
            r.router.clone(),
            r.policy_name.clone(),
            r.kind.clone(),
            r.record_number.to_string(),
            r.input_octets.to_string(),
            r.output_octets.to_string(),
            r.input_packets.to_string(),
            r.output_packets.to_string(),
        ]);
    }
    t.render()
}

/// `router resync`.
pub fn resync(router: &str, r: &ResyncRouterResponse) -> String {
    format!(
        "resync requested from router {router}\nResult-Code: {}\n",
        result_code(r.result_code)
    )
}

/// `events`: one line per event, `TIME KIND key=value... [: detail]`, fields left out when
/// empty.
pub fn event(e: &SessionEvent) -> String {
    let mut line = format!("{} {}", time(e.time_unix_ms, true), cell(&e.kind));
    for (k, v) in [
        ("session", &e.session_id),
        ("user", &e.user_name),
        ("router", &e.router),
        ("service", &e.service),
    ] {
        if !v.is_empty() {
            let _ = write!(line, " {k}={}", cell(v));
        }
    }
    if !e.detail.is_empty() {
        let _ = write!(line, ": {}", cell(&e.detail));
    }
    line.push('\n');
    line
}

/// A COPS client type as four hex digits: `0x800B`.
pub fn client_type(t: u32) -> String {
    format!("0x{t:04X}")
}

/// A timer in seconds: `45s`, or empty (shown as `-`) for 0, "no timer".
fn timer(secs: u32) -> String {
    if secs == 0 {
        String::new()
    } else {
        format!("{secs}s")
    }
}

/// `used/limit`, the limit `-` when there is none (0).
fn used_of(used: u64, limit: u64) -> String {
    if limit == 0 {
        format!("{used}/-")
    } else {
        format!("{used}/{limit}")
    }
}

/// `cops connections`: one row per PEPID and client type.
pub fn cops_connections(connections: &[CopsConnection]) -> String {
    let mut t = Table::new(&[
        "PEPID",
        "CLIENT-TYPE",
        "PROFILE",
        "REMOTE",
        "STATE",
        ">KA",
        ">ACCT-TIMER",
        ">STATES",
        "RESUMED",
        "OPENED",
    ]);
    for c in connections {
        t.row(vec![
            c.pepid.clone(),
            client_type(c.client_type),
            c.profile.clone(),
            c.remote_address.clone(),
            c.state.clone(),
            timer(c.keepalive_secs),
            timer(c.accounting_timer_secs),
            c.request_states.to_string(),
            yes_no(c.resumed),
            time(c.opened_unix_ms, false),
        ]);
    }
    t.render()
}

/// `aggregate list`: one row per aggregate session.
pub fn aggregates(aggregates: &[AggregateSession]) -> String {
    let mut t = Table::new(&["ID", "SERVICE", "SESSION", "STATE", "FRAGMENTS", "REASON"]);
    for a in aggregates {
        let active = a.fragments.iter().filter(|f| f.state == "active").count();
        t.row(vec![
            a.id.to_string(),
            a.service.clone(),
            a.session_id.clone(),
            a.state.clone(),
            format!("{active}/{} active", a.fragments.len()),
            a.reason.clone(),
        ]);
    }
    t.render()
}

/// `aggregate get`: one aggregate session and a line per fragment.
pub fn aggregate(a: &AggregateSession) -> String {
    let mut fields = vec![
        ("id", a.id.to_string()),
        ("service", a.service.clone()),
        ("session", a.session_id.clone()),
        ("state", a.state.clone()),
        ("reason", a.reason.clone()),
    ];
    for f in &a.fragments {
        let target = if f.session_id.is_empty() {
            "-".to_owned()
        } else {
            format!("node {} session {}", f.node, f.session_id)
        };
        let error = if f.error.is_empty() {
            String::new()
        } else {
            format!(" ({})", f.error)
        };
        fields.push((
            "fragment",
            format!(
                "{}: {} {} → {target}: {}{error}",
                f.name,
                f.service,
                if f.reference.is_empty() {
                    "-"
                } else {
                    &f.reference
                },
                f.state
            ),
        ));
    }
    block(&fields)
}

/// `cops budgets`: calls and bandwidth (kbit/s) admitted now, out of their limits.
pub fn admission_budgets(budgets: &[AdmissionBudget]) -> String {
    let mut t = Table::new(&["KIND", "NAME", ">CALLS", ">BANDWIDTH-KBIT/S"]);
    for b in budgets {
        t.row(vec![
            b.kind.clone(),
            b.name.clone(),
            used_of(u64::from(b.calls), u64::from(b.calls_limit)),
            used_of(b.bandwidth_kbps, b.bandwidth_kbps_limit),
        ]);
    }
    t.render()
}

/// `cops usage`: the action and how many request states it was sent for.
pub fn control_usage(request: &ControlUsageRequest, r: &ControlUsageResponse) -> String {
    let n = r.request_states;
    let handle = if request.handle.is_empty() {
        String::new()
    } else {
        format!(" (handle {})", cell(&request.handle))
    };
    format!(
        "{} sent to {n} request state{}{handle} of PEP {}, client type {}\n",
        cell(&request.action),
        if n == 1 { "" } else { "s" },
        cell(&request.pepid),
        client_type(request.client_type)
    )
}

/// A node id, or `none` for 0 (no leader, no owner).
fn node_id(id: u64) -> String {
    if id == 0 {
        "none".into()
    } else {
        id.to_string()
    }
}

/// What is left of a lease at `now_ms`: `4500` (ms), `expired`, or empty (shown as `-`) when
/// there never was one.
pub fn lease_remaining(lease_until_ms: i64, now_ms: i64) -> String {
    if lease_until_ms == 0 {
        String::new()
    } else if lease_until_ms > now_ms {
        (lease_until_ms - now_ms).to_string()
    } else {
        "expired".into()
    }
}

/// `cluster` (`cluster status`): this node and the leader, the members, then the routers and
/// their owners. Leases are shown as what is left of them at `now_ms` (this host's clock).
pub fn cluster(s: &ClusterStatus, now_ms: i64) -> String {
    let mut out = block(&[
        ("node", node_id(s.node_id)),
        ("leader", node_id(s.leader_id)),
        ("term", s.term.to_string()),
        ("last applied", s.last_applied.to_string()),
        ("members", s.members.len().to_string()),
        ("routers", s.routers.len().to_string()),
    ]);
    let mut t = Table::new(&[
        ">ID",
        "NAME",
        "ROLE",
        "LEADER",
        "ALIVE",
        "GRPC",
        "DIAMETER",
        "COPS",
        "ORIGIN-HOST",
        ">ROUTERS",
    ]);
    for m in &s.members {
        t.row(vec![
            m.id.to_string(),
            m.name.clone(),
            m.role.clone(),
            if m.leader { "*".into() } else { String::new() },
            yes_no(m.alive),
            m.grpc_address.clone(),
            m.diameter_address.clone(),
            m.cops_address.clone(),
            m.origin_host.clone(),
            m.routers_owned.to_string(),
        ]);
    }
    out.push('\n');
    out.push_str(&t.render());
    if !s.routers.is_empty() {
        out.push('\n');
        out.push_str(&cluster_routers(&s.routers, now_ms));
    }
    out
}

/// `cluster routers`: each router, its owner, epoch and lease (ms left at `now_ms`).
pub fn cluster_routers(routers: &[RouterOwner], now_ms: i64) -> String {
    let mut t = Table::new(&[
        "ROUTER",
        ">OWNER",
        "OWNER-NAME",
        ">EPOCH",
        ">LEASE-MS",
        "LAST-ORIGIN-HOST",
    ]);
    for r in routers {
        t.row(vec![
            r.router.clone(),
            node_id(r.owner),
            r.owner_name.clone(),
            r.epoch.to_string(),
            lease_remaining(r.lease_until_ms, now_ms),
            r.last_origin_host.clone(),
        ]);
    }
    t.render()
}

/// `cluster move`: the router's owner after the move.
pub fn router_owner(r: &RouterOwner, now_ms: i64) -> String {
    let owner = if r.owner == 0 {
        "none".to_string()
    } else if r.owner_name.is_empty() {
        format!("node {}", r.owner)
    } else {
        format!("node {} ({})", r.owner, cell(&r.owner_name))
    };
    let lease = match lease_remaining(r.lease_until_ms, now_ms).as_str() {
        "" => "none".to_string(),
        "expired" => "expired".to_string(),
        ms => format!("{ms} ms left"),
    };
    format!(
        "router {}: owner {owner}, epoch {}, lease {lease}, last origin host {}\n",
        cell(&r.router),
        r.epoch,
        cell(&r.last_origin_host)
    )
}

/// `cluster remove`.
pub fn node_removed(node_id: u64) -> String {
    format!("node {node_id} removed from the cluster\n")
}

/// The result of `health`, for people (`SERVING`) and for `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The service checked; empty for the whole server.
    pub service: String,
    /// `SERVING`, `NOT_SERVING`, `UNKNOWN`, `SERVICE_UNKNOWN` (or the number of a status this
    /// client does not know).
    pub status: String,
}

impl Health {
    pub fn new(service: &str, status: i32) -> Health {
        let status = match ServingStatus::try_from(status) {
            Ok(s) => s.as_str_name().to_owned(),
            Err(_) => format!("status {status}"),
        };
        Health {
            service: service.to_owned(),
            status,
        }
    }

    pub fn serving(&self) -> bool {
        self.status == ServingStatus::Serving.as_str_name()
    }
}

/// `health`: the status alone on its line.
pub fn health(h: &Health) -> String {
    format!("{}\n", h.status)
}

/// A response as a JSON document (pretty, keys sorted, with a final newline). Field names are
/// those of the .proto; 64-bit integers are numbers.
pub fn json<T: Serialize>(value: &T) -> String {
    // Through `Value`, whose objects are sorted maps, so that protobuf maps come out in the same
    // order every time.
    let value = serde_json::to_value(value).expect("prost messages serialize");
    let mut s = serde_json::to_string_pretty(&value).expect("a JSON value serializes");
    s.push('\n');
    s
}

/// A response as one JSON line (streams).
pub fn json_line<T: Serialize>(value: &T) -> String {
    let value = serde_json::to_value(value).expect("prost messages serialize");
    let mut s = value.to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use sae_proto::v1::{ListServicesResponse, ServiceSession};

    use super::*;

    fn subs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tables_align_columns_and_trim_the_last() {
        let mut t = Table::new(&["NAME", ">N", "NOTE"]);
        t.row(vec!["a".into(), "1".into(), "x".into()]);
        t.row(vec!["longer".into(), "1000".into(), String::new()]);
        t.row(vec!["é".into(), "7".into(), "two\nlines".into()]);
        assert_eq!(
            t.render(),
            "NAME       N  NOTE\n\
             a          1  x\n\
             longer  1000  -\n\
             é          7  two?lines\n"
        );
    }

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(time(0, false), "-");
        assert_eq!(time(1, true), "1970-01-01T00:00:00.001Z");
        assert_eq!(time(951_782_400_000, false), "2000-02-29T00:00:00Z");
        assert_eq!(time(1_714_564_800_123, true), "2024-05-01T12:00:00.123Z");
        assert_eq!(time(1_735_689_599_999, true), "2024-12-31T23:59:59.999Z");
        assert_eq!(time(-1000, false), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn durations_and_result_codes() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3723), "1h 2m 3s");
        assert_eq!(duration(2 * 86_400 + 5), "2d 0h 0m 5s");
        assert_eq!(result_code(2001), "2001 (DIAMETER_SUCCESS)");
        assert_eq!(result_code(5012), "5012 (DIAMETER_UNABLE_TO_COMPLY)");
        assert_eq!(result_code(7777), "7777");
        assert_eq!(result_code(0), "none (no answer from the router)");
        assert!(is_success(2002) && !is_success(5002) && !is_success(0));
    }

    fn status() -> NodeStatus {
        NodeStatus {
            node_name: "sae-1".into(),
            version: "0.1.0".into(),
            uptime_seconds: 3723,
            origin_host: "sae.example.net".into(),
            origin_realm: "example.net".into(),
            diameter_peers: vec![DiameterPeer {
                origin_host: "mx1.example.net".into(),
                origin_realm: "example.net".into(),
                remote_address: "192.0.2.1:40000".into(),
                state: "open".into(),
                watchdog: "okay".into(),
                applications: vec![16_777_244, 16_777_273, 99],
                product_name: "JUNOS".into(),
                subscriber_sessions: 1234,
                pending_requests: 0,
            }],
            subscriber_sessions: 1234,
            usage_records: 56,
        }
    }

    #[test]
    fn node_status_table() {
        assert_eq!(
            node_status(&status()),
            "\
node:           sae-1
version:        0.1.0
uptime:         1h 2m 3s
origin-host:    sae.example.net
origin-realm:   example.net
sessions:       1234
usage records:  56
routers:        1

ROUTER           REALM        ADDRESS          STATE  WATCHDOG  APPLICATIONS  PRODUCT  SESSIONS  PENDING
mx1.example.net  example.net  192.0.2.1:40000  open   okay      jsrc,ptsp,99  JUNOS        1234        0
"
        );
    }

    #[test]
    fn aggregates_as_a_table_and_one_with_its_fragments() {
        use sae_proto::v1::AggregateFragment;
        let a = AggregateSession {
            id: 3,
            service: "vod".into(),
            session_id: "r1;1;1".into(),
            state: "active".into(),
            reason: String::new(),
            fragments: vec![
                AggregateFragment {
                    name: "sub".into(),
                    service: "qos".into(),
                    reference: "ip=10.0.0.1".into(),
                    node: 1,
                    session_id: "r1;1;1".into(),
                    state: "active".into(),
                    error: String::new(),
                },
                AggregateFragment {
                    name: "srv".into(),
                    service: "qos".into(),
                    state: "waiting".into(),
                    error: "no session bound".into(),
                    ..Default::default()
                },
            ],
        };
        assert_eq!(
            aggregates(std::slice::from_ref(&a)),
            "\
ID  SERVICE  SESSION  STATE   FRAGMENTS   REASON
3   vod      r1;1;1   active  1/2 active  -
"
        );
        let text = aggregate(&a);
        assert!(
            text.contains("sub: qos ip=10.0.0.1 → node 1 session r1;1;1: active"),
            "{text}"
        );
        assert!(
            text.contains("srv: qos - → -: waiting (no session bound)"),
            "{text}"
        );
    }

    #[test]
    fn services_and_rules_tables() {
        let list = vec![
            Service {
                name: "gold".into(),
                policy_name: "gold-pol".into(),
                template_name: "tmpl".into(),
                substitutions: subs(&[("rate", "10m"), ("burst", "1m")]),
                accounting: true,
                description: "Gold tier".into(),
                ..Default::default()
            },
            Service {
                name: "bronze".into(),
                policy_name: "bronze".into(),
                ..Default::default()
            },
        ];
        assert_eq!(
            services(&list),
            "\
NAME    KIND    POLICY    TEMPLATE  ACCOUNTING  SUBSTITUTIONS       DESCRIPTION
gold    normal  gold-pol  tmpl      yes         burst=1m, rate=10m  Gold tier
bronze  normal  bronze    -         no          -                   -
"
        );
        assert_eq!(
            service(&list[0]),
            "\
name:           gold
kind:           normal
policy-name:    gold-pol
template:       tmpl
accounting:     yes
substitutions:  burst=1m, rate=10m
description:    Gold tier
"
        );
        let list = vec![
            Rule {
                name: "corp".into(),
                priority: 10,
                domain: "corp.example".into(),
                services: vec!["gold".into(), "voip".into()],
                substitutions: subs(&[("rate", "20m")]),
                ..Default::default()
            },
            Rule {
                name: "guests".into(),
                priority: 200,
                login_name: "guest*".into(),
                reject: true,
                ..Default::default()
            },
        ];
        assert_eq!(
            rules(&list),
            "\
NAME    PRIORITY  LOGIN-NAME  DOMAIN        NAS-PORT-ID  ROUTER  ACTION  SERVICES   SUBSTITUTIONS
corp          10  *           corp.example  *            *       accept  gold,voip  rate=20m
guests       200  guest*      *             *            *       reject  -          -
"
        );
    }

    fn alice() -> Subscriber {
        Subscriber {
            session_id: "mx1.example.net;1700000000;1".into(),
            router: "mx1.example.net".into(),
            application: "jsrc".into(),
            user_name: "alice@corp.example".into(),
            framed_ip: "10.0.0.7".into(),
            nas_port_id: "ge-1/0/0.100".into(),
            state: "active".into(),
            login_unix_ms: 1_714_564_800_000,
            confirmed: true,
            services: vec![
                ServiceSession {
                    service: "gold".into(),
                    policy_name: "gold-pol".into(),
                    state: "active".into(),
                    result_code: 2001,
                    accounting: true,
                    substitutions: subs(&[("rate", "20m")]),
                    activated_unix_ms: 1_714_564_801_000,
                    ..Default::default()
                },
                ServiceSession {
                    service: "voip".into(),
                    policy_name: "voip".into(),
                    state: "failed".into(),
                    result_code: 5012,
                    error: "policy unknown".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn subscribers_table_and_footer() {
        let bob = Subscriber {
            session_id: "mx2;1;2".into(),
            router: "mx2".into(),
            user_name: "bob".into(),
            state: "resyncing".into(),
            ..Default::default()
        };
        assert_eq!(
            subscribers(&[alice(), bob], false),
            "\
SESSION-ID                    USER                IP        PORT          ROUTER           STATE      SERVICES
mx1.example.net;1700000000;1  alice@corp.example  10.0.0.7  ge-1/0/0.100  mx1.example.net  active     gold,voip(failed)
mx2;1;2                       bob                 -         -             mx2              resyncing  -
"
        );
        assert_eq!(
            subscribers(&[], false),
            "SESSION-ID  USER  IP  PORT  ROUTER  STATE  SERVICES\n"
        );
        let page = ListSubscribersResponse {
            subscribers: vec![alice()],
            next_page_token: "abc".into(),
            total: 2,
        };
        assert_eq!(
            subscribers_footer(&page),
            "1 of 2 subscribers; next page: --page-token abc (or --all)"
        );
        assert_eq!(
            subscribers_footer(&ListSubscribersResponse::default()),
            "0 of 0 subscribers"
        );
    }

    #[test]
    fn subscriber_detail() {
        assert_eq!(
            subscriber(&alice()),
            "\
session-id:   mx1.example.net;1700000000;1
user:         alice@corp.example
ip:           10.0.0.7
port:         ge-1/0/0.100
router:       mx1.example.net
application:  jsrc
state:        active
confirmed:    yes
login:        2024-05-01T12:00:00Z
services:     2

SERVICE  POLICY    STATE   RESULT-CODE  ACCOUNTING  ACTIVATED             SUBSTITUTIONS  ERROR
gold     gold-pol  active  2001         yes         2024-05-01T12:00:01Z  rate=20m       -
voip     voip      failed  5012         no          -                     -              policy unknown
"
        );
    }

    #[test]
    fn service_changes_are_sentences_with_the_result_code() {
        let ok = ServiceChangeResult {
            session_id: "s1".into(),
            service: "gold".into(),
            policy_name: "gold-pol".into(),
            success: true,
            result_code: 2001,
            state: "active".into(),
            message: String::new(),
            attempts: 1,
        };
        assert_eq!(
            service_change(&ok, Change::Activate),
            "service gold activated for session s1 (policy gold-pol, state active, 1 attempt)\n\
             Result-Code: 2001 (DIAMETER_SUCCESS)\n"
        );
        let failed = ServiceChangeResult {
            success: false,
            result_code: 0,
            state: "failed".into(),
            message: "no answer from mx1".into(),
            attempts: 3,
            ..ok
        };
        assert_eq!(
            service_change(&failed, Change::Deactivate),
            "service gold NOT deactivated for session s1 (policy gold-pol, state failed, 3 \
             attempts): no answer from mx1\nResult-Code: none (no answer from the router)\n"
        );
    }

    #[test]
    fn usage_logout_resync_and_events() {
        let rec = UsageRecord {
            id: 42,
            session_id: "s1".into(),
            user_name: "alice".into(),
            router: "mx1".into(),
            policy_name: "gold-pol".into(),
            kind: "collected".into(),
            record_number: 3,
            input_octets: 123_456,
            output_octets: 7,
            input_packets: 100,
            output_packets: 2,
            time_unix_ms: 1_714_564_800_000,
        };
        assert_eq!(
            usage(std::slice::from_ref(&rec)),
            "\
ID  TIME                  SESSION-ID  USER   ROUTER  POLICY    KIND       RECORD  IN-OCTETS  OUT-OCTETS  IN-PACKETS  OUT-PACKETS
42  2024-05-01T12:00:00Z  s1          alice  mx1     gold-pol  collected       3     123456           7         100            2
"
        );
        let out = collect_usage(&CollectUsageResponse {
            session_id: "s1".into(),
            result_code: 2001,
            usage: vec![rec],
        });
        assert!(
            out.starts_with(
                "usage collected for session s1: 1 record\nResult-Code: 2001 \
                 (DIAMETER_SUCCESS)\n\nID  TIME"
            ),
            "{out}"
        );
        assert_eq!(
            logout(&LogoutResponse {
                session_id: "s1".into(),
                result_code: 2001,
                usage: vec![],
            }),
            "logout sent for session s1\nResult-Code: 2001 (DIAMETER_SUCCESS)\n"
        );
        assert_eq!(
            resync("mx1", &ResyncRouterResponse { result_code: 3002 }),
            "resync requested from router mx1\nResult-Code: 3002 (DIAMETER_UNABLE_TO_DELIVER)\n"
        );
        assert_eq!(
            event(&SessionEvent {
                time_unix_ms: 1_714_564_800_123,
                kind: "service-activated".into(),
                session_id: "s1".into(),
                user_name: "alice".into(),
                router: "mx1".into(),
                service: "gold".into(),
                detail: "2001".into(),
            }),
            "2024-05-01T12:00:00.123Z service-activated session=s1 user=alice router=mx1 \
             service=gold: 2001\n"
        );
        assert_eq!(
            event(&SessionEvent {
                time_unix_ms: 1_714_564_800_000,
                kind: "router-up".into(),
                router: "mx1".into(),
                ..Default::default()
            }),
            "2024-05-01T12:00:00.000Z router-up router=mx1\n"
        );
    }

    #[test]
    fn cops_connections_table() {
        let list = vec![
            CopsConnection {
                pepid: "bras1".into(),
                client_type: 0x800B,
                profile: "provisioning".into(),
                remote_address: "192.0.2.10:40001".into(),
                state: "open".into(),
                keepalive_secs: 45,
                accounting_timer_secs: 0,
                opened_unix_ms: 1_714_564_800_000,
                request_states: 1200,
                resumed: true,
            },
            CopsConnection {
                pepid: "sbc1".into(),
                client_type: 0x7926,
                profile: "admission".into(),
                remote_address: "192.0.2.20:3288".into(),
                state: "open".into(),
                keepalive_secs: 0,
                accounting_timer_secs: 300,
                opened_unix_ms: 0,
                request_states: 3,
                resumed: false,
            },
        ];
        assert_eq!(
            cops_connections(&list),
            "\
PEPID  CLIENT-TYPE  PROFILE       REMOTE            STATE   KA  ACCT-TIMER  STATES  RESUMED  OPENED
bras1  0x800B       provisioning  192.0.2.10:40001  open   45s           -    1200  yes      2024-05-01T12:00:00Z
sbc1   0x7926       admission     192.0.2.20:3288   open     -        300s       3  no       -
"
        );
        assert_eq!(
            cops_connections(&[]),
            "PEPID  CLIENT-TYPE  PROFILE  REMOTE  STATE  KA  ACCT-TIMER  STATES  RESUMED  OPENED\n"
        );
        assert_eq!(client_type(0x0A), "0x000A");
        assert_eq!(client_type(0x1_0000), "0x10000");
    }

    #[test]
    fn admission_budgets_table() {
        let list = vec![
            AdmissionBudget {
                kind: "realm".into(),
                name: "voice.example".into(),
                calls_limit: 0,
                bandwidth_kbps_limit: 2000,
                calls: 3,
                bandwidth_kbps: 192,
            },
            AdmissionBudget {
                kind: "pep".into(),
                name: "sbc1".into(),
                calls_limit: 10,
                bandwidth_kbps_limit: 0,
                calls: 0,
                bandwidth_kbps: 0,
            },
        ];
        assert_eq!(
            admission_budgets(&list),
            "\
KIND   NAME           CALLS  BANDWIDTH-KBIT/S
realm  voice.example    3/-          192/2000
pep    sbc1            0/10               0/-
"
        );
        assert_eq!(
            admission_budgets(&[]),
            "KIND  NAME  CALLS  BANDWIDTH-KBIT/S\n"
        );
    }

    #[test]
    fn control_usage_sentence() {
        let mut request = ControlUsageRequest {
            pepid: "bras1".into(),
            client_type: 0x800B,
            handle: String::new(),
            action: "solicit".into(),
        };
        assert_eq!(
            control_usage(&request, &ControlUsageResponse { request_states: 12 }),
            "solicit sent to 12 request states of PEP bras1, client type 0x800B\n"
        );
        request.handle = "0000002a".into();
        request.action = "suspend-reporting".into();
        assert_eq!(
            control_usage(&request, &ControlUsageResponse { request_states: 1 }),
            "suspend-reporting sent to 1 request state (handle 0000002a) of PEP bras1, client \
             type 0x800B\n"
        );
    }

    fn cluster_status() -> ClusterStatus {
        use sae_proto::v1::ClusterMember;
        ClusterStatus {
            node_id: 1,
            leader_id: 2,
            term: 7,
            last_applied: 42,
            members: vec![
                ClusterMember {
                    id: 1,
                    name: "sae-1".into(),
                    grpc_address: "10.0.0.1:50051".into(),
                    diameter_address: "10.0.0.1:3868".into(),
                    cops_address: "10.0.0.1:3288".into(),
                    origin_host: "sae1.example.net".into(),
                    role: "voter".into(),
                    leader: false,
                    alive: true,
                    lease_until_ms: 1_000_000,
                    routers_owned: 1,
                    connected_routers: vec!["mx1.example.net".into()],
                },
                ClusterMember {
                    id: 2,
                    name: "sae-2".into(),
                    grpc_address: "10.0.0.2:50051".into(),
                    diameter_address: "10.0.0.2:3868".into(),
                    cops_address: String::new(),
                    origin_host: "sae2.example.net".into(),
                    role: "voter".into(),
                    leader: true,
                    alive: true,
                    lease_until_ms: 1_000_000,
                    routers_owned: 0,
                    connected_routers: vec![],
                },
                ClusterMember {
                    id: 3,
                    name: "sae-3".into(),
                    role: "learner".into(),
                    alive: false,
                    ..Default::default()
                },
            ],
            routers: vec![
                RouterOwner {
                    router: "mx1.example.net".into(),
                    owner: 1,
                    owner_name: "sae-1".into(),
                    epoch: 3,
                    lease_until_ms: 1_004_500,
                    last_origin_host: "sae1.example.net".into(),
                },
                RouterOwner {
                    router: "cops:bras1".into(),
                    owner: 0,
                    owner_name: String::new(),
                    epoch: 1,
                    lease_until_ms: 999_000,
                    last_origin_host: String::new(),
                },
            ],
        }
    }

    #[test]
    fn cluster_tables() {
        assert_eq!(
            cluster(&cluster_status(), 1_000_000),
            "\
node:          1
leader:        2
term:          7
last applied:  42
members:       3
routers:       2

ID  NAME   ROLE     LEADER  ALIVE  GRPC            DIAMETER       COPS           ORIGIN-HOST       ROUTERS
 1  sae-1  voter    -       yes    10.0.0.1:50051  10.0.0.1:3868  10.0.0.1:3288  sae1.example.net        1
 2  sae-2  voter    *       yes    10.0.0.2:50051  10.0.0.2:3868  -              sae2.example.net        0
 3  sae-3  learner  -       no     -               -              -              -                       0

ROUTER           OWNER  OWNER-NAME  EPOCH  LEASE-MS  LAST-ORIGIN-HOST
mx1.example.net      1  sae-1           3      4500  sae1.example.net
cops:bras1        none  -               1   expired  -
"
        );
        let lonely = ClusterStatus {
            leader_id: 0,
            routers: vec![],
            members: vec![],
            ..cluster_status()
        };
        let text = cluster(&lonely, 0);
        assert!(
            text.starts_with("node:          1\nleader:        none\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "\nID  NAME  ROLE  LEADER  ALIVE  GRPC  DIAMETER  COPS  ORIGIN-HOST  ROUTERS\n"
            ),
            "{text}"
        );
        assert_eq!(
            cluster_routers(&[], 0),
            "ROUTER  OWNER  OWNER-NAME  EPOCH  LEASE-MS  LAST-ORIGIN-HOST\n"
        );
    }

    #[test]
    fn router_owner_lines() {
        let routers = cluster_status().routers;
        assert_eq!(
            router_owner(&routers[0], 1_000_000),
            "router mx1.example.net: owner node 1 (sae-1), epoch 3, lease 4500 ms left, last \
             origin host sae1.example.net\n"
        );
        assert_eq!(
            router_owner(&routers[1], 1_000_000),
            "router cops:bras1: owner none, epoch 1, lease expired, last origin host -\n"
        );
        assert_eq!(lease_remaining(0, 5), "");
        assert_eq!(lease_remaining(5, 5), "expired");
        assert_eq!(lease_remaining(6, 5), "1");
        assert_eq!(node_removed(3), "node 3 removed from the cluster\n");
    }

    #[test]
    fn health_statuses() {
        let h = Health::new("", 1);
        assert!(h.serving());
        assert_eq!(health(&h), "SERVING\n");
        let doc: serde_json::Value = serde_json::from_str(&json(&h)).unwrap();
        assert_eq!(doc, serde_json::json!({"service": "", "status": "SERVING"}));
        for (code, name) in [
            (0, "UNKNOWN"),
            (2, "NOT_SERVING"),
            (3, "SERVICE_UNKNOWN"),
            (9, "status 9"),
        ] {
            let h = Health::new("sae.v1.Management", code);
            assert!(!h.serving(), "{code}");
            assert_eq!(h.status, name);
        }
    }

    #[test]
    fn json_uses_the_proto_field_names() {
        let doc: serde_json::Value = serde_json::from_str(&json(&status())).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "node_name": "sae-1",
                "version": "0.1.0",
                "uptime_seconds": 3723,
                "origin_host": "sae.example.net",
                "origin_realm": "example.net",
                "diameter_peers": [{
                    "origin_host": "mx1.example.net",
                    "origin_realm": "example.net",
                    "remote_address": "192.0.2.1:40000",
                    "state": "open",
                    "watchdog": "okay",
                    "applications": [16_777_244, 16_777_273, 99],
                    "product_name": "JUNOS",
                    "subscriber_sessions": 1234,
                    "pending_requests": 0,
                }],
                "subscriber_sessions": 1234,
                "usage_records": 56,
            })
        );
        // Maps come out sorted; the document ends with a newline.
        let list = ListServicesResponse {
            services: vec![Service {
                name: "gold".into(),
                substitutions: subs(&[("z", "1"), ("a", "2"), ("m", "3")]),
                ..Default::default()
            }],
        };
        let text = json(&list);
        assert!(text.ends_with("}\n"), "{text}");
        let a = text.find("\"a\"").unwrap();
        let m = text.find("\"m\"").unwrap();
        let z = text.find("\"z\"").unwrap();
        assert!(a < m && m < z, "{text}");
    }

    #[test]
    fn json_lines_for_streams() {
        let line = json_line(&SessionEvent {
            time_unix_ms: 5,
            kind: "login".into(),
            ..Default::default()
        });
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["kind"], "login");
        assert_eq!(v["time_unix_ms"], 5);
        assert_eq!(v["session_id"], "");
    }
}
