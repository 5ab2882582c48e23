//! RFC 3483 usage feedback over COPS-PR: the framework classes as typed values that travel as
//! `<PRID> <EPD>` pairs in DEC and RPT, and a sans-IO report scheduler.
//!
//! RFC 3483 §2 splits a usage policy into a selection criteria instance (which objects are
//! monitored), a usage feedback class (which metrics; its instances carry the values) and a
//! linkage binding the two with the reporting rules (interval count, threshold, on-change).
//! The PDP sends these in a DEC, the PEP reports usage instances in RPT type 3 (accounting),
//! and the PDP may solicit, suspend and resume.
//!
//! RFC 3483 is a framework and assigns no OIDs, and the framework PIB (RFC 3318) has no usage
//! classes, so every usage PRC here lives under [`OURS_USAGE_PIB`], the project's own arc.
//!
//! Nothing here reads a clock: every time-dependent call takes `now`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::pr::{Cperr, CperrCode, Epd, EpdValue, PrInstance, Prid};

// ---------------------------------------------------------------------------------------------
// OIDs
// ---------------------------------------------------------------------------------------------

/// frameworkPib ::= { pib 2 }, pib ::= { mgmt 2 } (RFC 3318, RFC 3159). Not ours.
pub const FRAMEWORK_PIB: &[u32] = &[1, 3, 6, 1, 2, 2, 2];

/// zeroDotZero (0.0, RFC 2578): a reference that points nowhere ("none" / "all").
pub const ZERO_DOT_ZERO: &[u32] = &[0, 0];

/// **Ours.** Root of the project's usage-feedback PIB. It sits under IANA's documentation
/// enterprise number 32473 (RFC 5612) as a placeholder until the project registers its own
/// private enterprise number; change it (and only it) before interworking with other PDPs.
pub const OURS_USAGE_PIB: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 3483];

macro_rules! ours_entry {
    ($(#[$m:meta])* $name:ident = $table:literal) => {
        $(#[$m])*
        pub const $name: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 3483, 1, $table, 1];
    };
}

ours_entry!(
    /// **Ours.** Selection criteria entry (`OURS_USAGE_PIB.1.1.1`).
    SELECTION_CRITERIA_ENTRY = 1
);
ours_entry!(
    /// **Ours.** Linkage entry (`OURS_USAGE_PIB.1.2.1`).
    LINKAGE_ENTRY = 2
);
ours_entry!(
    /// **Ours.** Threshold entry (`OURS_USAGE_PIB.1.3.1`).
    THRESHOLD_ENTRY = 3
);
ours_entry!(
    /// **Ours.** Feedback action entry: solicit, suspend, resume (`OURS_USAGE_PIB.1.4.1`).
    ACTION_ENTRY = 4
);
ours_entry!(
    /// **Ours.** Traffic usage entry: packets and octets (`OURS_USAGE_PIB.1.5.1`).
    TRAFFIC_USAGE_ENTRY = 5
);
ours_entry!(
    /// **Ours.** Selection/usage combination capability entry (`OURS_USAGE_PIB.1.6.1`).
    SEL_USAGE_COMBO_ENTRY = 6
);

/// An OID from one of the constants of this module (never from input).
fn oid(arcs: &'static [u32]) -> Prid {
    Prid::new(arcs).expect("the OID constants of this module are valid")
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a `<PRID> <EPD>` pair is not a valid usage-framework instance.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// The PRID is not under the class's PRC.
    #[error("PRID {0} is not an instance of this class")]
    WrongPrc(Prid),
    /// Instance id 0 or an instance-id attribute that differs from the PRID's last arc.
    #[error("instance id mismatch or zero")]
    BadInstance,
    /// Fewer attributes than the class has.
    #[error("{got} attributes, the class has {expected}")]
    TooFewAttrs { expected: usize, got: usize },
    /// An attribute with the wrong ASN.1 type.
    #[error("attribute {index} has the wrong type")]
    WrongType { index: usize },
    /// An attribute with the right type but a value the class does not allow.
    #[error("attribute {index} has an invalid value")]
    BadValue { index: usize },
    /// A value that cannot be expressed as a PRID (e.g. instance id overflow).
    #[error("cannot build the PRID")]
    Prid,
}

impl UsageError {
    /// The CPERR a PEP reports for the instance (with its PRID as ErrorPRID), RFC 3084 §4.5.
    pub fn cperr(&self) -> Cperr {
        let code = match self {
            Self::WrongPrc(_) => CperrCode::UnknownPrc,
            Self::BadInstance | Self::Prid => CperrCode::PriInstanceInvalid,
            Self::TooFewAttrs { .. } => CperrCode::TooFewAttrs,
            Self::WrongType { .. } => CperrCode::InvalidAttrType,
            Self::BadValue { .. } => CperrCode::AttrValueInvalid,
        };
        Cperr { code, sub_code: 0 }
    }
}

// ---------------------------------------------------------------------------------------------
// Attribute helpers
// ---------------------------------------------------------------------------------------------

/// SPPI TruthValue: INTEGER { true(1), false(2) }.
fn truth(b: bool) -> EpdValue {
    EpdValue::Integer32(if b { 1 } else { 2 })
}

/// Reads attributes in order, with the index for errors.
pub(crate) struct Attrs<'a> {
    values: &'a [EpdValue],
    index: usize,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(epd: &'a Epd, expected: usize) -> Result<Self, UsageError> {
        // Extra trailing attributes are allowed: a newer PIB may add columns (RFC 3084 §2.2.1).
        if epd.0.len() < expected {
            return Err(UsageError::TooFewAttrs {
                expected,
                got: epd.0.len(),
            });
        }
        Ok(Self {
            values: &epd.0,
            index: 0,
        })
    }

    pub(crate) fn next(&mut self) -> (usize, &'a EpdValue) {
        let i = self.index;
        self.index += 1;
        // `new` checked the count; `Null` only if a caller reads past it.
        (i, self.values.get(i).unwrap_or(&EpdValue::Null))
    }

    pub(crate) fn instance_id(&mut self) -> Result<u32, UsageError> {
        match self.next() {
            (_, EpdValue::Unsigned32(0)) => Err(UsageError::BadInstance),
            (_, EpdValue::Unsigned32(v)) => Ok(*v),
            (index, _) => Err(UsageError::WrongType { index }),
        }
    }

    pub(crate) fn unsigned32(&mut self) -> Result<u32, UsageError> {
        match self.next() {
            (_, EpdValue::Unsigned32(v)) => Ok(*v),
            (index, _) => Err(UsageError::WrongType { index }),
        }
    }

    pub(crate) fn unsigned64(&mut self) -> Result<u64, UsageError> {
        match self.next() {
            (_, EpdValue::Unsigned64(v)) => Ok(*v),
            (index, _) => Err(UsageError::WrongType { index }),
        }
    }

    pub(crate) fn counter64(&mut self) -> Result<u64, UsageError> {
        match self.next() {
            (_, EpdValue::Counter64(v)) => Ok(*v),
            (index, _) => Err(UsageError::WrongType { index }),
        }
    }

    pub(crate) fn oid(&mut self) -> Result<Prid, UsageError> {
        match self.next() {
            (_, EpdValue::Oid(p)) => Ok(p.clone()),
            (index, _) => Err(UsageError::WrongType { index }),
        }
    }

    /// An OID where 0.0 means none.
    pub(crate) fn optional_oid(&mut self) -> Result<Option<Prid>, UsageError> {
        let p = self.oid()?;
        Ok((p.arcs() != ZERO_DOT_ZERO).then_some(p))
    }

    pub(crate) fn truth(&mut self) -> Result<bool, UsageError> {
        match self.next() {
            (_, EpdValue::Integer32(1)) => Ok(true),
            (_, EpdValue::Integer32(2)) => Ok(false),
            (index, EpdValue::Integer32(_)) => Err(UsageError::BadValue { index }),
            (index, _) => Err(UsageError::WrongType { index }),
        }
    }

    pub(crate) fn integer(&mut self) -> Result<(usize, i32), UsageError> {
        match self.next() {
            (i, EpdValue::Integer32(v)) => Ok((i, *v)),
            (index, _) => Err(UsageError::WrongType { index }),
        }
    }

    pub(crate) fn octets(&mut self) -> Result<Bytes, UsageError> {
        match self.next() {
            (_, EpdValue::OctetString(b)) => Ok(b.clone()),
            (index, _) => Err(UsageError::WrongType { index }),
        }
    }
}

