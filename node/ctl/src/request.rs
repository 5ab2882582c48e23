//! From the command line to the gRPC requests: subscriber references, `KEY=VALUE`
//! substitutions, service and rule files, and [`build`], which turns a parsed [`Command`] into
//! the [`Call`] to make. Nothing here does I/O except reading the `--file` of a put.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;

use sae_proto::v1::subscriber_ref::Key;
use sae_proto::v1::{
    ActivateServiceRequest, CollectUsageRequest, ControlUsageRequest, DeactivateServiceRequest,
    DeleteRuleRequest, DeleteServiceRequest, EvaluateExpressionRequest, Fragment,
    GetClusterRequest, GetNodeStatusRequest, GetServiceRequest, GetSubscriberRequest,
    ListAdmissionBudgetsRequest, ListBindingsRequest, ListCopsConnectionsRequest, ListRulesRequest,
    ListServicesRequest, ListSubscribersRequest, ListUsageRecordsRequest, LogoutRequest,
    MoveRouterRequest, PutRuleRequest, PutServiceRequest, RemoveNodeRequest, ResolveRequest,
    ResyncRouterRequest, Rule, Service, SubscriberRef, WatchEventsRequest,
};
use serde::Deserialize;
use tonic_health::pb::HealthCheckRequest;

use crate::cli::{
    AggregateCommand, ClusterArgs, ClusterCommand, Command, CopsCommand, CopsUsageArgs, EventsArgs,
    NicCommand, RouterCommand, RuleCommand, RulePutArgs, ServiceCommand, ServicePutArgs,
    SubscriberCommand, SubscriberListArgs, UsageCommand, UsageListArgs,
};
use crate::error::CtlError;

/// One `--sub KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// Parses `KEY=VALUE`: the key is everything before the first '=' (not empty, no blanks); the
/// value is the rest and may be empty or contain '='.
pub fn parse_key_value(s: &str) -> Result<KeyValue, String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!("{s:?} is not KEY=VALUE"));
    };
    if key.is_empty() {
        return Err(format!("{s:?}: KEY=VALUE needs a key before '='"));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s:?}: the key of KEY=VALUE has blanks"));
    }
    Ok(KeyValue {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

/// The substitutions map of `--sub` options; a key given twice is an error.
pub fn substitutions(pairs: &[KeyValue]) -> Result<HashMap<String, String>, CtlError> {
    let mut map = HashMap::with_capacity(pairs.len());
    for kv in pairs {
        if map.insert(kv.key.clone(), kv.value.clone()).is_some() {
            return Err(CtlError::Usage(format!(
                "--sub {}: the key {:?} is given twice",
                kv.key, kv.key
            )));
        }
    }
    Ok(map)
}

/// Parses a subscriber reference (see [`crate::cli::REF_HELP`]): `session=ID`, `user=NAME`,
/// `ip=A.B.C.D`, `port=NAS-PORT-ID`, or a bare value: a Session-Id when it contains ';', an IP
/// address when it is an IPv4 address, a user name otherwise.
pub fn parse_ref(s: &str) -> Result<SubscriberRef, String> {
    let key = parse_ref_key(s)?;
    Ok(SubscriberRef { key: Some(key) })
}

fn parse_ref_key(s: &str) -> Result<Key, String> {
    if s.is_empty() {
        return Err("empty subscriber reference".into());
    }
    if let Some((kind, value)) = s.split_once('=') {
        let keyed = match kind {
            "session" => Some(Key::SessionId as fn(String) -> Key),
            "user" => Some(Key::UserName as fn(String) -> Key),
            "ip" => Some(Key::FramedIp as fn(String) -> Key),
            "port" => Some(Key::NasPortId as fn(String) -> Key),
            _ => None,
        };
        // NIC references: resolved by the node, any node's subscriber.
        let nic_key =
            sae_nic::KeyKind::from_name(kind.trim()).is_some_and(|k| k != sae_nic::KeyKind::Ip);
        let nic_ip = kind == "ip"
            && (value.contains(';') || value.parse::<Ipv4Addr>().is_err())
            && !value.is_empty();
        if nic_key || nic_ip {
            let reference = sae_nic::Reference::parse(s).map_err(|e| e.to_string())?;
            return Ok(Key::Reference(reference.to_string()));
        }
        if let Some(make) = keyed {
            if value.is_empty() {
                return Err(format!("{s:?}: no value after '{kind}='"));
            }
            return Ok(make(value.to_owned()));
        }
        // `word=...` with an unknown word is most likely a typo, not a user name.
        if !kind.contains(';') && !kind.is_empty() && kind.chars().all(char::is_alphanumeric) {
            return Err(format!(
                "{s:?}: unknown kind of reference {kind:?} (expected session=, user=, ip=, port= \
                 or a NIC key: loginName=, primaryUserName=, dn=, interfaceName=, vr=, \
                 accountingId=, sessionId=; write user={s} for a user name containing '=')"
            ));
        }
    }
    if s.contains(';') {
        Ok(Key::SessionId(s.to_owned()))
    } else if s.parse::<Ipv4Addr>().is_ok() {
        Ok(Key::FramedIp(s.to_owned()))
    } else {
        Ok(Key::UserName(s.to_owned()))
    }
}

/// Parses a COPS client type: hex with `0x` (`0x800B`, any case) or decimal (`32779`); 16 bits.
pub fn parse_client_type(s: &str) -> Result<u16, String> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => t.parse::<u32>(),
    };
    let value = parsed
        .map_err(|_| format!("{s:?} is not a client type (hex as 0x800B, or decimal as 32779)"))?;
    u16::try_from(value)
        .map_err(|_| format!("{s:?}: a client type is 16 bits (at most 0xFFFF = 65535)"))
}

