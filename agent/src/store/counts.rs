//! RFID cycle counts (issue 23) and the tags this store holds: what the
//! committer writes for a count session and what a report reads.
//!
//! Tables:
//! - `agent_count_sessions`: session id → `tally_sync::cycle_count::CountSession`
//!   (postcard), and `agent_count_sessions_by_status` ((status, id) → ()),
//!   so the session counting now is one range read.
//! - `agent_count_tags`: (session id, EPC) → the tag's GTIN (0: none). The
//!   session's de-duplication: a tag read a hundred times is one row.
//! - `agent_count_items`: (session id, GTIN) → tags counted for the item.
//! - `agent_tags_here`: (GTIN, EPC) → (): the tagged units this store
//!   received (receipts, returns, transfers in) and did not send out
//!   (sales, transfers out), kept with every event the store records,
//!   and settled by each accepted count (tags not read leave, tags found
//!   arrive). A count's "missing" tags are those of its items here and
//!   not read.
//!
//! Everything a session holds is on disk: a count of tens of thousands of
//! tags needs no memory beyond one batch of reads.

use std::collections::{BTreeMap, BTreeSet};

use tally_store::redb::{ReadableTable, Table, TableDefinition};
use tally_store::{by_status, ReadTxn, StoreError};
use tally_sync::codec;
use tally_sync::cycle_count::{self, CountSession, CountStatus, Recorded};
use tally_sync::event::Event;
use tally_sync::{Epc, Gtin};

use super::tables::storage;

/// Session id → session.
pub(super) const SESSIONS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("agent_count_sessions");
/// (status name, session id) → ().
pub(super) const BY_STATUS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("agent_count_sessions_by_status");
/// (session id, EPC) → GTIN as u64, 0 when the tag has none.
pub(super) const TAGS: TableDefinition<(&str, &[u8]), u64> =
    TableDefinition::new("agent_count_tags");
/// (session id, GTIN) → tags counted.
pub(super) const ITEMS: TableDefinition<(&str, u64), u64> =
    TableDefinition::new("agent_count_items");
/// (GTIN, EPC) → (): tagged units held here.
pub(super) const TAGS_HERE: TableDefinition<(u64, &[u8]), ()> =
    TableDefinition::new("agent_tags_here");

/// One tag read for the session counting now: its EPC and its item, when
/// it has one (SGTIN).
pub type TagSeen = (Epc, Option<Gtin>);

/// Work on count sessions, done by the committer in its batch.
#[derive(Debug, Clone)]
pub enum CountJob {
    /// Start a session (refused while another is counting); its start
    /// time is the commit's.
    Start(Box<CountSession>),
    /// Reads for the session counting now.
    Reads(Vec<TagSeen>),
    /// No more reads for the session.
    Finish {
        /// The session.
        session_id: String,
    },
    /// Its adjustments were recorded.
    Accepted {
        /// The session.
        session_id: String,
        /// The items of its report: what the store holds of their tags
        /// becomes what the session read (`settle_tags`).
        items: BTreeSet<Gtin>,
    },
}

/// What a count job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountDone {
    /// The session after the job.
    Session(Box<CountSession>),
    /// Reads fed: to which session (none counting: dropped) and how many
    /// new tags it counted.
    Fed {
        /// The session counting, if any.
        session_id: Option<String>,
        /// New distinct tags among the reads.
        new_tags: u64,
    },
    /// The job cannot be done.
    Refused(CountRefusal),
}

/// Why a count job was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountRefusal {
    /// A session with this id exists.
    Exists(String),
    /// Another session is counting (one at a time per store).
    AnotherCounting(String),
    /// No such session.
    Unknown(String),
    /// The session is not where the job needs it.
    WrongStatus {
        /// The session.
        session_id: String,
        /// Where it stands.
        status: CountStatus,
    },
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table: "agent_count_sessions",
        detail: e.to_string(),
    }
}