fn optional_oid_value(p: &Option<Prid>) -> EpdValue {
    EpdValue::Oid(p.clone().unwrap_or_else(|| oid(ZERO_DOT_ZERO)))
}

// ---------------------------------------------------------------------------------------------
// Classes
// ---------------------------------------------------------------------------------------------

/// A usage-framework PRC whose instances round-trip through `<PRID> <EPD>`. The first
/// attribute is the InstanceId (Unsigned32, 1..), equal to the PRID's last arc.
pub trait UsageClass: Sized {
    /// The PRC's entry OID; a PRID is this plus the instance id.
    const PRC: &'static [u32];
    /// The instance id.
    fn id(&self) -> u32;
    /// The attribute values in order.
    fn to_epd(&self) -> Epd;
    /// Parses the attribute values.
    fn from_epd(epd: &Epd) -> Result<Self, UsageError>;

    /// The PRID of this instance.
    fn prid(&self) -> Result<Prid, UsageError> {
        if self.id() == 0 {
            return Err(UsageError::BadInstance);
        }
        Prid::instance_of(&oid(Self::PRC), self.id()).ok_or(UsageError::Prid)
    }

    /// This instance as `<PRID> <EPD>`.
    fn to_instance(&self) -> Result<PrInstance, UsageError> {
        Ok(PrInstance {
            prid: self.prid()?,
            epd: self.to_epd(),
        })
    }

    /// Parses `<PRID> <EPD>`, checking the PRC and that the id attribute matches the PRID.
    fn from_instance(pri: &PrInstance) -> Result<Self, UsageError> {
        if pri.prid.prc().as_ref().map(Prid::arcs) != Some(Self::PRC) {
            return Err(UsageError::WrongPrc(pri.prid.clone()));
        }
        let v = Self::from_epd(&pri.epd)?;
        if v.id() != pri.prid.instance_id() {
            return Err(UsageError::BadInstance);
        }
        Ok(v)
    }
}

/// Selection criteria (RFC 3483 §2): which objects are monitored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectionCriteria {
    /// Instance id.
    pub id: u32,
    /// The monitored object: one instance's PRID, or with `all_instances` a PRC entry OID (or
    /// any prefix) selecting every instance under it, e.g. a filter on all its interfaces.
    pub target: Prid,
    /// Whether `target` is a prefix.
    pub all_instances: bool,
}

impl UsageClass for SelectionCriteria {
    const PRC: &'static [u32] = SELECTION_CRITERIA_ENTRY;
    fn id(&self) -> u32 {
        self.id
    }
    fn to_epd(&self) -> Epd {
        Epd(vec![
            EpdValue::Unsigned32(self.id),
            EpdValue::Oid(self.target.clone()),
            truth(self.all_instances),
        ])
    }
    fn from_epd(epd: &Epd) -> Result<Self, UsageError> {
        let mut a = Attrs::new(epd, 3)?;
        Ok(Self {
            id: a.instance_id()?,
            target: a.oid()?,
            all_instances: a.truth()?,
        })
    }
}

impl SelectionCriteria {
    /// Whether an object instance is selected.
    pub fn selects(&self, instance: &Prid) -> bool {
        if self.all_instances {
            instance.starts_with(&self.target)
        } else {
            *instance == self.target
        }
    }
}

/// Linkage (RFC 3483 §2, §4.1): binds a selection criteria instance to a usage class and
/// says when reports are generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linkage {
    /// Instance id.
    pub id: u32,
    /// PRID of the [`SelectionCriteria`] instance.
    pub selection: Prid,
    /// Entry OID of the usage class whose instances carry the values (e.g.
    /// [`TRAFFIC_USAGE_ENTRY`]).
    pub usage_prc: Prid,
    /// Accounting Timer intervals between periodic reports (§4.1); 0 = no periodic reports
    /// (threshold and solicited reports only).
    pub interval_count: u32,
    /// PRID of a [`Threshold`] instance, if any (§4.1).
    pub threshold: Option<Prid>,
    /// Periodic reports only when the usage changed since the last report (§4.1).
    pub report_on_change: bool,
    /// Clear the counters once reported (§3).
    pub clear_on_report: bool,
}

impl UsageClass for Linkage {
    const PRC: &'static [u32] = LINKAGE_ENTRY;
    fn id(&self) -> u32 {
        self.id
    }
    fn to_epd(&self) -> Epd {
        Epd(vec![
            EpdValue::Unsigned32(self.id),
            EpdValue::Oid(self.selection.clone()),
            EpdValue::Oid(self.usage_prc.clone()),
            EpdValue::Unsigned32(self.interval_count),
            optional_oid_value(&self.threshold),
            truth(self.report_on_change),
            truth(self.clear_on_report),
        ])
    }
    fn from_epd(epd: &Epd) -> Result<Self, UsageError> {
        let mut a = Attrs::new(epd, 7)?;
        Ok(Self {
            id: a.instance_id()?,
            selection: a.oid()?,
            usage_prc: a.oid()?,
            interval_count: a.unsigned32()?,
            threshold: a.optional_oid()?,
            report_on_change: a.truth()?,
            clear_on_report: a.truth()?,
        })
    }
}

/// Threshold (RFC 3483 §4.1): usage since the last report that triggers an early report.
/// Encoded as Unsigned64 values; 0 on the wire means no threshold for that metric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Threshold {
    /// Instance id.
    pub id: u32,
    /// Packets since the last report.
    pub packets: Option<u64>,
    /// Octets since the last report.
    pub octets: Option<u64>,
}

impl UsageClass for Threshold {
    const PRC: &'static [u32] = THRESHOLD_ENTRY;
    fn id(&self) -> u32 {
        self.id
    }
    fn to_epd(&self) -> Epd {
        Epd(vec![
            EpdValue::Unsigned32(self.id),
            EpdValue::Unsigned64(self.packets.unwrap_or(0)),
            EpdValue::Unsigned64(self.octets.unwrap_or(0)),
        ])
    }
    fn from_epd(epd: &Epd) -> Result<Self, UsageError> {
        let mut a = Attrs::new(epd, 3)?;
        let nonzero = |v: u64| (v != 0).then_some(v);
        Ok(Self {
            id: a.instance_id()?,
            packets: nonzero(a.unsigned64()?),
            octets: nonzero(a.unsigned64()?),
        })
    }
}

/// What a feedback action asks of the PEP (RFC 3483 §4.1, §5, §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// Stop unsolicited reports; keep monitoring (§5).
    SuspendReporting = 1,
    /// Resume unsolicited reports (§5).
    ResumeReporting = 2,
    /// Stop monitoring, which also stops reports (§5).
    SuspendMonitoring = 3,
    /// Resume monitoring and reporting (§5).
    ResumeMonitoring = 4,
    /// Report now (§6).
    Solicit = 5,
}