/// Parses a COPS handle given in hex: an even number of hex digits, optionally after `0x`;
/// returns the digits in lower case, as the node expects them.
pub fn parse_handle(s: &str) -> Result<String, String> {
    let t = s.trim();
    let hex = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{s:?} is not a handle in hex (e.g. 0000002a)"));
    }
    if !hex.len().is_multiple_of(2) {
        return Err(format!(
            "{s:?}: a handle is whole octets (an even number of hex digits)"
        ));
    }
    Ok(hex.to_ascii_lowercase())
}

/// The request(s) one command makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Status(GetNodeStatusRequest),
    ListServices(ListServicesRequest),
    GetService(GetServiceRequest),
    /// One request per service (several with `--file`).
    PutServices(Vec<PutServiceRequest>),
    DeleteService(DeleteServiceRequest),
    ListRules(ListRulesRequest),
    /// One request per rule (several with `--file`).
    PutRules(Vec<PutRuleRequest>),
    DeleteRule(DeleteRuleRequest),
    ListSubscribers {
        request: ListSubscribersRequest,
        /// Follow `next_page_token` to the last page.
        all: bool,
    },
    GetSubscriber(GetSubscriberRequest),
    Activate(ActivateServiceRequest),
    Deactivate(DeactivateServiceRequest),
    Logout(LogoutRequest),
    CollectUsage(CollectUsageRequest),
    ListUsage(ListUsageRecordsRequest),
    Resync(ResyncRouterRequest),
    Watch(WatchEventsRequest),
    CopsConnections(ListCopsConnectionsRequest),
    /// `aggregate list` (`None`) or `aggregate get ID`.
    Aggregates(Option<u64>),
    AdmissionBudgets(ListAdmissionBudgetsRequest),
    ControlUsage(ControlUsageRequest),
    /// `cluster` (`routers_only`: `cluster routers`).
    Cluster {
        request: GetClusterRequest,
        routers_only: bool,
    },
    MoveRouter(MoveRouterRequest),
    RemoveNode(RemoveNodeRequest),
    /// The standard gRPC health check (`grpc.health.v1.Health/Check`).
    Health(HealthCheckRequest),
    Resolve(ResolveRequest),
    ListBindings(ListBindingsRequest),
    Evaluate(EvaluateExpressionRequest),
}

/// Builds the call of a command; reads the `--file` of `service put` and `rule put`.
pub fn build(command: &Command) -> Result<Call, CtlError> {
    Ok(match command {
        Command::Status => Call::Status(GetNodeStatusRequest {}),
        Command::Service(c) => match c {
            ServiceCommand::List => Call::ListServices(ListServicesRequest {}),
            ServiceCommand::Get { name } => {
                Call::GetService(GetServiceRequest { name: name.clone() })
            }
            ServiceCommand::Put(args) => Call::PutServices(
                put_services(args)?
                    .into_iter()
                    .map(|s| PutServiceRequest { service: Some(s) })
                    .collect(),
            ),
            ServiceCommand::Delete { name } => {
                Call::DeleteService(DeleteServiceRequest { name: name.clone() })
            }
        },
        Command::Rule(c) => match c {
            RuleCommand::List => Call::ListRules(ListRulesRequest {}),
            RuleCommand::Put(args) => Call::PutRules(
                put_rules(args)?
                    .into_iter()
                    .map(|r| PutRuleRequest { rule: Some(r) })
                    .collect(),
            ),
            RuleCommand::Delete { name } => {
                Call::DeleteRule(DeleteRuleRequest { name: name.clone() })
            }
        },
        Command::Subscriber(c) => match c {
            SubscriberCommand::List(args) => list_subscribers(args),
            SubscriberCommand::Get { subscriber } => Call::GetSubscriber(GetSubscriberRequest {
                subscriber: Some(subscriber.clone()),
            }),
            SubscriberCommand::Activate {
                subscriber,
                service,
                substitutions: subs,
            } => Call::Activate(ActivateServiceRequest {
                subscriber: Some(subscriber.clone()),
                service: service.clone(),
                substitutions: substitutions(subs)?,
            }),
            SubscriberCommand::Deactivate {
                subscriber,
                service,
            } => Call::Deactivate(DeactivateServiceRequest {
                subscriber: Some(subscriber.clone()),
                service: service.clone(),
            }),
            SubscriberCommand::Logout { subscriber } => Call::Logout(LogoutRequest {
                subscriber: Some(subscriber.clone()),
            }),
            SubscriberCommand::CollectUsage { subscriber } => {
                Call::CollectUsage(CollectUsageRequest {
                    subscriber: Some(subscriber.clone()),
                })
            }
        },
        Command::Usage(UsageCommand::List(args)) => Call::ListUsage(list_usage(args)),
        Command::Router(RouterCommand::Resync { host }) => Call::Resync(ResyncRouterRequest {
            router: host.clone(),
        }),
        Command::Events(EventsArgs { session, user }) => Call::Watch(WatchEventsRequest {
            session_id: session.clone().unwrap_or_default(),
            user_name: user.clone().unwrap_or_default(),
        }),
        Command::Aggregate(c) => match c {
            AggregateCommand::List => Call::Aggregates(None),
            AggregateCommand::Get { id } => Call::Aggregates(Some(*id)),
        },
        Command::Cops(c) => match c {
            CopsCommand::Connections => Call::CopsConnections(ListCopsConnectionsRequest {}),
            CopsCommand::Budgets => Call::AdmissionBudgets(ListAdmissionBudgetsRequest {}),
            CopsCommand::Usage(args) => Call::ControlUsage(control_usage(args)),
        },
        Command::Nic(c) => match c {
            NicCommand::Resolve { reference } => Call::Resolve(ResolveRequest {
                reference: reference.clone(),
            }),
            NicCommand::Bindings { key, limit } => Call::ListBindings(ListBindingsRequest {
                reference: key.clone().unwrap_or_default(),
                limit: limit.unwrap_or(0),
            }),
            NicCommand::Eval {
                expression,
                subscriber,
                substitutions: subs,
            } => Call::Evaluate(EvaluateExpressionRequest {
                expression: expression.clone(),
                subscriber: subscriber.clone(),
                substitutions: substitutions(subs)?,
            }),
        },
        Command::Cluster(ClusterArgs { command }) => match command {
            None | Some(ClusterCommand::Status) => Call::Cluster {
                request: GetClusterRequest {},
                routers_only: false,
            },
            Some(ClusterCommand::Routers) => Call::Cluster {
                request: GetClusterRequest {},
                routers_only: true,
            },
            Some(ClusterCommand::Move { router, node_id }) => {
                let router = router.trim();
                if router.is_empty() {
                    return Err(CtlError::Usage("cluster move: empty ROUTER".into()));
                }
                Call::MoveRouter(MoveRouterRequest {
                    router: router.to_owned(),
                    node_id: *node_id,
                })
            }
            Some(ClusterCommand::Remove { node_id }) => {
                Call::RemoveNode(RemoveNodeRequest { node_id: *node_id })
            }
        },
        Command::Health(args) => Call::Health(HealthCheckRequest {
            service: args.service.clone(),
        }),
    })
}

