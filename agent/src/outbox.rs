//! The outbox table: events recorded here that the hub has not
//! acknowledged yet, in the order they were recorded, by sequence number.
//!
//! # Design constraints
//! - **A row is a run.** A row holds consecutive sequence numbers from its
//!   key on, one event id (16 bytes, little-endian) each, so a batch of
//!   sales appends one row instead of one per sale: a redb insert costs
//!   ~6,700 instructions (callgrind), more than a quarter of what the
//!   committer spent on a sale. A run holds at most [`MAX_RUN`] ids.
//! - **Sequence numbers are never reused.** Removing entries (the hub's
//!   acknowledgement, a dead letter) rewrites only the runs it cuts; the
//!   entries left keep their numbers, so runs may have gaps between them.
//! - **Bad bytes are errors.** A run whose length is not a whole number of
//!   ids is [`StoreError::Corrupt`].
//! - **One layout at a time.** A database written before runs (one row per
//!   event, `agent_outbox`) is migrated when it is opened ([`migrate`]).

use std::ops::ControlFlow;

use tally_store::redb::{
    ReadableTable, ReadableTableMetadata, Table, TableDefinition, TableHandle, WriteTransaction,
};
use tally_store::StoreError;
use tally_sync::EventId;

use crate::store::storage;

/// Sequence number of a run's first entry → its event ids.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("agent_outbox_runs");
/// The layout before runs: sequence number → event id.
const OUTBOX_V1: TableDefinition<u64, u128> = TableDefinition::new("agent_outbox");
/// Most ids in one run (2 KiB: a row stays well inside a page).
pub const MAX_RUN: usize = 128;
const ID: usize = 16;

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        table: "agent_outbox_runs",
        detail,
    }
}

/// The ids of a run, checked.
fn ids(first: u64, bytes: &[u8]) -> Result<impl Iterator<Item = EventId> + '_, StoreError> {
    if bytes.is_empty() || bytes.len() % ID != 0 {
        return Err(corrupt(format!(
            "run at {first} is {} bytes, not a whole number of ids",
            bytes.len()
        )));
    }
    Ok(bytes.chunks_exact(ID).map(|c| {
        let mut b = [0u8; ID];
        b.copy_from_slice(c);
        EventId(uuid::Uuid::from_u128(u128::from_le_bytes(b)))
    }))
}

/// The bytes of a run.
fn encode(ids: &[EventId]) -> Vec<u8> {
    ids.iter()
        .flat_map(|id| id.0.as_u128().to_le_bytes())
        .collect()
}

/// Writes `ids` as runs numbered from `first` on.
pub fn append(
    t: &mut Table<'_, u64, &'static [u8]>,
    first: u64,
    ids: &[EventId],
) -> Result<(), StoreError> {
    for (i, chunk) in ids.chunks(MAX_RUN).enumerate() {
        let key = first.saturating_add((i * MAX_RUN) as u64);
        t.insert(key, encode(chunk).as_slice()).map_err(storage)?;
    }
    Ok(())
}

