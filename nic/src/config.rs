//! The resolution part of the NIC's configuration, shared by the node's embedded NIC (`[nic]`)
//! and the standalone `sae-nic` service: which scenario resolves references, the address pools
//! of the virtual routers, and any scenarios an operator defines.
//!
//! ```toml
//! scenario = "OnePopSharedIp"
//!
//! [[pools]]
//! prefix = "10.2.0.0/16"
//! vr = "cust1@bng2"
//!
//! [scenarios]
//! Mine = ["dn > session > sae", "ip > pool > vr > sae"]
//! ```

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::Deserialize;

use crate::Error;
use crate::directory::Pool;
use crate::scenario::Scenario;

/// The scenario a NIC resolves with unless configured otherwise.
pub const DEFAULT_SCENARIO: &str = "default";

/// The resolution settings as written in TOML.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolutionToml {
    /// A built-in scenario (`default`, `OnePop`, `OnePopSharedIp`, `OnePopLogin`, `OnePopDn`,
    /// `OnePopPrefixIp`, `OnePopAcctId`, `Interface`) or one of `scenarios`.
    #[serde(default = "default_scenario")]
    pub scenario: String,
    /// Address pools of virtual routers, beside those nodes publish.
    #[serde(default)]
    pub pools: Vec<PoolToml>,
    /// Scenarios defined here: name → chains.
    #[serde(default)]
    pub scenarios: BTreeMap<String, Vec<String>>,
}

impl Default for ResolutionToml {
    fn default() -> Self {
        ResolutionToml {
            scenario: default_scenario(),
            pools: Vec::new(),
            scenarios: BTreeMap::new(),
        }
    }
}

fn default_scenario() -> String {
    DEFAULT_SCENARIO.to_string()
}

/// One `[[pools]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolToml {
    pub prefix: String,
    pub vr: String,
}

/// Validated resolution settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub scenario: Scenario,
    pub pools: Vec<Pool>,
}

impl Default for Resolution {
    fn default() -> Self {
        ResolutionToml::default()
            .validate("nic")
            .expect("the defaults are valid")
    }
}

impl ResolutionToml {
    /// Checks every field; `table` names where this table sits, for the messages.
    pub fn validate(&self, table: &str) -> Result<Resolution, Error> {
        for name in self.scenarios.keys() {
            Scenario::new(name, &self.scenarios[name])?;
        }
        let scenario = Scenario::named(&self.scenario, &self.scenarios)?;
        let pools = self
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let field = |what: &str, e: &dyn std::fmt::Display| {
                    Error::Config(format!("{table}.pools[{i}].{what}: {e}"))
                };
                let prefix: IpNet = p.prefix.parse().map_err(|e| field("prefix", &e))?;
                if prefix != prefix.trunc() {
                    return Err(field(
                        "prefix",
                        &format!("{prefix} has bits set beyond its length"),
                    ));
                }
                let vr = p.vr.parse().map_err(|e| field("vr", &e))?;
                Ok(Pool { prefix, vr })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Resolution { scenario, pools })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Resolution, String> {
        let toml: ResolutionToml = toml::from_str(text).map_err(|e| e.to_string())?;
        toml.validate("nic").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_a_full_table() {
        let r = parse("").unwrap();
        assert_eq!(r.scenario.name(), "default");
        assert!(r.pools.is_empty());
        let r = parse(
            r#"
            scenario = "Mine"
            pools = [{ prefix = "10.2.0.0/16", vr = "cust1@BNG2" }]
            [scenarios]
            Mine = ["dn > session > sae", "ip > pool > vr > sae"]
            "#,
        )
        .unwrap();
        assert_eq!(r.scenario.name(), "Mine");
        assert_eq!(r.pools[0].vr.to_string(), "cust1@bng2");
    }

    #[test]
    fn bad_tables_name_the_field() {
        assert!(
            parse("scenery = 1")
                .unwrap_err()
                .contains("unknown field `scenery`")
        );
        assert!(
            parse(r#"scenario = "TwoPop""#)
                .unwrap_err()
                .contains("scenario TwoPop: unknown")
        );
        let e = parse(r#"pools = [{ prefix = "10.2.0.1/16", vr = "a@b" }]"#).unwrap_err();
        assert!(
            e.contains("nic.pools[0].prefix: 10.2.0.1/16 has bits set"),
            "{e}"
        );
        let e = parse(r#"pools = [{ prefix = "10.2.0.0/16", vr = "nope" }]"#).unwrap_err();
        assert!(e.contains("nic.pools[0].vr:"), "{e}");
        let e = parse(r#"pools = [{ prefix = "ten", vr = "a@b" }]"#).unwrap_err();
        assert!(e.contains("nic.pools[0].prefix:"), "{e}");
        let e = parse("[scenarios]\nX = [\"ip > sae\"]").unwrap_err();
        assert!(
            e.contains("scenario X: chain \"ip > sae\": no step ip > sae"),
            "{e}"
        );
    }
}