fn control_usage(args: &CopsUsageArgs) -> ControlUsageRequest {
    ControlUsageRequest {
        pepid: args.pepid.clone(),
        client_type: u32::from(args.client_type),
        handle: args.handle.clone().unwrap_or_default(),
        action: args.action.as_str().to_owned(),
    }
}

fn list_subscribers(args: &SubscriberListArgs) -> Call {
    Call::ListSubscribers {
        request: ListSubscribersRequest {
            user_name: args.user.clone().unwrap_or_default(),
            framed_ip: args.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            nas_port_id: args.nas_port_id.clone().unwrap_or_default(),
            router: args.router.clone().unwrap_or_default(),
            service: args.service.clone().unwrap_or_default(),
            page_size: args.page_size.unwrap_or(0),
            page_token: args.page_token.clone().unwrap_or_default(),
            cluster: args.cluster,
        },
        all: args.all,
    }
}

fn list_usage(args: &UsageListArgs) -> ListUsageRecordsRequest {
    ListUsageRecordsRequest {
        session_id: args.session.clone().unwrap_or_default(),
        user_name: args.user.clone().unwrap_or_default(),
        policy_name: args.policy.clone().unwrap_or_default(),
        after_id: args.after.unwrap_or(0),
        limit: args.limit.unwrap_or(0),
    }
}

/// The services of `service put`: from the flags, or from the `--file`.
fn put_services(args: &ServicePutArgs) -> Result<Vec<Service>, CtlError> {
    if let Some(path) = &args.file {
        let text = read_file(path)?;
        return services_from_toml(&text, args.name.as_deref())
            .map_err(|e| CtlError::Usage(format!("{}: {e}", path.display())));
    }
    let name = args
        .name
        .clone()
        .ok_or_else(|| CtlError::Usage("service put: a NAME or --file is needed".into()))?;
    let fragments = args
        .fragment
        .iter()
        .map(|text| {
            fragment_from_toml(text).map_err(|e| CtlError::Usage(format!("--fragment {text}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vec![Service {
        name,
        policy_name: args.policy_name.clone().unwrap_or_default(),
        template_name: args.template.clone().unwrap_or_default(),
        substitutions: substitutions(&args.substitutions)?,
        accounting: args.accounting,
        description: args.description.clone().unwrap_or_default(),
        kind: service_kind(args.aggregate).into(),
        fragments,
        deny_modification: args.deny_modification,
    }])
}

/// The kind sent: empty (the node's default, normal) unless aggregate.
fn service_kind(aggregate: bool) -> &'static str {
    if aggregate { "aggregate" } else { "" }
}

/// One `--fragment`: a TOML inline table of the fields of `[[service.fragment]]`.
pub fn fragment_from_toml(text: &str) -> Result<Fragment, String> {
    #[derive(Deserialize)]
    struct One {
        f: FragmentEntry,
    }
    let one: One =
        toml::from_str(&format!("f = {text}")).map_err(|e| e.to_string().trim_end().to_owned())?;
    Ok(one.f.into())
}

/// The rules of `rule put`: from the flags, or from the `--file`.
fn put_rules(args: &RulePutArgs) -> Result<Vec<Rule>, CtlError> {
    if let Some(path) = &args.file {
        let text = read_file(path)?;
        return rules_from_toml(&text, args.name.as_deref())
            .map_err(|e| CtlError::Usage(format!("{}: {e}", path.display())));
    }
    let name = args
        .name
        .clone()
        .ok_or_else(|| CtlError::Usage("rule put: a NAME or --file is needed".into()))?;
    Ok(vec![Rule {
        name,
        priority: args.priority.unwrap_or(0),
        login_name: args.login_name.clone().unwrap_or_default(),
        domain: args.domain.clone().unwrap_or_default(),
        nas_port_id: args.nas_port_id.clone().unwrap_or_default(),
        router: args.router.clone().unwrap_or_default(),
        services: args.services.clone(),
        substitutions: substitutions(&args.substitutions)?,
        reject: args.reject,
        subscriber_dn: args.subscriber_dn.clone().unwrap_or_default(),
        retailer_dn: args.retailer_dn.clone().unwrap_or_default(),
        accounting_id: args.accounting_id.clone().unwrap_or_default(),
        subscriptions: args.subscriptions.clone(),
        virtual_router: args.virtual_router.clone().unwrap_or_default(),
    }])
}

fn read_file(path: &Path) -> Result<String, CtlError> {
    std::fs::read_to_string(path)
        .map_err(|e| CtlError::Usage(format!("cannot read {}: {e}", path.display())))
}

/// A TOML file of services and rules. Other top-level tables are ignored, so a file that
/// carries more (a node configuration, say) can be used as it is.
#[derive(Debug, Deserialize)]
struct CatalogFile {
    #[serde(default)]
    service: Vec<ServiceEntry>,
    #[serde(default)]
    rule: Vec<RuleEntry>,
}

/// One `[[service]]`: the fields of `sae.v1.Service`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceEntry {
    name: String,
    #[serde(default)]
    policy_name: String,
    #[serde(default, alias = "template")]
    template_name: String,
    #[serde(default)]
    substitutions: BTreeMap<String, Scalar>,
    #[serde(default)]
    accounting: bool,
    #[serde(default)]
    description: String,
    /// `normal` or `aggregate`.
    #[serde(default)]
    kind: KindEntry,
    #[serde(default)]
    fragment: Vec<FragmentEntry>,
    #[serde(default)]
    deny_modification: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindEntry {
    #[default]
    Normal,
    Aggregate,
}

/// One `[[service.fragment]]`: the fields of `sae.v1.Fragment`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FragmentEntry {
    name: String,
    service: String,
    expression: String,
    #[serde(default)]
    mandatory: bool,
    #[serde(default)]
    redundancy_group: String,
    #[serde(default)]
    require_subscription: bool,
    #[serde(default)]
    substitutions: Vec<String>,
}

