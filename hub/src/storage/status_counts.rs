//! [`StatusCounts`]: routed orders and transfers counted by status, as
//! HQ reads them (`GET /v1/stats/orders`, the dashboard). Each engine
//! keeps the counts as records move, in the transaction that moves them,
//! so reading them costs O(statuses) however many records there are.

use std::collections::BTreeMap;

use serde::Serialize;
use tally_sync::fulfilment::Status;
use tally_sync::transfer::TransferStatus;

/// The kind routed orders are counted under.
pub(crate) const ORDERS: &str = "orders";
/// The kind transfers are counted under.
pub(crate) const TRANSFERS: &str = "transfers";

/// Every status of a routed order, in the order HQ reads them.
pub(crate) const ORDER_STATUSES: [Status; 5] = [
    Status::Allocated,
    Status::Picked,
    Status::Collected,
    Status::Shipped,
    Status::Cancelled,
];
/// Every status of a transfer.
pub(crate) const TRANSFER_STATUSES: [TransferStatus; 2] =
    [TransferStatus::InTransit, TransferStatus::Received];

/// Routed orders and transfers by status, every status present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// Status name (`allocated`, `picked`, …) → routed orders with it.
    pub orders: BTreeMap<String, u64>,
    /// Status name (`in_transit`, `received`) → transfers with it.
    pub transfers: BTreeMap<String, u64>,
}

impl StatusCounts {
    /// Every status's count, each read by `count(kind, status)`.
    pub(crate) fn read<E>(mut count: impl FnMut(&str, &str) -> Result<u64, E>) -> Result<Self, E> {
        let mut out = Self::default();
        for s in ORDER_STATUSES {
            out.orders
                .insert(s.name().to_string(), count(ORDERS, s.name())?);
        }
        for s in TRANSFER_STATUSES {
            out.transfers
                .insert(s.name().to_string(), count(TRANSFERS, s.name())?);
        }
        Ok(out)
    }
}
