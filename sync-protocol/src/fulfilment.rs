//! Where an order's allocation at one store stands, and how it moves:
//! `allocated → picked → collected` (pickup) or `→ shipped` (ship), or
//! `cancelled`. Pure: the hub and the stores record each move as an event
//! and both sides keep the status as a join-semilattice, so moves made on
//! either side, offline, in any order, converge.
//!
//! # Rules
//! - [`Status::advance`] is a move asked for now: allowed forward only
//!   (picking may be skipped: scanning the items at the counter picks and
//!   collects at once), repeated moves are no-ops (idempotent), cancelling
//!   a collected or shipped allocation is refused (the goods are gone),
//!   and collecting a ship order (or shipping a pickup) is refused.
//! - [`Status::merge`] joins what two replicas know: the higher rank wins,
//!   with `collected`/`shipped` above `cancelled` above `picked` above
//!   `allocated`. So a cancellation at HQ and a collection at a store cut
//!   off meanwhile converge to `collected` (the customer has the goods),
//!   and [`Conflict`] tells the hub to raise an exception for it.

use serde::{Deserialize, Serialize};

/// How an order reaches its customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fulfilment {
    /// The customer collects it at the store.
    Pickup,
    /// The store ships it.
    Ship,
}

/// Where one allocation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Units set aside at the store; not yet picked.
    Allocated,
    /// Taken off the shelf, waiting for the customer or the carrier.
    Picked,
    /// Cancelled before it was handed over: the units are sellable again.
    Cancelled,
    /// Handed to the customer at the store (pickup).
    Collected,
    /// Handed to the carrier (ship).
    Shipped,
}

/// Why a move is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveError {
    /// The allocation is already further on (e.g. picking a collected one).
    #[error("the allocation is already {0:?}")]
    Behind(Status),
    /// Cancelling what the customer or the carrier already has.
    #[error("the allocation is already {0:?}: it cannot be cancelled")]
    Fulfilled(Status),
    /// Collecting a ship order or shipping a pickup order.
    #[error("a {0:?} order is not {1:?}")]
    WrongFulfilment(Fulfilment, Status),
    /// Moving a cancelled allocation on.
    #[error("the allocation was cancelled")]
    Cancelled,
}

/// Two replicas' statuses that cannot both be true of the goods: a
/// cancellation and a hand-over. The merge keeps the hand-over; the hub
/// surfaces the conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// The hand-over that stands.
    pub kept: Status,
}

impl MoveError {
    /// Where the allocation stands.
    pub fn status(self) -> Status {
        match self {
            MoveError::Behind(s) | MoveError::Fulfilled(s) => s,
            MoveError::WrongFulfilment(_, _) => Status::Allocated,
            MoveError::Cancelled => Status::Cancelled,
        }
    }
}

impl Status {
    /// The status's name on the wire: `allocated`, `picked`, `cancelled`,
    /// `collected`, `shipped`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Allocated => "allocated",
            Status::Picked => "picked",
            Status::Cancelled => "cancelled",
            Status::Collected => "collected",
            Status::Shipped => "shipped",
        }
    }

    /// The lattice rank (see the module docs).
    fn rank(self) -> u8 {
        match self {
            Status::Allocated => 0,
            Status::Picked => 1,
            Status::Cancelled => 2,
            Status::Collected => 3,
            Status::Shipped => 4,
        }
    }

    /// Whether the goods left the store.
    pub fn handed_over(self) -> bool {
        matches!(self, Status::Collected | Status::Shipped)
    }

    /// Whether the allocation still holds units at the store (neither
    /// handed over nor cancelled).
    pub fn open(self) -> bool {
        matches!(self, Status::Allocated | Status::Picked)
    }

    /// The status after moving to `to` now, for an order fulfilled by
    /// `fulfilment`; `Ok(self)` when it is there already.
    pub fn advance(self, to: Status, fulfilment: Fulfilment) -> Result<Status, MoveError> {
        if to == self {
            return Ok(self);
        }
        match (fulfilment, to) {
            (Fulfilment::Ship, Status::Collected) | (Fulfilment::Pickup, Status::Shipped) => {
                return Err(MoveError::WrongFulfilment(fulfilment, to))
            }
            _ => {}
        }
        match (self, to) {
            (s, Status::Cancelled) if s.handed_over() => Err(MoveError::Fulfilled(s)),
            (Status::Cancelled, _) => Err(MoveError::Cancelled),
            (s, t) if t.rank() < s.rank() || s.handed_over() => Err(MoveError::Behind(s)),
            (_, t) => Ok(t),
        }
    }

    /// Joins two replicas' statuses (commutative, associative,
    /// idempotent), and the conflict when one cancelled what the other
    /// handed over.
    pub fn merge(self, other: Status) -> (Status, Option<Conflict>) {
        let joined = if other.rank() > self.rank() {
            other
        } else {
            self
        };
        let conflict = match (self, other) {
            (Status::Cancelled, s) | (s, Status::Cancelled) if s.handed_over() => {
                Some(Conflict { kept: s })
            }
            _ => None,
        };
        (joined, conflict)
    }
}