impl ActionKind {
    fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            1 => Self::SuspendReporting,
            2 => Self::ResumeReporting,
            3 => Self::SuspendMonitoring,
            4 => Self::ResumeMonitoring,
            5 => Self::Solicit,
            _ => return None,
        })
    }
}

/// Feedback action sent by the PDP in a DEC: solicit, suspend or resume (RFC 3483 §5, §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedbackAction {
    /// Instance id.
    pub id: u32,
    /// What to do.
    pub action: ActionKind,
    /// PRID of the [`Linkage`] it applies to; `None` (0.0 on the wire) = every usage policy.
    pub target: Option<Prid>,
    /// On suspend: send an unsolicited report of the current usage (§5).
    pub report_now: bool,
}

impl UsageClass for FeedbackAction {
    const PRC: &'static [u32] = ACTION_ENTRY;
    fn id(&self) -> u32 {
        self.id
    }
    fn to_epd(&self) -> Epd {
        Epd(vec![
            EpdValue::Unsigned32(self.id),
            EpdValue::Integer32(self.action as i32),
            optional_oid_value(&self.target),
            truth(self.report_now),
        ])
    }
    fn from_epd(epd: &Epd) -> Result<Self, UsageError> {
        let mut a = Attrs::new(epd, 4)?;
        let id = a.instance_id()?;
        let (index, v) = a.integer()?;
        Ok(Self {
            id,
            action: ActionKind::from_i32(v).ok_or(UsageError::BadValue { index })?,
            target: a.optional_oid()?,
            report_now: a.truth()?,
        })
    }
}

/// Traffic usage instance (RFC 3483 §2): the metrics the PEP reports in RPT type 3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficUsage {
    /// Instance id.
    pub id: u32,
    /// PRID of the [`Linkage`] this usage answers.
    pub linkage: Prid,
    /// PRID of the monitored object instance.
    pub selected: Prid,
    /// Distinguishes assignments created from one shared object, e.g. an interface name;
    /// empty when the selection is unique (RFC 3483 §7).
    pub assignment: Bytes,
    /// Packets (Counter64).
    pub packets: u64,
    /// Octets (Counter64).
    pub octets: u64,
}

impl UsageClass for TrafficUsage {
    const PRC: &'static [u32] = TRAFFIC_USAGE_ENTRY;
    fn id(&self) -> u32 {
        self.id
    }
    fn to_epd(&self) -> Epd {
        Epd(vec![
            EpdValue::Unsigned32(self.id),
            EpdValue::Oid(self.linkage.clone()),
            EpdValue::Oid(self.selected.clone()),
            EpdValue::OctetString(self.assignment.clone()),
            EpdValue::Counter64(self.packets),
            EpdValue::Counter64(self.octets),
        ])
    }
    fn from_epd(epd: &Epd) -> Result<Self, UsageError> {
        let mut a = Attrs::new(epd, 6)?;
        Ok(Self {
            id: a.instance_id()?,
            linkage: a.oid()?,
            selected: a.oid()?,
            assignment: a.octets()?,
            packets: a.counter64()?,
            octets: a.counter64()?,
        })
    }
}

/// A valid combination of monitored class and usage class, reported by the PEP as a
/// capability (RFC 3483 §2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelUsageCombo {
    /// Instance id.
    pub id: u32,
    /// Entry OID of a class that can be monitored.
    pub selection_prc: Prid,
    /// Entry OID of a usage class that can report on it.
    pub usage_prc: Prid,
}

impl UsageClass for SelUsageCombo {
    const PRC: &'static [u32] = SEL_USAGE_COMBO_ENTRY;
    fn id(&self) -> u32 {
        self.id
    }
    fn to_epd(&self) -> Epd {
        Epd(vec![
            EpdValue::Unsigned32(self.id),
            EpdValue::Oid(self.selection_prc.clone()),
            EpdValue::Oid(self.usage_prc.clone()),
        ])
    }
    fn from_epd(epd: &Epd) -> Result<Self, UsageError> {
        let mut a = Attrs::new(epd, 3)?;
        Ok(Self {
            id: a.instance_id()?,
            selection_prc: a.oid()?,
            usage_prc: a.oid()?,
        })
    }
}

/// Any usage-framework instance, recognised by its PRC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsageObject {
    Selection(SelectionCriteria),
    Linkage(Linkage),
    Threshold(Threshold),
    Action(FeedbackAction),
    TrafficUsage(TrafficUsage),
    Combo(SelUsageCombo),
}

impl UsageObject {
    /// Parses an instance; `Ok(None)` when its PRC is not one of the usage classes (so other
    /// instances of the same DEC can be handled elsewhere).
    pub fn from_instance(pri: &PrInstance) -> Result<Option<Self>, UsageError> {
        let Some(prc) = pri.prid.prc() else {
            return Ok(None);
        };
        Ok(Some(match prc.arcs() {
            SELECTION_CRITERIA_ENTRY => Self::Selection(SelectionCriteria::from_instance(pri)?),
            LINKAGE_ENTRY => Self::Linkage(Linkage::from_instance(pri)?),
            THRESHOLD_ENTRY => Self::Threshold(Threshold::from_instance(pri)?),
            ACTION_ENTRY => Self::Action(FeedbackAction::from_instance(pri)?),
            TRAFFIC_USAGE_ENTRY => Self::TrafficUsage(TrafficUsage::from_instance(pri)?),
            SEL_USAGE_COMBO_ENTRY => Self::Combo(SelUsageCombo::from_instance(pri)?),
            _ => return Ok(None),
        }))
    }

