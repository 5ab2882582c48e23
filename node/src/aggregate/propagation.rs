//! What an aggregate session hands each fragment (seed 003): the environment its reference
//! expression is evaluated in, the parameters bound from the aggregate's substitutions (plain
//! names and `fragName=aggregateName` renames), and exactly the attributes the seed lists as
//! propagated. Pure functions, so that the rules are tested on their own.
//!
//! The acquisition path of a substitution's value: the aggregate's activation substitutions,
//! then the aggregate service's defaults, then the aggregate subscriber's fields (seed 003
//! Table 4 names, and `user_IpAddress` for its address, as SRC names it).

use std::collections::BTreeMap;

use sae_nic::{Expression, Value};

use crate::catalog::{FragmentDef, ServiceDef};

/// The attributes an aggregate session propagates to its fragments (seed 003), in its order.
pub const PROPAGATED: [&str; 21] = [
    "aggregateServiceName",
    "aggregateSessionName",
    "aggregateVr",
    "aggregateLoginName",
    "aggregateUserIdType",
    "aggregateUserDn",
    "aggregateUserIp",
    "aggregateSessionId",
    "aggregateAccountingId",
    "aggregateAuthUserId",
    "requireAggregateSubscription",
    "aggregateFragmentIsLocal",
    "aggregateFragmentSessionId",
    "aggregateUserSessionId",
    "upStreamBandwidth",
    "downStreamBandwidth",
    "interimTime",
    "properties",
    "sessionVolumeQuota",
    "sessionTag",
    "substitutions",
];

/// Activation attributes that stay with the aggregate (seed 003).
pub const NOT_PROPAGATED: [&str; 4] = [
    "acctSessionId",
    "sessionTimeout",
    "subscriptionUsername",
    "subscriptionPassword",
];

/// The attributes a modification propagates (seed 003).
pub const MODIFIABLE: [&str; 7] = [
    "substitutions",
    "upStreamBandwidth",
    "downStreamBandwidth",
    "interimTime",
    "properties",
    "sessionVolumeQuota",
    "sessionTag",
];

/// What an activation of an aggregate carries besides its service name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activation {
    pub substitutions: BTreeMap<String, String>,
    pub up_stream_bandwidth: Option<u64>,
    pub down_stream_bandwidth: Option<u64>,
    pub interim_time: Option<u32>,
    pub properties: BTreeMap<String, String>,
    pub session_volume_quota: Option<u64>,
    pub session_tag: Option<String>,
    // Not propagated:
    pub acct_session_id: Option<String>,
    pub session_timeout: Option<u32>,
    pub subscription_username: Option<String>,
    pub subscription_password: Option<String>,
}

/// The aggregate session a fragment belongs to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggregateContext {
    /// The aggregate service.
    pub service: String,
    /// The aggregate session's own name (unique on its node).
    pub session_name: String,
    /// The aggregate subscriber's fields, by Table 4 name (see `nic::fields`).
    pub fields: BTreeMap<String, Value>,
}

impl AggregateContext {
    /// A field's text; empty when the subscriber lacks it.
    pub fn field(&self, name: &str) -> String {
        self.fields.get(name).map(text).unwrap_or_default()
    }
}

/// A value as a substitution's text.
fn text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What a fragment service is activated with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FragmentActivation {
    /// The fragment service.
    pub service: String,
    /// Its parameters: the fragment's names bound to the aggregate's values.
    pub substitutions: BTreeMap<String, String>,
    /// The propagated attributes (names from [`PROPAGATED`], `substitutions` aside).
    pub attributes: BTreeMap<&'static str, String>,
}

/// The names a fragment's reference expression is evaluated over, and where its parameters'
/// values are acquired: the subscriber's fields, then the aggregate's substitutions (the
/// service's defaults under the activation's).
pub fn expression_env(
    aggregate: &ServiceDef,
    activation: &Activation,
    ctx: &AggregateContext,
) -> BTreeMap<String, Value> {
    let mut env = ctx.fields.clone();
    if let Some(ip) = ctx.fields.get("ipAddress") {
        env.insert("user_IpAddress".into(), ip.clone());
    }
    for (k, v) in aggregate
        .substitutions
        .iter()
        .chain(&activation.substitutions)
    {
        env.insert(k.clone(), Value::from(v.as_str()));
    }
    env
}

/// Why a fragment could not be given its parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "fragment {fragment:?}: no value for parameter {parameter:?} (the aggregate's {source_name:?})"
)]
pub struct MissingParameter {
    pub fragment: String,
    pub parameter: String,
    pub source_name: String,
}

