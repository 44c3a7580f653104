//! RFID cycle counts (issue 23): the request that starts a session and
//! the views of a session, its variance report and its acceptance. The
//! model is `tally_sync::cycle_count`; the contract is docs/api.md.

use serde::{Deserialize, Serialize};
use tally_sync::cycle_count::{CountReport, CountSession};
use tally_sync::{Epc, EventId, Gtin};

/// `POST /v1/counts/sessions`: start counting. Every field is optional:
/// no list and no zone counts the whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountSessionRequest {
    /// The session's id (generated when absent): 1 to 128 printable ASCII
    /// characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Count only these items (GTINs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtins: Option<Vec<String>>,
    /// The zone counted, a label (without `gtins`, the report covers the
    /// items read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Who counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<String>,
    /// The till or device (see `SaleRequest::till`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub till: Option<String>,
}

/// Tags counted for one item so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountedItem {
    /// The item.
    pub gtin: Gtin,
    /// Its catalog name, if known.
    pub name: Option<String>,
    /// Distinct tags read.
    pub counted: u64,
}

/// A count session (`POST /v1/counts/sessions`, `GET
/// /v1/counts/sessions/{id}`): where it stands and the tags so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountSessionView {
    /// The session.
    pub session_id: String,
    /// `counting`, `finished` or `accepted`.
    pub status: String,
    /// The zone, if one was named.
    pub zone: Option<String>,
    /// The items counted, when limited to a list.
    pub gtins: Option<Vec<Gtin>>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it was finished.
    pub finished_at: Option<String>,
    /// Tag reads fed to it.
    pub reads: u64,
    /// Distinct tags read.
    pub tags: u64,
    /// Distinct tags without a GTIN.
    pub unknown_tags: u64,
    /// Distinct tags of items outside the list.
    pub out_of_scope_tags: u64,
    /// Tags counted per item so far.
    pub items: Vec<CountedItem>,
}

impl CountSessionView {
    /// The view of `s` with its `items`, naming items with `name`.
    pub fn of(
        s: &CountSession,
        items: impl IntoIterator<Item = (Gtin, u64)>,
        name: impl Fn(Gtin) -> Option<String>,
    ) -> Self {
        Self {
            session_id: s.session_id.clone(),
            status: s.status.name().into(),
            zone: s.zone.clone(),
            gtins: s.gtins.as_ref().map(|l| l.iter().copied().collect()),
            started_at: tally_sync::timestamp::rfc3339(s.started_at_ms),
            finished_at: s.finished_at_ms.map(tally_sync::timestamp::rfc3339),
            reads: s.reads,
            tags: s.tags,
            unknown_tags: s.unknown_tags,
            out_of_scope_tags: s.out_of_scope_tags,
            items: items
                .into_iter()
                .map(|(gtin, counted)| CountedItem {
                    gtin,
                    name: name(gtin),
                    counted,
                })
                .collect(),
        }
    }
}

/// One item's line of a variance report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VarianceItem {
    /// The item.
    pub gtin: Gtin,
    /// Its catalog name, if known.
    pub name: Option<String>,
    /// Units the store's records hold.
    pub expected: u64,
    /// Units counted (tags read, less tags recorded as sold).
    pub counted: u64,
    /// `counted - expected`.
    pub difference: i64,
}

/// Tag-level findings of a count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountFindings {
    /// Tags read that the chain records as sold: not counted as stock
    /// until returned (at most 10,000 listed).
    pub sold_but_present: Vec<Epc>,
    /// Tags of the counted items received here, not sold, not read (at
    /// most 10,000 listed).
    pub missing: Vec<Epc>,
    /// All tags read that were recorded as sold.
    pub sold_but_present_total: u64,
    /// All tags missing.
    pub missing_total: u64,
}

/// `POST /v1/counts/sessions/{id}/finish` (and `GET …/report`): the
/// variance report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountReportView {
    /// The session.
    pub session_id: String,
    /// `finished` or `accepted` (`counting` for a report taken early).
    pub status: String,
    /// Per item: expected, counted, difference.
    pub items: Vec<VarianceItem>,
    /// Per tag.
    pub epcs: CountFindings,
    /// Distinct tags read.
    pub tags: u64,
    /// Distinct tags without a GTIN.
    pub unknown_tags: u64,
    /// Distinct tags of items outside the list.
    pub out_of_scope_tags: u64,
}

impl CountReportView {
    /// The view of `r`, naming items with `name`.
    pub fn of(r: &CountReport, name: impl Fn(Gtin) -> Option<String>) -> Self {
        Self {
            session_id: r.session.session_id.clone(),
            status: r.session.status.name().into(),
            items: r
                .items
                .iter()
                .map(|l| VarianceItem {
                    gtin: l.gtin,
                    name: name(l.gtin),
                    expected: l.expected,
                    counted: l.counted,
                    difference: l.difference,
                })
                .collect(),
            epcs: CountFindings {
                sold_but_present: r.sold_but_present.clone(),
                missing: r.missing.clone(),
                sold_but_present_total: r.sold_but_present_total,
                missing_total: r.missing_total,
            },
            tags: r.session.tags,
            unknown_tags: r.session.unknown_tags,
            out_of_scope_tags: r.session.out_of_scope_tags,
        }
    }
}

/// One adjustment an accepted count recorded (`Command::Count`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountAdjustment {
    /// The item.
    pub gtin: Gtin,
    /// Units counted.
    pub counted: u64,
    /// `up` (units found, added) or `down` (missing, removed).
    pub direction: String,
    /// Units moved.
    pub units: u64,
    /// Units missing that this store could not remove (rights held
    /// elsewhere): raised at the hub as `count_unresolved`.
    pub unresolved: u64,
    /// The count event.
    pub event_id: EventId,
}

/// `POST /v1/counts/sessions/{id}/accept`: what was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountAccepted {
    /// The session.
    pub session_id: String,
    /// `accepted`.
    pub status: String,
    /// One per item whose count differed.
    pub adjustments: Vec<CountAdjustment>,
    /// The report the adjustments came from (taken at acceptance).
    pub report: CountReportView,
}
