//! RFID cycle counts: a count session's state, what it counts (its scope),
//! how one tag read moves it, and its variance report. Pure: the agent
//! keeps the session and the tags it saw in its database and asks this
//! module what they mean.
//!
//! A session is started (for the whole store, a list of GTINs, or a zone:
//! a label whose scope is the GTINs read there), fed the tags a reader in
//! count mode reads (each EPC counts once however often it is read),
//! finished (no more reads), then its report is accepted: each item whose
//! count differs becomes a `Command::Count` through the command core, with
//! its rights rules (units found add stock; units missing are removed
//! within the store's rights, the rest raised at the hub as
//! `count_unresolved`).
//!
//! **Invariant (`count_distinct`):** a session's `tags` is the number of
//! distinct EPCs fed to it, whatever the order and repetition of reads
//! ([`record`] is told whether the EPC was seen before; property-tested).
//!
//! **Invariant (`sold_not_stock`):** a tag the chain records as sold is
//! reported (`sold_but_present`), never counted as stock: counting it
//! would let the unit be sold again by its tag. It counts once it is
//! returned.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::event::Staff;
use crate::gtin::Gtin;

/// Most GTINs a session may list.
pub const MAX_SESSION_GTINS: usize = 10_000;
/// Longest zone label, in bytes.
pub const MAX_ZONE_BYTES: usize = 64;
/// Most EPCs a report lists per finding (the totals are always whole).
pub const MAX_LISTED_EPCS: usize = 10_000;

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CountStatus {
    /// Reads are being counted.
    Counting,
    /// Finished: no more reads; the report can be accepted.
    Finished,
    /// The report's adjustments were recorded.
    Accepted,
}

impl CountStatus {
    /// The name in the API: `counting`, `finished`, `accepted`.
    pub fn name(self) -> &'static str {
        match self {
            CountStatus::Counting => "counting",
            CountStatus::Finished => "finished",
            CountStatus::Accepted => "accepted",
        }
    }
}

/// What a session counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every item of the store: those it holds and those read.
    Store,
    /// These items only: others read are tallied apart, not counted.
    Listed(&'a BTreeSet<Gtin>),
    /// A zone without a list: the items read there (a spot count, since
    /// an item may lie in several zones).
    Seen,
}

/// One count session, as the agent stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountSession {
    /// The session's id.
    pub session_id: String,
    /// The zone counted, a label.
    pub zone: Option<String>,
    /// The items counted, when limited to a list.
    pub gtins: Option<BTreeSet<Gtin>>,
    /// Where it stands.
    pub status: CountStatus,
    /// Who started it.
    pub staff: Staff,
    /// When it started (ms since the epoch).
    pub started_at_ms: u64,
    /// When it was finished.
    pub finished_at_ms: Option<u64>,
    /// Tag reads fed (after the reader's window de-duplication).
    pub reads: u64,
    /// Distinct EPCs read.
    pub tags: u64,
    /// Distinct EPCs read that carry no GTIN (not SGTIN).
    pub unknown_tags: u64,
    /// Distinct EPCs read of items outside the session's list.
    pub out_of_scope_tags: u64,
}

impl CountSession {
    /// A new session, counting.
    pub fn new(
        session_id: String,
        zone: Option<String>,
        gtins: Option<BTreeSet<Gtin>>,
        staff: Staff,
        now_ms: u64,
    ) -> Self {
        CountSession {
            session_id,
            zone,
            gtins,
            status: CountStatus::Counting,
            staff,
            started_at_ms: now_ms,
            finished_at_ms: None,
            reads: 0,
            tags: 0,
            unknown_tags: 0,
            out_of_scope_tags: 0,
        }
    }

    /// What the session counts.
    pub fn scope(&self) -> Scope<'_> {
        match (&self.gtins, &self.zone) {
            (Some(list), _) => Scope::Listed(list),
            (None, Some(_)) => Scope::Seen,
            (None, None) => Scope::Store,
        }
    }

    /// Whether a tag of `gtin` counts towards an item.
    pub fn counts(&self, gtin: Gtin) -> bool {
        match self.scope() {
            Scope::Listed(list) => list.contains(&gtin),
            Scope::Store | Scope::Seen => true,
        }
    }
}

/// Why a session request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A bad id, zone or list.
    #[error("{0}")]
    Invalid(String),
}

