//! The command line of `saectl` (clap derive): global options, the command tree and its help.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sae_proto::v1::SubscriberRef;

use crate::request::{KeyValue, parse_client_type, parse_handle, parse_key_value, parse_ref};

/// The management API address used when neither `--server` nor `SAECTL_SERVER` is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// Exit statuses, shown at the end of `saectl --help`.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0   success
  1   any other failure: the server failed (INTERNAL, UNAVAILABLE, UNIMPLEMENTED, ...), no
      answer within --timeout, the router refused the change (its Result-Code is printed),
      or `health` got another status than SERVING
  2   the command line is wrong, or the server refused the request: NOT_FOUND,
      INVALID_ARGUMENT, FAILED_PRECONDITION (e.g. a REF matching several sessions)
  69  the server cannot be reached

Errors go to stderr as `saectl: CODE: message` (CODE is the gRPC status code).";

/// How a subscriber is named on the command line, shown in the help of the subscriber
/// commands.
pub const REF_HELP: &str = "\
REF names one subscriber session:
  session=ID    by Diameter Session-Id
  user=NAME     by User-Name
  ip=A.B.C.D    by Framed-IP-Address
  port=ID       by NAS-Port-Id
or, resolved through the NIC (any node finds a subscriber any node serves), a subscriber
reference: ip= (IPv4 or IPv6 address, or prefix), loginName=, primaryUserName=, dn=,
interfaceName=...;router=... (or ;vr=...), vr=vrname@host, accountingId=, sessionId=, and
combinations such as ip=10.0.0.5;vr=cust1@bng2 (values with ';' in double quotes).
A bare value is a Session-Id when it contains ';', an IP address when it is an IPv4 address,
and a user name otherwise. A session held by another node is acted on there. A reference
matching several sessions is refused (exit 2).";

/// Command-line client of the SAE management API (sae.v1.Management).
#[derive(Debug, Parser)]
#[command(name = "saectl", version, about, after_help = EXIT_STATUS_HELP)]
pub struct Cli {
    /// Management API of the SAE node (http://HOST:PORT; a bare HOST:PORT means http).
    #[arg(
        long,
        global = true,
        env = "SAECTL_SERVER",
        default_value = DEFAULT_SERVER,
        value_name = "URL"
    )]
    pub server: String,
    /// Machine output: the response as JSON (streams: one JSON object per line).
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up connecting, or waiting for an answer, after this many seconds.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value = "30",
        value_parser = parse_timeout
    )]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Node identity, uptime, session and usage counts, and the connected routers.
    Status,
    /// The service catalog: the policies a subscriber can have.
    #[command(subcommand, visible_alias = "services")]
    Service(ServiceCommand),
    /// Subscriber rules: which services a subscriber gets at login.
    #[command(subcommand, visible_alias = "rules")]
    Rule(RuleCommand),
    /// Subscriber sessions and their services.
    #[command(subcommand, visible_aliases = ["subscribers", "sub"], after_help = REF_HELP)]
    Subscriber(SubscriberCommand),
    /// Usage records kept by the node.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// The routers (Diameter peers) of the node.
    #[command(subcommand, visible_alias = "routers")]
    Router(RouterCommand),
    /// Session events as they happen, one line each, until interrupted (Ctrl-C).
    Events(EventsArgs),
    /// Aggregate service sessions this node runs, with their fragments.
    #[command(subcommand)]
    Aggregate(AggregateCommand),
    /// COPS: the connected PEPs, call admission budgets and usage feedback (RFC 3483).
    #[command(subcommand)]
    Cops(CopsCommand),
    /// The cluster: members, leader and term, and which node owns each router (without a
    /// subcommand: `cluster status`).
    Cluster(ClusterArgs),
    /// Whether the node serves (gRPC health check): prints SERVING and exits 0, or prints the
    /// status and exits 1. For container health checks.
    Health(HealthArgs),
    /// The NIC: which node and session a subscriber reference names, and the bindings the
    /// nodes publish.
    #[command(subcommand)]
    Nic(NicCommand),
}