    /// The instance as `<PRID> <EPD>`.
    pub fn to_instance(&self) -> Result<PrInstance, UsageError> {
        match self {
            Self::Selection(v) => v.to_instance(),
            Self::Linkage(v) => v.to_instance(),
            Self::Threshold(v) => v.to_instance(),
            Self::Action(v) => v.to_instance(),
            Self::TrafficUsage(v) => v.to_instance(),
            Self::Combo(v) => v.to_instance(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Report scheduling
// ---------------------------------------------------------------------------------------------

/// Monitored usage of one linkage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Usage {
    pub packets: u64,
    pub octets: u64,
}

impl Usage {
    fn saturating_add(self, o: Self) -> Self {
        Self {
            packets: self.packets.saturating_add(o.packets),
            octets: self.octets.saturating_add(o.octets),
        }
    }
    fn saturating_sub(self, o: Self) -> Self {
        Self {
            packets: self.packets.saturating_sub(o.packets),
            octets: self.octets.saturating_sub(o.octets),
        }
    }
}

/// Why a report is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReportTrigger {
    /// The linkage's interval count of Accounting Timer intervals passed (§4.1).
    Periodic,
    /// A threshold was reached (§4.1).
    Threshold,
    /// The PDP asked (§4.1, §6); not paced by the Accounting Timer.
    Solicited,
    /// The PDP suspended reporting or monitoring and asked for the current usage (§5).
    Suspended,
    /// The context was deactivated (§8).
    ContextDeactivated,
    /// Outstanding usage before a DRQ (§9).
    Final,
    /// Cached usage after reconnecting to a PDP (§10).
    Reconnected,
}

/// One report's content for one linkage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageReport {
    pub trigger: ReportTrigger,
    pub usage: Usage,
}

/// When to report the usage of one linkage (RFC 3483 §3–§10), sans-IO.
///
/// Rules:
/// - unsolicited reports (periodic, threshold) never come closer together than the
///   Accounting Timer, and not at all when it is 0 (§3, §4.1);
/// - periodic reports come every `interval_count` × Accounting Timer, on a grid anchored at
///   creation (or reconnection), and with `report_on_change` only if the usage changed (§4.1);
/// - a threshold reached reports early, but no earlier than the timer allows (§4.1);
/// - solicited reports are answered at once and leave the schedule untouched (§4.1, §6);
/// - suspended reporting keeps counting; suspended monitoring stops counting; both stop
///   unsolicited reports. A periodic deadline missed while suspended gives one report on
///   resumption (§5);
/// - an inactive context neither counts nor reports (§8);
/// - the final report before a DRQ carries everything outstanding, whatever the state (§9).
#[derive(Clone, Debug)]
pub struct ReportSchedule {
    acct_timer: Duration,
    interval_count: u32,
    threshold_packets: Option<u64>,
    threshold_octets: Option<u64>,
    report_on_change: bool,
    clear_on_report: bool,
    reporting_suspended: bool,
    monitoring_suspended: bool,
    context_active: bool,
    anchor: Instant,
    next_periodic: Option<Instant>,
    last_unsolicited: Option<Instant>,
    threshold_reached: bool,
    current: Usage,
    at_last_report: Usage,
}

impl ReportSchedule {
    /// A schedule starting at `now` with the Accounting Timer of the CAT (RFC 2748 §2.2.17)
    /// and the linkage's rules; `threshold` is the instance the linkage points to.
    pub fn new(
        now: Instant,
        acct_timer: Duration,
        linkage: &Linkage,
        threshold: Option<&Threshold>,
    ) -> Self {
        let mut s = Self {
            acct_timer,
            interval_count: linkage.interval_count,
            threshold_packets: threshold.and_then(|t| t.packets),
            threshold_octets: threshold.and_then(|t| t.octets),
            report_on_change: linkage.report_on_change,
            clear_on_report: linkage.clear_on_report,
            reporting_suspended: false,
            monitoring_suspended: false,
            context_active: true,
            anchor: now,
            next_periodic: None,
            last_unsolicited: None,
            threshold_reached: false,
            current: Usage::default(),
            at_last_report: Usage::default(),
        };
        s.next_periodic = s.first_periodic();
        s
    }

    /// The periodic interval: interval count × Accounting Timer; `None` if either is 0.
    pub fn period(&self) -> Option<Duration> {
        if self.acct_timer.is_zero() || self.interval_count == 0 {
            return None;
        }
        self.acct_timer.checked_mul(self.interval_count)
    }

    fn first_periodic(&self) -> Option<Instant> {
        self.period().and_then(|p| self.anchor.checked_add(p))
    }

    /// First grid point strictly after `now`.
    fn grid_after(&self, now: Instant) -> Option<Instant> {
        let p = self.period()?;
        let elapsed = now.saturating_duration_since(self.anchor).as_nanos();
        let k = elapsed / p.as_nanos() + 1;
        let offset = p.as_nanos().checked_mul(k)?;
        let offset = Duration::new(
            u64::try_from(offset / 1_000_000_000).ok()?,
            u32::try_from(offset % 1_000_000_000).ok()?,
        );
        self.anchor.checked_add(offset)
    }

    /// Usage counted and not yet cleared.
    pub fn usage(&self) -> Usage {
        self.current
    }

    /// Whether usage is being counted (not suspended, context active).
    pub fn is_monitoring(&self) -> bool {
        !self.monitoring_suspended && self.context_active
    }

    /// Whether unsolicited reports may be sent.
    fn unsolicited_allowed(&self) -> bool {
        !self.acct_timer.is_zero()
            && !self.reporting_suspended
            && !self.monitoring_suspended
            && self.context_active
    }

    /// The earliest instant the Accounting Timer allows the next unsolicited report.
    fn pacing_floor(&self) -> Option<Instant> {
        self.last_unsolicited
            .and_then(|t| t.checked_add(self.acct_timer))
    }

    fn changed(&self) -> bool {
        self.current != self.at_last_report
    }

    /// Adds monitored usage; ignored (returns false) while monitoring is suspended or the
    /// context inactive.
    pub fn record(&mut self, delta: Usage) -> bool {
        if !self.is_monitoring() {
            return false;
        }
        self.current = self.current.saturating_add(delta);
        let since = self.current.saturating_sub(self.at_last_report);
        if self.threshold_packets.is_some_and(|t| since.packets >= t)
            || self.threshold_octets.is_some_and(|t| since.octets >= t)
        {
            self.threshold_reached = true;
        }
        true
    }

    /// Which unsolicited report is due at `now`, if any.
    pub fn due(&self, now: Instant) -> Option<ReportTrigger> {
        if !self.unsolicited_allowed() || self.pacing_floor().is_some_and(|f| now < f) {
            return None;
        }
        let periodic = self.next_periodic.is_some_and(|t| now >= t);
        if periodic && (!self.report_on_change || self.changed()) {
            Some(ReportTrigger::Periodic)
        } else if self.threshold_reached {
            Some(ReportTrigger::Threshold)
        } else {
            None
        }
    }

    /// Whether an unsolicited report is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.due(now).is_some()
    }

    /// The next instant [`poll`](Self::poll) should be called: a periodic deadline or the
    /// moment the timer lets a reached threshold report. `None` while no unsolicited report
    /// can come without new usage or a state change.
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.unsolicited_allowed() {
            return None;
        }
        let floor = self.pacing_floor();
        let threshold = self.threshold_reached.then(|| floor.unwrap_or(self.anchor));
        let periodic = self.next_periodic.map(|t| floor.map_or(t, |f| t.max(f)));
        match (periodic, threshold) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Produces the unsolicited report due at `now`, if any, and moves the schedule on. A
    /// periodic deadline with `report_on_change` and unchanged usage passes without a report.
    pub fn poll(&mut self, now: Instant) -> Option<UsageReport> {
        let trigger = self.due(now);
        let passed = self.unsolicited_allowed()
            && self.pacing_floor().is_none_or(|f| now >= f)
            && self.next_periodic.is_some_and(|t| now >= t);
        if passed {
            self.next_periodic = self.grid_after(now);
        }
        let trigger = trigger?;
        self.last_unsolicited = Some(now);
        Some(self.take(trigger))
    }

    fn take(&mut self, trigger: ReportTrigger) -> UsageReport {
        let usage = self.current;
        if self.clear_on_report {
            self.current = Usage::default();
        }
        self.at_last_report = self.current;
        self.threshold_reached = false;
        UsageReport { trigger, usage }
    }

    /// Answers a solicitation at once, whatever the timer (§4.1, §6). The periodic schedule
    /// and the timer pacing stay as they were.
    pub fn solicit(&mut self) -> UsageReport {
        self.take(ReportTrigger::Solicited)
    }

    /// Suspends unsolicited reports; monitoring goes on (§5). With `report_now`, returns the
    /// report of the current usage the PDP asked for.
    pub fn suspend_reporting(&mut self, now: Instant, report_now: bool) -> Option<UsageReport> {
        let r = report_now.then(|| self.suspension_report(now));
        self.reporting_suspended = true;
        r
    }

    /// Resumes unsolicited reports (§5).
    pub fn resume_reporting(&mut self) {
        self.reporting_suspended = false;
    }