impl From<FragmentEntry> for Fragment {
    fn from(e: FragmentEntry) -> Fragment {
        Fragment {
            name: e.name,
            service: e.service,
            expression: e.expression,
            mandatory: e.mandatory,
            redundancy_group: e.redundancy_group,
            require_subscription: e.require_subscription,
            substitutions: e.substitutions,
        }
    }
}

/// One `[[rule]]`: the fields of `sae.v1.Rule`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    name: String,
    #[serde(default)]
    priority: u32,
    #[serde(default)]
    login_name: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    nas_port_id: String,
    #[serde(default)]
    router: String,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    substitutions: BTreeMap<String, Scalar>,
    #[serde(default)]
    reject: bool,
    #[serde(default)]
    subscriber_dn: String,
    #[serde(default)]
    retailer_dn: String,
    #[serde(default)]
    accounting_id: String,
    #[serde(default)]
    subscriptions: Vec<String>,
    #[serde(default)]
    virtual_router: String,
}

/// A substitution value in a file: a string, or a number or boolean taken as its text
/// (`rate = 10000` is `rate = "10000"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::String(s) => s,
            Scalar::Integer(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

fn scalars(map: BTreeMap<String, Scalar>) -> HashMap<String, String> {
    map.into_iter().map(|(k, v)| (k, v.into_string())).collect()
}

fn parse_catalog(text: &str) -> Result<CatalogFile, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
}

/// The `[[service]]` entries of a TOML file, or only the one named `only`.
pub fn services_from_toml(text: &str, only: Option<&str>) -> Result<Vec<Service>, String> {
    let entries = parse_catalog(text)?.service;
    let entries = select(entries, only, |e| &e.name, "[[service]]")?;
    Ok(entries
        .into_iter()
        .map(|e| Service {
            name: e.name,
            policy_name: e.policy_name,
            template_name: e.template_name,
            substitutions: scalars(e.substitutions),
            accounting: e.accounting,
            description: e.description,
            kind: service_kind(matches!(e.kind, KindEntry::Aggregate)).into(),
            fragments: e.fragment.into_iter().map(Fragment::from).collect(),
            deny_modification: e.deny_modification,
        })
        .collect())
}

/// The `[[rule]]` entries of a TOML file, or only the one named `only`.
pub fn rules_from_toml(text: &str, only: Option<&str>) -> Result<Vec<Rule>, String> {
    let entries = parse_catalog(text)?.rule;
    let entries = select(entries, only, |e| &e.name, "[[rule]]")?;
    Ok(entries
        .into_iter()
        .map(|e| Rule {
            name: e.name,
            priority: e.priority,
            login_name: e.login_name,
            domain: e.domain,
            nas_port_id: e.nas_port_id,
            router: e.router,
            services: e.services,
            substitutions: scalars(e.substitutions),
            reject: e.reject,
            subscriber_dn: e.subscriber_dn,
            retailer_dn: e.retailer_dn,
            accounting_id: e.accounting_id,
            subscriptions: e.subscriptions,
            virtual_router: e.virtual_router,
        })
        .collect())
}

/// Every entry (at least one, names unique), or the one named `only`.
fn select<T>(
    entries: Vec<T>,
    only: Option<&str>,
    name: impl Fn(&T) -> &String,
    what: &str,
) -> Result<Vec<T>, String> {
    let mut seen = std::collections::HashSet::new();
    for e in &entries {
        if !seen.insert(name(e).as_str()) {
            return Err(format!("two {what} entries are named {:?}", name(e)));
        }
    }
    match only {
        None if entries.is_empty() => Err(format!("no {what} entry")),
        None => Ok(entries),
        Some(wanted) => {
            let picked: Vec<T> = entries.into_iter().filter(|e| name(e) == wanted).collect();
            if picked.is_empty() {
                Err(format!("no {what} entry named {wanted:?}"))
            } else {
                Ok(picked)
            }
        }
    }
}

