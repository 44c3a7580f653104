//! The till's journal: one small redb file holding the sale or return whose
//! answer the terminal awaits ([`Saved`]), committed (fsync'd) before the
//! request leaves and cleared once the answer is definite. After a crash,
//! a power cut or a quit, the next start opens that sale in doubt under
//! its id, so a retry can never record it twice and a sale the agent took
//! is not lost to the cashier. redb also locks the file: a second terminal
//! on the same journal is refused at start.
//!
//! The entry is JSON (the API's own bodies), so an operator can read it
//! with any redb tool; a PIN is never in it.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, TableDefinition};

use crate::state::{ResumeError, Saved};

/// The one table: key [`OPEN`] → the JSON of a [`Saved`].
const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("open_request");
/// The key of the open request.
const OPEN: &str = "open";

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Another terminal has it open.
    #[error("the till journal {0} is in use by another terminal")]
    InUse(PathBuf),
    /// The file cannot be created, read or written.
    #[error("the till journal {path}: {source}")]
    Storage {
        /// The file.
        path: PathBuf,
        /// What redb said.
        source: Box<redb::Error>,
    },
    /// Its directory cannot be created.
    #[error("the till journal's directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// What it holds cannot be read back.
    #[error("the till journal {path} holds a request this terminal cannot read ({why}); move the file away to start without it")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// The open journal (locked while this value lives).
pub struct Journal {
    path: PathBuf,
    db: Database,
    /// What the file holds now, so unchanged states write nothing.
    held: Option<Saved>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path`, creating its directory.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| JournalError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => JournalError::InUse(path.to_path_buf()),
            e => storage(path, e),
        })?;
        let mut journal = Journal {
            path: path.to_path_buf(),
            db,
            held: None,
        };
        journal.held = journal.read()?;
        Ok(journal)
    }

    /// The request left open by the last run, if any.
    pub fn open_request(&self) -> Option<&Saved> {
        self.held.as_ref()
    }

    fn read(&self) -> Result<Option<Saved>, JournalError> {
        let txn = self.db.begin_read().map_err(|e| storage(&self.path, e))?;
        let table = match txn.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(storage(&self.path, e)),
        };
        let Some(bytes) = table.get(OPEN).map_err(|e| storage(&self.path, e))? else {
            return Ok(None);
        };
        let unreadable = |why: String| JournalError::Unreadable {
            path: self.path.clone(),
            why,
        };
        let saved: Saved =
            serde_json::from_slice(bytes.value()).map_err(|e| unreadable(e.to_string()))?;
        saved
            .check()
            .map_err(|e: ResumeError| unreadable(e.to_string()))?;
        Ok(Some(saved))
    }

    /// Makes the file hold `saved` (durably: committed and fsync'd before
    /// this returns); nothing is written when it already does.
    pub fn keep(&mut self, saved: Option<&Saved>) -> Result<(), JournalError> {
        if self.held.as_ref() == saved {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| storage(&self.path, e))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| storage(&self.path, e))?;
            match saved {
                Some(s) => {
                    let bytes = serde_json::to_vec(s).map_err(|e| JournalError::Unreadable {
                        path: self.path.clone(),
                        why: e.to_string(),
                    })?;
                    table
                        .insert(OPEN, bytes.as_slice())
                        .map_err(|e| storage(&self.path, e))?;
                }
                None => {
                    table.remove(OPEN).map_err(|e| storage(&self.path, e))?;
                }
            }
        }
        txn.commit().map_err(|e| storage(&self.path, e))?;
        self.held = saved.cloned();
        Ok(())
    }
}

fn storage(path: &Path, e: impl Into<redb::Error>) -> JournalError {
    JournalError::Storage {
        path: path.to_path_buf(),
        source: Box::new(e.into()),
    }
}

/// The default journal of `till`: `$XDG_STATE_HOME/tally/pos-TILL.redb`
/// (else under `$HOME/.local/state`); `None` when neither is set.
pub fn default_path(till: Option<&str>) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })?;
    Some(path_in(&base, till))
}

/// The journal of `till` under the state directory `base`: the till id
/// made a safe file name.
pub fn path_in(base: &Path, till: Option<&str>) -> PathBuf {
    let name: String = till
        .unwrap_or("till")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    base.join("tally").join(format!("pos-{name}.redb"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::state::{SavedLine, SavedRequest, SavedTender};
    use tally_agent_api::{OverrideRequest, SaleRequest};
    use tally_sync::{EventId, Tender};

    fn saved() -> Saved {
        Saved {
            request: SavedRequest::Sale(SaleRequest {
                sale_id: Some(EventId(uuid::Uuid::from_u128(7))),
                lines: vec![tally_agent_api::LineBody {
                    gtin: "04006381333931".into(),
                    qty: 2,
                    unit_price_minor: Some(150),
                    epc: None,
                    price_source: None,
                }],
                tenders: vec![Tender {
                    method: "cash".into(),
                    amount_minor: 300,
                    reference: None,
                }],
                override_: Some(OverrideRequest {
                    approver: "Ann".into(),
                    reason: "dented".into(),
                    pin: None,
                }),
                cashier: Some("bo".into()),
                till: Some("t1".into()),
            }),
            lines: vec![SavedLine {
                gtin: "04006381333931".into(),
                qty: 2,
                epc: None,
                label_price: None,
                grams: None,
                manual_price: Some(150),
            }],
            tenders: vec![SavedTender {
                method: "cash".into(),
                applied_minor: 300,
                given_minor: 500,
                reference: None,
            }],
            original_prices: Default::default(),
        }
    }

    #[test]
    fn keeps_clears_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/pos-t1.redb");
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.open_request(), None);
        j.keep(Some(&saved())).unwrap();
        drop(j);
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.open_request(), Some(&saved()));
        j.keep(None).unwrap();
        drop(j);
        assert_eq!(Journal::open(&path).unwrap().open_request(), None);
    }

    #[test]
    fn a_second_terminal_on_the_same_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pos.redb");
        let _first = Journal::open(&path).unwrap();
        let second = Journal::open(&path).unwrap_err();
        assert!(matches!(second, JournalError::InUse(_)), "{second}");
    }

    #[test]
    fn an_entry_it_cannot_take_back_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pos.redb");
        let mut bad = saved();
        bad.tenders[0].method = "voucher".into();
        let mut j = Journal::open(&path).unwrap();
        j.keep(Some(&bad)).unwrap();
        drop(j);
        let e = Journal::open(&path).unwrap_err();
        assert!(matches!(e, JournalError::Unreadable { .. }), "{e}");
        assert!(e.to_string().contains("pos.redb"), "{e}");
        // Garbage where a request should be: the same clear error.
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TABLE)
            .unwrap()
            .insert(OPEN, &b"\xff{not json"[..])
            .unwrap();
        txn.commit().unwrap();
        drop(db);
        let e = Journal::open(&path).unwrap_err();
        assert!(matches!(e, JournalError::Unreadable { .. }), "{e}");
        // A file that is not a journal at all.
        std::fs::write(dir.path().join("junk.redb"), b"not a database").unwrap();
        assert!(Journal::open(&dir.path().join("junk.redb")).is_err());
    }

    #[test]
    fn journal_paths_are_per_till_and_stay_in_their_directory() {
        let base = Path::new("/state");
        assert_eq!(
            path_in(base, Some("till 3/../x")),
            Path::new("/state/tally/pos-till_3_.._x.redb")
        );
        assert_eq!(path_in(base, None), Path::new("/state/tally/pos-till.redb"));
        assert_eq!(
            path_in(base, Some("..")),
            Path::new("/state/tally/pos-...redb")
        );
    }
}