    /// Suspends monitoring, hence reports too (§5). With `report_now`, returns the report of
    /// the current usage the PDP asked for.
    pub fn suspend_monitoring(&mut self, now: Instant, report_now: bool) -> Option<UsageReport> {
        let r = report_now.then(|| self.suspension_report(now));
        self.monitoring_suspended = true;
        r
    }

    /// Resumes monitoring and reporting (§5).
    pub fn resume_monitoring(&mut self) {
        self.monitoring_suspended = false;
    }

    fn suspension_report(&mut self, now: Instant) -> UsageReport {
        self.last_unsolicited = Some(now);
        self.take(ReportTrigger::Suspended)
    }

    /// Applies a [`FeedbackAction`] (§5, §6); returns the report it calls for, if any.
    pub fn apply(&mut self, now: Instant, action: &FeedbackAction) -> Option<UsageReport> {
        match action.action {
            ActionKind::SuspendReporting => self.suspend_reporting(now, action.report_now),
            ActionKind::ResumeReporting => {
                self.resume_reporting();
                None
            }
            ActionKind::SuspendMonitoring => self.suspend_monitoring(now, action.report_now),
            ActionKind::ResumeMonitoring => {
                self.resume_monitoring();
                None
            }
            ActionKind::Solicit => Some(self.solicit()),
        }
    }

    /// The context became inactive: returns its usage report and stops monitoring and
    /// reporting until [`activate_context`](Self::activate_context) (§8).
    pub fn deactivate_context(&mut self, now: Instant) -> UsageReport {
        self.context_active = false;
        self.last_unsolicited = Some(now);
        self.take(ReportTrigger::ContextDeactivated)
    }

    /// The context is active again: monitoring and reporting resume (§8).
    pub fn activate_context(&mut self) {
        self.context_active = true;
    }

    /// The report of all outstanding usage to send immediately before a DRQ, whoever
    /// initiates the deletion (§9). Ends the schedule.
    pub fn final_report(mut self) -> UsageReport {
        self.take(ReportTrigger::Final)
    }

    /// Reconnected to a PDP whose CAT carried `acct_timer`: returns the report of all cached
    /// usage and restarts the periodic grid at `now` with the new timer (§10). While the
    /// connection is down the caller keeps calling [`record`](Self::record) and not `poll`.
    pub fn reconnected(&mut self, now: Instant, acct_timer: Duration) -> UsageReport {
        self.acct_timer = acct_timer;
        self.anchor = now;
        self.next_periodic = self.first_periodic();
        self.last_unsolicited = Some(now);
        self.take(ReportTrigger::Reconnected)
    }

    fn sync_unsolicited(&mut self, now: Instant) {
        self.last_unsolicited = Some(now);
    }
}

/// The schedules of all linkages of one request state (context): the Accounting Timer paces
/// unsolicited RPTs per request state, so all linkages due at once share one RPT and the
/// next unsolicited RPT waits a full timer (RFC 2748 §2.2.17, RFC 3483 §3).
#[derive(Clone, Debug, Default)]
pub struct ContextSchedule {
    linkages: BTreeMap<u32, ReportSchedule>,
}

impl ContextSchedule {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the schedule of a linkage instance id.
    pub fn insert(&mut self, linkage_id: u32, schedule: ReportSchedule) {
        self.linkages.insert(linkage_id, schedule);
    }

    /// Removes a linkage, returning its final report (§9 applies to removed policies too).
    pub fn remove(&mut self, linkage_id: u32) -> Option<UsageReport> {
        self.linkages
            .remove(&linkage_id)
            .map(ReportSchedule::final_report)
    }

    /// A linkage's schedule.
    pub fn get_mut(&mut self, linkage_id: u32) -> Option<&mut ReportSchedule> {
        self.linkages.get_mut(&linkage_id)
    }

