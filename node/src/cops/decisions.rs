//! The COPS-PR content of the node's decisions and what it reads from the PEP's reports: the
//! named decision data installing and removing a subscriber's policies (with their RFC 3483
//! usage policies) and usage feedback actions, and the usage records of an accounting report.

use bytes::Bytes;
use sae_cops::pib::{PolicyInstance, PolicySubstitution};
use sae_cops::pr::InstallDecision;
use sae_cops::usage::{FeedbackAction, UsageClass};

use crate::model::{ServiceSession, SubscriberRecord, UsageKind, UsageRecord, now_ms};

/// The stable instance id of a service's policy on a PEP (so later decisions name the same
/// instance): FNV-1a of the service name, never 0.
pub fn policy_id(service: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in service.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h & 0x7fff_ffff).max(1)
}

/// The named decision data installing a subscriber's policies on interface `interface`, with
/// an RFC 3483 usage policy (selection criteria on the policy instance + linkage to the traffic
/// usage class, reported every Accounting Timer interval) for each accounted policy.
pub fn install_decision(interface: u32, services: &[ServiceSession]) -> Result<Bytes, String> {
    use sae_cops::usage::{Linkage, SelectionCriteria, TRAFFIC_USAGE_ENTRY};
    let mut instances = Vec::new();
    for s in services {
        // Ids follow the service, so a later decision names the same instances.
        let id = policy_id(&s.service);
        let p = PolicyInstance {
            id,
            interface,
            policy_name: s.policy_name.clone(),
            template_name: s.template_name.clone(),
            accounting: s.accounting,
        };
        let policy = p.to_instance().map_err(|e| e.to_string())?;
        let policy_prid = policy.prid.clone();
        instances.push(policy);
        for (name, value) in &s.substitutions {
            let sub = PolicySubstitution {
                id: policy_id(&format!("{}\u{1f}{name}", s.service)),
                policy: id,
                name: name.clone(),
                value: value.clone(),
            };
            instances.push(sub.to_instance().map_err(|e| e.to_string())?);
        }
        if s.accounting {
            let selection = SelectionCriteria {
                id,
                target: policy_prid,
                all_instances: false,
            }
            .to_instance()
            .map_err(|e| e.to_string())?;
            let linkage = Linkage {
                id,
                selection: selection.prid.clone(),
                usage_prc: sae_cops::pr::Prid::new(TRAFFIC_USAGE_ENTRY)
                    .ok_or("traffic usage PRC")?,
                interval_count: 1,
                threshold: None,
                report_on_change: false,
                clear_on_report: false,
            }
            .to_instance()
            .map_err(|e| e.to_string())?;
            instances.push(selection);
            instances.push(linkage);
        }
    }
    sae_cops::pr::encode_install_decision(&InstallDecision(instances)).map_err(|e| e.to_string())
}

/// The named decision data removing a service's policy (and its usage policy).
pub fn remove_decision(service: &ServiceSession) -> Result<Bytes, String> {
    use sae_cops::pr::{RemoveDecision, RemoveTarget};
    use sae_cops::usage::{LINKAGE_ENTRY, SELECTION_CRITERIA_ENTRY};
    let id = policy_id(&service.service);
    let instance = |prc: &[u32]| {
        sae_cops::pr::Prid::new(prc)
            .and_then(|p| sae_cops::pr::Prid::instance_of(&p, id))
            .map(RemoveTarget::Instance)
            .ok_or_else(|| "PRID".to_owned())
    };
    let mut targets = vec![instance(sae_cops::pib::POLICY_ENTRY)?];
    if service.accounting {
        targets.push(instance(LINKAGE_ENTRY)?);
        targets.push(instance(SELECTION_CRITERIA_ENTRY)?);
    }
    sae_cops::pr::encode_remove_decision(&RemoveDecision(targets)).map_err(|e| e.to_string())
}

/// The named decision data of one usage feedback action (RFC 3483: solicit a report, suspend
/// or resume reporting or monitoring) on a request state's usage policies.
pub fn feedback_decision(action: sae_cops::usage::ActionKind) -> Result<Bytes, String> {
    use sae_cops::usage::ActionKind;
    let instance = FeedbackAction {
        id: 1,
        action,
        target: None,
        report_now: matches!(
            action,
            ActionKind::SuspendReporting | ActionKind::SuspendMonitoring
        ),
    }
    .to_instance()
    .map_err(|e| e.to_string())?;
    sae_cops::pr::encode_install_decision(&InstallDecision(vec![instance]))
        .map_err(|e| e.to_string())
}

/// What a failure report says about the policies being installed, for the session's record.
pub fn failure_detail(named: Option<&Bytes>) -> String {
    named
        .and_then(|b| sae_cops::pr::decode_outcome_report(b).ok())
        .map(|r| format!("{r:?}"))
        .unwrap_or_else(|| "failure report".into())
}

/// Usage records from an accounting RPT: each RFC 3483 usage instance names the policy
/// instance it monitors (its id is the service's [`policy_id`]).
pub fn usage_records(
    named: &Bytes,
    record: &SubscriberRecord,
    kind: UsageKind,
) -> Vec<UsageRecord> {
    use sae_cops::usage::TrafficUsage;
    let report = match sae_cops::pr::decode_accounting_report(named) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(session = %record.session_id, error = %e, "unreadable accounting report");
            return Vec::new();
        }
    };
    let time_ms = now_ms();
    report
        .0
        .iter()
        .filter_map(|pri| TrafficUsage::from_instance(pri).ok())
        .map(|u| {
            let id = u.selected.instance_id();
            let policy_name = record
                .services
                .iter()
                .find(|s| policy_id(&s.service) == id)
                .map(|s| s.policy_name.clone())
                .unwrap_or_else(|| u.selected.to_string());
            UsageRecord {
                id: 0,
                session_id: record.session_id.clone(),
                user_name: record.user_name.clone(),
                router: record.router.clone(),
                policy_name,
                kind,
                record_number: u.id,
                input_octets: u.octets,
                output_octets: 0,
                input_packets: u.packets,
                output_packets: 0,
                time_ms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_ids_are_stable_and_non_zero() {
        assert_eq!(policy_id("gold"), policy_id("gold"));
        assert_ne!(policy_id("gold"), policy_id("video"));
        assert!(policy_id("") > 0);
    }
}
