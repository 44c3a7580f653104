//! One blocking connection to PostgreSQL: `tokio-postgres` driven by the
//! backend's own small runtime, so the hub's writer thread and its
//! blocking read workers call it synchronously (the storage traits are
//! synchronous; `tally-sync` must not learn about async).
//!
//! Statements are prepared once per connection and reused
//! ([`PgConn::query`] caches by SQL text): a query is one round trip.
//! Errors map to [`StorageError`]: a lost race (serialization failure,
//! deadlock, lock timeout) is [`StorageError::Retry`], the rest
//! [`StorageError::Db`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use tokio::runtime::Handle;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Row, Statement};
use tracing::warn;

use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls::{client_config, split_tls_params};
use crate::storage::{RetryReason, StorageError};

/// A parsed `postgres://` URL (or `key=value` connection string), with
/// the password kept out of `Debug`, and its TLS set-up (libpq's
/// `sslmode`, `sslrootcert`, `sslcert`, `sslkey`: see `tls.rs`).
#[derive(Clone)]
pub struct DatabaseUrl {
    config: Config,
    shown: String,
    /// The TLS connector; `None`: no TLS (`sslmode=disable`, or only Unix
    /// sockets).
    tls: Option<MakeRustlsConnect>,
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl FromStr for DatabaseUrl {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self, StorageError> {
        let (rest, tls) = split_tls_params(s)?;
        let mut config = Config::from_str(&rest).map_err(|e| {
            // The driver's source names the key at fault (never a value).
            let mut text = format!("bad database URL: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            StorageError::Db(text)
        })?;
        if config.get_ssl_mode() != tokio_postgres::config::SslMode::Prefer {
            // The driver read an `sslmode` the TLS set-up did not see:
            // refuse rather than run on a weaker mode than asked.
            return Err(StorageError::Db(
                "bad database URL: its sslmode could not be read unambiguously".into(),
            ));
        }
        if config.get_connect_timeout().is_none() {
            // An unreachable server is an error in seconds, not when the
            // kernel gives up on the SYN (minutes).
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        if config.get_keepalives_idle() == std::time::Duration::from_secs(2 * 3600) {
            // A dead server (a partition) is noticed in about a minute,
            // not the driver's default two hours: a hub process following
            // revocations must know when it no longer is.
            config.keepalives_idle(std::time::Duration::from_secs(30));
        }
        if config.get_application_name().is_none() {
            config.application_name("tally-hub");
        }
        // The hub's statements are key lookups and ranges on indexes. The
        // planner's size estimate for a table that grew fast since it was
        // last analyzed can make a table scan look cheaper than the index:
        // measured, the lookup of a sync's events then read 123-263 M rows
        // of `hub_events` in one ingest run and cut it to a fifth. So the
        // hub's sessions price table scans out wherever an index serves,
        // and random reads as on SSDs. Settings the URL's own `options`
        // name are left as they are.
        //
        // And a hub process that stops answering mid-transaction (its host
        // cut off from the database, its VM paused) must not hold the
        // write lock, and every other process's writes behind it, until
        // the server's own TCP keepalive notices (about two hours by the
        // OS's default): the server ends a session idle in a transaction
        // for a minute, and probes a silent client after 10 s, every 5 s,
        // three times.
        let mut options = config.get_options().unwrap_or_default().to_string();
        for (name, value) in [
            ("enable_seqscan", "off"),
            ("random_page_cost", "1.1"),
            ("idle_in_transaction_session_timeout", "60s"),
            ("tcp_keepalives_idle", "10"),
            ("tcp_keepalives_interval", "5"),
            ("tcp_keepalives_count", "3"),
        ] {
            if !options.contains(name) {
                options = format!("{options} -c {name}={value}").trim().to_string();
            }
        }
        config.options(&options);
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        // No TLS over Unix sockets (as libpq): the server offers none.
        let tcp = config
            .get_hosts()
            .iter()
            .any(|h| matches!(h, tokio_postgres::config::Host::Tcp(_)))
            || config.get_hosts().is_empty();
        let tls = if tcp {
            config.ssl_mode(tls.mode()?.driver_mode());
            client_config(&tls)?.map(MakeRustlsConnect::new)
        } else {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            None
        };
        let shown = format!(
            "postgres://{}@{}/{}",
            config.get_user().unwrap_or(""),
            hosts.join(","),
            config.get_dbname().unwrap_or("")
        );
        Ok(Self { config, shown, tls })
    }
}

impl DatabaseUrl {
    /// The driver's configuration.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The TLS connector, if connections use TLS.
    pub(crate) fn tls(&self) -> Option<&MakeRustlsConnect> {
        self.tls.as_ref()
    }
}

/// Whether the server answered a statement with an error of its own, the
/// session going on: severity ERROR (not FATAL or PANIC, which end the
/// session, perhaps after the commit record), and not a connection
/// exception (class 08) nor an operator's intervention (class 57). Else
/// what happened is asked.
fn refused_outright(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        db.parsed_severity() == Some(tokio_postgres::error::Severity::Error)
            && !matches!(&db.code().code()[..2], "08" | "57")
    })
}

/// Maps a driver error: lost races are retriable, the rest are database
/// failures (with the server's message, never the query's parameters).
pub(crate) fn db_err(e: tokio_postgres::Error) -> StorageError {
    if let Some(code) = e.code() {
        let reason = if *code == SqlState::T_R_SERIALIZATION_FAILURE {
            Some(RetryReason::Serialization)
        } else if *code == SqlState::T_R_DEADLOCK_DETECTED {
            Some(RetryReason::Deadlock)
        } else if *code == SqlState::LOCK_NOT_AVAILABLE {
            Some(RetryReason::LockTimeout)
        } else if *code == SqlState::UNIQUE_VIOLATION {
            Some(RetryReason::UniqueViolation)
        } else {
            None
        };
        if let Some(r) = reason {
            return StorageError::Retry(r);
        }
    }
    db_failure(e)
}

/// A driver error as a database failure, never retriable (with the
/// server's message, never the query's parameters).
pub(crate) fn db_failure(e: tokio_postgres::Error) -> StorageError {
    match e.as_db_error() {
        Some(db) => StorageError::Db(format!("{}: {}", db.code().code(), db.message())),
        None => {
            // The driver's message names the step ("error performing TLS
            // handshake"); its sources say what went wrong.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            StorageError::Db(text)
        }
    }
}

/// Drives a connection's I/O until it ends.
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::warn!(error = %e, "database connection ended");
    }
}

