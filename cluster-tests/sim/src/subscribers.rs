//! Where subscribers come from: templates (`--subscribers N`) and scenario files
//! (`--scenario FILE`).
//!
//! Scenario file (TOML): a list of `[[subscriber]]` tables, logged in in file order at
//! `--rate`, each with optional steps timed from the moment its login succeeded:
//!
//! ```toml
//! [[subscriber]]
//! user = "alice@example.net"
//! ip = "10.1.0.1"                 # optional: --ip-base + its index
//! nas_port_id = "ge-1/0/0.100"    # optional: --nas-port-template with its index
//! steps = [
//!   { after = 5, action = "interim" },   # ACR INTERIM
//!   { after = 30, action = "logout" },   # STR, Termination-Cause 1
//! ]
//!
//! [[subscriber]]
//! user = "bob@example.net"
//! ```
//!
//! Actions: `logout` (STR cause 1), `idle` (STR cause 14), `acct-start`, `interim`,
//! `acct-stop` (ACRs), `touch` (activity), `srq` (an SRQ to the active SAE). `after` is in
//! seconds (fractions allowed).

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::router_state::LoginSpec;

/// How generated subscribers look; `{n}` stands for the subscriber's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    pub user: String,
    /// Subscriber `n` gets this address plus `n`.
    pub ip_base: Ipv4Addr,
    pub nas_port_id: String,
}

impl Default for Templates {
    fn default() -> Self {
        Templates {
            user: "user{n}@example.net".into(),
            ip_base: Ipv4Addr::new(10, 0, 0, 1),
            nas_port_id: "ge-0/0/0.{n}".into(),
        }
    }
}

impl Templates {
    /// Subscriber number `n`.
    pub fn spec(&self, n: u64) -> LoginSpec {
        LoginSpec {
            user: self.user.replace("{n}", &n.to_string()),
            ip: self.ip(n),
            nas_port_id: self.nas_port_id.replace("{n}", &n.to_string()),
            n: Some(n),
        }
    }

    /// The address of subscriber `n` (wrapping around the IPv4 space).
    pub fn ip(&self, n: u64) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.ip_base).wrapping_add(n as u32))
    }
}

/// What a scenario step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepAction {
    Logout,
    Idle,
    AcctStart,
    Interim,
    AcctStop,
    Touch,
    Srq,
}

/// A timed step of one subscriber.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Seconds after the subscriber's successful login.
    pub after: f64,
    pub action: StepAction,
}

impl Step {
    /// `after` as a duration (negative or not finite: zero).
    pub fn delay(&self) -> Duration {
        Duration::try_from_secs_f64(self.after).unwrap_or_default()
    }
}

/// One subscriber of a scenario.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSubscriber {
    pub user: String,
    pub ip: Option<Ipv4Addr>,
    pub nas_port_id: Option<String>,
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// A scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default, rename = "subscriber")]
    pub subscribers: Vec<ScenarioSubscriber>,
}

impl Scenario {
    /// Parses scenario text.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        for sub in &s.subscribers {
            if let Some(bad) = sub
                .steps
                .iter()
                .find(|st| !st.after.is_finite() || st.after < 0.0)
            {
                return Err(format!(
                    "{}: step `after` must be a non-negative number of seconds, not {}",
                    sub.user, bad.after
                ));
            }
        }
        Ok(s)
    }

    /// Reads a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Scenario::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The login of subscriber `index` (0-based), filling gaps from `templates`.
    pub fn spec(&self, index: usize, templates: &Templates) -> Option<LoginSpec> {
        let sub = self.subscribers.get(index)?;
        let n = index as u64;
        let generated = templates.spec(n);
        Some(LoginSpec {
            user: sub.user.clone(),
            ip: sub.ip.unwrap_or(generated.ip),
            nas_port_id: sub.nas_port_id.clone().unwrap_or(generated.nas_port_id),
            n: Some(n),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_number_subscribers() {
        let t = Templates::default();
        let s = t.spec(5);
        assert_eq!(s.user, "user5@example.net");
        assert_eq!(s.ip, Ipv4Addr::new(10, 0, 0, 6));
        assert_eq!(s.nas_port_id, "ge-0/0/0.5");
        assert_eq!(t.ip(255), Ipv4Addr::new(10, 0, 1, 0));
    }

    #[test]
    fn scenario_parses_and_fills_gaps() {
        let s = Scenario::parse(
            r#"
            [[subscriber]]
            user = "alice@example.net"
            ip = "10.1.0.1"
            nas_port_id = "ge-1/0/0.100"
            steps = [{ after = 0.5, action = "interim" }, { after = 3, action = "logout" }]

            [[subscriber]]
            user = "bob@example.net"
            "#,
        )
        .unwrap();
        assert_eq!(s.subscribers.len(), 2);
        assert_eq!(s.subscribers[0].steps[0].action, StepAction::Interim);
        assert_eq!(
            s.subscribers[0].steps[0].delay(),
            Duration::from_millis(500)
        );
        let t = Templates::default();
        let bob = s.spec(1, &t).unwrap();
        assert_eq!(bob.user, "bob@example.net");
        assert_eq!(bob.ip, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(bob.nas_port_id, "ge-0/0/0.1");
        assert!(s.spec(2, &t).is_none());
    }

    #[test]
    fn scenario_errors_are_reported() {
        assert!(Scenario::parse("[[subscriber]]\nuser = 1").is_err());
        assert!(Scenario::parse("[[subscriber]]\nuser = \"a\"\nextra = 1").is_err());
        assert!(
            Scenario::parse(
                "[[subscriber]]\nuser = \"a\"\nsteps = [{ after = 1, action = \"dance\" }]"
            )
            .is_err()
        );
        assert!(
            Scenario::parse(
                "[[subscriber]]\nuser = \"a\"\nsteps = [{ after = -1, action = \"logout\" }]"
            )
            .is_err()
        );
    }
}