#[derive(Debug, Subcommand)]
pub enum NicCommand {
    /// The nodes and sessions a subscriber reference names (`ip=10.0.0.5`,
    /// `loginName=alice@isp.example`, `dn=...`, `interfaceName=...;router=...`, `vr=...`,
    /// `accountingId=...`, `sessionId=...`, combinations joined by ';').
    Resolve {
        /// The subscriber reference.
        reference: String,
    },
    /// The bindings of the node's NIC (every node's sessions), by router and Session-Id.
    Bindings {
        /// Only the bindings this subscriber reference names.
        #[arg(long, value_name = "REF")]
        key: Option<String>,
        /// At most this many (node default 100).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10000))]
        limit: Option<u32>,
    },
    /// Evaluates a subscriber reference expression (a Python subset: literals, + and %
    /// formatting, comparisons, and/or/not, conditionals, indexing, slicing, str(), int(),
    /// len(), lower(), split(), ...) over a subscriber's fields (loginName, userName, domain,
    /// interfaceName, virtualRouterName, ...) and substitutions, and resolves the reference it
    /// gives.
    Eval {
        /// The expression, e.g. "'interfaceName=%s;vr=%s' % (interfaceName, virtualRouterName)".
        expression: String,
        /// Whose fields it reads (see `saectl subscriber --help` for REF).
        #[arg(long, value_name = "REF", value_parser = parse_ref)]
        subscriber: Option<SubscriberRef>,
        /// A substitution value (repeatable).
        #[arg(long = "sub", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        substitutions: Vec<KeyValue>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Every service of the catalog.
    #[command(visible_alias = "ls")]
    List,
    /// One service.
    Get {
        /// Service name.
        name: String,
    },
    /// Create or replace a service: options left out are empty (the node's defaults apply).
    Put(ServicePutArgs),
    /// Remove a service from the catalog.
    #[command(visible_alias = "rm")]
    Delete {
        /// Service name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct ServicePutArgs {
    /// Service name (with --file: store only the entry of that name).
    #[arg(required_unless_present = "file")]
    pub name: Option<String>,
    /// Juniper-Policy-Name sent to the router (default: the service name).
    #[arg(long, value_name = "NAME", conflicts_with = "file")]
    pub policy_name: Option<String>,
    /// Juniper-Template-Name of the policy definition (default: the router's own policy).
    #[arg(long, value_name = "NAME", conflicts_with = "file")]
    pub template: Option<String>,
    /// A template substitution and its default value (repeatable).
    #[arg(
        long = "sub",
        value_name = "KEY=VALUE",
        value_parser = parse_key_value,
        conflicts_with = "file"
    )]
    pub substitutions: Vec<KeyValue>,
    /// Ask the router to collect statistics for the policy (Juniper-Acct-Collect).
    #[arg(long, conflicts_with = "file")]
    pub accounting: bool,
    /// Free text.
    #[arg(long, value_name = "TEXT", conflicts_with = "file")]
    pub description: Option<String>,
    /// An aggregate service: installs no policy, activates its --fragment's.
    #[arg(long, conflicts_with = "file")]
    pub aggregate: bool,
    /// A fragment of the aggregate (repeatable), as a TOML inline table: `{name = "q1",
    /// service = "qos", expression = "'ip=%s' % user_IpAddress", mandatory = true,
    /// redundancy_group = "g", require_subscription = false, substitutions = ["rate",
    /// "fragIp=user_IpAddress"]}`.
    #[arg(
        long,
        value_name = "TABLE",
        conflicts_with = "file",
        requires = "aggregate"
    )]
    pub fragment: Vec<String>,
    /// A normal service that refuses every modification asked by an aggregate.
    #[arg(long, conflicts_with = "file")]
    pub deny_modification: bool,
    /// Read the services from the `[[service]]` entries of a TOML file (fields: name,
    /// policy_name, template_name, substitutions, accounting, description, kind, fragment,
    /// deny_modification), as in the node's configuration file; every entry is stored unless
    /// NAME is given.
    #[arg(long, value_name = "FILE.toml")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Every rule, in the node's order.
    #[command(visible_alias = "ls")]
    List,
    /// Create or replace a rule. Rules are tried by ascending priority; the first whose every
    /// given pattern matches wins. Patterns are globs ('*', '?') compared without regard to case;
    /// a pattern left out matches everything.
    Put(Box<RulePutArgs>),
    /// Remove a rule.
    #[command(visible_alias = "rm")]
    Delete {
        /// Rule name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct RulePutArgs {
    /// Rule name (with --file: store only the entry of that name).
    #[arg(required_unless_present = "file")]
    pub name: Option<String>,
    /// Lower priorities are tried first.
    #[arg(
        long,
        value_name = "N",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub priority: Option<u32>,
    /// Glob matching User-Name.
    #[arg(long, value_name = "GLOB", conflicts_with = "file")]
    pub login_name: Option<String>,
    /// Glob matching the part of User-Name after '@'.
    #[arg(long, value_name = "GLOB", conflicts_with = "file")]
    pub domain: Option<String>,
    /// Glob matching NAS-Port-Id (the subscriber's interface).
    #[arg(long, value_name = "GLOB", conflicts_with = "file")]
    pub nas_port_id: Option<String>,
    /// Glob matching the router's Origin-Host.
    #[arg(long, value_name = "GLOB", conflicts_with = "file")]
    pub router: Option<String>,
    /// A service activated at login (repeatable, or comma-separated).
    #[arg(
        long = "service",
        value_name = "SERVICE",
        value_delimiter = ',',
        conflicts_with = "file"
    )]
    pub services: Vec<String>,
    /// A substitution value overriding the services' defaults (repeatable).
    #[arg(
        long = "sub",
        value_name = "KEY=VALUE",
        value_parser = parse_key_value,
        conflicts_with = "file"
    )]
    pub substitutions: Vec<KeyValue>,
    /// Refuse the login instead (no services).
    #[arg(long, conflicts_with_all = ["file", "services", "substitutions"])]
    pub reject: bool,
    /// The DN assigned to the subscribers, a template naming <loginName>, <userName>,
    /// <domain>, <router>, <interfaceName> or <portId>: `uniqueID=<userName>,ou=<domain>,o=users`.
    #[arg(long, value_name = "TEMPLATE", conflicts_with = "file")]
    pub subscriber_dn: Option<String>,
    /// The retailer DN assigned to the subscribers, a template.
    #[arg(long, value_name = "TEMPLATE", conflicts_with = "file")]
    pub retailer_dn: Option<String>,
    /// The accounting id assigned to the subscribers, a template (default: the login name).
    #[arg(long, value_name = "TEMPLATE", conflicts_with = "file")]
    pub accounting_id: Option<String>,
    /// A service the subscribers are subscribed to (repeatable, or comma-separated).
    #[arg(
        long = "subscription",
        value_name = "SERVICE",
        value_delimiter = ',',
        conflicts_with = "file"
    )]
    pub subscriptions: Vec<String>,
    /// The subscribers' virtual router name on their router (default: `default`).
    #[arg(long, value_name = "VRNAME", conflicts_with = "file")]
    pub virtual_router: Option<String>,
    /// Read the rules from the `[[rule]]` entries of a TOML file (fields: name, priority
    /// (default 0), login_name, domain, nas_port_id, router, services, substitutions, reject,
    /// subscriber_dn, retailer_dn, accounting_id, subscriptions, virtual_router), as in the
    /// node's configuration file; every entry is stored unless NAME is given.
    #[arg(long, value_name = "FILE.toml")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SubscriberCommand {
    /// Subscriber sessions, filtered (every filter left out matches everything) and paged.
    #[command(visible_alias = "ls")]
    List(SubscriberListArgs),
    /// One subscriber session with its services.
    #[command(after_help = REF_HELP)]
    Get {
        /// The subscriber (see below).
        #[arg(value_name = "REF", value_parser = parse_ref)]
        subscriber: SubscriberRef,
    },
    /// Activate a service for a subscriber (PPR with Juniper-Policy-Install); prints the
    /// router's answer.
    #[command(after_help = REF_HELP)]
    Activate {
        /// The subscriber (see below).
        #[arg(value_name = "REF", value_parser = parse_ref)]
        subscriber: SubscriberRef,
        /// Service name.
        service: String,
        /// Override a substitution default of the service (repeatable).
        #[arg(long = "sub", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        substitutions: Vec<KeyValue>,
    },
    /// Deactivate a service of a subscriber (PPR with Juniper-Policy-Remove); prints the
    /// router's answer.
    #[command(after_help = REF_HELP)]
    Deactivate {
        /// The subscriber (see below).
        #[arg(value_name = "REF", value_parser = parse_ref)]
        subscriber: SubscriberRef,
        /// Service name.
        service: String,
    },
    /// Log a subscriber out (ASR to the router); prints the router's answer.
    #[command(after_help = REF_HELP)]
    Logout {
        /// The subscriber (see below).
        #[arg(value_name = "REF", value_parser = parse_ref)]
        subscriber: SubscriberRef,
    },
    /// Ask the router for the subscriber's statistics now; prints the records it returned.
    #[command(after_help = REF_HELP)]
    CollectUsage {
        /// The subscriber (see below).
        #[arg(value_name = "REF", value_parser = parse_ref)]
        subscriber: SubscriberRef,
    },
}

