//! Records listed by where they stand: a table `id → record` beside an
//! index `(status, id) → ()`, so the records with a status are one range
//! read, a page at a time, however many the others are. The agent's
//! order allocations and transfers and the hub's orders and transfers
//! keep their status this way.

use redb::{ReadableTable, Table};

use crate::error::StoreError;

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

/// Moves `id`'s entry in `index` from status `was` (none for a new
/// record) to `now`.
pub fn move_status(
    index: &mut Table<'_, (&'static str, &'static str), ()>,
    id: &str,
    was: Option<&str>,
    now: &str,
) -> Result<(), StoreError> {
    if let Some(was) = was {
        index.remove((was, id)).map_err(storage)?;
    }
    index.insert((now, id), ()).map_err(storage)?;
    Ok(())
}

/// The ids with `status`, in id order after `after`, at most `limit`.
pub fn ids_with_status(
    index: &impl ReadableTable<(&'static str, &'static str), ()>,
    status: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for row in index.range((status, after)..).map_err(storage)? {
        if out.len() == limit {
            break;
        }
        let (k, _) = row.map_err(storage)?;
        let (s, id) = k.value();
        if s != status {
            break;
        }
        if id != after {
            out.push(id.to_string());
        }
    }
    Ok(out)
}

/// The records with one of `statuses` (by status, then id after `after`
/// within each), at most `limit` in all, each read with `get` (a record
/// gone from the table is skipped).
pub fn records_with_status<T>(
    index: &impl ReadableTable<(&'static str, &'static str), ()>,
    statuses: &[&str],
    after: &str,
    limit: usize,
    mut get: impl FnMut(&str) -> Result<Option<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for status in statuses {
        let left = limit.saturating_sub(out.len());
        if left == 0 {
            break;
        }
        for id in ids_with_status(index, status, after, left)? {
            out.extend(get(&id)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use redb::TableDefinition;

    use super::*;

    const INDEX: TableDefinition<(&str, &str), ()> = TableDefinition::new("index");

    #[test]
    fn records_are_paged_by_status_and_moved_between_statuses() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut index = txn.open_table(INDEX).unwrap();
            for id in ["a", "b", "c", "d"] {
                move_status(&mut index, id, None, "open").unwrap();
            }
            move_status(&mut index, "b", Some("open"), "done").unwrap();
            assert_eq!(
                ids_with_status(&index, "open", "", 10).unwrap(),
                ["a", "c", "d"]
            );
            assert_eq!(ids_with_status(&index, "open", "a", 1).unwrap(), ["c"]);
            let both = records_with_status(&index, &["open", "done"], "", 3, |id| {
                Ok(Some(id.to_uppercase()))
            })
            .unwrap();
            assert_eq!(both, ["A", "C", "D"]);
            let done =
                records_with_status(&index, &["done"], "", 10, |id| Ok(Some(id.to_string())))
                    .unwrap();
            assert_eq!(done, ["b"]);
        }
        txn.commit().unwrap();
    }
}
