//! The hub's write logic, written once for every storage engine: each
//! module is generic over [`HubTxn`](super::txn::HubTxn) and never names
//! a table. An engine's `HubWrite` opens its transaction, wraps it as a
//! `HubTxn` and delegates here (issue 24's design, §2.2).

pub(crate) mod exceptions;
pub mod held;
pub(crate) mod orders;
pub mod returns;
pub(crate) mod rights;
pub mod routed;
pub mod sync;
#[cfg(test)]
pub(crate) mod test_support;
pub mod transfers;

use tally_sync::message::CatalogItem;
use tally_sync::rights::{RightsReleased, RightsRequest};
use tally_sync::{EventId, LocationId, Shortage};

use self::held::AdmitResult;
use self::routed::{RoutedOrderRequest, RoutedResult, RoutingSettings};
use self::sync::SyncSettings;
use super::txn::HubTxn;
use super::{
    CatalogResult, GrantResult, HubWrite, OrderRequest, OrderResult, ReleaseResult, StorageError,
    SyncResult,
};

/// One batch's transaction as the writer sees it ([`HubWrite`]), on any
/// engine: each typed write runs the logic here on the engine's
/// [`HubTxn`].
#[derive(Debug)]
pub(crate) struct BatchWrite<'s, T> {
    /// The engine's transaction.
    pub txn: T,
    /// What shapes a sync's answer.
    pub settings: &'s SyncSettings,
    /// How orders that name no store are routed.
    pub routing: &'s RoutingSettings,
}

impl<T: HubTxn> HubWrite for BatchWrite<'_, T> {
    fn sync(
        &mut self,
        who: &tally_sync::exchange::Identity,
        req: &tally_sync::SyncRequest,
        holds: &tally_sync::exchange::Held,
        now_ms: u64,
    ) -> Result<SyncResult, StorageError> {
        sync::sync(&mut self.txn, self.settings, who, req, holds, now_ms)
    }

    fn order(&mut self, o: &OrderRequest) -> Result<OrderResult, StorageError> {
        orders::order(&mut self.txn, o, &self.settings.policy)
    }

    fn order_refused(
        &mut self,
        store: &LocationId,
        reason: Shortage,
        now_ms: u64,
    ) -> Result<bool, StorageError> {
        orders::order_refused(&mut self.txn, store, reason, now_ms)
    }

    fn route_order(&mut self, o: &RoutedOrderRequest) -> Result<RoutedResult, StorageError> {
        routed::route_order(&mut self.txn, o, self.routing, &self.settings.policy)
    }

    fn cancel_order(
        &mut self,
        order_id: &str,
        seed: [u8; 10],
        now_ms: u64,
    ) -> Result<routed::CancelResult, StorageError> {
        routed::cancel(&mut self.txn, order_id, seed, now_ms)
    }

    fn check_return(
        &mut self,
        req: &tally_sync::returns::ReturnCheckRequest,
        store: &tally_sync::LocationId,
        now_ms: u64,
    ) -> Result<returns::CheckResult, StorageError> {
        returns::check(&mut self.txn, req, store, now_ms)
    }

    fn acknowledge_exception(
        &mut self,
        id: u64,
        by: &str,
        note: &str,
        now_ms: u64,
    ) -> Result<super::AckResult, StorageError> {
        exceptions::acknowledge(&mut self.txn, id, by, note, now_ms)
    }

    fn flag_overdue_transfers(
        &mut self,
        now_ms: u64,
        overdue_ms: u64,
    ) -> Result<usize, StorageError> {
        let raised = transfers::flag_overdue(&mut self.txn, now_ms, overdue_ms)?;
        let n = raised.len();
        self.txn.append_exceptions(raised)?;
        Ok(n)
    }

    fn admit_held(&mut self, id: EventId, now_ms: u64) -> Result<AdmitResult, StorageError> {
        held::admit(&mut self.txn, id, now_ms)
    }

    fn catalog(&mut self, items: &[CatalogItem]) -> Result<CatalogResult, StorageError> {
        let mut changed = 0;
        for item in items {
            if self.txn.put_catalog_item(item)? {
                changed += 1;
            }
        }
        Ok(CatalogResult { changed })
    }

    fn grant(
        &mut self,
        who: &tally_sync::exchange::Identity,
        req: &RightsRequest,
        hold_back: u64,
    ) -> Result<GrantResult, StorageError> {
        rights::grant(&mut self.txn, who, req, hold_back)
    }

    fn release(
        &mut self,
        who: &tally_sync::exchange::Identity,
        released: &RightsReleased,
    ) -> Result<ReleaseResult, StorageError> {
        rights::release(&mut self.txn, who, released)
    }
}