/// The `--server` value as a URI: a bare `HOST:PORT` means `http://HOST:PORT`.
pub fn server_uri(server: &str) -> Result<String, CtlError> {
    let server = server.trim();
    if server.is_empty() {
        return Err(CtlError::Usage("--server: empty address".into()));
    }
    let uri = if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    };
    match uri.parse::<tonic::transport::Uri>() {
        Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => Ok(uri),
        Ok(u) if u.scheme_str() == Some("https") => Err(CtlError::Usage(format!(
            "--server {server:?}: https is not supported (the management API is plain HTTP/2)"
        ))),
        _ => Err(CtlError::Usage(format!(
            "--server {server:?}: expected http://HOST:PORT"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn key(s: &str) -> Key {
        parse_ref(s).unwrap().key.unwrap()
    }

    fn call(args: &[&str]) -> Result<Call, CtlError> {
        let mut argv = vec!["saectl"];
        argv.extend_from_slice(args);
        build(&Cli::try_parse_from(argv).unwrap().command)
    }

    #[test]
    fn refs_with_an_explicit_kind() {
        assert_eq!(key("session=r1;1;2"), Key::SessionId("r1;1;2".into()));
        assert_eq!(key("user=alice@corp"), Key::UserName("alice@corp".into()));
        assert_eq!(key("user=a=b"), Key::UserName("a=b".into()));
        assert_eq!(key("ip=10.0.0.7"), Key::FramedIp("10.0.0.7".into()));
        assert_eq!(
            key("port=ge-1/0/0.100:100-200"),
            Key::NasPortId("ge-1/0/0.100:100-200".into())
        );
        // The explicit kind wins over the shape of the value.
        assert_eq!(key("user=10.0.0.7"), Key::UserName("10.0.0.7".into()));
        assert_eq!(key("port=a;b"), Key::NasPortId("a;b".into()));
    }

    #[test]
    fn bare_refs_are_guessed_from_their_shape() {
        assert_eq!(
            key("router1.example;1700000000;42"),
            Key::SessionId("router1.example;1700000000;42".into())
        );
        // A Session-Id's optional part may contain '='.
        assert_eq!(key("r1;1;2;x=y"), Key::SessionId("r1;1;2;x=y".into()));
        assert_eq!(key("192.0.2.1"), Key::FramedIp("192.0.2.1".into()));
        assert_eq!(key("alice"), Key::UserName("alice".into()));
        assert_eq!(
            key("alice@corp.example"),
            Key::UserName("alice@corp.example".into())
        );
        // Not quite an address: a user name.
        assert_eq!(key("10.0.0"), Key::UserName("10.0.0".into()));
    }

    #[test]
    fn nic_references_go_to_the_node_as_they_print() {
        let nic = |s: &str| match parse_ref(s).unwrap().key.unwrap() {
            Key::Reference(r) => r,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(nic("loginName=alice@isp"), "loginName=alice@isp");
        assert_eq!(nic("ip=2001:db8::1"), "ip=2001:db8::1");
        assert_eq!(
            nic("ip=10.0.0.5;vr=cust1@bng2"),
            "ip=10.0.0.5;vr=cust1@bng2"
        );
        assert_eq!(nic("dn=uniqueID=a,o=users"), "dn=uniqueID=a,o=users");
        assert_eq!(nic("acctId=7"), "accountingId=7");
        assert_eq!(
            nic("interfaceName=ge-0/0/0.7;router=BNG1"),
            "interfaceName=ge-0/0/0.7;router=bng1"
        );
        // A plain IPv4 address keeps its own key (looked up locally first).
        assert_eq!(
            parse_ref("ip=10.0.0.7").unwrap().key,
            Some(Key::FramedIp("10.0.0.7".into()))
        );
    }

    #[test]
    fn bad_refs_are_refused_with_a_reason() {
        for (bad, reason) in [
            ("", "empty"),
            ("user=", "no value after 'user='"),
            ("ip=", "no value after 'ip='"),
            ("ip=10.0.0.300", "not an IP address or prefix"),
            ("ip=10.0.0.5/8", "did you mean 10.0.0.0/8"),
            ("loginName=", "loginName has no value"),
            ("interfaceName=ge-0/0/0", "needs router or vr"),
            ("dn=a;mac=1", "unknown key \"mac\""),
            ("mac=00:11:22:33:44:55", "unknown kind of reference \"mac\""),
        ] {
            let e = parse_ref(bad).unwrap_err();
            assert!(e.contains(reason), "{bad:?}: {e}");
        }
    }

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_value("rate=10m").unwrap(),
            KeyValue {
                key: "rate".into(),
                value: "10m".into()
            }
        );
        assert_eq!(parse_key_value("filter=a=b").unwrap().value, "a=b");
        assert_eq!(parse_key_value("empty=").unwrap().value, "");
        for (bad, reason) in [
            ("rate", "is not KEY=VALUE"),
            ("", "is not KEY=VALUE"),
            ("=10m", "needs a key"),
            ("my rate=1", "has blanks"),
        ] {
            let e = parse_key_value(bad).unwrap_err();
            assert!(e.contains(reason), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_substitution_given_twice_is_refused() {
        let e = call(&[
            "subscriber",
            "activate",
            "alice",
            "gold",
            "--sub",
            "rate=1",
            "--sub",
            "rate=2",
        ])
        .unwrap_err();
        assert!(matches!(e, CtlError::Usage(_)), "{e:?}");
        assert!(e.to_string().contains("\"rate\" is given twice"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn service_put_from_flags() {
        let c = call(&[
            "service",
            "put",
            "gold",
            "--policy-name",
            "gold-pol",
            "--template",
            "tmpl",
            "--sub",
            "rate=10m",
            "--sub",
            "burst=1m",
            "--accounting",
            "--description",
            "Gold",
        ])
        .unwrap();
        let Call::PutServices(reqs) = c else {
            panic!("{c:?}")
        };
        assert_eq!(
            reqs,
            vec![PutServiceRequest {
                service: Some(Service {
                    name: "gold".into(),
                    policy_name: "gold-pol".into(),
                    template_name: "tmpl".into(),
                    substitutions: HashMap::from([
                        ("rate".into(), "10m".into()),
                        ("burst".into(), "1m".into())
                    ]),
                    accounting: true,
                    description: "Gold".into(),
                    ..Default::default()
                })
            }]
        );
        // Left out: empty, for the node's defaults.
        let Call::PutServices(reqs) = call(&["service", "put", "bronze"]).unwrap() else {
            panic!()
        };
        assert_eq!(
            reqs[0].service,
            Some(Service {
                name: "bronze".into(),
                ..Default::default()
            })
        );
    }

    #[test]
    fn service_put_of_an_aggregate_with_fragments() {
        let Call::PutServices(reqs) = call(&[
            "service",
            "put",
            "vod",
            "--aggregate",
            "--fragment",
            r#"{name = "sub", service = "qos", expression = "'ip=%s' % user_IpAddress", mandatory = true, substitutions = ["fragIp=user_IpAddress"]}"#,
            "--fragment",
            r#"{name = "srv", service = "qos", expression = "'vr=default@vs1'", redundancy_group = "g"}"#,
        ])
        .unwrap() else {
            panic!()
        };
        let s = reqs[0].service.clone().unwrap();
        assert_eq!(s.kind, "aggregate");
        assert_eq!(s.fragments.len(), 2);
        assert_eq!(s.fragments[0].expression, "'ip=%s' % user_IpAddress");
        assert!(s.fragments[0].mandatory);
        assert_eq!(s.fragments[0].substitutions, ["fragIp=user_IpAddress"]);
        assert_eq!(s.fragments[1].redundancy_group, "g");
        let err = call(&[
            "service",
            "put",
            "vod",
            "--aggregate",
            "--fragment",
            "{name = 1}",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("--fragment"), "{err}");
        // --fragment needs --aggregate.
        assert!(
            Cli::try_parse_from(["saectl", "service", "put", "vod", "--fragment", "{}"]).is_err()
        );
        // The same from a file.
        let file = services_from_toml(
            "[[service]]\nname = \"vod\"\nkind = \"aggregate\"\n[[service.fragment]]\nname = \"a\"\nservice = \"qos\"\nexpression = \"'ip=10.0.0.1'\"\n",
            None,
        )
        .unwrap();
        assert_eq!(file[0].kind, "aggregate");
        assert_eq!(file[0].fragments[0].name, "a");
    }

    const CATALOG: &str = r#"
        [node]
        name = "sae-1"

        [[service]]
        name = "gold"
        policy_name = "gold-pol"
        template = "tmpl"
        substitutions = { rate = "10m", burst = 1000, shaped = true }
        accounting = true

        [[service]]
        name = "silver"

        [[rule]]
        name = "corp"
        priority = 10
        domain = "corp.example"
        services = ["gold"]
        substitutions = { rate = "20m" }
        subscriber_dn = "uniqueID=<userName>,ou=<domain>,o=users"
        subscriptions = ["silver"]
        virtual_router = "corp"

        [[rule]]
        name = "deny-guests"
        priority = 20
        login_name = "guest*"
        reject = true
    "#;

    #[test]
    fn services_from_a_file() {
        let all = services_from_toml(CATALOG, None).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].name, "gold");
        assert_eq!(all[0].policy_name, "gold-pol");
        assert_eq!(all[0].template_name, "tmpl");
        assert!(all[0].accounting);
        assert_eq!(
            all[0].substitutions,
            HashMap::from([
                ("rate".into(), "10m".into()),
                ("burst".into(), "1000".into()),
                ("shaped".into(), "true".into())
            ])
        );
        assert_eq!(
            all[1],
            Service {
                name: "silver".into(),
                ..Default::default()
            }
        );
        let one = services_from_toml(CATALOG, Some("silver")).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name, "silver");
    }

    #[test]
    fn rules_from_a_file() {
        let all = rules_from_toml(CATALOG, None).unwrap();
        assert_eq!(
            all,
            vec![
                Rule {
                    name: "corp".into(),
                    priority: 10,
                    domain: "corp.example".into(),
                    services: vec!["gold".into()],
                    substitutions: HashMap::from([("rate".into(), "20m".into())]),
                    subscriber_dn: "uniqueID=<userName>,ou=<domain>,o=users".into(),
                    subscriptions: vec!["silver".into()],
                    virtual_router: "corp".into(),
                    ..Default::default()
                },
                Rule {
                    name: "deny-guests".into(),
                    priority: 20,
                    login_name: "guest*".into(),
                    reject: true,
                    ..Default::default()
                }
            ]
        );
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        for (text, only, reason) in [
            (
                "[[service]]\nname = \"a\"\npolicy = \"x\"\n",
                None,
                "unknown field `policy`",
            ),
            (
                "[[service]]\npolicy_name = \"x\"\n",
                None,
                "missing field `name`",
            ),
            ("[node]\nname = \"x\"\n", None, "no [[service]] entry"),
            (
                "[[service]]\nname = \"a\"\n",
                Some("b"),
                "no [[service]] entry named \"b\"",
            ),
            (
                "[[service]]\nname = \"a\"\n[[service]]\nname = \"a\"\n",
                None,
                "two [[service]] entries are named \"a\"",
            ),
            (
                "[[service]]\nname = \"a\"\nsubstitutions = { x = [1] }\n",
                None,
                "substitutions",
            ),
            ("[[service]\n", None, "TOML parse error"),
        ] {
            let e = services_from_toml(text, only).unwrap_err();
            assert!(e.contains(reason), "{text:?}: {e}");
        }
        let e = rules_from_toml("[[rule]]\nname = \"r\"\nservice = \"gold\"\n", None).unwrap_err();
        assert!(e.contains("unknown field `service`"), "{e}");
        // As in the node's configuration, the priority defaults to 0.
        assert_eq!(
            rules_from_toml("[[rule]]\nname = \"r\"\n", None).unwrap()[0].priority,
            0
        );
    }

    /// The node's sample configuration seeds its catalog with the same `[[service]]` and
    /// `[[rule]]` tables: `saectl service put --file` takes that file as it is.
    #[test]
    fn the_node_sample_configuration_is_a_catalog_file() {
        let text = include_str!("../../../deploy/sae-node.toml");
        let services = services_from_toml(text, None).unwrap();
        assert!(!services.is_empty());
        assert!(services.iter().all(|s| !s.name.is_empty()));
        let rules = rules_from_toml(text, None).unwrap();
        assert!(!rules.is_empty());
    }

    #[test]
    fn put_with_a_file_reads_it() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(CATALOG.as_bytes()).unwrap();
        let path = file.path().to_str().unwrap();
        let Call::PutServices(reqs) = call(&["service", "put", "--file", path]).unwrap() else {
            panic!()
        };
        assert_eq!(reqs.len(), 2);
        let Call::PutRules(reqs) = call(&["rule", "put", "corp", "--file", path]).unwrap() else {
            panic!()
        };
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].rule.as_ref().unwrap().name, "corp");

        let e = call(&["service", "put", "--file", "/nonexistent/x.toml"]).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot read /nonexistent/x.toml"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn rule_put_from_flags() {
        let Call::PutRules(reqs) = call(&[
            "rule",
            "put",
            "corp",
            "--priority",
            "10",
            "--login-name",
            "*@corp",
            "--domain",
            "corp",
            "--nas-port-id",
            "ge-*",
            "--router",
            "r?",
            "--service",
            "gold,voip",
            "--service",
            "video",
            "--sub",
            "rate=1",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            reqs,
            vec![PutRuleRequest {
                rule: Some(Rule {
                    name: "corp".into(),
                    priority: 10,
                    login_name: "*@corp".into(),
                    domain: "corp".into(),
                    nas_port_id: "ge-*".into(),
                    router: "r?".into(),
                    services: vec!["gold".into(), "voip".into(), "video".into()],
                    substitutions: HashMap::from([("rate".into(), "1".into())]),
                    reject: false,
                    ..Default::default()
                })
            }]
        );
    }

    #[test]
    fn subscriber_commands() {
        assert_eq!(
            call(&[
                "subscriber",
                "list",
                "--user",
                "a*",
                "--ip",
                "10.0.0.1",
                "--nas-port-id",
                "ge-*",
                "--router",
                "r1",
                "--service",
                "gold",
                "--page-size",
                "50",
                "--all"
            ])
            .unwrap(),
            Call::ListSubscribers {
                request: ListSubscribersRequest {
                    user_name: "a*".into(),
                    framed_ip: "10.0.0.1".into(),
                    nas_port_id: "ge-*".into(),
                    router: "r1".into(),
                    service: "gold".into(),
                    page_size: 50,
                    page_token: String::new(),
                    cluster: false,
                },
                all: true,
            }
        );
        assert_eq!(
            call(&["sub", "ls"]).unwrap(),
            Call::ListSubscribers {
                request: ListSubscribersRequest::default(),
                all: false,
            }
        );
        let by_user = Some(SubscriberRef {
            key: Some(Key::UserName("alice".into())),
        });
        assert_eq!(
            call(&["subscriber", "get", "alice"]).unwrap(),
            Call::GetSubscriber(GetSubscriberRequest {
                subscriber: by_user.clone()
            })
        );
        assert_eq!(
            call(&[
                "subscriber",
                "activate",
                "ip=10.0.0.1",
                "gold",
                "--sub",
                "rate=5m"
            ])
            .unwrap(),
            Call::Activate(ActivateServiceRequest {
                subscriber: Some(SubscriberRef {
                    key: Some(Key::FramedIp("10.0.0.1".into()))
                }),
                service: "gold".into(),
                substitutions: HashMap::from([("rate".into(), "5m".into())]),
            })
        );
        assert_eq!(
            call(&["subscriber", "deactivate", "r1;1;2", "gold"]).unwrap(),
            Call::Deactivate(DeactivateServiceRequest {
                subscriber: Some(SubscriberRef {
                    key: Some(Key::SessionId("r1;1;2".into()))
                }),
                service: "gold".into(),
            })
        );
        assert_eq!(
            call(&["subscriber", "logout", "alice"]).unwrap(),
            Call::Logout(LogoutRequest {
                subscriber: by_user.clone()
            })
        );
        assert_eq!(
            call(&["subscriber", "collect-usage", "port=ge-1/0/0"]).unwrap(),
            Call::CollectUsage(CollectUsageRequest {
                subscriber: Some(SubscriberRef {
                    key: Some(Key::NasPortId("ge-1/0/0".into()))
                })
            })
        );
    }

    #[test]
    fn usage_router_and_events() {
        assert_eq!(
            call(&[
                "usage",
                "list",
                "--session",
                "s",
                "--user",
                "u",
                "--policy",
                "p",
                "--after",
                "41",
                "--limit",
                "10"
            ])
            .unwrap(),
            Call::ListUsage(ListUsageRecordsRequest {
                session_id: "s".into(),
                user_name: "u".into(),
                policy_name: "p".into(),
                after_id: 41,
                limit: 10,
            })
        );
        assert_eq!(
            call(&["router", "resync", "r1.example"]).unwrap(),
            Call::Resync(ResyncRouterRequest {
                router: "r1.example".into()
            })
        );
        assert_eq!(
            call(&["events", "--user", "alice"]).unwrap(),
            Call::Watch(WatchEventsRequest {
                session_id: String::new(),
                user_name: "alice".into(),
            })
        );
        assert_eq!(
            call(&["service", "rm", "gold"]).unwrap(),
            Call::DeleteService(DeleteServiceRequest {
                name: "gold".into()
            })
        );
        assert_eq!(
            call(&["rules", "delete", "corp"]).unwrap(),
            Call::DeleteRule(DeleteRuleRequest {
                name: "corp".into()
            })
        );
    }

    #[test]
    fn client_types_in_hex_or_decimal() {
        assert_eq!(parse_client_type("0x800B"), Ok(0x800B));
        assert_eq!(parse_client_type("0x800b"), Ok(0x800B));
        assert_eq!(parse_client_type("0X7926"), Ok(0x7926));
        assert_eq!(parse_client_type("32779"), Ok(0x800B));
        assert_eq!(parse_client_type("0xFFFF"), Ok(0xFFFF));
        assert_eq!(parse_client_type("0"), Ok(0));
        for (bad, reason) in [
            ("", "is not a client type"),
            ("800B", "is not a client type"),
            ("0x", "is not a client type"),
            ("0xG1", "is not a client type"),
            ("-1", "is not a client type"),
            ("0x10000", "16 bits"),
            ("65536", "16 bits"),
        ] {
            let e = parse_client_type(bad).unwrap_err();
            assert!(e.contains(reason), "{bad:?}: {e}");
        }
    }

    #[test]
    fn handles_are_hex_octets() {
        assert_eq!(parse_handle("0000002a").unwrap(), "0000002a");
        assert_eq!(parse_handle("0xDEADBEEF").unwrap(), "deadbeef");
        assert_eq!(parse_handle("01").unwrap(), "01");
        for (bad, reason) in [
            ("", "not a handle in hex"),
            ("0x", "not a handle in hex"),
            ("xyz0", "not a handle in hex"),
            ("00 2a", "not a handle in hex"),
            ("abc", "whole octets"),
        ] {
            let e = parse_handle(bad).unwrap_err();
            assert!(e.contains(reason), "{bad:?}: {e}");
        }
    }

    #[test]
    fn cops_commands() {
        assert_eq!(
            call(&["cops", "connections"]).unwrap(),
            Call::CopsConnections(ListCopsConnectionsRequest {})
        );
        assert_eq!(
            call(&["cops", "budgets"]).unwrap(),
            Call::AdmissionBudgets(ListAdmissionBudgetsRequest {})
        );
        assert_eq!(
            call(&[
                "cops",
                "usage",
                "solicit",
                "--pepid",
                "bras1",
                "--client-type",
                "0x800B"
            ])
            .unwrap(),
            Call::ControlUsage(ControlUsageRequest {
                pepid: "bras1".into(),
                client_type: 0x800B,
                handle: String::new(),
                action: "solicit".into(),
            })
        );
        assert_eq!(
            call(&[
                "cops",
                "usage",
                "resume-reporting",
                "--pepid",
                "bras1",
                "--client-type",
                "32779",
                "--handle",
                "0x0000002A"
            ])
            .unwrap(),
            Call::ControlUsage(ControlUsageRequest {
                pepid: "bras1".into(),
                client_type: 0x800B,
                handle: "0000002a".into(),
                action: "resume-reporting".into(),
            })
        );
    }

    #[test]
    fn cluster_and_health_commands() {
        let status = Call::Cluster {
            request: GetClusterRequest {},
            routers_only: false,
        };
        assert_eq!(call(&["cluster"]).unwrap(), status);
        assert_eq!(call(&["cluster", "status"]).unwrap(), status);
        assert_eq!(
            call(&["cluster", "routers"]).unwrap(),
            Call::Cluster {
                request: GetClusterRequest {},
                routers_only: true,
            }
        );
        assert_eq!(
            call(&["cluster", "move", "MX1.example.net", "3"]).unwrap(),
            Call::MoveRouter(MoveRouterRequest {
                router: "MX1.example.net".into(),
                node_id: 3,
            })
        );
        assert_eq!(
            call(&["cluster", "move", "cops:bras1", "2"]).unwrap(),
            Call::MoveRouter(MoveRouterRequest {
                router: "cops:bras1".into(),
                node_id: 2,
            })
        );
        let e = call(&["cluster", "move", " ", "2"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            call(&["cluster", "rm", "2"]).unwrap(),
            Call::RemoveNode(RemoveNodeRequest { node_id: 2 })
        );
        assert_eq!(
            call(&["health"]).unwrap(),
            Call::Health(HealthCheckRequest {
                service: String::new()
            })
        );
        assert_eq!(
            call(&["health", "--service", "sae.v1.Management"]).unwrap(),
            Call::Health(HealthCheckRequest {
                service: "sae.v1.Management".into()
            })
        );
    }

    #[test]
    fn server_addresses() {
        assert_eq!(
            server_uri("http://127.0.0.1:50051").unwrap(),
            "http://127.0.0.1:50051"
        );
        assert_eq!(server_uri("sae1:50051").unwrap(), "http://sae1:50051");
        assert_eq!(server_uri("[::1]:50051").unwrap(), "http://[::1]:50051");
        for bad in ["", "ftp://x:1", "http://", "not a host", "https://sae:443"] {
            let e = server_uri(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }
}