#[derive(Debug, Args)]
pub struct SubscriberListArgs {
    /// Glob matching User-Name.
    #[arg(long, value_name = "GLOB")]
    pub user: Option<String>,
    /// Framed-IP-Address.
    #[arg(long, value_name = "A.B.C.D")]
    pub ip: Option<Ipv4Addr>,
    /// Glob matching NAS-Port-Id.
    #[arg(long, value_name = "GLOB")]
    pub nas_port_id: Option<String>,
    /// Origin-Host of the router holding the session.
    #[arg(long, value_name = "HOST")]
    pub router: Option<String>,
    /// Only subscribers with this service.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// At most this many per page (node default 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: Option<u32>,
    /// Start at this page (the token printed after the previous page).
    #[arg(long, value_name = "TOKEN", conflicts_with = "all")]
    pub page_token: Option<String>,
    /// Follow the page tokens and print every page.
    #[arg(long)]
    pub all: bool,
    /// Every node's subscribers, with the node that serves each.
    #[arg(long)]
    pub cluster: bool,
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Usage records, oldest first.
    #[command(visible_alias = "ls")]
    List(UsageListArgs),
}

#[derive(Debug, Args)]
pub struct UsageListArgs {
    /// Only records of this Session-Id.
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Only records of this User-Name.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Only records of this Juniper-Policy-Name.
    #[arg(long, value_name = "NAME")]
    pub policy: Option<String>,
    /// Only records with an id above this one.
    #[arg(long, value_name = "ID")]
    pub after: Option<u64>,
    /// At most this many records (node default 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum RouterCommand {
    /// Ask a router to replay its sessions (SRQ); sessions it does not replay within the resync
    /// window are ended.
    Resync {
        /// The router's Origin-Host.
        host: String,
    },
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events of this Session-Id.
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Only events of this User-Name.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AggregateCommand {
    /// One row per aggregate session: its service, subscriber session, state and fragments.
    #[command(visible_alias = "ls")]
    List,
    /// One aggregate session with each fragment's reference, target and state.
    Get {
        /// The aggregate session's id (as in `aggregate list`).
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum CopsCommand {
    /// The PEPs connected to this node: one row per PEPID and client type.
    #[command(visible_alias = "conns")]
    Connections,
    /// Call admission budgets (per PEP and per realm), their limits and their current use.
    Budgets,
    /// Usage feedback (RFC 3483): ask a PEP for a report now, or suspend or resume its
    /// reporting or monitoring.
    ///
    /// The decision goes to one request state (--handle) or to every one the PEP holds; prints
    /// how many request states it was sent for.
    Usage(CopsUsageArgs),
}

#[derive(Debug, Args)]
pub struct CopsUsageArgs {
    /// What to ask the PEP.
    #[arg(value_enum)]
    pub action: UsageAction,
    /// The PEP's PEPID (as in `saectl cops connections`).
    #[arg(long, value_name = "ID")]
    pub pepid: String,
    /// The COPS client type, hex (0x800B) or decimal (32779).
    #[arg(long, value_name = "TYPE", value_parser = parse_client_type)]
    pub client_type: u16,
    /// Only this request state: its COPS handle in hex (e.g. 0000002a); default: every request
    /// state of the PEP.
    #[arg(long, value_name = "HEX", value_parser = parse_handle)]
    pub handle: Option<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: Option<ClusterCommand>,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// This node's id, the leader and term, the members and the router owners (the default).
    Status,
    /// Only the router owners: owner, epoch, lease and Last-Origin-Host of each router.
    Routers,
    /// Move a router to another node: a new epoch in which that node owns it (once the previous
    /// owner's lease is over) and resynchronizes it with SRQ; prints the new owner.
    Move {
        /// The router: its Diameter Origin-Host, or `cops:PEPID` for a COPS PEP.
        router: String,
        /// The id of the node to own it (as in `saectl cluster`).
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        node_id: u64,
    },
    /// Remove a node from the cluster; its routers move to live nodes.
    #[command(visible_alias = "rm")]
    Remove {
        /// The id of the node to remove (as in `saectl cluster`).
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        node_id: u64,
    },
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The gRPC service to check (e.g. sae.v1.Management); default: the whole server.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub service: String,
}

/// The usage feedback actions of `cops usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UsageAction {
    /// Report usage now.
    Solicit,
    /// Stop sending usage reports (a last report is asked for).
    SuspendReporting,
    /// Send usage reports again.
    ResumeReporting,
    /// Stop monitoring usage (a last report is asked for).
    SuspendMonitoring,
    /// Monitor usage again.
    ResumeMonitoring,
}

impl UsageAction {
    /// The action's name in `ControlUsageRequest.action`.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageAction::Solicit => "solicit",
            UsageAction::SuspendReporting => "suspend-reporting",
            UsageAction::ResumeReporting => "resume-reporting",
            UsageAction::SuspendMonitoring => "suspend-monitoring",
            UsageAction::ResumeMonitoring => "resume-monitoring",
        }
    }
}

