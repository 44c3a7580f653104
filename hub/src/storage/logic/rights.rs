//! Rights on demand at the hub: a store's request for rights it lacks
//! (`POST /v1/rights`) and its report of rights it released
//! (`POST /v1/rights/released`), each merged with what its synced events
//! explain, so neither channel can grow a store's stock past its events.
//!
//! A grant is recorded under the request's id: a retry is answered with
//! what was granted, never granted twice.

use serde::{Deserialize, Serialize};
use tally_sync::exchange::Identity;
use tally_sync::rights::{self, RightsReleased, RightsRequest};
use tally_sync::Gtin;

use crate::storage::txn::HubTxn;
use crate::storage::{GrantResult, ReleaseResult, StorageError};

/// What the hub keeps per granted request id (to answer a retry alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GrantRecord {
    /// The store that asked (its replica id).
    pub store: String,
    /// The item.
    pub gtin: Gtin,
    /// Units asked for.
    pub units: u64,
    /// Units granted.
    pub granted: u64,
}

/// A request for rights: answered again if its id was granted, else the
/// hub's rights move to the store (less `hold_back`, units held for
/// orders waiting on this store) and the grant is recorded under the id.
pub(crate) fn grant<T: HubTxn>(
    txn: &mut T,
    who: &Identity,
    req: &RightsRequest,
    hold_back: u64,
) -> Result<GrantResult, StorageError> {
    let record = GrantRecord {
        store: who.replica.to_string(),
        gtin: req.gtin,
        units: req.units,
        granted: 0,
    };
    let id = req.request_id.0.as_u128();
    if let Some(old) = txn.grant_record(id)? {
        let same = GrantRecord {
            granted: 0,
            ..old.clone()
        } == record;
        if !same {
            return Ok(GrantResult::IdConflict);
        }
        return Ok(GrantResult::Replayed(rights::regrant(
            &*txn,
            who,
            req,
            old.granted,
        )?));
    }
    let granted = match rights::grant_explained(txn, who, req, hold_back)? {
        Ok(g) => g,
        Err(violation) => return Ok(GrantResult::Forged(violation.to_string())),
    };
    txn.put_grant_record(
        id,
        &GrantRecord {
            granted: granted.granted,
            ..record
        },
    )?;
    Ok(GrantResult::Granted(granted))
}

/// A store's report of rights it released: its own entries, clamped to
/// what its events explain, merged into the hub's counter.
pub(crate) fn release<T: HubTxn>(
    txn: &mut T,
    who: &Identity,
    released: &RightsReleased,
) -> Result<ReleaseResult, StorageError> {
    Ok(match rights::merge_released(txn, who, released)? {
        Ok(changed) => ReleaseResult::Merged(changed),
        Err(violation) => ReleaseResult::Forged(violation.to_string()),
    })
}
