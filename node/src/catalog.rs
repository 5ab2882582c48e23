//! The service catalog and the subscriber rules that decide which services a subscriber gets
//! at login.
//!
//! A [`ServiceDef`] names a router policy (and its template and default substitutions), or,
//! for an aggregate service (seed 003), lists the [`FragmentDef`]s it activates on subscriber
//! sessions that subscriber reference expressions name, here or on other nodes. A
//! [`Rule`] matches a login by glob patterns (`*` and `?`, case-insensitive) on the login name,
//! its domain, the NAS-Port-Id and the router, and either rejects the login or lists the
//! services to activate, with substitutions that override the services' defaults. Rules are
//! tried by ascending priority, ties broken by name; the first match wins; when none matches,
//! the login is accepted with no services.
//!
//! The catalog lives in memory behind a `RwLock` (decisions are cheap concurrent reads). Its
//! source of truth is the cluster's replicated control state (`cluster::state`): the
//! configuration's catalog seeds it once, when the cluster is created; run-time changes are
//! Raft commands; every node rebuilds its [`Catalog`] from the applied state
//! ([`Catalog::replace`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};
use wildmatch::WildMatch;

use crate::model::{ServiceSession, ServiceState, SubscriberRecord, UnixMs};
use crate::store::StoreError;

/// Longest service or rule name.
pub const MAX_NAME_LEN: usize = 128;
/// Longest glob pattern, policy or template name, substitution name or value.
pub const MAX_TEXT_LEN: usize = 1024;

/// A catalog operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No service or rule of that name.
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    /// A service, rule or catalog file that does not validate.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The service is named by rules or is a fragment of aggregates, so it cannot be deleted.
    #[error("service {service:?} is used by {}", users(rules, aggregates))]
    InUse {
        service: String,
        rules: Vec<String>,
        aggregates: Vec<String>,
    },
    /// A catalog file that is not valid TOML for [`CatalogFile`].
    #[error("catalog TOML: {0}")]
    Parse(Box<toml::de::Error>),
    /// The catalog store failed.
    #[error("catalog store: {0}")]
    Store(#[from] StoreError),
}

/// `rules ["r1"] and aggregates ["vod"]`: who uses a service.
pub fn users(rules: &[String], aggregates: &[String]) -> String {
    match (rules.is_empty(), aggregates.is_empty()) {
        (false, true) => format!("rules {rules:?}"),
        (true, false) => format!("aggregates {aggregates:?}"),
        _ => format!("rules {rules:?} and aggregates {aggregates:?}"),
    }
}

fn invalid(field: String, reason: impl Into<String>) -> CatalogError {
    CatalogError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// A service: the router policy it installs and its default substitutions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDef {
    /// Letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// The policy name sent to the router; empty means the service name.
    #[serde(default)]
    pub policy_name: String,
    /// The router's policy template; may be empty.
    #[serde(default)]
    pub template_name: String,
    /// Default substitutions (name → value).
    #[serde(default)]
    pub substitutions: BTreeMap<String, String>,
    /// Ask the router for accounting of this policy.
    #[serde(default)]
    pub accounting: bool,
    #[serde(default)]
    pub description: String,
    /// Normal (installs its policy) or aggregate (activates its fragments).
    #[serde(default, skip_serializing_if = "ServiceKind::is_normal")]
    pub kind: ServiceKind,
    /// An aggregate's fragments (`[[service.fragment]]`).
    #[serde(default, rename = "fragment", skip_serializing_if = "Vec::is_empty")]
    pub fragments: Vec<FragmentDef>,
    /// A normal service that refuses every modification asked by an aggregate (standing in
    /// for seed 003's service authentication event denying it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deny_modification: bool,
}

/// What a service does when activated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// Installs its policy on the subscriber's router.
    #[default]
    Normal,
    /// Installs nothing itself: activates its fragments on the sessions they name.
    Aggregate,
}

impl ServiceKind {
    pub fn is_normal(&self) -> bool {
        *self == ServiceKind::Normal
    }

    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Normal => "normal",
            ServiceKind::Aggregate => "aggregate",
        }
    }
}

/// One fragment of an aggregate service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FragmentDef {
    /// The fragment's name within its aggregate.
    pub name: String,
    /// The fragment service: any normal service.
    pub service: String,
    /// The subscriber reference expression naming the session that activates the fragment: a
    /// Python expression over the aggregate session's fields and substitutions giving a
    /// reference such as `ip=10.0.0.5` (see `sae_nic::expr`).
    pub expression: String,
    /// The aggregate is active only while this fragment is.
    #[serde(default)]
    pub mandatory: bool,
    /// Fragments sharing a group stand in for each other: one active is enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redundancy_group: Option<String>,
    /// The session named must be subscribed to the fragment service.
    #[serde(default)]
    pub require_subscription: bool,
    /// The parameters passed to the fragment: `name` (the aggregate's value of `name`, under
    /// the same name) or `fragName=aggregateName` (the aggregate's `aggregateName` as the
    /// fragment's `fragName`).
    #[serde(default)]
    pub substitutions: Vec<String>,
}

impl FragmentDef {
    /// The parameters passed, as (name in the fragment, name in the aggregate); the entries
    /// are checked when the service is written.
    pub fn parameters(&self) -> Vec<(&str, &str)> {
        self.substitutions
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((fragment, aggregate)) => (fragment.trim(), aggregate.trim()),
                None => (entry.trim(), entry.trim()),
            })
            .collect()
    }

    fn check(&self, field: &str) -> Result<(), CatalogError> {
        let at = |attr: &str| format!("{field}.{attr}");
        check_name(&at("name"), &self.name)?;
        check_name(&at("service"), &self.service)?;
        check_text(&at("expression"), &self.expression, false)?;
        sae_nic::Expression::parse(&self.expression)
            .map_err(|e| invalid(at("expression"), e.to_string()))?;
        if let Some(group) = &self.redundancy_group {
            check_name(&at("redundancy_group"), group)?;
        }
        let mut seen = BTreeSet::new();
        for (entry, (fragment, aggregate)) in self.substitutions.iter().zip(self.parameters()) {
            for name in [fragment, aggregate] {
                if !sae_nic::expr::is_valid_parameter_name(name) {
                    return Err(invalid(
                        at("substitutions"),
                        format!(
                            "{entry:?}: {name:?} is not a valid parameter name (a Python \
                             identifier that is not a keyword)"
                        ),
                    ));
                }
            }
            if !seen.insert(fragment) {
                return Err(invalid(
                    at("substitutions"),
                    format!("{fragment:?} is passed twice"),
                ));
            }
        }
        Ok(())
    }
}