/// The longest order id, in bytes (printable ASCII).
pub const MAX_ORDER_ID_BYTES: usize = 128;

/// Whether `id` is an order id Tally accepts: 1 to
/// [`MAX_ORDER_ID_BYTES`] printable ASCII characters (no spaces). It names
/// the order at the hub, in URLs and at every store's pick list.
pub fn valid_order_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ORDER_ID_BYTES && id.bytes().all(|b| b.is_ascii_graphic())
}

/// One store's part of an order as that store keeps it: what to hand
/// over, how, and where it stands. The hub sends each allocation to its
/// store ([`crate::message::AllocationsPage`]); the store moves it on by
/// recording `fulfilment` events; both sides merge what they know with
/// [`OrderAllocation::merge`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAllocation {
    /// The order.
    pub order_id: String,
    /// How it reaches the customer.
    pub fulfilment: Fulfilment,
    /// The units this store hands over, one line per item.
    pub lines: Vec<crate::routing::AllocatedLine>,
    /// Where it stands.
    pub status: Status,
    /// When the hub allocated it (hub clock, Unix ms).
    pub at_ms: u64,
}

impl OrderAllocation {
    /// What the store knows (`self`) joined with what the hub sent: the
    /// order's content is the hub's (it never changes once allocated), the
    /// status the join of both.
    #[must_use]
    pub fn merge(self, from_hub: OrderAllocation) -> OrderAllocation {
        let (status, _) = self.status.merge(from_hub.status);
        OrderAllocation { status, ..from_hub }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const ALL: [Status; 5] = [
        Status::Allocated,
        Status::Picked,
        Status::Cancelled,
        Status::Collected,
        Status::Shipped,
    ];

    fn status() -> impl Strategy<Value = Status> {
        proptest::sample::select(ALL.to_vec())
    }

    #[test]
    fn moves_go_forward_once_and_never_undo_a_hand_over() {
        use Fulfilment::*;
        use Status::*;
        assert_eq!(Allocated.advance(Picked, Pickup), Ok(Picked));
        assert_eq!(Picked.advance(Picked, Pickup), Ok(Picked), "idempotent");
        assert_eq!(
            Allocated.advance(Collected, Pickup),
            Ok(Collected),
            "pick skipped"
        );
        assert_eq!(Picked.advance(Shipped, Ship), Ok(Shipped));
        assert_eq!(Picked.advance(Cancelled, Ship), Ok(Cancelled));
        assert_eq!(
            Collected.advance(Cancelled, Pickup),
            Err(MoveError::Fulfilled(Collected))
        );
        assert_eq!(
            Picked.advance(Collected, Ship),
            Err(MoveError::WrongFulfilment(Ship, Collected))
        );
        assert_eq!(Cancelled.advance(Picked, Pickup), Err(MoveError::Cancelled));
        assert_eq!(
            Picked.advance(Allocated, Pickup),
            Err(MoveError::Behind(Picked))
        );
    }

    #[test]
    fn a_cancellation_and_a_collection_made_apart_converge_to_the_collection() {
        assert_eq!(
            Status::Cancelled.merge(Status::Collected),
            (
                Status::Collected,
                Some(Conflict {
                    kept: Status::Collected
                })
            )
        );
        assert_eq!(
            Status::Picked.merge(Status::Cancelled),
            (Status::Cancelled, None)
        );
    }

    proptest! {
        /// Merge is a join: commutative, associative, idempotent, and
        /// never goes back from either side.
        #[test]
        fn merge_is_a_join(a in status(), b in status(), c in status()) {
            prop_assert_eq!(a.merge(b).0, b.merge(a).0);
            prop_assert_eq!(a.merge(b).0.merge(c).0, a.merge(b.merge(c).0).0);
            prop_assert_eq!(a.merge(a), (a, None));
            let j = a.merge(b).0;
            prop_assert!(j.rank() >= a.rank() && j.rank() >= b.rank());
        }

        /// Every allowed move goes up the lattice, so a move merged with
        /// the status it came from is the move.
        #[test]
        fn moves_are_inflationary(
            s in status(),
            to in status(),
            ship in any::<bool>(),
        ) {
            let f = if ship { Fulfilment::Ship } else { Fulfilment::Pickup };
            if let Ok(next) = s.advance(to, f) {
                prop_assert_eq!(s.merge(next).0, next);
                prop_assert!(next.rank() >= s.rank());
            }
        }
    }
}