/// The server's durability settings, as one hub session sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// `synchronous_commit`: never `off` for a hub session (the hub sets
    /// it `on` when the database, role or URL says `off`).
    pub synchronous_commit: String,
    /// `fsync`: the server's own (a server setting no session can
    /// change); off, a power cut can lose what the hub acknowledged.
    pub fsync: bool,
    /// The isolation of the hub's write transactions: `read committed`
    /// whatever the database's or role's default.
    pub write_isolation: String,
    /// `idle_in_transaction_session_timeout`: the server ends a hub
    /// session that stops answering mid-transaction (and frees the write
    /// lock it holds).
    pub idle_in_transaction_timeout: String,
    /// `tcp_keepalives_idle` (seconds; `0` over a Unix socket, where it
    /// does not apply): the server probes a silent hub this soon.
    pub tcp_keepalives_idle: String,
}

/// One value of a row for [`PgConn::copy_in`].
pub(crate) type CopyCell = Box<dyn ToSql + Sync + Send>;

/// One connection, used from blocking threads. See the module docs.
pub(crate) struct PgConn {
    client: Client,
    rt: Handle,
    statements: RefCell<HashMap<&'static str, Statement>>,
}

impl fmt::Debug for PgConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConn").finish_non_exhaustive()
    }
}