/// Calls `f` with every entry after sequence number `after`, in order,
/// until it breaks.
pub fn for_each_after(
    t: &impl ReadableTable<u64, &'static [u8]>,
    after: u64,
    mut f: impl FnMut(u64, EventId) -> Result<ControlFlow<()>, StoreError>,
) -> Result<(), StoreError> {
    let from = after.saturating_add(1);
    // The run holding `from` may start before it.
    let start = match t.range(..=from).map_err(storage)?.next_back() {
        Some(row) => row.map_err(storage)?.0.value(),
        None => from,
    };
    for row in t.range(start..).map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        let first = k.value();
        for (i, id) in ids(first, v.value())?.enumerate() {
            let seq = first.saturating_add(i as u64);
            if seq > after && f(seq, id)?.is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The first `limit` entries after sequence number `after`, in order.
pub fn entries_after(
    t: &impl ReadableTable<u64, &'static [u8]>,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, EventId)>, StoreError> {
    let mut out = Vec::new();
    if limit > 0 {
        for_each_after(t, after, |seq, id| {
            out.push((seq, id));
            Ok(if out.len() == limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
    }
    Ok(out)
}

/// Entries in the table.
pub fn len(t: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, StoreError> {
    let mut n = 0u64;
    for row in t.iter().map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        n += ids(k.value(), v.value())?.count() as u64;
    }
    Ok(n)
}

/// The highest sequence number in the table (0 if it is empty).
pub fn last_seq(t: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, StoreError> {
    match t.last().map_err(storage)? {
        Some((k, v)) => {
            let n = ids(k.value(), v.value())?.count() as u64;
            Ok(k.value().saturating_add(n - 1))
        }
        None => Ok(0),
    }
}

/// Removes every entry up to and including `upto`; returns how many.
pub fn remove_upto(t: &mut Table<'_, u64, &'static [u8]>, upto: u64) -> Result<u64, StoreError> {
    let mut cut: Vec<(u64, Vec<EventId>)> = Vec::new();
    for row in t.range(..=upto).map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        cut.push((k.value(), ids(k.value(), v.value())?.collect()));
    }
    let mut removed = 0u64;
    for (first, run) in cut {
        t.remove(first).map_err(storage)?;
        // Entries first..=upto go; a run reaching past `upto` keeps the rest.
        let gone = usize::try_from(upto.saturating_sub(first).saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(run.len());
        removed += gone as u64;
        if gone < run.len() {
            append(t, upto.saturating_add(1), &run[gone..])?;
        }
    }
    Ok(removed)
}

/// Removes the entry of event `id`, if there is one; returns its sequence
/// number.
pub fn remove_id(
    t: &mut Table<'_, u64, &'static [u8]>,
    id: EventId,
) -> Result<Option<u64>, StoreError> {
    let mut found = None;
    for row in t.iter().map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        let run: Vec<EventId> = ids(k.value(), v.value())?.collect();
        if let Some(i) = run.iter().position(|x| *x == id) {
            found = Some((k.value(), i, run));
            break;
        }
    }
    let Some((first, i, run)) = found else {
        return Ok(None);
    };
    t.remove(first).map_err(storage)?;
    append(t, first, &run[..i])?;
    let seq = first.saturating_add(i as u64);
    append(t, seq.saturating_add(1), &run[i + 1..])?;
    Ok(Some(seq))
}

/// Moves the entries of the layout before runs, if any, into runs, and
/// drops that table. Returns how many entries moved.
pub fn migrate(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let exists = txn
        .list_tables()
        .map_err(storage)?
        .any(|t| t.name() == OUTBOX_V1.name());
    if !exists {
        return Ok(0);
    }
    let mut entries: Vec<(u64, EventId)> = Vec::new();
    {
        let old = txn.open_table(OUTBOX_V1).map_err(storage)?;
        entries.reserve(usize::try_from(old.len().map_err(storage)?).unwrap_or(0));
        for row in old.iter().map_err(storage)? {
            let (k, v) = row.map_err(storage)?;
            entries.push((k.value(), EventId(uuid::Uuid::from_u128(v.value()))));
        }
    }
    // Consecutive entries become runs (`append` cuts them at MAX_RUN); a
    // gap (a dead letter) starts a new one.
    let mut new = txn.open_table(OUTBOX).map_err(storage)?;
    let mut rest = entries.as_slice();
    while let Some(&(first, _)) = rest.first() {
        let n = rest
            .iter()
            .zip(first..)
            .take_while(|((seq, _), want)| seq == want)
            .count();
        let ids: Vec<EventId> = rest[..n].iter().map(|(_, id)| *id).collect();
        append(&mut new, first, &ids)?;
        rest = &rest[n..];
    }
    drop(new);
    txn.delete_table(OUTBOX_V1).map_err(storage)?;
    Ok(entries.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_store::redb::ReadableDatabase;

    fn id(n: u128) -> EventId {
        EventId(uuid::Uuid::from_u128(n))
    }

    fn all(db: &tally_store::redb::Database) -> Vec<(u64, EventId)> {
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(OUTBOX).unwrap();
        let mut out = Vec::new();
        for_each_after(&t, 0, |s, i| {
            out.push((s, i));
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
        out
    }

    fn db() -> (tempfile::TempDir, tally_store::redb::Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = tally_store::redb::Database::create(dir.path().join("o.redb")).unwrap();
        (dir, db)
    }

    fn write(db: &tally_store::redb::Database, f: impl FnOnce(&mut Table<'_, u64, &'static [u8]>)) {
        let txn = db.begin_write().unwrap();
        f(&mut txn.open_table(OUTBOX).unwrap());
        txn.commit().unwrap();
    }

    #[test]
    fn runs_append_read_and_cut_like_one_row_per_entry() {
        let (_dir, db) = db();
        let model: Vec<(u64, EventId)> = (1..=300).map(|s| (s, id(u128::from(s) * 7))).collect();
        write(&db, |t| {
            append(t, 1, &model[..200].iter().map(|e| e.1).collect::<Vec<_>>()).unwrap();
            append(
                t,
                201,
                &model[200..].iter().map(|e| e.1).collect::<Vec<_>>(),
            )
            .unwrap();
            assert_eq!(last_seq(t).unwrap(), 300);
            assert_eq!(len(t).unwrap(), 300);
        });
        assert_eq!(all(&db), model);
        // Entries after 150, from inside a run.
        let txn = db.begin_read().unwrap();
        let mut after = Vec::new();
        for_each_after(&txn.open_table(OUTBOX).unwrap(), 150, |s, _| {
            after.push(s);
            Ok(if after.len() == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })
        .unwrap();
        assert_eq!(after, vec![151, 152, 153]);
        drop(txn);
        // An ack inside a run, then a dead letter in the middle of one.
        write(&db, |t| {
            assert_eq!(remove_upto(t, 140).unwrap(), 140);
            assert_eq!(remove_id(t, id(7 * 250)).unwrap(), Some(250));
            assert_eq!(remove_id(t, id(1)).unwrap(), None);
            assert_eq!(last_seq(t).unwrap(), 300);
        });
        let want: Vec<_> = model
            .iter()
            .copied()
            .filter(|(s, _)| *s > 140 && *s != 250)
            .collect();
        assert_eq!(all(&db), want);
        write(&db, |t| {
            assert_eq!(remove_upto(t, 1000).unwrap(), 159);
            assert_eq!(last_seq(t).unwrap(), 0);
        });
        assert!(all(&db).is_empty());
    }

    #[test]
    fn a_bad_run_is_corrupt() {
        let (_dir, db) = db();
        write(&db, |t| {
            t.insert(1, [0u8; 15].as_slice()).unwrap();
        });
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(OUTBOX).unwrap();
        assert!(matches!(len(&t), Err(StoreError::Corrupt { .. })));
        assert!(matches!(last_seq(&t), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn the_old_layout_is_migrated_once() {
        let (_dir, db) = db();
        let txn = db.begin_write().unwrap();
        {
            let mut old = txn.open_table(OUTBOX_V1).unwrap();
            // A gap (a dead letter) and more than one run's worth.
            for s in (5..=400u64).filter(|s| *s != 9) {
                old.insert(s, u128::from(s) + 1000).unwrap();
            }
        }
        assert_eq!(migrate(&txn).unwrap(), 395);
        assert_eq!(migrate(&txn).unwrap(), 0, "the old table is gone");
        txn.commit().unwrap();
        let want: Vec<_> = (5..=400u64)
            .filter(|s| *s != 9)
            .map(|s| (s, id(u128::from(s) + 1000)))
            .collect();
        assert_eq!(all(&db), want);
    }
}
