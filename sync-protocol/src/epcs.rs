//! Serialized items: which EPCs have been sold, and which were sold twice.
//!
//! # Design constraints
//! - State is two grow-only sets per EPC: the sale events that sold it and
//!   the return events that brought it back. Merge is set union, so it is
//!   commutative, associative and idempotent.
//! - An EPC is *currently sold* when it has more sales than returns; a
//!   replica refuses to sell it then ([`EpcLedger::check_sellable`]).
//! - Two replicas that sold the same tag while partitioned cannot see each
//!   other; merge detects it: an EPC with more sales than returns + 1 was
//!   sold twice, and [`EpcLedger::merge`] reports every EPC that merge
//!   newly made double-sold, with the sales involved.
//! - Storage keeps, per EPC, a fixed-size summary of its history beside
//!   one row per sale or return, so recording an event costs the same
//!   whatever the tag's past: [`EpcSummary`] at a store, [`EpcState`] at
//!   the hub. Each is a fold over the records ([`EpcSummary::after_sale`],
//!   [`EpcSummary::after_return`]) equal to what the whole history gives
//!   ([`EpcSummary::of`]); a property test checks it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::gtin::Gtin;
use crate::ids::{Epc, EventId, ReplicaId};

/// A sale or return of one EPC: which event, recorded by whom.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EpcRecord {
    /// The event.
    pub event: EventId,
    /// The replica that recorded it.
    pub replica: ReplicaId,
}

/// What happened to one EPC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpcHistory {
    /// Sales of this EPC.
    pub sales: BTreeSet<EpcRecord>,
    /// Returns of this EPC.
    pub returns: BTreeSet<EpcRecord>,
}

impl EpcHistory {
    /// Sold and not returned.
    pub fn is_sold(&self) -> bool {
        self.sales.len() > self.returns.len()
    }

    /// Sold again while already sold.
    pub fn is_double_sold(&self) -> bool {
        self.sales.len() > self.returns.len() + 1
    }
}

/// What a store keeps per EPC, fixed-size whatever the tag's history: how
/// often it was sold and returned and its first sale (in record order,
/// as [`EpcHistory::sales`] iterates). The sales and returns themselves
/// are one row each beside it, appended, never rewritten, and read only
/// by whoever needs the whole history.
///
/// Equal to [`EpcSummary::of`] the history when folded from an empty
/// summary over the history's records, each once, in any order: the
/// storage skips a record it already holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpcSummary {
    /// Sales of the tag.
    pub sales: u64,
    /// Returns of the tag.
    pub returns: u64,
    /// The event of the least sale record (`EpcHistory::sales.first()`).
    pub first_sale: Option<EventId>,
}

impl EpcSummary {
    /// The summary of a whole history.
    pub fn of(history: &EpcHistory) -> Self {
        EpcSummary {
            sales: history.sales.len() as u64,
            returns: history.returns.len() as u64,
            first_sale: history.sales.first().map(|r| r.event),
        }
    }

    /// Sold and not returned (as [`EpcHistory::is_sold`]).
    pub fn is_sold(&self) -> bool {
        self.sales > self.returns
    }

    /// Sold again while already sold (as [`EpcHistory::is_double_sold`]).
    pub fn is_double_sold(&self) -> bool {
        self.sales > self.returns.saturating_add(1)
    }

    /// The summary after one sale record it did not hold yet, and whether
    /// that sale newly made the tag double-sold (as
    /// [`EpcLedger::record_sale`] reports it).
    pub fn after_sale(&self, record: &EpcRecord) -> (EpcSummary, bool) {
        let next = EpcSummary {
            sales: self.sales.saturating_add(1),
            returns: self.returns,
            first_sale: Some(
                self.first_sale
                    .map_or(record.event, |e| e.min(record.event)),
            ),
        };
        let newly = !self.is_double_sold() && next.is_double_sold();
        (next, newly)
    }

    /// The summary after one return record it did not hold yet.
    pub fn after_return(&self) -> EpcSummary {
        EpcSummary {
            returns: self.returns.saturating_add(1),
            ..*self
        }
    }
}

/// Which EPCs are currently sold: what [`crate::ledger::apply_event`]
/// checks a sale or return of a tag against. The whole ledger
/// ([`EpcLedger`]) answers it, and so do the summaries of the few tags a
/// command names, loaded without their histories.
pub trait SoldEpcs {
    /// Whether `epc` is currently sold.
    fn is_sold(&self, epc: &Epc) -> bool;