impl PgConn {
    /// Connects to `url`, its I/O driven on `rt`. Must not be called from
    /// an async task (it blocks).
    pub(crate) fn connect(url: &DatabaseUrl, rt: &Handle) -> Result<Self, StorageError> {
        let client = match url.tls() {
            Some(tls) => {
                let (client, connection) = rt
                    .block_on(url.config().connect(tls.clone()))
                    .map_err(db_err)?;
                rt.spawn(drive(connection));
                client
            }
            None => {
                let (client, connection) =
                    rt.block_on(url.config().connect(NoTls)).map_err(db_err)?;
                rt.spawn(drive(connection));
                client
            }
        };
        let conn = Self {
            client,
            rt: rt.clone(),
            statements: RefCell::new(HashMap::new()),
        };
        if conn.durability()?.synchronous_commit == "off" {
            // Set off for the database, the role or in the URL (a common
            // tuning): a COMMIT would answer before its WAL is on disk,
            // and the hub's 2xx would not mean durable.
            warn!("synchronous_commit is off for the hub's database session; the hub sets it on (a 2xx means the commit is on disk).");
            conn.batch("SET synchronous_commit TO on")?;
        }
        Ok(conn)
    }

    /// What the server says of this session's durability.
    pub(crate) fn durability(&self) -> Result<Durability, StorageError> {
        let row = self
            .rt
            .block_on(self.client.query_one(
                "SELECT current_setting('synchronous_commit'), current_setting('fsync'),
                        current_setting('idle_in_transaction_session_timeout'),
                        current_setting('tcp_keepalives_idle')",
                &[],
            ))
            .map_err(db_err)?;
        let (synchronous_commit, fsync): (String, String) = (row.get(0), row.get(1));
        let (idle_in_transaction_timeout, tcp_keepalives_idle): (String, String) =
            (row.get(2), row.get(3));
        let write_isolation = self.in_transaction(|| {
            let row = self
                .rt
                .block_on(
                    self.client
                        .query_one("SELECT current_setting('transaction_isolation')", &[]),
                )
                .map_err(db_err)?;
            Ok::<String, StorageError>(row.get(0))
        })?;
        Ok(Durability {
            synchronous_commit,
            fsync: fsync == "on",
            write_isolation,
            idle_in_transaction_timeout,
            tcp_keepalives_idle,
        })
    }

    fn statement(&self, sql: &'static str) -> Result<Statement, StorageError> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = self.rt.block_on(self.client.prepare(sql)).map_err(db_err)?;
        self.statements.borrow_mut().insert(sql, s.clone());
        Ok(s)
    }

    /// Runs `sql` (prepared once per connection) and answers its rows.
    pub(crate) fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StorageError> {
        let s = self.statement(sql)?;
        self.rt
            .block_on(self.client.query(&s, params))
            .map_err(db_err)
    }