/// The session `id`.
pub(super) fn get(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<CountSession>, StoreError> {
    match table.get(id).map_err(storage)? {
        Some(v) => codec::from_bytes(v.value()).map(Some).map_err(corrupt),
        None => Ok(None),
    }
}

fn put(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    index: &mut Table<'_, (&'static str, &'static str), ()>,
    s: &CountSession,
) -> Result<(), StoreError> {
    let was = get(table, &s.session_id)?.map(|old| old.status.name());
    let bytes = codec::to_bytes(s).map_err(|e| StoreError::Storage(e.to_string()))?;
    table
        .insert(s.session_id.as_str(), bytes.as_slice())
        .map_err(storage)?;
    by_status::move_status(index, &s.session_id, was, s.status.name())
}

fn counting_id(
    index: &impl ReadableTable<(&'static str, &'static str), ()>,
) -> Result<Option<String>, StoreError> {
    Ok(
        by_status::ids_with_status(index, CountStatus::Counting.name(), "", 1)?
            .into_iter()
            .next(),
    )
}

/// The count tables of one write transaction.
pub(super) struct CountTables<'a, 't> {
    pub sessions: &'a mut Table<'t, &'static str, &'static [u8]>,
    pub by_status: &'a mut Table<'t, (&'static str, &'static str), ()>,
    pub tags: &'a mut Table<'t, (&'static str, &'static [u8]), u64>,
    pub items: &'a mut Table<'t, (&'static str, u64), u64>,
}

/// Does `job` at `now_ms`.
pub(super) fn apply(
    t: CountTables<'_, '_>,
    job: &CountJob,
    now_ms: u64,
) -> Result<CountDone, StoreError> {
    let refused = |r| Ok(CountDone::Refused(r));
    match job {
        CountJob::Start(session) => {
            if get(t.sessions, &session.session_id)?.is_some() {
                return refused(CountRefusal::Exists(session.session_id.clone()));
            }
            if let Some(other) = counting_id(t.by_status)? {
                return refused(CountRefusal::AnotherCounting(other));
            }
            let mut session = session.clone();
            session.started_at_ms = now_ms;
            put(t.sessions, t.by_status, &session)?;
            Ok(CountDone::Session(session))
        }
        CountJob::Reads(reads) => {
            let Some(id) = counting_id(t.by_status)? else {
                return Ok(CountDone::Fed {
                    session_id: None,
                    new_tags: 0,
                });
            };
            let mut session =
                get(t.sessions, &id)?.ok_or_else(|| corrupt("index names no session"))?;
            let mut new_tags = 0;
            for (epc, gtin) in reads {
                let seen = t
                    .tags
                    .get((id.as_str(), epc.as_bytes()))
                    .map_err(storage)?
                    .is_some();
                let recorded = cycle_count::record(&mut session, seen, *gtin);
                if recorded == Recorded::Again {
                    continue;
                }
                new_tags += 1;
                let item = gtin.map_or(0, |g| g.as_u64());
                t.tags
                    .insert((id.as_str(), epc.as_bytes()), item)
                    .map_err(storage)?;
                if let Recorded::Counted(g) = recorded {
                    let n = t
                        .items
                        .get((id.as_str(), g.as_u64()))
                        .map_err(storage)?
                        .map_or(0, |v| v.value());
                    t.items
                        .insert((id.as_str(), g.as_u64()), n + 1)
                        .map_err(storage)?;
                }
            }
            put(t.sessions, t.by_status, &session)?;
            Ok(CountDone::Fed {
                session_id: Some(id),
                new_tags,
            })
        }
        CountJob::Finish { session_id } => move_on(t, session_id, CountStatus::Counting, |s| {
            s.status = CountStatus::Finished;
            s.finished_at_ms = Some(now_ms);
        }),
        CountJob::Accepted { session_id, .. } => {
            move_on(t, session_id, CountStatus::Finished, |s| {
                s.status = CountStatus::Accepted;
            })
        }
    }
}

fn move_on(
    t: CountTables<'_, '_>,
    id: &str,
    from: CountStatus,
    change: impl FnOnce(&mut CountSession),
) -> Result<CountDone, StoreError> {
    let Some(mut s) = get(t.sessions, id)? else {
        return Ok(CountDone::Refused(CountRefusal::Unknown(id.to_owned())));
    };
    if s.status != from {
        return Ok(CountDone::Refused(CountRefusal::WrongStatus {
            session_id: id.to_owned(),
            status: s.status,
        }));
    }
    change(&mut s);
    put(t.sessions, t.by_status, &s)?;
    Ok(CountDone::Session(Box::new(s)))
}

/// Keeps `agent_tags_here` with an event this store recorded.
pub(super) fn note_tags(
    here: &mut Table<'_, (u64, &'static [u8]), ()>,
    event: &Event,
) -> Result<(), StoreError> {
    let Some(arrive) = event.kind.tags_arrive() else {
        return Ok(());
    };
    for line in &event.lines {
        let Some(epc) = &line.epc else { continue };
        let key = (line.gtin.as_u64(), epc.as_bytes());
        if arrive {
            here.insert(key, ()).map_err(storage)?;
        } else {
            here.remove(key).map_err(storage)?;
        }
    }
    Ok(())
}

/// After count session `id` is accepted, the tags held here of `items`
/// are those it read (`tags`), less those the chain records as sold
/// (`sold`): a tag not read was written off with the count's adjustment,
/// and one read that was not held here was found. So the next count does
/// not report a lost tag missing again, and `agent_tags_here` holds the
/// tags on the shelf, not every tag the store ever lost. O(tags of
/// `items` held here + tags the session read).
pub(super) fn settle_tags(
    here: &mut Table<'_, (u64, &'static [u8]), ()>,
    tags: &Table<'_, (&'static str, &'static [u8]), u64>,
    id: &str,
    items: &BTreeSet<Gtin>,
    sold: impl Fn(&Epc) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let empty: &[u8] = &[];
    for gtin in items {
        let g = gtin.as_u64();
        let mut gone = Vec::new();
        for row in here.range((g, empty)..).map_err(storage)? {
            let (k, _) = row.map_err(storage)?;
            let (item, epc) = k.value();
            if item != g {
                break;
            }
            let read = tags.get((id, epc)).map_err(storage)?.is_some();
            let epc = Epc::from_bytes(epc).map_err(corrupt)?;
            if !read || sold(&epc)? {
                gone.push(epc);
            }
        }
        for epc in gone {
            here.remove((g, epc.as_bytes())).map_err(storage)?;
        }
    }
    let mut found = Vec::new();
    for row in tags.range((id, empty)..).map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        let (session, epc) = k.value();
        if session != id {
            break;
        }
        let item = v.value();
        if item != 0 && items.contains(&Gtin::from_u64(item).map_err(corrupt)?) {
            found.push((item, Epc::from_bytes(epc).map_err(corrupt)?));
        }
    }
    for (item, epc) in found {
        if !sold(&epc)? {
            here.insert((item, epc.as_bytes()), ()).map_err(storage)?;
        }
    }
    Ok(())
}