    /// Refuses if `epc` is currently sold.
    fn check_sellable(&self, epc: &Epc) -> Result<(), EpcError> {
        if self.is_sold(epc) {
            return Err(EpcError::AlreadySold(epc.clone()));
        }
        Ok(())
    }

    /// Refuses if `epc` is not currently sold.
    fn check_returnable(&self, epc: &Epc) -> Result<(), EpcError> {
        if !self.is_sold(epc) {
            return Err(EpcError::NotSold(epc.clone()));
        }
        Ok(())
    }
}

impl SoldEpcs for BTreeMap<Epc, EpcSummary> {
    fn is_sold(&self, epc: &Epc) -> bool {
        self.get(epc).is_some_and(EpcSummary::is_sold)
    }
}

/// An EPC sold by more than one sale with no return between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoubleSale {
    /// The tag.
    pub epc: Epc,
    /// Every sale of it.
    pub sales: Vec<EpcRecord>,
}

/// Why an EPC operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpcError {
    /// Selling a tag that is currently sold.
    #[error("EPC {0} was already sold")]
    AlreadySold(Epc),
    /// Returning a tag that is not currently sold.
    #[error("EPC {0} is not sold, so it cannot be returned")]
    NotSold(Epc),
}

/// The sold-EPC set. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpcLedger {
    entries: BTreeMap<Epc, EpcHistory>,
}

impl EpcLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// The history of `epc`, if it was ever sold or returned.
    pub fn get(&self, epc: &Epc) -> Option<&EpcHistory> {
        self.entries.get(epc)
    }

    /// Whether `epc` is currently sold.
    pub fn is_sold(&self, epc: &Epc) -> bool {
        self.get(epc).is_some_and(EpcHistory::is_sold)
    }

    /// Records a sale unconditionally (as merge does). Returns the double
    /// sale if this made `epc` double-sold.
    pub fn record_sale(&mut self, epc: &Epc, record: EpcRecord) -> Option<DoubleSale> {
        let h = self.entries.entry(epc.clone()).or_default();
        let was = h.is_double_sold();
        h.sales.insert(record);
        (!was && h.is_double_sold()).then(|| double(epc, h))
    }

    /// Records a return unconditionally (as merge does).
    pub fn record_return(&mut self, epc: &Epc, record: EpcRecord) {
        self.entries
            .entry(epc.clone())
            .or_default()
            .returns
            .insert(record);
    }

    /// Set union with `other`. Returns every EPC that merge newly made
    /// double-sold.
    pub fn merge(&mut self, other: &EpcLedger) -> Vec<DoubleSale> {
        let mut found = Vec::new();
        for (epc, theirs) in &other.entries {
            let h = self.entries.entry(epc.clone()).or_default();
            let was = h.is_double_sold();
            h.sales.extend(theirs.sales.iter().cloned());
            h.returns.extend(theirs.returns.iter().cloned());
            if !was && h.is_double_sold() {
                found.push(double(epc, h));
            }
        }
        found
    }

    /// Every EPC that is double-sold.
    pub fn double_sold(&self) -> Vec<DoubleSale> {
        self.entries
            .iter()
            .filter(|(_, h)| h.is_double_sold())
            .map(|(e, h)| double(e, h))
            .collect()
    }

    /// Number of EPCs with any history.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no EPC has any history.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl SoldEpcs for EpcLedger {
    fn is_sold(&self, epc: &Epc) -> bool {
        EpcLedger::is_sold(self, epc)
    }
}

/// What the hub keeps per EPC, O(1) in size whatever the tag's history:
/// how often it was sold and returned, the item it was first sold as, and
/// whether it was ever sold twice. The sales and returns themselves are
/// one row each beside it (an append, never a rewrite of the history).
///
/// Unlike [`EpcHistory::is_double_sold`], [`EpcState::double_sold`] is
/// sticky: a later return does not make a double sale disappear from the
/// audit (a store returning a tag it never sold cannot hide another's
/// double sale).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpcState {
    /// The item the tag was first sold as.
    pub gtin: Option<Gtin>,
    /// Sales of the tag.
    pub sales: u64,
    /// Returns of the tag.
    pub returns: u64,
    /// Whether it was ever sold while sold (more sales than returns + 1).
    pub double_sold: bool,
}