/// The activation of `fragment` (its service `fragment_service`) for the aggregate session
/// `ctx`, on the session `fragment_session_id`, local to the aggregate's node or not.
pub fn fragment_activation(
    ctx: &AggregateContext,
    aggregate: &ServiceDef,
    activation: &Activation,
    fragment: &FragmentDef,
    fragment_service: &ServiceDef,
    is_local: bool,
    fragment_session_id: &str,
) -> Result<FragmentActivation, MissingParameter> {
    let env = expression_env(aggregate, activation, ctx);
    let mut substitutions = BTreeMap::new();
    for (name, source) in fragment.parameters() {
        match env.get(source) {
            Some(value) => {
                substitutions.insert(name.to_owned(), text(value));
            }
            // The fragment service's own default stands.
            None if fragment_service.substitutions.contains_key(name) => {}
            None => {
                return Err(MissingParameter {
                    fragment: fragment.name.clone(),
                    parameter: name.to_owned(),
                    source_name: source.to_owned(),
                });
            }
        }
    }
    let mut attributes = BTreeMap::new();
    let mut put = |k: &'static str, v: String| {
        attributes.insert(k, v);
    };
    put("aggregateServiceName", aggregate.name.clone());
    put("aggregateSessionName", ctx.session_name.clone());
    put("aggregateVr", ctx.field("virtualRouterName"));
    put("aggregateLoginName", ctx.field("loginName"));
    put("aggregateUserIdType", ctx.field("loginType"));
    put("aggregateUserDn", ctx.field("userDn"));
    put("aggregateUserIp", ctx.field("ipAddress"));
    put("aggregateSessionId", ctx.session_name.clone());
    put("aggregateAccountingId", ctx.field("accountingId"));
    put("aggregateAuthUserId", ctx.field("primaryUserName"));
    put(
        "requireAggregateSubscription",
        fragment.require_subscription.to_string(),
    );
    put("aggregateFragmentIsLocal", is_local.to_string());
    put("aggregateFragmentSessionId", fragment_session_id.to_owned());
    put("aggregateUserSessionId", ctx.field("sessionId"));
    let number = |n: Option<u64>| n.map(|n| n.to_string());
    for (k, v) in [
        ("upStreamBandwidth", number(activation.up_stream_bandwidth)),
        (
            "downStreamBandwidth",
            number(activation.down_stream_bandwidth),
        ),
        (
            "interimTime",
            activation.interim_time.map(|n| n.to_string()),
        ),
        (
            "sessionVolumeQuota",
            number(activation.session_volume_quota),
        ),
        ("sessionTag", activation.session_tag.clone()),
    ] {
        if let Some(v) = v {
            put(k, v);
        }
    }
    if !activation.properties.is_empty() {
        let text = activation
            .properties
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        put("properties", text);
    }
    Ok(FragmentActivation {
        service: fragment_service.name.clone(),
        substitutions,
        attributes,
    })
}