/// `--timeout`: positive seconds, fractions allowed.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "{s:?}: expected more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_have_defaults_and_go_anywhere() {
        let cli = Cli::try_parse_from(["saectl", "status"]).unwrap();
        assert_eq!(cli.server, DEFAULT_SERVER);
        assert!(!cli.json);
        assert_eq!(cli.timeout, Duration::from_secs(30));

        let cli = Cli::try_parse_from([
            "saectl",
            "service",
            "list",
            "--json",
            "--server",
            "http://sae:1",
            "--timeout",
            "0.5",
        ])
        .unwrap();
        assert_eq!(cli.server, "http://sae:1");
        assert!(cli.json);
        assert_eq!(cli.timeout, Duration::from_millis(500));
    }

    #[test]
    fn bad_timeouts_are_usage_errors() {
        for bad in ["0", "-1", "soon", "1e9"] {
            let arg = format!("--timeout={bad}");
            let e = Cli::try_parse_from(["saectl", &arg, "status"]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{bad}");
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn service_put_takes_flags_or_a_file() {
        let e = Cli::try_parse_from(["saectl", "service", "put"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        let e = Cli::try_parse_from([
            "saectl",
            "service",
            "put",
            "gold",
            "--file",
            "f.toml",
            "--accounting",
        ])
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
        assert!(Cli::try_parse_from(["saectl", "service", "put", "--file", "f.toml"]).is_ok());
    }

    #[test]
    fn rule_put_needs_a_priority_and_reject_excludes_services() {
        let e = Cli::try_parse_from(["saectl", "rule", "put", "r1"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        let e = Cli::try_parse_from([
            "saectl",
            "rule",
            "put",
            "r1",
            "--priority",
            "1",
            "--reject",
            "--service",
            "gold",
        ])
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn bad_refs_and_substitutions_are_usage_errors() {
        let e = Cli::try_parse_from(["saectl", "subscriber", "get", "ip=10.0.0"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert!(e.to_string().contains("not an IP address or prefix"), "{e}");
        let e = Cli::try_parse_from([
            "saectl",
            "subscriber",
            "activate",
            "alice",
            "gold",
            "--sub",
            "rate",
        ])
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert!(e.to_string().contains("KEY=VALUE"), "{e}");
    }

    #[test]
    fn help_documents_refs_and_exit_statuses() {
        let mut cmd = Cli::command();
        let help = cmd.render_long_help().to_string();
        assert!(help.contains("69  the server cannot be reached"), "{help}");
        let sub = cmd.find_subcommand_mut("subscriber").unwrap();
        let get = sub.find_subcommand_mut("get").unwrap();
        let help = get.render_long_help().to_string();
        assert!(help.contains("A bare value is a Session-Id"), "{help}");
    }

    #[test]
    fn page_size_and_limit_are_bounded() {
        for args in [
            &["saectl", "subscriber", "list", "--page-size", "0"][..],
            &["saectl", "subscriber", "list", "--page-size", "1001"][..],
            &["saectl", "usage", "list", "--limit", "5000"][..],
        ] {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{args:?}");
        }
        let e = Cli::try_parse_from(["saectl", "subscriber", "list", "--all", "--page-token", "x"])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn cops_usage_actions_are_the_node_names() {
        for action in UsageAction::value_variants() {
            let name = action.to_possible_value().unwrap();
            assert_eq!(name.get_name(), action.as_str());
        }
        let cli = Cli::try_parse_from([
            "saectl",
            "cops",
            "usage",
            "suspend-monitoring",
            "--pepid",
            "sbc1",
            "--client-type",
            "0x800B",
        ])
        .unwrap();
        let Command::Cops(CopsCommand::Usage(args)) = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(args.action, UsageAction::SuspendMonitoring);
        assert_eq!(args.client_type, 0x800B);
        assert_eq!(args.handle, None);
    }

    #[test]
    fn cluster_defaults_to_status_and_checks_node_ids() {
        let cli = Cli::try_parse_from(["saectl", "cluster"]).unwrap();
        let Command::Cluster(args) = cli.command else {
            panic!("{cli:?}")
        };
        assert!(args.command.is_none());
        let cli = Cli::try_parse_from(["saectl", "cluster", "move", "mx1", "2"]).unwrap();
        let Command::Cluster(ClusterArgs {
            command: Some(ClusterCommand::Move { router, node_id }),
        }) = cli.command
        else {
            panic!("{cli:?}")
        };
        assert_eq!((router.as_str(), node_id), ("mx1", 2));
        for args in [
            &["saectl", "cluster", "move", "mx1", "0"][..],
            &["saectl", "cluster", "move", "mx1", "-1"][..],
            &["saectl", "cluster", "remove", "x"][..],
        ] {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
        let e = Cli::try_parse_from(["saectl", "cluster", "move", "mx1"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        let e = Cli::try_parse_from(["saectl", "cluster", "frobnicate"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn health_checks_the_whole_server_by_default() {
        let cli = Cli::try_parse_from(["saectl", "--server", "127.0.0.1:50051", "health"]).unwrap();
        let Command::Health(args) = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(args.service, "");
        assert_eq!(cli.server, "127.0.0.1:50051");
    }

    #[test]
    fn cops_usage_needs_a_known_action_a_pep_and_a_client_type() {
        let base = ["saectl", "cops", "usage"];
        for (args, kind) in [
            (
                &["frobnicate", "--pepid", "p", "--client-type", "1"][..],
                ErrorKind::InvalidValue,
            ),
            (
                &["solicit", "--client-type", "1"][..],
                ErrorKind::MissingRequiredArgument,
            ),
            (
                &["solicit", "--pepid", "p"][..],
                ErrorKind::MissingRequiredArgument,
            ),
            (
                &["solicit", "--pepid", "p", "--client-type", "0x10000"][..],
                ErrorKind::ValueValidation,
            ),
            (
                &[
                    "solicit",
                    "--pepid",
                    "p",
                    "--client-type",
                    "1",
                    "--handle",
                    "abc",
                ][..],
                ErrorKind::ValueValidation,
            ),
        ] {
            let all: Vec<&str> = base.iter().chain(args).copied().collect();
            let e = Cli::try_parse_from(&all).unwrap_err();
            assert_eq!(e.kind(), kind, "{args:?}: {e}");
            assert_eq!(e.exit_code(), 2);
        }
    }
}