/// Why the hub refuses the return of a tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpcReturnError {
    /// No sale of the tag the hub knows of is still unreturned.
    #[error("EPC {0} is not sold (as the hub knows it), so it cannot be returned")]
    NotSold(Epc),
    /// The tag was sold as another item than the return line names.
    #[error("EPC {epc} was sold as {sold_as}, not {returned_as}")]
    GtinMismatch {
        /// The tag.
        epc: Epc,
        /// The item its sale named.
        sold_as: Gtin,
        /// The item the return line names.
        returned_as: Gtin,
    },
}

impl EpcState {
    /// Sold and not returned.
    pub fn is_sold(&self) -> bool {
        self.sales > self.returns
    }

    fn over_sold(&self) -> bool {
        self.sales > self.returns.saturating_add(1)
    }

    /// The state after one more sale as `gtin` (recorded whatever the
    /// state: two partitioned stores may both sell a tag), and whether
    /// this sale made the tag double-sold.
    pub fn after_sale(&self, gtin: Gtin) -> (EpcState, bool) {
        let was = self.over_sold();
        let next = EpcState {
            gtin: self.gtin.or(Some(gtin)),
            sales: self.sales.saturating_add(1),
            returns: self.returns,
            double_sold: self.double_sold,
        };
        let newly = !was && next.over_sold();
        (
            EpcState {
                double_sold: next.double_sold || newly,
                ..next
            },
            newly,
        )
    }

    /// The state after a return of `epc` as `gtin`, if the hub accepts
    /// it: the tag is sold, as that item.
    pub fn after_return(&self, epc: &Epc, gtin: Gtin) -> Result<EpcState, EpcReturnError> {
        if !self.is_sold() {
            return Err(EpcReturnError::NotSold(epc.clone()));
        }
        if let Some(sold_as) = self.gtin {
            if sold_as != gtin {
                return Err(EpcReturnError::GtinMismatch {
                    epc: epc.clone(),
                    sold_as,
                    returned_as: gtin,
                });
            }
        }
        Ok(EpcState {
            returns: self.returns.saturating_add(1),
            ..*self
        })
    }
}