/// The session `id`, from a snapshot.
pub(super) fn read(txn: &ReadTxn, id: &str) -> Result<Option<CountSession>, StoreError> {
    match txn.raw().open_table(SESSIONS) {
        Ok(t) => get(&t, id),
        Err(tally_store::redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(storage(e)),
    }
}

/// Tags counted per item in session `id`.
pub(super) fn items(txn: &ReadTxn, id: &str) -> Result<BTreeMap<Gtin, u64>, StoreError> {
    let table = txn.raw().open_table(ITEMS).map_err(storage)?;
    let mut out = BTreeMap::new();
    for row in table.range((id, 0u64)..=(id, u64::MAX)).map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        let gtin = Gtin::from_u64(k.value().1).map_err(corrupt)?;
        out.insert(gtin, v.value());
    }
    Ok(out)
}

/// Calls `f` with each tag of session `id` and its item (in EPC order).
pub(super) fn visit_tags(
    txn: &ReadTxn,
    id: &str,
    mut f: impl FnMut(Epc, Option<Gtin>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let table = txn.raw().open_table(TAGS).map_err(storage)?;
    let empty: &[u8] = &[];
    for row in table.range((id, empty)..).map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        let (session, epc) = k.value();
        if session != id {
            break;
        }
        let epc = Epc::from_bytes(epc).map_err(corrupt)?;
        let gtin = match v.value() {
            0 => None,
            n => Some(Gtin::from_u64(n).map_err(corrupt)?),
        };
        f(epc, gtin)?;
    }
    Ok(())
}

/// Whether session `id` read `epc`.
pub(super) fn read_tag(txn: &ReadTxn, id: &str, epc: &Epc) -> Result<bool, StoreError> {
    let table = txn.raw().open_table(TAGS).map_err(storage)?;
    Ok(table.get((id, epc.as_bytes())).map_err(storage)?.is_some())
}

/// Calls `f` with each tag of `gtin` held here.
pub(super) fn visit_tags_here(
    txn: &ReadTxn,
    gtin: Gtin,
    mut f: impl FnMut(Epc) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let table = txn.raw().open_table(TAGS_HERE).map_err(storage)?;
    let g = gtin.as_u64();
    let empty: &[u8] = &[];
    for row in table.range((g, empty)..).map_err(storage)? {
        let (k, _) = row.map_err(storage)?;
        let (item, epc) = k.value();
        if item != g {
            break;
        }
        f(Epc::from_bytes(epc).map_err(corrupt)?)?;
    }
    Ok(())
}
