//! Transfers of stock between stores: a transfer out of store A removes
//! the units from A within A's rights (an event of kind `transfer_out`),
//! they are *in transit* until store B receives them (`transfer_in`,
//! adding them at B), and the hub shows what is in transit. Pure: the
//! stores record the two events through the command core; the hub keeps
//! each transfer's [`Transfer`] record and sends it to both stores, who
//! merge what they know with [`Transfer::merge`].
//!
//! # Rules
//! - A transfer id names one transfer across the chain (1 to
//!   [`crate::fulfilment::MAX_ORDER_ID_BYTES`] printable ASCII, like an
//!   order id): the source store refuses an id it already used.
//! - Units leave A only within A's rights (as a sale): a transfer cannot
//!   take what the hub holds for online orders, and no unit is both sold
//!   at A and sent to B.
//! - B receives a transfer once, the units the transfer lists (a short
//!   delivery is corrected by a count at B); only a transfer addressed to
//!   B, which B learned of from the hub.
//! - The status only rises: `in_transit` → `received`.

use serde::{Deserialize, Serialize};

use crate::gtin::Gtin;
use crate::ids::{Epc, LocationId};

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// Sent by the source, not yet received.
    InTransit,
    /// Received at the destination.
    Received,
}

impl TransferStatus {
    /// The status's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            TransferStatus::InTransit => "in_transit",
            TransferStatus::Received => "received",
        }
    }

    /// The status named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "in_transit" => Some(TransferStatus::InTransit),
            "received" => Some(TransferStatus::Received),
            _ => None,
        }
    }
}

/// Units of one item on a transfer (one tagged unit with its EPC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLine {
    /// The item.
    pub gtin: Gtin,
    /// Units (1 with an EPC).
    pub qty: u64,
    /// The tag of a serialized unit, for RFID receiving. (Always
    /// serialized: the agent stores transfers in postcard, which has no
    /// field names to skip by.)
    #[serde(default)]
    pub epc: Option<Epc>,
}

impl TransferLine {
    /// The lines of a `transfer_out` event.
    pub fn of_event(lines: &[crate::event::Line]) -> Vec<TransferLine> {
        lines
            .iter()
            .map(|l| TransferLine {
                gtin: l.gtin,
                qty: l.qty,
                epc: l.epc.clone(),
            })
            .collect()
    }
}

/// A transfer between two stores, as the hub and both stores keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The transfer's id.
    pub transfer_id: String,
    /// The source store.
    pub from: LocationId,
    /// The destination store.
    pub to: LocationId,
    /// What was sent.
    pub lines: Vec<TransferLine>,
    /// Where it stands.
    pub status: TransferStatus,
    /// When the source recorded it (its clock, Unix ms).
    pub sent_at_ms: u64,
    /// The source's `transfer_out` event.
    #[serde(default)]
    pub sent_event: Option<crate::ids::EventId>,
}

impl Transfer {
    /// What one replica knows joined with what another sent: the content
    /// is the source's (it never changes once sent), the status the
    /// higher of both.
    #[must_use]
    pub fn merge(self, other: Transfer) -> Transfer {
        let status = self.status.max(other.status);
        Transfer { status, ..self }
    }

    /// Units per item on the transfer.
    pub fn units(&self) -> std::collections::BTreeMap<Gtin, u64> {
        let mut out = std::collections::BTreeMap::new();
        for l in &self.lines {
            let n: &mut u64 = out.entry(l.gtin).or_default();
            *n = n.saturating_add(l.qty);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn transfer(status: TransferStatus) -> Transfer {
        Transfer {
            transfer_id: "t-1".into(),
            from: LocationId::new("a").unwrap(),
            to: LocationId::new("b").unwrap(),
            lines: vec![TransferLine {
                gtin: Gtin::from_body(7).unwrap(),
                qty: 3,
                epc: None,
            }],
            status,
            sent_at_ms: 1,
            sent_event: None,
        }
    }

    fn status() -> impl Strategy<Value = TransferStatus> {
        prop_oneof![
            Just(TransferStatus::InTransit),
            Just(TransferStatus::Received)
        ]
    }

    proptest! {
        /// Merge is a join on the status: commutative, associative,
        /// idempotent, never going back.
        #[test]
        fn merge_is_a_join(a in status(), b in status(), c in status()) {
            let (ta, tb, tc) = (transfer(a), transfer(b), transfer(c));
            prop_assert_eq!(ta.clone().merge(tb.clone()), tb.clone().merge(ta.clone()));
            prop_assert_eq!(
                ta.clone().merge(tb.clone()).merge(tc.clone()),
                ta.clone().merge(tb.clone().merge(tc))
            );
            prop_assert_eq!(ta.clone().merge(ta.clone()), ta.clone());
            prop_assert!(ta.clone().merge(tb).status >= a);
        }
    }

    #[test]
    fn names_round_trip() {
        for s in [TransferStatus::InTransit, TransferStatus::Received] {
            assert_eq!(TransferStatus::from_name(s.name()), Some(s));
        }
        assert_eq!(TransferStatus::from_name("lost"), None);
    }
}

#[cfg(test)]
mod codec_tests {
    use super::*;

    #[test]
    fn a_transfer_round_trips_through_the_storage_encoding() {
        let t = Transfer {
            transfer_id: "t-1".into(),
            from: LocationId::new("a").unwrap(),
            to: LocationId::new("b").unwrap(),
            lines: vec![TransferLine {
                gtin: Gtin::from_body(7).unwrap(),
                qty: 3,
                epc: None,
            }],
            status: TransferStatus::InTransit,
            sent_at_ms: 1,
            sent_event: Some(crate::ids::EventId::v7(5, [1; 10])),
        };
        let bytes = crate::codec::to_bytes(&t).unwrap();
        assert_eq!(crate::codec::from_bytes::<Transfer>(&bytes).unwrap(), t);
    }
}