fn double(epc: &Epc, h: &EpcHistory) -> DoubleSale {
    DoubleSale {
        epc: epc.clone(),
        sales: h.sales.iter().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rec(n: u8, r: &str) -> EpcRecord {
        EpcRecord {
            event: EventId::v7(u64::from(n), [n; 10]),
            replica: ReplicaId::new(r).unwrap(),
        }
    }

    #[test]
    fn sell_return_sell_again_is_fine() {
        let epc = Epc::from_hex("3074257BF7194E4000001A85").unwrap();
        let mut l = EpcLedger::new();
        assert!(l.check_sellable(&epc).is_ok());
        assert!(l.check_returnable(&epc).is_err());
        assert!(l.record_sale(&epc, rec(1, "s1")).is_none());
        assert_eq!(
            l.check_sellable(&epc),
            Err(EpcError::AlreadySold(epc.clone()))
        );
        l.record_return(&epc, rec(2, "s1"));
        assert!(l.check_sellable(&epc).is_ok());
        assert!(l.record_sale(&epc, rec(3, "s1")).is_none());
        assert!(l.double_sold().is_empty());
    }

    #[test]
    fn a_double_sale_stays_in_the_state_after_a_return() {
        let epc = Epc::from_hex("3074257BF7194E4000001A85").unwrap();
        let g = Gtin::from_body(1).unwrap();
        let other = Gtin::from_body(2).unwrap();
        let s = EpcState::default();
        assert_eq!(
            s.after_return(&epc, g),
            Err(EpcReturnError::NotSold(epc.clone()))
        );
        let (s, newly) = s.after_sale(g);
        assert!(!newly && s.is_sold());
        assert!(matches!(
            s.after_return(&epc, other),
            Err(EpcReturnError::GtinMismatch { .. })
        ));
        let (s, newly) = s.after_sale(g);
        assert!(newly && s.double_sold);
        let s = s.after_return(&epc, g).unwrap();
        assert!(s.double_sold, "a return does not hide the double sale");
        let (_, newly) = s.after_sale(g);
        assert!(newly, "sold twice again: reported again");
    }

    #[test]
    fn a_summary_answers_as_its_history() {
        let epc = Epc::from_hex("3074257BF7194E4000001A85").unwrap();
        let mut l = EpcLedger::new();
        let mut s = EpcSummary::default();
        let mut summaries = BTreeMap::new();
        assert!(summaries.check_sellable(&epc).is_ok());
        assert!(summaries.check_returnable(&epc).is_err());
        let (next, newly) = s.after_sale(&rec(5, "s1"));
        l.record_sale(&epc, rec(5, "s1"));
        assert!(!newly);
        s = next;
        summaries.insert(epc.clone(), s);
        assert_eq!(
            summaries.check_sellable(&epc),
            Err(EpcError::AlreadySold(epc.clone()))
        );
        // An earlier sale (a partitioned store's) becomes the first one.
        let (next, newly) = s.after_sale(&rec(2, "s2"));
        assert!(newly && next.is_double_sold());
        assert!(l.record_sale(&epc, rec(2, "s2")).is_some());
        assert_eq!(next.first_sale, Some(rec(2, "s2").event));
        assert_eq!(next, EpcSummary::of(l.get(&epc).unwrap()));
        let back = next.after_return();
        assert!(back.is_sold() && !back.is_double_sold());
    }

    /// A sale or return of one of a few tags, by one of a few events and
    /// replicas (so records repeat, as a retried event's would).
    #[derive(Debug, Clone)]
    struct Op {
        tag: u8,
        sale: bool,
        event: u8,
        replica: u8,
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            (0u8..3, any::<bool>(), 0u8..12, 0u8..2).prop_map(|(tag, sale, event, replica)| Op {
                tag,
                sale,
                event,
                replica,
            }),
            0..80,
        )
    }

    fn tag(n: u8) -> Epc {
        Epc::from_bytes(&[0x30, n, 0, 1]).unwrap()
    }

    proptest! {
        /// Folding the records into summaries, as storage does (one new
        /// record at a time, a record it holds already skipped), gives the
        /// summary of the whole history after every step, and reports a
        /// double sale exactly when the ledger does.
        #[test]
        fn a_summary_folded_from_records_is_the_summary_of_the_history(ops in ops()) {
            let mut ledger = EpcLedger::new();
            let mut summaries: BTreeMap<Epc, EpcSummary> = BTreeMap::new();
            for op in &ops {
                let epc = tag(op.tag);
                let record = rec(op.event, if op.replica == 0 { "s1" } else { "s2" });
                let held = ledger.get(&epc).is_some_and(|h| {
                    if op.sale { h.sales.contains(&record) } else { h.returns.contains(&record) }
                });
                let summary = summaries.get(&epc).copied().unwrap_or_default();
                if op.sale {
                    let reported = ledger.record_sale(&epc, record.clone()).is_some();
                    if !held {
                        let (next, newly) = summary.after_sale(&record);
                        prop_assert_eq!(newly, reported);
                        summaries.insert(epc.clone(), next);
                    } else {
                        prop_assert!(!reported);
                    }
                } else {
                    ledger.record_return(&epc, record.clone());
                    if !held {
                        summaries.insert(epc.clone(), summary.after_return());
                    }
                }
                let history = ledger.get(&epc).unwrap();
                let summary = summaries[&epc];
                prop_assert_eq!(summary, EpcSummary::of(history));
                prop_assert_eq!(summary.is_sold(), history.is_sold());
                prop_assert_eq!(summary.is_double_sold(), history.is_double_sold());
                prop_assert_eq!(
                    SoldEpcs::is_sold(&summaries, &epc),
                    SoldEpcs::is_sold(&ledger, &epc)
                );
            }
        }
    }

    #[test]
    fn merge_reports_a_tag_sold_by_two_partitioned_replicas() {
        let epc = Epc::from_hex("3074257BF7194E4000001A85").unwrap();
        let mut a = EpcLedger::new();
        let mut b = EpcLedger::new();
        a.record_sale(&epc, rec(1, "s1"));
        b.record_sale(&epc, rec(2, "s2"));
        let found = a.merge(&b);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].sales.len(), 2);
        // Reported once: merging again finds nothing new.
        assert!(a.merge(&b).is_empty());
        assert_eq!(a.double_sold().len(), 1);
    }
}