impl ServiceDef {
    /// The policy name after defaulting (the service name when empty).
    pub fn effective_policy_name(&self) -> &str {
        if self.policy_name.is_empty() {
            &self.name
        } else {
            &self.policy_name
        }
    }

    pub fn is_aggregate(&self) -> bool {
        self.kind == ServiceKind::Aggregate
    }

    /// Checks the definition on its own (not the services its fragments name: see
    /// [`check_fragments`]) and returns it with the policy name defaulted.
    pub fn validated(&self) -> Result<ServiceDef, CatalogError> {
        let field = |attr: &str| format!("service {:?}.{attr}", self.name);
        check_name(&field("name"), &self.name)?;
        if self.is_aggregate() {
            return self.validated_aggregate();
        }
        if !self.fragments.is_empty() {
            return Err(invalid(
                field("fragment"),
                "only an aggregate service (kind = \"aggregate\") has fragments",
            ));
        }
        let mut def = self.clone();
        def.policy_name = self.effective_policy_name().to_owned();
        check_text(&field("policy_name"), &def.policy_name, false)?;
        if def.policy_name.trim() != def.policy_name {
            return Err(invalid(
                field("policy_name"),
                "must not start or end with white space",
            ));
        }
        check_text(&field("template_name"), &def.template_name, true)?;
        check_substitutions(&field("substitutions"), &def.substitutions)?;
        Ok(def)
    }

    fn validated_aggregate(&self) -> Result<ServiceDef, CatalogError> {
        let field = |attr: &str| format!("service {:?}.{attr}", self.name);
        for (attr, value) in [
            ("policy_name", &self.policy_name),
            ("template_name", &self.template_name),
        ] {
            if !value.is_empty() {
                return Err(invalid(
                    field(attr),
                    "an aggregate service installs no policy of its own",
                ));
            }
        }
        if self.deny_modification {
            return Err(invalid(
                field("deny_modification"),
                "only a fragment service approves or denies modifications",
            ));
        }
        if self.fragments.is_empty() {
            return Err(invalid(
                field("fragment"),
                "an aggregate service needs at least one fragment",
            ));
        }
        check_substitutions(&field("substitutions"), &self.substitutions)?;
        let mut names = BTreeSet::new();
        for fragment in &self.fragments {
            fragment.check(&field(&format!("fragment {:?}", fragment.name)))?;
            if !names.insert(fragment.name.as_str()) {
                return Err(invalid(
                    field("fragment"),
                    format!("fragment {:?} is listed twice", fragment.name),
                ));
            }
        }
        Ok(self.clone())
    }
}