/// Checks a new session's id, zone and list.
pub fn check_new(
    session_id: &str,
    zone: Option<&str>,
    gtins: Option<&BTreeSet<Gtin>>,
) -> Result<(), SessionError> {
    if !crate::fulfilment::valid_order_id(session_id) {
        return Err(SessionError::Invalid(format!(
            "session_id must be 1 to {} printable ASCII characters",
            crate::fulfilment::MAX_ORDER_ID_BYTES
        )));
    }
    if let Some(zone) = zone {
        if zone.is_empty() || zone.len() > MAX_ZONE_BYTES || zone.chars().any(char::is_control) {
            return Err(SessionError::Invalid(format!(
                "zone must be 1 to {MAX_ZONE_BYTES} bytes of text"
            )));
        }
    }
    if let Some(list) = gtins {
        if list.is_empty() || list.len() > MAX_SESSION_GTINS {
            return Err(SessionError::Invalid(format!(
                "gtins must list 1 to {MAX_SESSION_GTINS} items"
            )));
        }
    }
    Ok(())
}

/// What one read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A tag not seen before in this session, counted for its item.
    Counted(Gtin),
    /// A tag not seen before, of an item outside the session's list.
    OutOfScope(Gtin),
    /// A tag not seen before that carries no GTIN.
    Unknown,
    /// A tag this session already has: nothing moves but `reads`.
    Again,
}

/// Feeds one read to `session`: `seen_before` says whether its EPC is
/// already in the session, `gtin` is the tag's item if it has one. The
/// caller stores the EPC when the answer is not [`Recorded::Again`].
pub fn record(session: &mut CountSession, seen_before: bool, gtin: Option<Gtin>) -> Recorded {
    session.reads = session.reads.saturating_add(1);
    if seen_before {
        return Recorded::Again;
    }
    session.tags += 1;
    match gtin {
        None => {
            session.unknown_tags += 1;
            Recorded::Unknown
        }
        Some(g) if session.counts(g) => Recorded::Counted(g),
        Some(g) => {
            session.out_of_scope_tags += 1;
            Recorded::OutOfScope(g)
        }
    }
}

/// One item's line of a variance report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VarianceLine {
    /// The item.
    pub gtin: Gtin,
    /// Units the store's records hold.
    pub expected: u64,
    /// Units counted (tags read, less tags the chain recorded as sold).
    pub counted: u64,
    /// `counted - expected`: positive found, negative missing.
    pub difference: i64,
}

/// The variance lines of a session: for each item of its scope, what the
/// records expect and what was counted. `expected` holds the store's
/// on-hand of the items it knows; `counted` the tags counted per item.
/// Lines are in GTIN order.
pub fn variance(
    scope: Scope<'_>,
    expected: &BTreeMap<Gtin, u64>,
    counted: &BTreeMap<Gtin, u64>,
) -> Vec<VarianceLine> {
    let items: BTreeSet<Gtin> = match scope {
        Scope::Listed(list) => list.clone(),
        Scope::Seen => counted.keys().copied().collect(),
        Scope::Store => expected
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(g, _)| *g)
            .chain(counted.keys().copied())
            .collect(),
    };
    items
        .into_iter()
        .map(|gtin| {
            let e = expected.get(&gtin).copied().unwrap_or(0);
            let c = counted.get(&gtin).copied().unwrap_or(0);
            VarianceLine {
                gtin,
                expected: e,
                counted: c,
                difference: signed(c) - signed(e),
            }
        })
        .collect()
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A session's variance report: per item and per tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountReport {
    /// The session, as of the report.
    pub session: CountSession,
    /// Expected against counted, per item of the scope.
    pub items: Vec<VarianceLine>,
    /// Tags read that the chain records as sold (at most
    /// [`MAX_LISTED_EPCS`]); not counted as stock.
    pub sold_but_present: Vec<crate::Epc>,
    /// How many there were in all.
    pub sold_but_present_total: u64,
    /// Tags of the scope's items received here, not sold, and not read
    /// (at most [`MAX_LISTED_EPCS`]).
    pub missing: Vec<crate::Epc>,
    /// How many there were in all.
    pub missing_total: u64,
}