    /// Runs `sql` and answers its one row, if any.
    pub(crate) fn query_opt(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StorageError> {
        let s = self.statement(sql)?;
        self.rt
            .block_on(self.client.query_opt(&s, params))
            .map_err(db_err)
    }

    /// Runs `sql` and answers its one row.
    pub(crate) fn query_one(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StorageError> {
        let s = self.statement(sql)?;
        self.rt
            .block_on(self.client.query_one(&s, params))
            .map_err(db_err)
    }

    /// Runs `sql` and answers how many rows it touched.
    pub(crate) fn execute(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StorageError> {
        let s = self.statement(sql)?;
        self.rt
            .block_on(self.client.execute(&s, params))
            .map_err(db_err)
    }

    /// Runs one or more statements with no parameters (`BEGIN`, DDL).
    pub(crate) fn batch(&self, sql: &str) -> Result<(), StorageError> {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .map_err(db_err)
    }

    /// Runs `work` in one transaction: committed if it succeeds, rolled
    /// back (and its error answered) if it fails. READ COMMITTED
    /// whatever the database's or role's default: the writers serialise
    /// on an advisory lock taken first, and each statement after it must
    /// see what the writer before committed (under REPEATABLE READ or
    /// SERIALIZABLE the snapshot would date from before the lock was
    /// granted).
    pub(crate) fn in_transaction<T, E: From<StorageError>>(
        &self,
        work: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.batch("BEGIN ISOLATION LEVEL READ COMMITTED")?;
        match work() {
            Ok(out) => match self.rt.block_on(self.client.batch_execute("COMMIT")) {
                Ok(()) => Ok(out),
                // The server refused the commit on a connection still
                // open (a race, a deferred check, a full disk): it rolled
                // back, nothing written.
                Err(e) if refused_outright(&e) && !self.is_closed() => Err(db_err(e).into()),
                // The connection broke during the commit: the server may
                // have committed.
                Err(e) => Err(StorageError::CommitUnknown(db_err(e).to_string()).into()),
            },
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Copies `rows` in with one `COPY … FROM STDIN (FORMAT binary)`
    /// (`sql`), each row's values of the column types `types`: many rows
    /// in one round trip (a bulk import). Answers how many rows the
    /// server took. Errors are never retriable (a bulk write is not a
    /// race).
    pub(crate) fn copy_in(
        &self,
        sql: &str,
        types: &[Type],
        rows: &[Vec<CopyCell>],
    ) -> Result<u64, StorageError> {
        self.rt
            .block_on(async {
                let sink = self.client.copy_in(sql).await?;
                let writer = BinaryCopyInWriter::new(sink, types);
                let mut writer = std::pin::pin!(writer);
                for row in rows {
                    writer
                        .as_mut()
                        .write_raw(row.iter().map(|v| &**v as &(dyn ToSql + Sync)))
                        .await?;
                }
                writer.finish().await
            })
            .map_err(db_failure)
    }

    /// Whether the connection is gone (the server closed it, or it broke).
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// A `u64` as PostgreSQL's `bigint`: refused above `i64::MAX` (no value
/// the hub keeps comes near it).
pub(crate) fn to_i64(what: &'static str, v: u64) -> Result<i64, StorageError> {
    i64::try_from(v).map_err(|_| StorageError::Db(format!("{what} {v} is beyond a bigint")))
}

/// A cursor (a version, an id) as a `bigint` to compare with `>`: one
/// past every `bigint` (a client's, out of range) is `i64::MAX`, after
/// which nothing is, so it reads nothing instead of failing the write
/// batch it came in.
pub(crate) fn cursor_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A `bigint` read back as `u64`: a negative one is a corrupt row.
pub(crate) fn to_u64(table: &'static str, v: i64) -> Result<u64, StorageError> {
    u64::try_from(v).map_err(|_| StorageError::corrupt(table, format!("negative value {v}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    #[test]
    fn a_database_url_gets_the_hubs_session_defaults_and_hides_its_password() {
        let url: DatabaseUrl = "postgres://tally:s3cret@db.example:5433/chain"
            .parse()
            .unwrap();
        let c = url.config();
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(10)));
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(c.get_application_name(), Some("tally-hub"));
        let options = c.get_options().unwrap();
        assert!(options.contains("enable_seqscan=off"), "{options}");
        assert!(options.contains("random_page_cost=1.1"), "{options}");
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("tally@db.example/chain"), "{shown}");

        // What the URL says itself is kept.
        let own: DatabaseUrl =
            "host=/run/postgresql dbname=t connect_timeout=3 options='-c random_page_cost=4'"
                .parse()
                .unwrap();
        assert_eq!(
            own.config().get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        let options = own.config().get_options().unwrap();
        assert!(options.contains("random_page_cost=4"), "{options}");
        assert!(!options.contains("random_page_cost=1.1"), "{options}");
        assert!(options.contains("enable_seqscan=off"), "{options}");

        assert!("not a url =".parse::<DatabaseUrl>().is_err());
    }

    #[test]
    fn a_bad_url_says_which_key_and_never_its_values() {
        let err = "postgres://u:s3cret@h/db?sslmodes=require"
            .parse::<DatabaseUrl>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("sslmodes"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        // The system's roots with a weaker mode: refused, not weakened.
        let err = "postgres://h/db?sslrootcert=system&sslmode=require"
            .parse::<DatabaseUrl>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("verify-full"), "{err}");
    }
}
