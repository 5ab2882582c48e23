//! `sae-nic`: the network information collector of the SAE cluster.
//!
//! It answers "which SAE node, and which subscriber session, does this subscriber reference
//! name?" for the management API (any node acts on any subscriber) and for aggregate services
//! (fragments live on sessions anywhere in the cluster). The core is plain data and pure
//! functions, with no runtime, sockets or clocks:
//!
//! - [`reference`]: subscriber references (`ip=…`, `loginName=…`, `dn=…`, `interfaceName=…;
//!   router=…`, `vr=…`, `accountingId=…`, `sessionId=…` and combinations), parsed and printed;
//! - [`directory`]: the bindings nodes publish for their sessions, router owners and address
//!   pools, with the epoch rule that keeps a stale publication from overwriting a newer owner's;
//! - [`scenario`]: resolution graphs modelled on SRC's NIC configuration scenarios;
//! - [`expr`]: the safe evaluator of subscriber reference expressions (a Python subset);
//! - [`cache`]: a NIC proxy's resolution cache and the invalidations that keep it true;
//! - [`config`]: the TOML table that chooses a scenario and lists address pools.
#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod directory;
pub mod expr;
pub mod reference;
pub mod scenario;

pub use directory::{
    Applied, Attributes, Binding, Directory, NodeId, Pool, Publication, SessionKey,
};
pub use expr::{ExprError, Expression, Value};
pub use reference::{KeyKind, Reference, ReferenceError, Vr};
pub use scenario::{Match, Resolution, ResolveError, Scenario, ScenarioError};

/// Errors of the NIC library.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("expression: {0}")]
    Expression(#[from] ExprError),
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("{0}")]
    Config(String),
    /// An expression's result is not a subscriber reference.
    #[error(
        "expression {expression:?} gave {value:?}, which is not a subscriber reference: {reason}"
    )]
    NotAReference {
        expression: String,
        value: String,
        reason: String,
    },
}

/// Evaluates a subscriber reference expression and parses its result as a reference.
pub fn evaluate_reference(
    expression: &Expression,
    env: &dyn expr::Env,
) -> Result<Reference, Error> {
    let value = expression.evaluate(env)?;
    let text = match &value {
        Value::Str(s) => s.clone(),
        other => {
            return Err(Error::NotAReference {
                expression: expression.source().to_string(),
                value: other.to_string(),
                reason: format!("it is of type {}, not str", other.type_name()),
            });
        }
    };
    Reference::parse(&text).map_err(|e| Error::NotAReference {
        expression: expression.source().to_string(),
        value: text.chars().take(200).collect(),
        reason: e.message,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn env() -> BTreeMap<String, Value> {
        [
            ("loginName", "alice@isp.example"),
            ("interfaceName", "ge-0/0/0.7"),
            ("virtualRouterName", "default@bng1"),
            ("user_IpAddress", "10.0.0.7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect()
    }

    #[test]
    fn an_expression_gives_a_reference() {
        let e = Expression::parse("'interfaceName=%s;vr=%s' % (interfaceName, virtualRouterName)")
            .unwrap();
        let r = evaluate_reference(&e, &env()).unwrap();
        assert_eq!(r.to_string(), "interfaceName=ge-0/0/0.7;vr=default@bng1");
        let e = Expression::parse("'ip=' + user_IpAddress").unwrap();
        assert_eq!(
            evaluate_reference(&e, &env()).unwrap().address(),
            Some("10.0.0.7".parse().unwrap())
        );
    }

    #[test]
    fn a_result_that_is_no_reference_says_why() {
        let e = Expression::parse("len(loginName)").unwrap();
        let err = evaluate_reference(&e, &env()).unwrap_err().to_string();
        assert!(err.contains("it is of type int, not str"), "{err}");
        let e = Expression::parse("loginName").unwrap();
        let err = evaluate_reference(&e, &env()).unwrap_err().to_string();
        assert!(err.contains("not name=value"), "{err}");
        let e = Expression::parse("'ip=' + missing").unwrap();
        let err = evaluate_reference(&e, &env()).unwrap_err().to_string();
        assert!(err.contains("name 'missing' is not defined"), "{err}");
    }
}