/// Checks a (validated) service against the others: an aggregate's fragments must name
/// existing normal services, and a service that is a fragment of an aggregate cannot become an
/// aggregate itself. `services` may hold `def`'s earlier version.
pub fn check_fragments(
    def: &ServiceDef,
    services: &BTreeMap<String, ServiceDef>,
) -> Result<(), CatalogError> {
    let service = |name: &str| {
        if name == def.name {
            Some(def)
        } else {
            services.get(name)
        }
    };
    for fragment in &def.fragments {
        let field = format!(
            "service {:?}.fragment {:?}.service",
            def.name, fragment.name
        );
        match service(&fragment.service) {
            None => {
                return Err(invalid(
                    field,
                    format!("unknown service {:?}", fragment.service),
                ));
            }
            Some(s) if s.is_aggregate() => {
                return Err(invalid(
                    field,
                    format!(
                        "{:?} is an aggregate service; a fragment is a normal service",
                        fragment.service
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    if def.is_aggregate() {
        let holders = aggregates_using(&def.name, services);
        if !holders.is_empty() {
            return Err(invalid(
                format!("service {:?}.kind", def.name),
                format!(
                    "it is a fragment of aggregates {holders:?}; an aggregate cannot be a fragment"
                ),
            ));
        }
    }
    Ok(())
}

/// The aggregates (other than `service` itself) that have `service` as a fragment.
pub fn aggregates_using(service: &str, services: &BTreeMap<String, ServiceDef>) -> Vec<String> {
    services
        .values()
        .filter(|s| s.name != service && s.fragments.iter().any(|f| f.service == service))
        .map(|s| s.name.clone())
        .collect()
}

/// A subscriber rule: which logins it matches and what they get.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// Lower is tried first; ties are broken by name.
    #[serde(default)]
    pub priority: u32,
    /// Glob on the whole User-Name (`alice@isp.net`).
    #[serde(default)]
    pub login_name: Option<String>,
    /// Glob on the part of the User-Name after its last `@`.
    #[serde(default)]
    pub domain: Option<String>,
    /// Glob on the NAS-Port-Id.
    #[serde(default)]
    pub nas_port_id: Option<String>,
    /// Glob on the router's Origin-Host.
    #[serde(default)]
    pub router: Option<String>,
    /// Services to activate, in order.
    #[serde(default)]
    pub services: Vec<String>,
    /// Substitutions merged over every service's defaults (added when a service has none of
    /// that name).
    #[serde(default)]
    pub substitutions: BTreeMap<String, String>,
    /// Refuse the login.
    #[serde(default)]
    pub reject: bool,
    /// The subscriber DN to assign, a template: `uniqueID=<userName>,ou=<domain>,o=users`.
    /// Placeholders: see [`TEMPLATE_FIELDS`]; a template whose field the login lacks assigns
    /// nothing.
    #[serde(default)]
    pub subscriber_dn: Option<String>,
    /// The retailer DN to assign, a template.
    #[serde(default)]
    pub retailer_dn: Option<String>,
    /// The accounting id to assign, a template (the login name when absent).
    #[serde(default)]
    pub accounting_id: Option<String>,
    /// Services the subscriber is subscribed to (aggregate fragments may require it).
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// The name of the subscriber's virtual router on its router (`default` when absent): the
    /// session's VR is `<virtual_router>@<router>`.
    #[serde(default)]
    pub virtual_router: Option<String>,
}

/// The fields a rule's templates can name, as `<field>`.
pub const TEMPLATE_FIELDS: [&str; 6] = [
    "loginName",
    "userName",
    "domain",
    "router",
    "interfaceName",
    "portId",
];

/// Renders a checked template with `value` giving each field; `None` when a field it names
/// has no value.
fn render(template: &str, value: impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('>')? + open;
        out.push_str(&value(&rest[open + 1..close])?);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn check_template(field: &str, template: &str) -> Result<(), CatalogError> {
    check_text(field, template, false)?;
    let mut rest = template;
    while let Some(open) = rest.find(['<', '>']) {
        if rest.as_bytes()[open] == b'>' {
            return Err(invalid(field.to_owned(), "'>' without '<'"));
        }
        let Some(close) = rest[open..].find('>') else {
            return Err(invalid(field.to_owned(), "'<' without '>'"));
        };
        let name = &rest[open + 1..open + close];
        if !TEMPLATE_FIELDS.contains(&name) {
            return Err(invalid(
                field.to_owned(),
                format!(
                    "unknown field <{name}> (known: {})",
                    TEMPLATE_FIELDS.map(|f| format!("<{f}>")).join(", ")
                ),
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// What a rule assigns a subscriber beside its services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub subscriber_dn: Option<String>,
    pub retailer_dn: Option<String>,
    pub accounting_id: Option<String>,
    pub subscriptions: Vec<String>,
    pub virtual_router: Option<String>,
}

impl Profile {
    fn of(rule: &Rule, login: &LoginInfo<'_>) -> Profile {
        let value = |field: &str| -> Option<String> {
            let port = login.nas_port_id;
            match field {
                "loginName" => login.user_name.map(str::to_owned),
                "userName" => login
                    .user_name
                    .map(|u| u.rsplit_once('@').map_or(u, |(user, _)| user).to_owned()),
                "domain" => login.domain().map(str::to_owned),
                "router" => Some(login.router.to_owned()),
                "interfaceName" => port.map(|p| p.split_once(':').map_or(p, |(i, _)| i).to_owned()),
                "portId" => port.map(str::to_owned),
                _ => None,
            }
        };
        let template = |t: &Option<String>| t.as_deref().and_then(|t| render(t, value));
        Profile {
            subscriber_dn: template(&rule.subscriber_dn),
            retailer_dn: template(&rule.retailer_dn),
            accounting_id: template(&rule.accounting_id),
            subscriptions: rule.subscriptions.clone(),
            virtual_router: rule
                .virtual_router
                .as_ref()
                .map(|vr| format!("{vr}@{}", login.router)),
        }
    }
}

/// The catalog as written in the configuration: `[[service]]` and `[[rule]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    #[serde(rename = "service", default)]
    pub services: Vec<ServiceDef>,
    #[serde(rename = "rule", default)]
    pub rules: Vec<Rule>,
}

impl CatalogFile {
    /// Parses a TOML catalog (unknown fields rejected) and validates it.
    pub fn from_toml(text: &str) -> Result<CatalogFile, CatalogError> {
        let file: CatalogFile =
            toml::from_str(text).map_err(|e| CatalogError::Parse(Box::new(e)))?;
        file.validate()?;
        Ok(file)
    }

    /// Reports the first bad entry: a bad name or field, a duplicate name, a rule naming an
    /// unknown service.
    pub fn validate(&self) -> Result<(), CatalogError> {
        State::build(self).map(|_| ())
    }
}

/// What a rule is matched against at login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginInfo<'a> {
    pub user_name: Option<&'a str>,
    pub nas_port_id: Option<&'a str>,
    /// The router's Origin-Host.
    pub router: &'a str,
}

impl<'a> LoginInfo<'a> {
    /// The part of the user name after its last `@`, if any.
    pub fn domain(&self) -> Option<&'a str> {
        self.user_name
            .and_then(|u| u.rsplit_once('@'))
            .map(|(_, d)| d)
    }
}

impl<'a> From<&'a SubscriberRecord> for LoginInfo<'a> {
    fn from(rec: &'a SubscriberRecord) -> LoginInfo<'a> {
        LoginInfo {
            user_name: rec.user_name.as_deref(),
            nas_port_id: rec.nas_port_id.as_deref(),
            router: &rec.router,
        }
    }
}

/// A service chosen for a login, with its substitutions resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenService {
    /// The service name.
    pub name: String,
    pub policy_name: String,
    pub template_name: String,
    /// The service's defaults overridden by the rule's substitutions.
    pub substitutions: BTreeMap<String, String>,
    pub accounting: bool,
    pub description: String,
}

impl ChosenService {
    /// The service as it stands for a subscriber before the router confirms it.
    pub fn into_session(self, activated_ms: UnixMs) -> ServiceSession {
        ServiceSession {
            service: self.name,
            policy_name: self.policy_name,
            template_name: self.template_name,
            substitutions: self.substitutions,
            accounting: self.accounting,
            state: ServiceState::Installing,
            result_code: 0,
            error: String::new(),
            activated_ms,
        }
    }
}

/// The outcome of the rules for one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The first matching rule refuses the login.
    Reject { rule: String },
    /// The services to activate (empty when no rule matches) and what the rule assigns.
    Services(Vec<ChosenService>, Profile),
}

/// A rule with its patterns compiled.
#[derive(Debug, Clone)]
struct CompiledRule {
    rule: Rule,
    login_name: Option<WildMatch>,
    domain: Option<WildMatch>,
    nas_port_id: Option<WildMatch>,
    router: Option<WildMatch>,
}

impl CompiledRule {
    fn new(rule: Rule) -> CompiledRule {
        let glob = |p: &Option<String>| p.as_deref().map(WildMatch::new_case_insensitive);
        CompiledRule {
            login_name: glob(&rule.login_name),
            domain: glob(&rule.domain),
            nas_port_id: glob(&rule.nas_port_id),
            router: glob(&rule.router),
            rule,
        }
    }

    fn matches(&self, login: &LoginInfo<'_>) -> bool {
        // A pattern never matches an absent value.
        fn one(pattern: &Option<WildMatch>, value: Option<&str>) -> bool {
            match pattern {
                None => true,
                Some(p) => value.is_some_and(|v| p.matches(v)),
            }
        }
        one(&self.login_name, login.user_name)
            && one(&self.domain, login.domain())
            && one(&self.nas_port_id, login.nas_port_id)
            && one(&self.router, Some(login.router))
    }

    fn order_key(&self) -> (u32, &str) {
        (self.rule.priority, &self.rule.name)
    }
}

/// The validated catalog.
#[derive(Debug, Clone, Default)]
struct State {
    services: BTreeMap<String, ServiceDef>,
    /// In decision order.
    rules: Vec<CompiledRule>,
}

impl State {
    fn build(file: &CatalogFile) -> Result<State, CatalogError> {
        let mut state = State::default();
        for def in &file.services {
            let def = def.validated()?;
            if state.services.contains_key(&def.name) {
                return Err(invalid(format!("service {:?}", def.name), "duplicate name"));
            }
            state.services.insert(def.name.clone(), def);
        }
        for def in state.services.values() {
            check_fragments(def, &state.services)?;
        }
        let mut names = BTreeSet::new();
        for rule in &file.rules {
            check_rule(rule, &state.services)?;
            if !names.insert(rule.name.as_str()) {
                return Err(invalid(format!("rule {:?}", rule.name), "duplicate name"));
            }
            state.rules.push(CompiledRule::new(rule.clone()));
        }
        state.sort();
        Ok(state)
    }

    fn sort(&mut self) {
        self.rules.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    }

    fn to_file(&self) -> CatalogFile {
        CatalogFile {
            services: self.services.values().cloned().collect(),
            rules: self.rules.iter().map(|r| r.rule.clone()).collect(),
        }
    }

    fn rules_using(&self, service: &str) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| {
                let rule = &r.rule;
                rule.services
                    .iter()
                    .chain(&rule.subscriptions)
                    .any(|s| s == service)
            })
            .map(|r| r.rule.name.clone())
            .collect()
    }
}

/// The service catalog and rules, shared by every actor.
pub struct Catalog {
    state: RwLock<State>,
    /// Serializes changes so that validation, the store write and the update are one step,
    /// without holding the state's write lock during the store write.
    changes: Mutex<()>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.read().expect("catalog lock");
        f.debug_struct("Catalog")
            .field("services", &state.services.len())
            .field("rules", &state.rules.len())
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// A catalog holding `file` (validated).
    pub fn new(file: &CatalogFile) -> Result<Catalog, CatalogError> {
        Ok(Catalog {
            state: RwLock::new(State::build(file)?),
            changes: Mutex::new(()),
        })
    }

    /// Replaces the whole catalog (the replicated state changed).
    pub fn replace(&self, file: &CatalogFile) -> Result<(), CatalogError> {
        let state = State::build(file)?;
        let _changes = self.changes.lock().expect("catalog changes lock");
        tracing::debug!(
            services = state.services.len(),
            rules = state.rules.len(),
            "catalog replaced"
        );
        *self.state.write().expect("catalog lock") = state;
        Ok(())
    }

    /// Applies the rules to a login.
    pub fn decide(&self, login: &LoginInfo<'_>) -> Decision {
        let state = self.state.read().expect("catalog lock");
        let Some(rule) = state.rules.iter().find(|r| r.matches(login)) else {
            return Decision::Services(Vec::new(), Profile::default());
        };
        let rule = &rule.rule;
        if rule.reject {
            return Decision::Reject {
                rule: rule.name.clone(),
            };
        }
        let mut chosen = Vec::with_capacity(rule.services.len());
        for name in &rule.services {
            let Some(def) = state.services.get(name) else {
                tracing::warn!(rule = %rule.name, service = %name, "rule names an unknown service; skipped");
                continue;
            };
            if def.is_aggregate() {
                tracing::warn!(rule = %rule.name, service = %name, "a rule does not start an aggregate at login in this version; activate it through the API");
                continue;
            }
            let mut substitutions = def.substitutions.clone();
            substitutions.extend(
                rule.substitutions
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            chosen.push(ChosenService {
                name: def.name.clone(),
                policy_name: def.effective_policy_name().to_owned(),
                template_name: def.template_name.clone(),
                substitutions,
                accounting: def.accounting,
                description: def.description.clone(),
            });
        }
        Decision::Services(chosen, Profile::of(rule, login))
    }

    /// Every service, by name.
    pub fn services(&self) -> Vec<ServiceDef> {
        let state = self.state.read().expect("catalog lock");
        state.services.values().cloned().collect()
    }

    /// One service.
    pub fn service(&self, name: &str) -> Option<ServiceDef> {
        let state = self.state.read().expect("catalog lock");
        state.services.get(name).cloned()
    }

    /// Every rule, in decision order.
    pub fn rules(&self) -> Vec<Rule> {
        let state = self.state.read().expect("catalog lock");
        state.rules.iter().map(|r| r.rule.clone()).collect()
    }

    /// One rule.
    pub fn rule(&self, name: &str) -> Option<Rule> {
        let state = self.state.read().expect("catalog lock");
        state
            .rules
            .iter()
            .find(|r| r.rule.name == name)
            .map(|r| r.rule.clone())
    }

    /// The whole catalog.
    pub fn snapshot(&self) -> CatalogFile {
        self.state.read().expect("catalog lock").to_file()
    }

    /// Validates, stores and inserts (or replaces) a service; returns it as stored (policy
    /// name defaulted).
    pub fn put_service(&self, def: ServiceDef) -> Result<ServiceDef, CatalogError> {
        let def = def.validated()?;
        let _changes = self.changes.lock().expect("catalog changes lock");
        let mut state = self.state.write().expect("catalog lock");
        check_fragments(&def, &state.services)?;
        state.services.insert(def.name.clone(), def.clone());
        Ok(def)
    }

    /// Deletes a service no rule names.
    pub fn delete_service(&self, name: &str) -> Result<(), CatalogError> {
        let _changes = self.changes.lock().expect("catalog changes lock");
        {
            let state = self.state.read().expect("catalog lock");
            if !state.services.contains_key(name) {
                return Err(CatalogError::NotFound {
                    kind: "service",
                    name: name.to_owned(),
                });
            }
            let rules = state.rules_using(name);
            let aggregates = aggregates_using(name, &state.services);
            if !rules.is_empty() || !aggregates.is_empty() {
                return Err(CatalogError::InUse {
                    service: name.to_owned(),
                    rules,
                    aggregates,
                });
            }
        }
        self.state
            .write()
            .expect("catalog lock")
            .services
            .remove(name);
        Ok(())
    }

    /// Validates, stores and inserts (or replaces) a rule; its services must exist.
    pub fn put_rule(&self, rule: Rule) -> Result<Rule, CatalogError> {
        let _changes = self.changes.lock().expect("catalog changes lock");
        {
            let state = self.state.read().expect("catalog lock");
            check_rule(&rule, &state.services)?;
        }
        let mut state = self.state.write().expect("catalog lock");
        state.rules.retain(|r| r.rule.name != rule.name);
        state.rules.push(CompiledRule::new(rule.clone()));
        state.sort();
        Ok(rule)
    }

    /// Deletes a rule.
    pub fn delete_rule(&self, name: &str) -> Result<(), CatalogError> {
        let _changes = self.changes.lock().expect("catalog changes lock");
        let exists = self
            .state
            .read()
            .expect("catalog lock")
            .rules
            .iter()
            .any(|r| r.rule.name == name);
        if !exists {
            return Err(CatalogError::NotFound {
                kind: "rule",
                name: name.to_owned(),
            });
        }
        self.state
            .write()
            .expect("catalog lock")
            .rules
            .retain(|r| r.rule.name != name);
        Ok(())
    }
}

/// Checks a rule against the services it may name.
fn check_rule(rule: &Rule, services: &BTreeMap<String, ServiceDef>) -> Result<(), CatalogError> {
    let field = |attr: &str| format!("rule {:?}.{attr}", rule.name);
    check_name(&field("name"), &rule.name)?;
    for (attr, pattern) in [
        ("login_name", &rule.login_name),
        ("domain", &rule.domain),
        ("nas_port_id", &rule.nas_port_id),
        ("router", &rule.router),
    ] {
        if let Some(p) = pattern {
            check_text(&field(attr), p, false)?;
        }
    }
    if rule.domain.as_deref().is_some_and(|d| d.contains('@')) {
        return Err(invalid(
            field("domain"),
            "matches the part after '@'; leave the '@' out",
        ));
    }
    if rule.reject && !rule.services.is_empty() {
        return Err(invalid(
            field("services"),
            "a reject rule activates no services",
        ));
    }
    let mut seen = BTreeSet::new();
    for name in &rule.services {
        if !services.contains_key(name) {
            return Err(invalid(
                field("services"),
                format!("unknown service {name:?}"),
            ));
        }
        if !seen.insert(name) {
            return Err(invalid(
                field("services"),
                format!("service {name:?} listed twice"),
            ));
        }
    }
    for (attr, template) in [
        ("subscriber_dn", &rule.subscriber_dn),
        ("retailer_dn", &rule.retailer_dn),
        ("accounting_id", &rule.accounting_id),
    ] {
        if let Some(t) = template {
            check_template(&field(attr), t)?;
        }
    }
    if let Some(vr) = &rule.virtual_router {
        check_name(&field("virtual_router"), vr)?;
    }
    let mut seen = BTreeSet::new();
    for name in &rule.subscriptions {
        if !services.contains_key(name) {
            return Err(invalid(
                field("subscriptions"),
                format!("unknown service {name:?}"),
            ));
        }
        if !seen.insert(name) {
            return Err(invalid(
                field("subscriptions"),
                format!("service {name:?} listed twice"),
            ));
        }
    }
    check_substitutions(&field("substitutions"), &rule.substitutions)
}

fn check_name(field: &str, name: &str) -> Result<(), CatalogError> {
    if name.is_empty() {
        return Err(invalid(field.to_owned(), "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(
            field.to_owned(),
            format!("longer than {MAX_NAME_LEN} bytes"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(invalid(
            field.to_owned(),
            format!("{c:?} not allowed: letters, digits, '-', '_' and '.' only"),
        ));
    }
    Ok(())
}

/// Free text sent to a router or matched against one: bounded, no control characters.
fn check_text(field: &str, text: &str, may_be_empty: bool) -> Result<(), CatalogError> {
    if text.is_empty() && !may_be_empty {
        return Err(invalid(field.to_owned(), "must not be empty"));
    }
    if text.len() > MAX_TEXT_LEN {
        return Err(invalid(
            field.to_owned(),
            format!("longer than {MAX_TEXT_LEN} bytes"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(field.to_owned(), "contains control characters"));
    }
    Ok(())
}

fn check_substitutions(
    field: &str,
    substitutions: &BTreeMap<String, String>,
) -> Result<(), CatalogError> {
    for (name, value) in substitutions {
        if name.trim().is_empty() {
            return Err(invalid(field.to_owned(), "a substitution name is empty"));
        }
        check_text(&format!("{field}.{name}"), name, false)?;
        check_text(&format!("{field}.{name}"), value, true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, subs: &[(&str, &str)]) -> ServiceDef {
        ServiceDef {
            name: name.into(),
            substitutions: subs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn rule(name: &str, priority: u32, services: &[&str]) -> Rule {
        Rule {
            name: name.into(),
            priority,
            services: services.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn login<'a>(user: Option<&'a str>, port: Option<&'a str>, router: &'a str) -> LoginInfo<'a> {
        LoginInfo {
            user_name: user,
            nas_port_id: port,
            router,
        }
    }

    /// The names of the services decided, or "reject:<rule>".
    fn names(decision: Decision) -> Vec<String> {
        match decision {
            Decision::Reject { rule } => vec![format!("reject:{rule}")],
            Decision::Services(s, _) => s.into_iter().map(|s| s.name).collect(),
        }
    }

    fn catalog(_dir: &tempfile::TempDir, seed: CatalogFile) -> Catalog {
        Catalog::new(&seed).expect("valid catalog")
    }

    fn seed() -> CatalogFile {
        CatalogFile {
            services: vec![
                service("gold", &[("rate", "100M"), ("burst", "1M")]),
                service("silver", &[("rate", "10M")]),
                service("video", &[]),
            ],
            rules: vec![],
        }
    }

    fn with_rules(rules: Vec<Rule>) -> CatalogFile {
        CatalogFile { rules, ..seed() }
    }

    #[test]
    fn rules_assign_dns_accounting_ids_subscriptions_and_the_virtual_router() {
        let c = Catalog::new(&with_rules(vec![Rule {
            subscriber_dn: Some("uniqueID=<userName>,ou=<domain>,o=users".into()),
            retailer_dn: Some("o=<router>".into()),
            accounting_id: Some("<interfaceName>/<portId>".into()),
            subscriptions: vec!["video".into()],
            virtual_router: Some("internet".into()),
            ..rule("r", 1, &["gold"])
        }]))
        .unwrap();
        let Decision::Services(_, p) = c.decide(&login(
            Some("alice@isp.example"),
            Some("ge-0/0/1.7:100-200"),
            "bng1",
        )) else {
            panic!("admitted")
        };
        assert_eq!(
            p.subscriber_dn.as_deref(),
            Some("uniqueID=alice,ou=isp.example,o=users")
        );
        assert_eq!(p.retailer_dn.as_deref(), Some("o=bng1"));
        assert_eq!(
            p.accounting_id.as_deref(),
            Some("ge-0/0/1.7/ge-0/0/1.7:100-200")
        );
        assert_eq!(p.subscriptions, ["video"]);
        assert_eq!(p.virtual_router.as_deref(), Some("internet@bng1"));
        // A field the login lacks assigns nothing.
        let Decision::Services(_, p) = c.decide(&login(Some("bob"), None, "bng1")) else {
            panic!("admitted")
        };
        assert_eq!((p.subscriber_dn, p.accounting_id), (None, None));
        // Deleting a service a rule subscribes to is refused like one it activates.
        assert!(c.delete_service("video").is_err());
    }

    #[test]
    fn bad_templates_and_subscriptions_are_refused_naming_the_field() {
        let refused = |r: Rule| Catalog::new(&with_rules(vec![r])).unwrap_err().to_string();
        let e = refused(Rule {
            subscriber_dn: Some("uniqueID=<user>".into()),
            ..rule("r", 1, &[])
        });
        assert!(
            e.contains("rule \"r\".subscriber_dn") && e.contains("unknown field <user>"),
            "{e}"
        );
        let e = refused(Rule {
            accounting_id: Some("<userName".into()),
            ..rule("r", 1, &[])
        });
        assert!(
            e.contains("accounting_id") && e.contains("'<' without '>'"),
            "{e}"
        );
        let e = refused(Rule {
            retailer_dn: Some("o=x>".into()),
            ..rule("r", 1, &[])
        });
        assert!(e.contains("'>' without '<'"), "{e}");
        let e = refused(Rule {
            subscriptions: vec!["platinum".into()],
            ..rule("r", 1, &[])
        });
        assert!(
            e.contains("subscriptions") && e.contains("unknown service \"platinum\""),
            "{e}"
        );
        let e = refused(Rule {
            virtual_router: Some("a@b".into()),
            ..rule("r", 1, &[])
        });
        assert!(e.contains("virtual_router"), "{e}");
    }

    #[test]
    fn priority_order_then_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = catalog(
            &dir,
            with_rules(vec![
                rule("z-default", 100, &["silver"]),
                rule("b-tie", 10, &["video"]),
                rule("a-tie", 10, &["gold"]),
            ]),
        );
        let names_of: Vec<String> = c.rules().into_iter().map(|r| r.name).collect();
        assert_eq!(names_of, vec!["a-tie", "b-tie", "z-default"]);
        assert_eq!(names(c.decide(&login(Some("u"), None, "r"))), vec!["gold"]);
        // Lower priority first, whatever the order of insertion.
        c.put_rule(rule("first", 1, &["video"])).expect("put");
        assert_eq!(names(c.decide(&login(Some("u"), None, "r"))), vec!["video"]);
    }

    #[test]
    fn first_match_wins_and_no_match_gives_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = catalog(
            &dir,
            with_rules(vec![
                Rule {
                    login_name: Some("alice@*".into()),
                    ..rule("alice", 1, &["gold"])
                },
                Rule {
                    domain: Some("isp.net".into()),
                    ..rule("isp", 2, &["silver", "video"])
                },
            ]),
        );
        let d = |u: &str| names(c.decide(&login(Some(u), None, "bng1")));
        assert_eq!(d("alice@isp.net"), vec!["gold"]);
        assert_eq!(d("bob@isp.net"), vec!["silver", "video"]);
        assert!(d("bob@other.net").is_empty());
        assert_eq!(
            c.decide(&login(None, None, "bng1")),
            Decision::Services(vec![], Profile::default())
        );
    }

    #[test]
    fn domain_port_and_router_globs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = catalog(
            &dir,
            with_rules(vec![
                Rule {
                    domain: Some("*.corp.example".into()),
                    nas_port_id: Some("ge-0/0/?.*".into()),
                    ..rule("corp", 1, &["gold"])
                },
                Rule {
                    router: Some("bng-east-*".into()),
                    ..rule("east", 2, &["silver"])
                },
            ]),
        );
        let d = |u: Option<&str>, p: Option<&str>, r: &str| names(c.decide(&login(u, p, r)));
        assert_eq!(
            d(Some("a@hq.corp.example"), Some("ge-0/0/1.100"), "x"),
            vec!["gold"]
        );
        // '?' is exactly one character.
        assert!(d(Some("a@hq.corp.example"), Some("ge-0/0/10.100"), "x").is_empty());
        // No NAS-Port-Id: a port pattern does not match.
        assert!(d(Some("a@hq.corp.example"), None, "x").is_empty());
        // No domain in the user name: a domain pattern does not match.
        assert!(d(Some("hq.corp.example"), Some("ge-0/0/1.100"), "x").is_empty());
        // The domain is what follows the last '@'.
        assert_eq!(
            d(Some("a@b@hq.corp.example"), Some("ge-0/0/1.1"), "x"),
            vec!["gold"]
        );
        assert_eq!(d(None, None, "bng-east-3"), vec!["silver"]);
        assert!(d(None, None, "bng-west-3").is_empty());
    }

    #[test]
    fn globs_are_case_insensitive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = catalog(
            &dir,
            with_rules(vec![Rule {
                login_name: Some("Alice@ISP.*".into()),
                router: Some("BNG1.example.net".into()),
                ..rule("alice", 1, &["gold"])
            }]),
        );
        assert_eq!(
            names(c.decide(&login(Some("aLiCe@isp.NET"), None, "bng1.EXAMPLE.net"))),
            vec!["gold"]
        );
    }

    #[test]
    fn reject_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = catalog(
            &dir,
            with_rules(vec![
                Rule {
                    domain: Some("blocked.net".into()),
                    reject: true,
                    ..rule("blocked", 1, &[])
                },
                rule("default", 10, &["silver"]),
            ]),
        );
        assert_eq!(
            c.decide(&login(Some("x@blocked.net"), None, "r")),
            Decision::Reject {
                rule: "blocked".into()
            }
        );
        assert_eq!(
            names(c.decide(&login(Some("x@ok.net"), None, "r"))),
            vec!["silver"]
        );
    }

    #[test]
    fn default_rule_matches_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = catalog(&dir, with_rules(vec![rule("default", 0, &["video"])]));
        assert_eq!(names(c.decide(&login(None, None, ""))), vec!["video"]);
        assert_eq!(
            names(c.decide(&login(Some("a@b"), Some("p"), "r"))),
            vec!["video"]
        );
    }

    #[test]
    fn rule_substitutions_override_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seed = with_rules(vec![Rule {
            substitutions: BTreeMap::from([
                ("rate".to_string(), "50M".to_string()),
                ("vlan".to_string(), "7".to_string()),
            ]),
            ..rule("r", 1, &["gold", "video"])
        }]);
        seed.services[0].policy_name = "gold-policy".into();
        seed.services[0].template_name = "tmpl".into();
        seed.services[0].accounting = true;
        let c = catalog(&dir, seed);
        let Decision::Services(chosen, _) = c.decide(&login(None, None, "r")) else {
            panic!("services expected");
        };
        assert_eq!(chosen.len(), 2);
        assert_eq!(chosen[0].name, "gold");
        assert_eq!(chosen[0].policy_name, "gold-policy");
        assert_eq!(chosen[0].template_name, "tmpl");
        assert!(chosen[0].accounting);
        assert_eq!(
            chosen[0].substitutions,
            BTreeMap::from([
                ("burst".to_string(), "1M".to_string()),
                ("rate".to_string(), "50M".to_string()),
                ("vlan".to_string(), "7".to_string()),
            ])
        );
        // Policy name defaults to the service name.
        assert_eq!(chosen[1].policy_name, "video");
        let session = chosen[0].clone().into_session(42);
        assert_eq!(session.service, "gold");
        assert_eq!(session.state, ServiceState::Installing);
        assert_eq!(session.activated_ms, 42);
    }

    #[test]
    fn unknown_service_is_skipped_at_decide_time() {
        let c = Catalog {
            state: RwLock::new(State {
                services: BTreeMap::from([("gold".to_string(), service("gold", &[]))]),
                rules: vec![CompiledRule::new(rule("r", 1, &["gone", "gold"]))],
            }),
            changes: Mutex::new(()),
        };
        assert_eq!(names(c.decide(&login(None, None, "r"))), vec!["gold"]);
        // Such a catalog does not validate.
        let file = c.snapshot();
        assert!(matches!(
            file.validate(),
            Err(CatalogError::Invalid { ref reason, .. }) if reason.contains("gone")
        ));
        assert!(Catalog::new(&file).is_err());
    }

    #[test]
    fn crud_validation_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = catalog(&dir, seed());
        let bad_service = |def: ServiceDef| match c.put_service(def) {
            Err(CatalogError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        };
        assert_eq!(bad_service(service("", &[])), "service \"\".name");
        assert!(bad_service(service("a b", &[])).ends_with(".name"));
        assert!(bad_service(service("a/b", &[])).ends_with(".name"));
        assert!(bad_service(service("é", &[])).ends_with(".name"));
        assert!(bad_service(service(&"x".repeat(MAX_NAME_LEN + 1), &[])).ends_with(".name"));
        assert!(bad_service(service("ok", &[("", "v")])).contains("substitutions"));
        assert!(bad_service(service("ok", &[(" ", "v")])).contains("substitutions"));
        assert!(
            bad_service(ServiceDef {
                policy_name: " p".into(),
                ..service("ok", &[])
            })
            .ends_with(".policy_name")
        );
        assert!(
            bad_service(ServiceDef {
                template_name: "a\nb".into(),
                ..service("ok", &[])
            })
            .ends_with(".template_name")
        );
        let stored = c
            .put_service(service("Bronze-1_v.2", &[]))
            .expect("valid service");
        assert_eq!(stored.policy_name, "Bronze-1_v.2");
        assert_eq!(c.service("Bronze-1_v.2"), Some(stored));

        let bad_rule = |r: Rule| match c.put_rule(r) {
            Err(CatalogError::Invalid { field, reason }) => format!("{field}: {reason}"),
            other => panic!("expected Invalid, got {other:?}"),
        };
        assert!(bad_rule(rule("r!", 1, &[])).contains(".name"));
        assert!(bad_rule(rule("r", 1, &["nope"])).contains("unknown service \"nope\""));
        assert!(bad_rule(rule("r", 1, &["gold", "gold"])).contains("twice"));
        assert!(
            bad_rule(Rule {
                reject: true,
                ..rule("r", 1, &["gold"])
            })
            .contains(".services")
        );
        assert!(
            bad_rule(Rule {
                domain: Some("@isp.net".into()),
                ..rule("r", 1, &[])
            })
            .contains(".domain")
        );
        assert!(
            bad_rule(Rule {
                login_name: Some(String::new()),
                ..rule("r", 1, &[])
            })
            .contains(".login_name")
        );
        assert!(
            bad_rule(Rule {
                router: Some("a\tb".into()),
                ..rule("r", 1, &[])
            })
            .contains(".router")
        );
        assert!(c.rules().is_empty());

        assert!(matches!(
            c.delete_service("nope"),
            Err(CatalogError::NotFound {
                kind: "service",
                ..
            })
        ));
        assert!(matches!(
            c.delete_rule("nope"),
            Err(CatalogError::NotFound { kind: "rule", .. })
        ));
        c.put_rule(rule("r", 5, &["gold"])).expect("valid rule");
        // Replacing a rule keeps one of that name.
        c.put_rule(rule("r", 6, &["silver"])).expect("replace");
        assert_eq!(c.rules(), vec![rule("r", 6, &["silver"])]);
        c.delete_rule("r").expect("delete rule");
        assert!(c.rule("r").is_none());
        c.delete_service("gold").expect("delete service");
        assert!(c.service("gold").is_none());
    }

    #[test]
    fn delete_of_a_service_in_use_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = catalog(
            &dir,
            with_rules(vec![
                rule("r1", 1, &["gold", "video"]),
                rule("r2", 2, &["gold"]),
                rule("r3", 3, &["silver"]),
            ]),
        );
        match c.delete_service("gold") {
            Err(CatalogError::InUse { service, rules, .. }) => {
                assert_eq!(service, "gold");
                assert_eq!(rules, vec!["r1", "r2"]);
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        assert!(c.service("gold").is_some());
        c.delete_rule("r1").expect("delete r1");
        c.delete_rule("r2").expect("delete r2");
        c.delete_service("gold").expect("now unused");
    }

    #[test]
    fn invalid_catalog_is_refused_and_replace_keeps_the_old_one() {
        let bad = with_rules(vec![rule("r", 1, &["nope"])]);
        assert!(matches!(
            Catalog::new(&bad),
            Err(CatalogError::Invalid { .. })
        ));
        let c = Catalog::new(&seed()).expect("valid");
        assert!(c.replace(&bad).is_err());
        assert_eq!(c.services().len(), 3);
        c.replace(&with_rules(vec![rule("r", 1, &["gold"])]))
            .expect("valid");
        assert_eq!(c.rules().len(), 1);
    }

    #[test]
    fn toml_catalog() {
        let text = r#"
            [[service]]
            name = "gold"
            policy_name = "GOLD"
            template_name = "qos"
            accounting = true
            description = "Gold tier"
            substitutions = { rate = "100M" }

            [[service]]
            name = "silver"

            [[rule]]
            name = "isp"
            priority = 10
            domain = "isp.net"
            services = ["gold"]
            substitutions = { rate = "50M" }

            [[rule]]
            name = "blocked"
            login_name = "spam*"
            reject = true
        "#;
        let file = CatalogFile::from_toml(text).expect("parse");
        assert_eq!(file.services.len(), 2);
        assert_eq!(file.services[0].policy_name, "GOLD");
        assert_eq!(file.services[0].substitutions["rate"], "100M");
        assert_eq!(file.services[1], service("silver", &[]));
        assert_eq!(file.rules[0].domain.as_deref(), Some("isp.net"));
        assert!(file.rules[1].reject);
        assert!(
            CatalogFile::from_toml("")
                .expect("empty")
                .services
                .is_empty()
        );
    }

    #[test]
    fn toml_rejects_unknown_fields_and_bad_entries() {
        let parse_err = |text: &str| match CatalogFile::from_toml(text) {
            Err(CatalogError::Parse(e)) => e.to_string(),
            other => panic!("expected Parse, got {other:?}"),
        };
        assert!(parse_err("[[service]]\nname = \"a\"\npolicy = \"p\"\n").contains("policy"));
        assert!(parse_err("[[rule]]\nname = \"a\"\nuser = \"x\"\n").contains("user"));
        assert!(parse_err("[[services]]\nname = \"a\"\n").contains("services"));

        let invalid_field = |text: &str| match CatalogFile::from_toml(text) {
            Err(CatalogError::Invalid { field, reason }) => format!("{field}: {reason}"),
            other => panic!("expected Invalid, got {other:?}"),
        };
        assert_eq!(
            invalid_field("[[service]]\nname = \"a\"\n[[service]]\nname = \"a\"\n"),
            "service \"a\": duplicate name"
        );
        assert_eq!(
            invalid_field("[[rule]]\nname = \"r\"\n[[rule]]\nname = \"r\"\n"),
            "rule \"r\": duplicate name"
        );
        assert!(
            invalid_field("[[rule]]\nname = \"r\"\nservices = [\"x\"]\n")
                .starts_with("rule \"r\".services: unknown service \"x\"")
        );
        assert!(invalid_field("[[service]]\nname = \"a b\"\n").starts_with("service \"a b\".name"));
    }

    const VOD: &str = r#"
[[service]]
name = "qos"
template_name = "qos-tpl"
[[service]]
name = "video-qos"
deny_modification = true
[[service]]
name = "vod"
kind = "aggregate"
accounting = true
[[service.fragment]]
name = "subscriber"
service = "qos"
expression = "'ip=%s' % user_IpAddress"
mandatory = true
substitutions = ["rate", "fragIp=user_IpAddress"]
[[service.fragment]]
name = "server1"
service = "video-qos"
expression = "'interfaceName=ge-0/0/1.0;router=vs1'"
redundancy_group = "server"
[[service.fragment]]
name = "server2"
service = "video-qos"
expression = "'interfaceName=ge-0/0/2.0;router=vs2'"
redundancy_group = "server"
require_subscription = true
"#;

    #[test]
    fn aggregate_services_list_their_fragments() {
        let file = CatalogFile::from_toml(VOD).unwrap();
        let catalog = Catalog::new(&file).unwrap();
        let vod = catalog.service("vod").unwrap();
        assert!(vod.is_aggregate());
        assert_eq!(vod.policy_name, "", "an aggregate installs no policy");
        assert_eq!(vod.fragments.len(), 3);
        assert_eq!(
            vod.fragments[0].parameters(),
            [("rate", "rate"), ("fragIp", "user_IpAddress")]
        );
        assert_eq!(vod.fragments[2].redundancy_group.as_deref(), Some("server"));
        assert!(catalog.service("video-qos").unwrap().deny_modification);
        // The catalog written back reads the same.
        let text = toml::to_string(&catalog.snapshot()).unwrap();
        assert_eq!(CatalogFile::from_toml(&text).unwrap(), catalog.snapshot());
        // A fragment service in use cannot go, nor become an aggregate.
        match catalog.delete_service("qos") {
            Err(CatalogError::InUse { aggregates, .. }) => assert_eq!(aggregates, ["vod"]),
            other => panic!("expected InUse, got {other:?}"),
        }
        let mut qos = catalog.service("qos").unwrap();
        qos.kind = ServiceKind::Aggregate;
        qos.policy_name.clear();
        qos.template_name.clear();
        qos.fragments = vod.fragments.clone();
        let err = catalog.put_service(qos).unwrap_err().to_string();
        assert!(err.starts_with("service \"qos\""), "{err}");
        catalog.delete_service("vod").unwrap();
        catalog.delete_service("qos").unwrap();
    }

    #[test]
    fn bad_aggregates_are_refused_naming_the_field() {
        let err = |edit: &dyn Fn(&mut ServiceDef)| {
            let mut file = CatalogFile::from_toml(VOD).unwrap();
            let vod = file.services.iter_mut().find(|s| s.name == "vod").unwrap();
            edit(vod);
            match file.validate() {
                Err(CatalogError::Invalid { field, reason }) => format!("{field}: {reason}"),
                other => panic!("expected Invalid, got {other:?}"),
            }
        };
        let e = err(&|s| s.fragments[0].service = "nope".into());
        assert!(
            e.starts_with(
                "service \"vod\".fragment \"subscriber\".service: unknown service \"nope\""
            ),
            "{e}"
        );
        let e = err(&|s| s.fragments[0].service = "vod".into());
        assert!(e.contains("is an aggregate service"), "{e}");
        let e = err(&|s| s.fragments[1].expression = "'ip=' +".into());
        assert!(
            e.starts_with("service \"vod\".fragment \"server1\".expression:"),
            "{e}"
        );
        let e = err(&|s| s.fragments[1].expression = "__import__('os')".into());
        assert!(e.contains("expression"), "{e}");
        let e = err(&|s| s.fragments[0].substitutions = vec!["for=rate".into()]);
        assert!(e.contains("\"for\" is not a valid parameter name"), "{e}");
        let e = err(&|s| s.fragments[0].substitutions = vec!["a-b".into()]);
        assert!(e.contains("not a valid parameter name"), "{e}");
        let e = err(&|s| s.fragments[0].substitutions = vec!["x=a".into(), "x=b".into()]);
        assert!(e.contains("\"x\" is passed twice"), "{e}");
        let e = err(&|s| s.fragments[2].name = "server1".into());
        assert!(e.contains("listed twice"), "{e}");
        let e = err(&|s| s.fragments.clear());
        assert!(e.contains("at least one fragment"), "{e}");
        let e = err(&|s| s.policy_name = "p".into());
        assert!(e.starts_with("service \"vod\".policy_name"), "{e}");
        let e = err(&|s| s.kind = ServiceKind::Normal);
        assert!(e.contains("only an aggregate service"), "{e}");
        let e = err(&|s| s.fragments[1].redundancy_group = Some("a b".into()));
        assert!(e.contains("redundancy_group"), "{e}");
    }

    #[test]
    fn rules_do_not_start_aggregates_as_policies() {
        let mut file = CatalogFile::from_toml(VOD).unwrap();
        file.rules.push(Rule {
            name: "all".into(),
            services: vec!["vod".into(), "qos".into()],
            ..Rule::default()
        });
        let catalog = Catalog::new(&file).unwrap();
        let Decision::Services(chosen, _) = catalog.decide(&LoginInfo {
            user_name: Some("a@b"),
            nas_port_id: None,
            router: "r1",
        }) else {
            panic!("accepted");
        };
        let names: Vec<&str> = chosen.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["qos"]);
    }
}
