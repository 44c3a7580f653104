//! [`StoreError`], the crate's one error type, sorted by what the caller
//! can do about it, and its conversions from redb's errors.

use std::path::PathBuf;

/// A storage failure, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the database. Stop it first.
    #[error("database {0} is already open in another process (is another tally process running with this data dir?)")]
    AlreadyOpen(PathBuf),
    /// The disk or redb failed; the transaction did not commit.
    #[error("storage failure: {0}")]
    Storage(String),
    /// A stored record could not be decoded: the file is damaged or was
    /// written by an incompatible version.
    #[error("corrupt record in {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What failed.
        detail: String,
    },
}

macro_rules! storage_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Storage(e.to_string())
            }
        }
    )*};
}
storage_error!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A record of `table` that does not decode.
pub(crate) fn corrupt(table: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: e.to_string(),
    }
}