/// Refuses a modification that changes a substitution a fragment's reference expression reads
/// (seed 003: that would move the fragment to another session). `changed` are the
/// substitution names whose values differ.
pub fn check_modification(aggregate: &ServiceDef, changed: &[String]) -> Result<(), String> {
    for fragment in &aggregate.fragments {
        let Ok(expression) = Expression::parse(&fragment.expression) else {
            continue;
        };
        let names = expression.names();
        if let Some(name) = changed.iter().find(|c| names.contains(c)) {
            return Err(format!(
                "substitution {name:?} is read by fragment {:?}'s reference expression; it \
                 cannot be modified (deactivate and activate the aggregate instead)",
                fragment.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ServiceKind;

    fn ctx() -> AggregateContext {
        let fields = [
            ("loginName", "alice@isp.example"),
            ("loginType", "AUTHADDR"),
            ("ipAddress", "10.0.0.5"),
            ("virtualRouterName", "default@bng1"),
            ("userDn", "uniqueID=alice,ou=isp.example,o=users"),
            ("accountingId", "acct-1"),
            ("primaryUserName", "alice"),
            ("sessionId", "bng1;1;7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .collect();
        AggregateContext {
            service: "vod".into(),
            session_name: "agg-42".into(),
            fields,
        }
    }

    fn vod() -> ServiceDef {
        ServiceDef {
            name: "vod".into(),
            kind: ServiceKind::Aggregate,
            substitutions: BTreeMap::from([
                ("rate".into(), "5m".into()),
                ("server".into(), "vs1".into()),
            ]),
            fragments: vec![FragmentDef {
                name: "sub".into(),
                service: "qos".into(),
                expression: "'ip=%s' % user_IpAddress".into(),
                substitutions: vec!["rate".into(), "fragSubrIp=user_IpAddress".into()],
                require_subscription: true,
                ..FragmentDef::default()
            }],
            ..ServiceDef::default()
        }
    }

    fn qos() -> ServiceDef {
        ServiceDef {
            name: "qos".into(),
            substitutions: BTreeMap::from([("burst".into(), "1m".into())]),
            ..ServiceDef::default()
        }
    }

    #[test]
    fn parameters_are_bound_by_name_or_renamed_along_the_acquisition_path() {
        let activation = Activation {
            substitutions: BTreeMap::from([("rate".into(), "20m".into())]),
            ..Activation::default()
        };
        let a = fragment_activation(
            &ctx(),
            &vod(),
            &activation,
            &vod().fragments[0],
            &qos(),
            true,
            "bng2;1;9",
        )
        .unwrap();
        assert_eq!(a.service, "qos");
        assert_eq!(
            a.substitutions,
            BTreeMap::from([
                ("rate".to_owned(), "20m".to_owned()),
                ("fragSubrIp".to_owned(), "10.0.0.5".to_owned()),
            ]),
            "rate from the activation over the default; user_IpAddress renamed fragSubrIp"
        );
        let none = fragment_activation(
            &ctx(),
            &vod(),
            &Activation::default(),
            &vod().fragments[0],
            &qos(),
            true,
            "s",
        )
        .unwrap();
        assert_eq!(
            none.substitutions["rate"], "5m",
            "the aggregate service's default"
        );
    }

    #[test]
    fn a_parameter_with_no_value_anywhere_is_an_error_unless_the_fragment_has_a_default() {
        let mut f = vod().fragments[0].clone();
        f.substitutions = vec!["burst=nowhere".into()];
        let a = fragment_activation(
            &ctx(),
            &vod(),
            &Activation::default(),
            &f,
            &qos(),
            true,
            "s",
        )
        .unwrap();
        assert!(
            !a.substitutions.contains_key("burst"),
            "qos's own default stands"
        );
        f.substitutions = vec!["level=nowhere".into()];
        let err = fragment_activation(
            &ctx(),
            &vod(),
            &Activation::default(),
            &f,
            &qos(),
            true,
            "s",
        )
        .unwrap_err();
        assert_eq!(err.parameter, "level");
        assert!(err.to_string().contains("\"nowhere\""), "{err}");
    }

    #[test]
    fn exactly_the_listed_attributes_are_propagated() {
        let activation = Activation {
            up_stream_bandwidth: Some(1000),
            down_stream_bandwidth: Some(8000),
            interim_time: Some(300),
            properties: BTreeMap::from([("a".into(), "1".into())]),
            session_volume_quota: Some(1 << 30),
            session_tag: Some("movie-7".into()),
            acct_session_id: Some("acct".into()),
            session_timeout: Some(60),
            subscription_username: Some("u".into()),
            subscription_password: Some("p".into()),
            ..Activation::default()
        };
        let a = fragment_activation(
            &ctx(),
            &vod(),
            &activation,
            &vod().fragments[0],
            &qos(),
            false,
            "bng2;1;9",
        )
        .unwrap();
        let mut keys: Vec<&str> = a.attributes.keys().copied().collect();
        keys.push("substitutions");
        let mut listed = PROPAGATED.to_vec();
        keys.sort_unstable();
        listed.sort_unstable();
        assert_eq!(keys, listed, "every propagated attribute, nothing else");
        for name in NOT_PROPAGATED {
            assert!(!a.attributes.contains_key(name), "{name}");
            assert!(
                !a.attributes.values().any(|v| v == "acct" || v == "p"),
                "{name}"
            );
        }
        assert_eq!(a.attributes["aggregateServiceName"], "vod");
        assert_eq!(a.attributes["aggregateUserIp"], "10.0.0.5");
        assert_eq!(a.attributes["aggregateFragmentIsLocal"], "false");
        assert_eq!(a.attributes["aggregateFragmentSessionId"], "bng2;1;9");
        assert_eq!(a.attributes["aggregateUserSessionId"], "bng1;1;7");
        assert_eq!(a.attributes["requireAggregateSubscription"], "true");
        assert_eq!(a.attributes["downStreamBandwidth"], "8000");
    }

    #[test]
    fn expressions_see_fields_and_substitutions() {
        let activation = Activation {
            substitutions: BTreeMap::from([("server".into(), "vs9".into())]),
            ..Activation::default()
        };
        let env = expression_env(&vod(), &activation, &ctx());
        let reference = |source: &str| {
            sae_nic::evaluate_reference(&Expression::parse(source).unwrap(), &env)
                .unwrap()
                .to_string()
        };
        assert_eq!(reference("'ip=%s' % user_IpAddress"), "ip=10.0.0.5");
        assert_eq!(reference("'vr=default@' + server"), "vr=default@vs9");
        assert_eq!(
            reference("'loginName=' + loginName.upper()"),
            "loginName=ALICE@ISP.EXAMPLE"
        );
    }

    #[test]
    fn a_substitution_read_by_a_reference_expression_cannot_be_modified() {
        let mut agg = vod();
        agg.fragments[0].expression = "'vr=default@' + server".into();
        let err = check_modification(&agg, &["server".into()]).unwrap_err();
        assert!(
            err.contains("\"server\"") && err.contains("\"sub\""),
            "{err}"
        );
        assert!(check_modification(&agg, &["rate".into()]).is_ok());
    }
}
