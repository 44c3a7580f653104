//! The catalog tables: items by GTIN, each stamped with the catalog
//! version that last changed it, and a change index by version, so
//! [`since`] hands out only what changed after a cursor (as the counters'
//! change index does for inventory).

use redb::ReadableTable;
use tally_sync::message::CatalogItem;
use tally_sync::Gtin;

use crate::error::{corrupt, StoreError};
use crate::tables::{
    read_u64, versioned, with_version, ReadTables, CATALOG, CATALOG_CHANGES, CATALOG_VERSION, META,
};

/// Stores `item`, stamping a new catalog version if it changed. Returns
/// whether it changed.
pub(crate) fn put(txn: &redb::WriteTransaction, item: &CatalogItem) -> Result<bool, StoreError> {
    let mut catalog = txn.open_table(CATALOG)?;
    let mut changes = txn.open_table(CATALOG_CHANGES)?;
    let mut meta = txn.open_table(META)?;
    let key = item.gtin.as_u64();
    let old: Option<(u64, CatalogItem)> = match catalog.get(key)? {
        Some(v) => Some(versioned("catalog", v.value())?),
        None => None,
    };
    if old.as_ref().is_some_and(|(_, o)| o == item) {
        return Ok(false);
    }
    if let Some((v, _)) = old {
        changes.remove(v)?;
    }
    let version = read_u64(&meta, CATALOG_VERSION)? + 1;
    meta.insert(CATALOG_VERSION, version.to_le_bytes().as_slice())?;
    changes.insert(version, key)?;
    catalog.insert(key, with_version("catalog", version, item)?.as_slice())?;
    Ok(true)
}

/// The item with `gtin`.
pub(crate) fn item(
    table: &impl ReadableTable<u64, &'static [u8]>,
    gtin: Gtin,
) -> Result<Option<CatalogItem>, StoreError> {
    match table.get(gtin.as_u64())? {
        Some(v) => Ok(Some(versioned::<CatalogItem>("catalog", v.value())?.1)),
        None => Ok(None),
    }
}

/// Items changed after `cursor`, at most `limit`, and the next cursor.
pub(crate) fn since(
    txn: &impl ReadTables,
    cursor: u64,
    limit: usize,
) -> Result<(Vec<CatalogItem>, u64), StoreError> {
    let catalog = txn.read_table(CATALOG)?;
    let changes = txn.read_table(CATALOG_CHANGES)?;
    let mut next = read_u64(&txn.read_table(META)?, CATALOG_VERSION)?.max(cursor);
    let mut out = Vec::new();
    for row in changes.range(cursor.saturating_add(1)..)? {
        let (v, gtin) = row?;
        if out.len() == limit {
            next = v.value() - 1;
            break;
        }
        let gtin = Gtin::from_u64(gtin.value()).map_err(|e| corrupt("catalog_changes", e))?;
        if let Some(item) = item(&catalog, gtin)? {
            out.push(item);
        }
    }
    Ok((out, next))
}