    /// The earliest deadline over the linkages.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.linkages
            .values()
            .filter_map(ReportSchedule::next_deadline)
            .min()
    }

    /// The reports of one unsolicited RPT due at `now` (empty if none); every linkage then
    /// waits a full timer.
    pub fn poll(&mut self, now: Instant) -> Vec<(u32, UsageReport)> {
        let out: Vec<_> = self
            .linkages
            .iter_mut()
            .filter_map(|(id, s)| s.poll(now).map(|r| (*id, r)))
            .collect();
        if !out.is_empty() {
            for s in self.linkages.values_mut() {
                s.sync_unsolicited(now);
            }
        }
        out
    }

    /// Answers a solicitation for every linkage (§6).
    pub fn solicit(&mut self) -> Vec<(u32, UsageReport)> {
        self.linkages
            .iter_mut()
            .map(|(id, s)| (*id, s.solicit()))
            .collect()
    }

    /// Applies a [`FeedbackAction`] to the linkage it targets (the target PRID's instance id
    /// is the linkage id), or to all when it has no target (§5).
    pub fn apply(&mut self, now: Instant, action: &FeedbackAction) -> Vec<(u32, UsageReport)> {
        let target = action.target.as_ref().map(Prid::instance_id);
        let out: Vec<_> = self
            .linkages
            .iter_mut()
            .filter(|(id, _)| target.is_none_or(|t| t == **id))
            .filter_map(|(id, s)| s.apply(now, action).map(|r| (*id, r)))
            .collect();
        if !out.is_empty() && action.action != ActionKind::Solicit {
            for s in self.linkages.values_mut() {
                s.sync_unsolicited(now);
            }
        }
        out
    }

    /// Final reports of every linkage before a DRQ (§9); empties the context.
    pub fn final_reports(&mut self) -> Vec<(u32, UsageReport)> {
        std::mem::take(&mut self.linkages)
            .into_iter()
            .map(|(id, s)| (id, s.final_report()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pr::{InstallDecision, decode_install_decision, encode_install_decision};
    use proptest::prelude::*;

    const SEC: Duration = Duration::from_secs(1);

    fn p(arcs: &[u32]) -> Prid {
        Prid::new(arcs).expect("valid")
    }

    fn linkage(interval_count: u32) -> Linkage {
        Linkage {
            id: 1,
            selection: p(&[1, 3, 6, 1, 4, 1, 32473, 3483, 1, 1, 1, 1]),
            usage_prc: oid(TRAFFIC_USAGE_ENTRY),
            interval_count,
            threshold: None,
            report_on_change: false,
            clear_on_report: true,
        }
    }

    fn sched(t0: Instant, timer: u64, count: u32) -> ReportSchedule {
        ReportSchedule::new(t0, Duration::from_secs(timer), &linkage(count), None)
    }

    fn usage(packets: u64, octets: u64) -> Usage {
        Usage { packets, octets }
    }

    // ---- classes ----

    fn all_objects() -> Vec<UsageObject> {
        vec![
            UsageObject::Selection(SelectionCriteria {
                id: 1,
                target: p(&[1, 3, 6, 1, 2, 2, 2, 1, 2, 1]),
                all_instances: true,
            }),
            UsageObject::Linkage(Linkage {
                threshold: Some(p(&[1, 3, 6, 1, 4, 1, 32473, 3483, 1, 3, 1, 9])),
                report_on_change: true,
                ..linkage(3)
            }),
            UsageObject::Linkage(linkage(0)),
            UsageObject::Threshold(Threshold {
                id: 9,
                packets: Some(1000),
                octets: None,
            }),
            UsageObject::Action(FeedbackAction {
                id: 2,
                action: ActionKind::SuspendMonitoring,
                target: None,
                report_now: true,
            }),
            UsageObject::TrafficUsage(TrafficUsage {
                id: 4,
                linkage: p(&[1, 3, 6, 1, 4, 1, 32473, 3483, 1, 2, 1, 1]),
                selected: p(&[1, 3, 6, 1, 2, 2, 2, 1, 2, 1, 7]),
                assignment: Bytes::from_static(b"ge-0/0/1.100"),
                packets: u64::MAX,
                octets: 12345,
            }),
            UsageObject::Combo(SelUsageCombo {
                id: 5,
                selection_prc: p(&[1, 3, 6, 1, 2, 2, 2, 1, 2, 1]),
                usage_prc: oid(TRAFFIC_USAGE_ENTRY),
            }),
        ]
    }

    /// RFC 3483 §2: the three aspects (selection, usage class, linkage) plus thresholds and
    /// actions travel as `<PRID> <EPD>` in an install decision and come back identical.
    #[test]
    fn rfc3483_s2_classes_round_trip_through_dec() {
        let objs = all_objects();
        let dec = InstallDecision(objs.iter().map(|o| o.to_instance().unwrap()).collect());
        let bytes = encode_install_decision(&dec).unwrap();
        let back = decode_install_decision(&bytes).unwrap();
        let parsed: Vec<_> = back
            .0
            .iter()
            .map(|i| UsageObject::from_instance(i).unwrap().unwrap())
            .collect();
        assert_eq!(parsed, objs);
    }

    #[test]
    fn oids_are_ours_and_distinct() {
        let entries = [
            SELECTION_CRITERIA_ENTRY,
            LINKAGE_ENTRY,
            THRESHOLD_ENTRY,
            ACTION_ENTRY,
            TRAFFIC_USAGE_ENTRY,
            SEL_USAGE_COMBO_ENTRY,
        ];
        for (i, e) in entries.iter().enumerate() {
            assert!(e.starts_with(OURS_USAGE_PIB));
            assert!(Prid::new(*e).is_some());
            assert_eq!(e[e.len() - 2], i as u32 + 1);
        }
        let linkage_prid = linkage(1).prid().unwrap();
        assert_eq!(linkage_prid.arcs().last(), Some(&1));
        assert!(linkage_prid.starts_with(&oid(LINKAGE_ENTRY)));
    }

    #[test]
    fn class_errors_map_to_cperr() {
        let good = linkage(1).to_instance().unwrap();
        // Wrong PRC.
        let e = Threshold::from_instance(&good).unwrap_err();
        assert_eq!(e.cperr().code, CperrCode::UnknownPrc);
        // Too few attributes.
        let mut short = good.clone();
        short.epd.0.truncate(3);
        let e = Linkage::from_instance(&short).unwrap_err();
        assert_eq!(
            e,
            UsageError::TooFewAttrs {
                expected: 7,
                got: 3
            }
        );
        assert_eq!(e.cperr().code, CperrCode::TooFewAttrs);
        // Wrong type.
        let mut wrong = good.clone();
        wrong.epd.0[3] = EpdValue::OctetString(Bytes::new());
        let e = Linkage::from_instance(&wrong).unwrap_err();
        assert_eq!(e, UsageError::WrongType { index: 3 });
        assert_eq!(e.cperr().code, CperrCode::InvalidAttrType);
        // Bad TruthValue.
        let mut bad = good.clone();
        bad.epd.0[5] = EpdValue::Integer32(7);
        assert_eq!(
            Linkage::from_instance(&bad).unwrap_err().cperr().code,
            CperrCode::AttrValueInvalid
        );
        // Id attribute differs from the PRID's instance.
        let mut other = good.clone();
        other.epd.0[0] = EpdValue::Unsigned32(2);
        assert_eq!(
            Linkage::from_instance(&other).unwrap_err().cperr().code,
            CperrCode::PriInstanceInvalid
        );
        // Instance id 0.
        assert_eq!(
            Linkage {
                id: 0,
                ..linkage(1)
            }
            .to_instance(),
            Err(UsageError::BadInstance)
        );
        // Extra trailing attributes (a newer PIB) are accepted.
        let mut longer = good.clone();
        longer.epd.0.push(EpdValue::Null);
        assert_eq!(Linkage::from_instance(&longer).unwrap(), linkage(1));
        // Unknown action.
        let mut act = FeedbackAction {
            id: 1,
            action: ActionKind::Solicit,
            target: None,
            report_now: false,
        }
        .to_instance()
        .unwrap();
        act.epd.0[1] = EpdValue::Integer32(9);
        assert_eq!(
            FeedbackAction::from_instance(&act),
            Err(UsageError::BadValue { index: 1 })
        );
        // Not a usage class at all.
        let foreign = PrInstance {
            prid: p(&[1, 3, 6, 1, 2, 2, 2, 1, 2, 1, 1]),
            epd: Epd::default(),
        };
        assert_eq!(UsageObject::from_instance(&foreign), Ok(None));
    }

    /// RFC 3483 §2 (a dropper, or an IP filter on all its interfaces) and §7.
    #[test]
    fn rfc3483_s2_selection_criteria_selects_instance_or_all() {
        let filter_prc = p(&[1, 3, 6, 1, 2, 2, 2, 1, 2, 1]);
        let one = SelectionCriteria {
            id: 1,
            target: Prid::instance_of(&filter_prc, 7).unwrap(),
            all_instances: false,
        };
        let all = SelectionCriteria {
            id: 2,
            target: filter_prc.clone(),
            all_instances: true,
        };
        let i7 = Prid::instance_of(&filter_prc, 7).unwrap();
        let i8 = Prid::instance_of(&filter_prc, 8).unwrap();
        assert!(one.selects(&i7) && !one.selects(&i8));
        assert!(all.selects(&i7) && all.selects(&i8));
        assert!(!all.selects(&p(&[1, 3, 6, 1, 2, 2, 2, 1, 3, 1, 7])));
    }

    // ---- scheduling ----

    /// RFC 3483 §3: the Accounting Timer is the maximum frequency of unsolicited reports.
    #[test]
    fn rfc3483_s3_never_more_often_than_the_accounting_timer() {
        let t0 = Instant::now();
        let mut s = ReportSchedule::new(
            t0,
            10 * SEC,
            &linkage(1),
            Some(&Threshold {
                id: 9,
                packets: Some(1),
                octets: None,
            }),
        );
        let mut sent = Vec::new();
        // Usage every second for 100 s: the threshold is always reached.
        for sec in 0..=100u64 {
            let now = t0 + Duration::from_secs(sec);
            s.record(usage(5, 500));
            if let Some(r) = s.poll(now) {
                sent.push((now, r));
            }
        }
        assert!(!sent.is_empty());
        for w in sent.windows(2) {
            assert!(w[1].0 - w[0].0 >= 10 * SEC, "{:?}", w);
        }
    }

    /// RFC 3483 §4.1: one interval is the Accounting Timer; the linkage's interval count
    /// multiplies it.
    #[test]
    fn rfc3483_s4_1_interval_count_multiplies_the_timer() {
        let t0 = Instant::now();
        let mut s = sched(t0, 10, 3);
        assert_eq!(s.period(), Some(30 * SEC));
        assert_eq!(s.next_deadline(), Some(t0 + 30 * SEC));
        s.record(usage(1, 100));
        assert!(!s.is_due(t0 + 29 * SEC));
        assert_eq!(s.poll(t0 + 29 * SEC), None);
        assert_eq!(
            s.poll(t0 + 30 * SEC),
            Some(UsageReport {
                trigger: ReportTrigger::Periodic,
                usage: usage(1, 100)
            })
        );
        assert_eq!(s.next_deadline(), Some(t0 + 60 * SEC));
        // A late poll keeps the grid.
        assert!(s.poll(t0 + 65 * SEC).is_some());
        assert_eq!(s.next_deadline(), Some(t0 + 90 * SEC));
        // Reports regardless of change without report-on-change.
        assert!(s.poll(t0 + 90 * SEC).is_some());
    }

    /// RFC 3483 §4.1: ACCT Timer 0 means no unsolicited feedback, but monitoring goes on and
    /// solicited reports are answered.
    #[test]
    fn rfc3483_s4_1_timer_zero_no_unsolicited_but_solicit_works() {
        let t0 = Instant::now();
        let mut s = ReportSchedule::new(
            t0,
            Duration::ZERO,
            &linkage(1),
            Some(&Threshold {
                id: 9,
                packets: Some(1),
                octets: None,
            }),
        );
        assert!(s.record(usage(10, 1000)));
        assert_eq!(s.next_deadline(), None);
        assert_eq!(s.poll(t0 + 1000 * SEC), None);
        assert_eq!(
            s.solicit(),
            UsageReport {
                trigger: ReportTrigger::Solicited,
                usage: usage(10, 1000)
            }
        );
    }

    /// RFC 3483 §4.1: a threshold reports early, but only once the timer allows.
    #[test]
    fn rfc3483_s4_1_threshold_reports_early_only_when_timer_allows() {
        let t0 = Instant::now();
        let th = Threshold {
            id: 9,
            packets: None,
            octets: Some(1000),
        };
        let mut s = ReportSchedule::new(t0, 10 * SEC, &linkage(6), Some(&th));
        // Reached at 3 s, no report yet: due at once (no earlier report).
        s.record(usage(1, 999));
        assert_eq!(s.next_deadline(), Some(t0 + 60 * SEC));
        s.record(usage(1, 1));
        assert_eq!(s.due(t0 + 3 * SEC), Some(ReportTrigger::Threshold));
        let r = s.poll(t0 + 3 * SEC).unwrap();
        assert_eq!(r.trigger, ReportTrigger::Threshold);
        assert_eq!(r.usage, usage(2, 1000));
        // Reached again at 5 s: the timer holds it until 13 s.
        s.record(usage(0, 5000));
        assert_eq!(s.next_deadline(), Some(t0 + 13 * SEC));
        assert_eq!(s.poll(t0 + 5 * SEC), None);
        assert_eq!(s.poll(t0 + 12 * SEC), None);
        assert_eq!(
            s.poll(t0 + 13 * SEC).map(|r| r.trigger),
            Some(ReportTrigger::Threshold)
        );
        // The periodic grid is unchanged.
        assert_eq!(s.next_deadline(), Some(t0 + 60 * SEC));
    }

    /// RFC 3483 §4.1: with report-on-change a periodic report is sent only if the usage
    /// changed; the grid moves on either way.
    #[test]
    fn rfc3483_s4_1_report_on_change() {
        let t0 = Instant::now();
        let l = Linkage {
            report_on_change: true,
            clear_on_report: false,
            ..linkage(1)
        };
        let mut s = ReportSchedule::new(t0, 10 * SEC, &l, None);
        assert!(!s.is_due(t0 + 10 * SEC));
        assert_eq!(s.poll(t0 + 10 * SEC), None);
        assert_eq!(s.next_deadline(), Some(t0 + 20 * SEC));
        s.record(usage(1, 1));
        assert_eq!(s.poll(t0 + 20 * SEC).map(|r| r.usage), Some(usage(1, 1)));
        assert_eq!(s.poll(t0 + 30 * SEC), None);
        s.record(usage(1, 1));
        // Not cleared: the total.
        assert_eq!(s.poll(t0 + 40 * SEC).map(|r| r.usage), Some(usage(2, 2)));
    }

    /// RFC 3483 §3: usage may be cleared upon reporting, as the usage policy says.
    #[test]
    fn rfc3483_s3_clear_on_report() {
        let t0 = Instant::now();
        let mut cleared = sched(t0, 10, 1);
        cleared.record(usage(3, 3));
        assert_eq!(cleared.poll(t0 + 10 * SEC).unwrap().usage, usage(3, 3));
        assert_eq!(cleared.usage(), Usage::default());
        let mut kept = ReportSchedule::new(
            t0,
            10 * SEC,
            &Linkage {
                clear_on_report: false,
                ..linkage(1)
            },
            None,
        );
        kept.record(usage(3, 3));
        kept.poll(t0 + 10 * SEC);
        kept.record(usage(1, 1));
        assert_eq!(kept.poll(t0 + 20 * SEC).unwrap().usage, usage(4, 4));
    }

    /// RFC 3483 §4.1 and §6: a solicited report is immediate, ignores the timer and keeps
    /// the interval schedule.
    #[test]
    fn rfc3483_s6_solicited_report_independent_of_the_timer() {
        let t0 = Instant::now();
        let mut s = sched(t0, 10, 1);
        s.record(usage(1, 1));
        assert!(s.poll(t0 + 10 * SEC).is_some());
        s.record(usage(2, 2));
        // Right after an unsolicited one.
        let r = s.solicit();
        assert_eq!(r.trigger, ReportTrigger::Solicited);
        assert_eq!(r.usage, usage(2, 2));
        // Schedule unchanged; timer pacing unchanged.
        assert_eq!(s.next_deadline(), Some(t0 + 20 * SEC));
        s.record(usage(1, 1));
        assert_eq!(s.poll(t0 + 20 * SEC).unwrap().usage, usage(1, 1));
        // Even with reporting suspended.
        s.suspend_reporting(t0 + 21 * SEC, false);
        assert_eq!(s.solicit().trigger, ReportTrigger::Solicited);
    }

    /// RFC 3483 §5: suspending reporting stops unsolicited reports but monitoring goes on;
    /// resuming gives one report for the missed deadlines.
    #[test]
    fn rfc3483_s5_suspend_reporting_keeps_monitoring_then_resume() {
        let t0 = Instant::now();
        let mut s = sched(t0, 10, 1);
        assert_eq!(s.suspend_reporting(t0 + SEC, false), None);
        assert!(s.record(usage(5, 50)));
        assert_eq!(s.next_deadline(), None);
        for sec in [10, 20, 30] {
            assert_eq!(s.poll(t0 + Duration::from_secs(sec)), None);
        }
        assert_eq!(s.usage(), usage(5, 50));
        s.resume_reporting();
        let r = s.poll(t0 + 35 * SEC).unwrap();
        assert_eq!(
            (r.trigger, r.usage),
            (ReportTrigger::Periodic, usage(5, 50))
        );
        // The 40 s grid point waits for the timer after the 35 s report (§3).
        assert_eq!(s.next_deadline(), Some(t0 + 45 * SEC));
    }

    /// RFC 3483 §5: suspending monitoring stops counting and reporting; resume restarts both.
    #[test]
    fn rfc3483_s5_suspend_monitoring_stops_counting_then_resume() {
        let t0 = Instant::now();
        let mut s = sched(t0, 10, 1);
        s.record(usage(1, 1));
        assert_eq!(s.suspend_monitoring(t0 + SEC, false), None);
        assert!(!s.record(usage(100, 100)));
        assert_eq!(s.usage(), usage(1, 1));
        assert_eq!(s.poll(t0 + 10 * SEC), None);
        s.resume_monitoring();
        assert!(s.record(usage(2, 2)));
        assert_eq!(s.poll(t0 + 12 * SEC).unwrap().usage, usage(3, 3));
    }

    /// RFC 3483 §5: on suspension the PDP says whether to report the current usage.
    #[test]
    fn rfc3483_s5_suspend_with_report() {
        let t0 = Instant::now();
        let mut s = sched(t0, 10, 1);
        s.record(usage(4, 4));
        let action = FeedbackAction {
            id: 1,
            action: ActionKind::SuspendMonitoring,
            target: None,
            report_now: true,
        };
        let r = s.apply(t0 + 2 * SEC, &action).unwrap();
        assert_eq!(
            (r.trigger, r.usage),
            (ReportTrigger::Suspended, usage(4, 4))
        );
        assert!(!s.is_monitoring());
        let resume = FeedbackAction {
            action: ActionKind::ResumeMonitoring,
            ..action
        };
        assert_eq!(s.apply(t0 + 3 * SEC, &resume), None);
        assert!(s.is_monitoring());
    }

    /// RFC 3483 §8: no monitoring or reporting while the context is inactive; a report on
    /// deactivation.
    #[test]
    fn rfc3483_s8_context_deactivation() {
        let t0 = Instant::now();
        let mut s = sched(t0, 10, 1);
        s.record(usage(7, 7));
        let r = s.deactivate_context(t0 + 5 * SEC);
        assert_eq!(
            (r.trigger, r.usage),
            (ReportTrigger::ContextDeactivated, usage(7, 7))
        );
        assert!(!s.record(usage(1, 1)));
        assert_eq!(s.poll(t0 + 20 * SEC), None);
        s.activate_context();
        s.record(usage(1, 1));
        assert_eq!(s.poll(t0 + 30 * SEC).unwrap().usage, usage(1, 1));
    }

    /// RFC 3483 §9: all outstanding usage is reported immediately before a DRQ, whatever the
    /// timer or suspension state.
    #[test]
    fn rfc3483_s9_final_report_before_drq() {
        let t0 = Instant::now();
        let mut s = sched(t0, 10, 1);
        s.record(usage(1, 1));
        assert!(s.poll(t0 + 10 * SEC).is_some());
        s.record(usage(2, 2));
        s.suspend_reporting(t0 + 11 * SEC, false);
        let r = s.final_report();
        assert_eq!((r.trigger, r.usage), (ReportTrigger::Final, usage(2, 2)));

        let mut ctx = ContextSchedule::new();
        ctx.insert(1, sched(t0, 10, 1));
        ctx.insert(2, sched(t0, 10, 2));
        ctx.get_mut(2).unwrap().record(usage(9, 9));
        let finals = ctx.final_reports();
        assert_eq!(finals.len(), 2);
        assert_eq!(finals[1].1.usage, usage(9, 9));
        assert_eq!(ctx.next_deadline(), None);
    }

    /// RFC 3483 §10: after reconnection the PEP reports the cached usage and restarts the
    /// interval schedule with the new Accounting Timer.
    #[test]
    fn rfc3483_s10_reconnect_reports_cache_and_reschedules() {
        let t0 = Instant::now();
        let mut s = sched(t0, 10, 2);
        s.record(usage(8, 8));
        let t1 = t0 + 100 * SEC;
        let r = s.reconnected(t1, 30 * SEC);
        assert_eq!(
            (r.trigger, r.usage),
            (ReportTrigger::Reconnected, usage(8, 8))
        );
        assert_eq!(s.next_deadline(), Some(t1 + 60 * SEC));
    }

    /// RFC 2748 §2.2.17 / RFC 3483 §3: the timer paces unsolicited RPTs per request state, so
    /// linkages of one context share an RPT and the pacing.
    #[test]
    fn rfc3483_s3_timer_per_context_shared_by_linkages() {
        let t0 = Instant::now();
        let th = Threshold {
            id: 9,
            packets: Some(1),
            octets: None,
        };
        let mut ctx = ContextSchedule::new();
        ctx.insert(1, ReportSchedule::new(t0, 10 * SEC, &linkage(1), None));
        ctx.insert(2, ReportSchedule::new(t0, 10 * SEC, &linkage(5), Some(&th)));
        ctx.get_mut(1).unwrap().record(usage(1, 1));
        // Linkage 1 periodic at 10 s.
        let rpt = ctx.poll(t0 + 10 * SEC);
        assert_eq!(rpt.len(), 1);
        assert_eq!(rpt[0].0, 1);
        // Linkage 2 crosses its threshold at 11 s: held until 20 s by the shared pacing.
        ctx.get_mut(2).unwrap().record(usage(1, 1));
        assert_eq!(ctx.next_deadline(), Some(t0 + 20 * SEC));
        assert!(ctx.poll(t0 + 11 * SEC).is_empty());
        let rpt = ctx.poll(t0 + 20 * SEC);
        let ids: Vec<_> = rpt.iter().map(|(id, _)| *id).collect();
        // Linkage 1's periodic report and linkage 2's threshold report in one RPT.
        assert_eq!(ids, vec![1, 2]);
        // Solicitation answers all, regardless of pacing.
        assert_eq!(ctx.solicit().len(), 2);
        // Targeted action.
        let suspend = FeedbackAction {
            id: 3,
            action: ActionKind::SuspendReporting,
            target: Some(linkage(1).prid().unwrap()),
            report_now: true,
        };
        let out = ctx.apply(t0 + 21 * SEC, &suspend);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 1);
        assert_eq!(ctx.remove(2).map(|r| r.trigger), Some(ReportTrigger::Final));
    }

    #[test]
    fn interval_count_zero_means_no_periodic_reports() {
        let t0 = Instant::now();
        let mut s = sched(t0, 10, 0);
        s.record(usage(1, 1));
        assert_eq!(s.period(), None);
        assert_eq!(s.next_deadline(), None);
        assert_eq!(s.poll(t0 + 1000 * SEC), None);
    }

    proptest! {
        /// RFC 3483 §3 under random usage and poll times: gaps between unsolicited reports
        /// are never shorter than the timer, and `due` agrees with `poll`.
        #[test]
        fn prop_pacing_holds(
            timer in 1u64..20,
            count in 0u32..4,
            thresh in proptest::option::of(1u64..50),
            steps in proptest::collection::vec((0u64..15, 0u64..30), 1..60),
        ) {
            let t0 = Instant::now();
            let th = Threshold { id: 1, packets: thresh, octets: None };
            let mut s = ReportSchedule::new(t0, Duration::from_secs(timer), &linkage(count), Some(&th));
            let mut now = t0;
            let mut last: Option<Instant> = None;
            for (dt, pk) in steps {
                now += Duration::from_secs(dt);
                s.record(usage(pk, pk));
                let due = s.due(now);
                let r = s.poll(now);
                prop_assert_eq!(due, r.map(|r| r.trigger));
                if r.is_some() {
                    if let Some(l) = last {
                        prop_assert!(now - l >= Duration::from_secs(timer));
                    }
                    last = Some(now);
                }
                if let (Some(d), Some(l)) = (s.next_deadline(), last) {
                    prop_assert!(d >= l + Duration::from_secs(timer));
                }
            }
        }

        #[test]
        fn prop_traffic_usage_round_trip(
            id in 1u32.., packets in any::<u64>(), octets in any::<u64>(),
            assignment in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let u = TrafficUsage {
                id,
                linkage: p(&[1, 3, 6, 1, 4, 1, 32473, 3483, 1, 2, 1, 1]),
                selected: p(&[1, 3, 6, 1, 2, 2, 2, 1, 2, 1, 7]),
                assignment: assignment.into(),
                packets,
                octets,
            };
            let i = u.to_instance().unwrap();
            prop_assert_eq!(TrafficUsage::from_instance(&i).unwrap(), u);
        }
    }
}