/// The counts to record on acceptance: one per item whose count differs
/// from the records, as (item, units counted).
pub fn adjustments(lines: &[VarianceLine]) -> Vec<(Gtin, u64)> {
    lines
        .iter()
        .filter(|l| l.difference != 0)
        .map(|l| (l.gtin, l.counted))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn g(n: u64) -> Gtin {
        Gtin::from_body(n).unwrap()
    }

    fn session(gtins: Option<&[u64]>, zone: Option<&str>) -> CountSession {
        CountSession::new(
            "c1".into(),
            zone.map(Into::into),
            gtins.map(|l| l.iter().map(|&n| g(n)).collect()),
            Staff::default(),
            1,
        )
    }

    #[test]
    fn scopes() {
        assert_eq!(session(None, None).scope(), Scope::Store);
        assert_eq!(session(None, Some("aisle 3")).scope(), Scope::Seen);
        let listed = session(Some(&[1]), Some("aisle 3"));
        assert!(matches!(listed.scope(), Scope::Listed(_)));
        assert!(listed.counts(g(1)) && !listed.counts(g(2)));
    }

    #[test]
    fn variance_by_scope() {
        let expected = BTreeMap::from([(g(1), 5), (g(2), 0), (g(3), 2)]);
        let counted = BTreeMap::from([(g(1), 4), (g(4), 1)]);
        let store = variance(Scope::Store, &expected, &counted);
        let summary: Vec<_> = store.iter().map(|l| (l.gtin, l.difference)).collect();
        assert_eq!(summary, vec![(g(1), -1), (g(3), -2), (g(4), 1)]);
        let seen = variance(Scope::Seen, &expected, &counted);
        assert_eq!(seen.len(), 2);
        let list = BTreeSet::from([g(2), g(3)]);
        let listed = variance(Scope::Listed(&list), &expected, &counted);
        assert_eq!(
            listed,
            vec![
                VarianceLine {
                    gtin: g(2),
                    expected: 0,
                    counted: 0,
                    difference: 0
                },
                VarianceLine {
                    gtin: g(3),
                    expected: 2,
                    counted: 0,
                    difference: -2
                }
            ]
        );
        assert_eq!(adjustments(&listed), vec![(g(3), 0)]);
    }

    #[test]
    fn new_sessions_are_checked() {
        assert!(check_new("c-1", None, None).is_ok());
        assert!(check_new("", None, None).is_err());
        assert!(check_new("a b", None, None).is_err());
        assert!(check_new("c", Some(""), None).is_err());
        assert!(check_new("c", Some("x\u{7}"), None).is_err());
        assert!(check_new("c", None, Some(&BTreeSet::new())).is_err());
    }

    proptest! {
        /// `count_distinct`: whatever the order and repetition of reads,
        /// `tags` is the number of distinct EPCs, each counted once for
        /// its item, and the per-item counts sum to the counted tags.
        #[test]
        fn each_tag_counts_once(reads in proptest::collection::vec(0u16..200, 0..600),
                                listed in proptest::option::of(proptest::collection::btree_set(0u64..6, 1..4))) {
            let mut s = session(listed.as_ref().map(|l| l.iter().copied().collect::<Vec<_>>()).as_deref(), None);
            let mut seen = BTreeSet::new();
            let mut per_item: BTreeMap<Gtin, u64> = BTreeMap::new();
            for epc in &reads {
                // Tags 0..20 carry no GTIN; the item is fixed per tag.
                let gtin = (*epc >= 20).then(|| g(u64::from(*epc) % 6));
                match record(&mut s, !seen.insert(*epc), gtin) {
                    Recorded::Counted(g) => *per_item.entry(g).or_default() += 1,
                    Recorded::OutOfScope(_) | Recorded::Unknown | Recorded::Again => {}
                }
            }
            prop_assert_eq!(s.reads, reads.len() as u64);
            prop_assert_eq!(s.tags, seen.len() as u64);
            let counted: u64 = per_item.values().sum();
            prop_assert_eq!(counted + s.unknown_tags + s.out_of_scope_tags, s.tags);
            prop_assert_eq!(s.unknown_tags, seen.iter().filter(|&&e| e < 20).count() as u64);
        }

        /// A report's lines: difference is counted − expected; accepting
        /// records exactly the lines that differ, each at its count.
        #[test]
        fn variance_laws(expected in proptest::collection::btree_map(0u64..20, 0u64..50, 0..10),
                         counted in proptest::collection::btree_map(0u64..20, 1u64..50, 0..10)) {
            let expected: BTreeMap<Gtin, u64> = expected.into_iter().map(|(k, v)| (g(k), v)).collect();
            let counted: BTreeMap<Gtin, u64> = counted.into_iter().map(|(k, v)| (g(k), v)).collect();
            let lines = variance(Scope::Store, &expected, &counted);
            for l in &lines {
                prop_assert_eq!(l.difference, l.counted as i64 - l.expected as i64);
                prop_assert!(l.expected > 0 || l.counted > 0);
            }
            for gtin in counted.keys() {
                prop_assert!(lines.iter().any(|l| l.gtin == *gtin));
            }
            let adj = adjustments(&lines);
            prop_assert_eq!(adj.len(), lines.iter().filter(|l| l.difference != 0).count());
        }
    }
}
