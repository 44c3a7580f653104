//! The CLI's subcommands other than `run`: `stock`, `status` and
//! `catalog import`, plus the flag structs `main.rs` parses. `stock` and
//! `status` ask the running agent's API; `catalog import` goes through the
//! API too, or, with `--data-dir`, opens the database directly while the
//! agent is stopped (the database is exclusive, so a running agent makes
//! that fail with a clear message instead of racing it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::api::MAX_CATALOG_ITEMS;
use crate::catalog::{parse_csv, CsvError};
use std::time::Duration;

use crate::config::{self, default_agent_url, ConfigError};
use crate::devices::{DevicesFileConfig, RfidMode, ScannerMode};
use crate::store::{put_catalog, AgentDb, OpenError};
use tally_agent_api::client::{AgentClient, ApiError, ClientError};
use tally_sync::message::CatalogItem;
use tally_sync::message::{CatalogItemBody, CatalogRequest};
use tally_sync::EventId;

/// `tally-agent run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Directory of the database (created if missing).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address of the local API (default 127.0.0.1:7420; loopback only unless you say otherwise).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// TOML configuration file; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// This store's id (required on the first run, checked afterwards).
    #[arg(long)]
    pub store_id: Option<String>,
    /// The hub's base URL (https://…); enables sync. Needs --identity.
    #[arg(long)]
    pub hub: Option<String>,
    /// The identity bundle from `tally-hub enroll` (certificate, key, hub CA).
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// Seconds between syncs when nothing changes (default 30).
    #[arg(long)]
    pub sync_interval: Option<u64>,
    /// A barcode scanner the agent reads itself (serial device path).
    #[arg(long, value_name = "PATH")]
    pub scanner: Option<PathBuf>,
    /// What a scan does: `sell` = a sale of one unit (self-checkout).
    #[arg(long, value_enum)]
    pub scanner_mode: Option<ScannerMode>,
    /// Scanner baud rate (default 9600).
    #[arg(long)]
    pub scanner_baud: Option<u32>,
    /// In-store weighed-goods layout (repeatable), as `tally-agent decode barcode`.
    #[arg(long = "rcn-layout", value_name = "LAYOUT")]
    pub rcn_layouts: Vec<String>,
    /// A UHF RFID reader the agent reads itself: a serial device
    /// (M100/QM100 protocol) or an LLRP network reader, llrp://HOST or
    /// llrp://HOST:PORT (port 5084 by default).
    #[arg(long, value_name = "PATH|llrp://HOST[:PORT]")]
    pub rfid: Option<PathBuf>,
    /// What a tag does: `receive` = a receipt of one unit per new SGTIN tag;
    /// `count` = tags feed the RFID count session counting (`tally-agent count`).
    #[arg(long, value_enum)]
    pub rfid_mode: Option<RfidMode>,
    /// RFID reader baud rate (default 115200).
    #[arg(long)]
    pub rfid_baud: Option<u32>,
    /// RFID de-duplication window in milliseconds (default 2000).
    #[arg(long)]
    pub rfid_window_ms: Option<u64>,
    /// Seconds before one sync request is given up (default 60).
    #[arg(long)]
    pub sync_timeout: Option<u64>,
    /// Longest wait in seconds between retries while the hub is unreachable (default 60).
    #[arg(long)]
    pub sync_backoff_cap: Option<u64>,
    /// Also stop (gracefully) when standard input reaches its end: a
    /// supervisor holding a pipe to it stops the agent by closing the
    /// pipe, or by dying, even of SIGKILL.
    #[arg(long)]
    pub stop_on_stdin_eof: bool,
}

impl RunArgs {
    /// Resolves the configuration: the file if given, overridden by flags.
    pub fn resolve(&self) -> Result<config::Config, ConfigError> {
        let file = self
            .config
            .as_deref()
            .map(config::FileConfig::load)
            .transpose()?;
        config::Config::resolve(
            file,
            config::Overrides {
                data_dir: self.data_dir.clone(),
                listen: self.listen,
                store_id: self.store_id.clone(),
                hub: self.hub.clone(),
                identity: self.identity.clone(),
                sync_interval_secs: self.sync_interval,
                devices: DevicesFileConfig {
                    scanner: self.scanner.clone(),
                    scanner_mode: self.scanner_mode,
                    scanner_baud: self.scanner_baud,
                    rcn_layouts: (!self.rcn_layouts.is_empty()).then(|| self.rcn_layouts.clone()),
                    rfid: self.rfid.clone(),
                    rfid_mode: self.rfid_mode,
                    rfid_baud: self.rfid_baud,
                    rfid_window_ms: self.rfid_window_ms,
                },
                sync_timeout_secs: self.sync_timeout,
                sync_backoff_cap_secs: self.sync_backoff_cap,
            },
        )
    }
}

/// Where the running agent's API is.
#[derive(Debug, Clone, Args)]
pub struct AgentArg {
    /// Base URL of the running agent.
    #[arg(long, default_value_t = default_agent_url(), env = "TALLY_AGENT_URL")]
    pub agent: String,
    /// A till's token, when the agent has `[[api.tills]]`.
    #[arg(long, env = "TALLY_TILL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The agent's API CA certificate, for an `https://` agent (printed
    /// by `tally-agent api-ca` on the agent's machine).
    #[arg(long, env = "TALLY_AGENT_CA")]
    pub agent_ca: Option<PathBuf>,
}

/// `tally-agent api-ca`: which agent's API CA to print.
#[derive(Debug, Clone, Args)]
pub struct ApiCaArgs {
    /// The agent's data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The agent's TOML configuration file (for its data directory).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl ApiCaArgs {
    /// The data directory: the flag, else the configuration file's.
    pub fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        let file = self
            .config
            .as_deref()
            .map(config::FileConfig::load)
            .transpose()?;
        Ok(config::Config::resolve(
            file,
            config::Overrides {
                data_dir: self.data_dir.clone(),
                ..Default::default()
            },
        )?
        .data_dir)
    }
}

/// `tally-agent stock GTIN`.
#[derive(Debug, Clone, Args)]
pub struct StockArgs {
    /// GTIN-8, -12, -13 or -14.
    pub gtin: String,
    #[command(flatten)]
    pub agent: AgentArg,
}

/// `tally-agent receive GTIN QTY`: a delivery booked by hand.
#[derive(Debug, Clone, Args)]
pub struct ReceiveArgs {
    /// GTIN-8, -12, -13 or -14.
    pub gtin: String,
    /// Units received (> 0).
    pub qty: i64,
    /// Who receives.
    #[arg(long)]
    pub cashier: Option<String>,
    /// The receipt's id (UUID): run again with the id the first run
    /// printed (or a failed one named) and it is recorded once. Made up
    /// when absent.
    #[arg(long)]
    pub id: Option<String>,
    #[command(flatten)]
    pub agent: AgentArg,
}

/// `receive`: the receipt as the agent recorded it.
pub async fn receive(args: &ReceiveArgs) -> Result<Value, CliError> {
    let client = client(&args.agent)?;
    let id = event_id(args.id.as_deref())?;
    let body = tally_agent_api::ReceiptRequest {
        receipt_id: Some(id),
        lines: vec![tally_agent_api::ReceiptLineBody {
            gtin: args.gtin.clone(),
            qty: args.qty,
            epc: None,
        }],
        cashier: args.cashier.clone(),
        till: None,
    };
    with_id(id, printable(&client, client.post_receipt(&body).await))
}

/// The id given (a UUID) or a new UUIDv7.
fn event_id(given: Option<&str>) -> Result<EventId, CliError> {
    match given {
        Some(text) => text
            .parse()
            .map_err(|e| CliError::BadId(format!("--id {text:?}: {e}"))),
        None => Ok(EventId(uuid::Uuid::now_v7())),
    }
}

/// A recording command's answer; a failure names the id to retry with,
/// when its outcome is unknown (it may have been recorded).
fn with_id(id: EventId, answer: Result<Value, CliError>) -> Result<Value, CliError> {
    answer.map_err(|e| match e {
        CliError::Api { agent, source } if source.outcome_unknown() => {
            CliError::InDoubt { agent, source, id }
        }
        other => other,
    })
}

/// `tally-agent count …`: RFID cycle-count sessions on the running agent
/// (its reader in `--rfid-mode count` feeds the session counting), and a
/// count of one item by hand.
#[derive(Debug, Clone, Subcommand)]
pub enum CountCommand {
    /// Record what is on the shelf of one item, counted by hand (the
    /// difference from the records is recorded as a count adjustment).
    Set {
        /// GTIN-8, -12, -13 or -14.
        gtin: String,
        /// Units on the shelf (>= 0).
        counted: i64,
        /// Who counted.
        #[arg(long)]
        cashier: Option<String>,
        /// The count's id (UUID), as for `receive --id`.
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        agent: AgentArg,
    },
    /// Start a session: the whole store, `--gtin`s, or a `--zone`.
    Start {
        /// The session's id (generated when absent).
        #[arg(long)]
        id: Option<String>,
        /// Count only this item (repeatable).
        #[arg(long = "gtin")]
        gtins: Vec<String>,
        /// The zone counted (a label; without --gtin, the report covers
        /// the items read).
        #[arg(long)]
        zone: Option<String>,
        /// Who counts.
        #[arg(long)]
        cashier: Option<String>,
        #[command(flatten)]
        agent: AgentArg,
    },
    /// Show a session and its tags so far.
    Show {
        /// The session.
        id: String,
        #[command(flatten)]
        agent: AgentArg,
    },
    /// Finish a session (no more reads) and print its variance report.
    Finish {
        /// The session.
        id: String,
        #[command(flatten)]
        agent: AgentArg,
    },
    /// Print a session's variance report as of now.
    Report {
        /// The session.
        id: String,
        #[command(flatten)]
        agent: AgentArg,
    },
    /// Accept a finished session: record its adjustments.
    Accept {
        /// The session.
        id: String,
        #[command(flatten)]
        agent: AgentArg,
    },
}

/// `count …`: the session or report as the agent answers it.
pub async fn count(cmd: &CountCommand) -> Result<Value, CliError> {
    match cmd {
        CountCommand::Set {
            gtin,
            counted,
            cashier,
            id,
            agent,
        } => {
            let client = client(agent)?;
            let id = event_id(id.as_deref())?;
            let body = tally_agent_api::CountRequest {
                count_id: Some(id),
                gtin: gtin.clone(),
                counted: *counted,
                cashier: cashier.clone(),
                till: None,
            };
            with_id(id, printable(&client, client.post_count(&body).await))
        }
        CountCommand::Start {
            id,
            gtins,
            zone,
            cashier,
            agent,
        } => {
            let client = client(agent)?;
            let body = tally_agent_api::counts::CountSessionRequest {
                session_id: id.clone(),
                gtins: (!gtins.is_empty()).then(|| gtins.clone()),
                zone: zone.clone(),
                cashier: cashier.clone(),
                till: None,
            };
            printable(&client, client.start_count(&body).await)
        }
        CountCommand::Show { id, agent } => {
            let client = client(agent)?;
            printable(&client, client.count_session(id).await)
        }
        CountCommand::Finish { id, agent } => {
            let client = client(agent)?;
            printable(&client, client.finish_count(id).await)
        }
        CountCommand::Report { id, agent } => {
            let client = client(agent)?;
            printable(&client, client.count_report(id).await)
        }
        CountCommand::Accept { id, agent } => {
            let client = client(agent)?;
            printable(&client, client.accept_count(id).await)
        }
    }
}

/// `tally-agent catalog …`.
#[derive(Debug, Clone, Subcommand)]
pub enum CatalogCommand {
    /// Imports `gtin,name,price_minor` rows (for stores running before their first sync).
    Import(ImportArgs),
}

/// `tally-agent catalog import FILE.csv`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The CSV file.
    pub file: PathBuf,
    #[command(flatten)]
    pub agent: AgentArg,
    /// Write into this data directory directly (the agent must be stopped)
    /// instead of going through the running agent's API.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// With --data-dir on a new data directory: the store id to create it with.
    #[arg(long, requires = "data_dir")]
    pub store_id: Option<String>,
}

/// Why a client subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The client could not be built (a bad URL).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The API could not be reached, refused or answered garbage.
    #[error("{}", api_message(agent, source))]
    Api {
        /// The agent's base URL.
        agent: String,
        /// What happened.
        source: ApiError,
    },
    /// The CSV file is malformed.
    #[error("{file}: {source}")]
    Csv {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        source: CsvError,
    },
    /// The file could not be read.
    #[error("reading {file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A flag is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] tally_store::StoreError),
    /// An `--id` that is not a UUID.
    #[error("{0}")]
    BadId(String),
    /// A recording request whose outcome is unknown: it may have been
    /// recorded; the same id records it once.
    #[error("{}; it may have been recorded: run the same command again with --id {id} to record it once", api_message(agent, source))]
    InDoubt {
        /// The agent's base URL.
        agent: String,
        /// What happened.
        source: ApiError,
        /// The request's id.
        id: EventId,
    },
    /// A local catalog import into a store that follows the hub's.
    #[error("the store at {} follows the hub's catalog: change prices at HQ", .0.display())]
    HubCatalog(PathBuf),
}

/// An API failure as one line for the shell: where the agent was not
/// found, or its error code and message (`the agent refused it (422
/// invalid): gtin "123": …`).
fn api_message(agent: &str, e: &ApiError) -> String {
    match e {
        ApiError::Unreachable(why) if agent.starts_with("https://") => format!(
            "cannot reach the agent at {agent}: {why} (is `tally-agent run` running there, with \
             the CA --agent-ca names?)"
        ),
        ApiError::Unreachable(why) => format!(
            "cannot reach the agent at {agent}: {why} (is `tally-agent run` running there?)"
        ),
        other => other.to_string(),
    }
}

/// How long a CLI call waits for the agent.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

fn client(agent: &AgentArg) -> Result<AgentClient, CliError> {
    let ca = agent
        .agent_ca
        .as_deref()
        .map(|path| {
            std::fs::read(path).map_err(|source| CliError::Read {
                file: path.to_path_buf(),
                source,
            })
        })
        .transpose()?;
    Ok(
        AgentClient::trusting(&agent.agent, CLI_TIMEOUT, ca.as_deref())?
            .with_token(agent.token.clone()),
    )
}

/// A call's answer as JSON to print, or its failure.
fn printable<T: serde::Serialize>(
    agent: &AgentClient,
    answer: Result<T, ApiError>,
) -> Result<Value, CliError> {
    let answer = answer.map_err(|source| CliError::Api {
        agent: agent.base().to_string(),
        source,
    })?;
    serde_json::to_value(answer).map_err(|e| CliError::Api {
        agent: agent.base().to_string(),
        source: ApiError::Unexpected {
            status: 200,
            body: e.to_string(),
        },
    })
}

/// `stock`: the item's stock as the agent reports it.
pub async fn stock(args: &StockArgs) -> Result<Value, CliError> {
    let client = client(&args.agent)?;
    printable(&client, client.stock(&args.gtin).await)
}

/// `status`: the agent's status.
pub async fn status(agent: &AgentArg) -> Result<Value, CliError> {
    let client = client(agent)?;
    printable(&client, client.status().await)
}

fn read_csv(file: &Path) -> Result<Vec<CatalogItem>, CliError> {
    let f = std::fs::File::open(file).map_err(|source| CliError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    parse_csv(std::io::BufReader::new(f)).map_err(|source| CliError::Csv {
        file: file.to_path_buf(),
        source,
    })
}

/// `catalog import`: through the API in chunks, or directly into a stopped
/// agent's database (one transaction) with `--data-dir`.
pub async fn catalog_import(args: &ImportArgs) -> Result<Value, CliError> {
    let items = read_csv(&args.file)?;
    if let Some(dir) = &args.data_dir {
        let store_id = args
            .store_id
            .as_deref()
            .map(config::parse_store_id)
            .transpose()?;
        let db = AgentDb::open(dir, store_id.as_ref())?;
        if db.follows_hub_catalog()? {
            return Err(CliError::HubCatalog(dir.clone()));
        }
        let txn = db.begin_write()?;
        let changed = put_catalog(&txn, &items)?;
        txn.commit()?;
        return Ok(json!({"items": items.len(), "changed": changed}));
    }
    let client = client(&args.agent)?;
    let mut changed = 0;
    for chunk in chunks(&items) {
        let request = CatalogRequest {
            items: chunk
                .iter()
                .map(|i| CatalogItemBody {
                    gtin: i.gtin.to_string(),
                    name: i.name.clone(),
                    price_minor: i.price_minor,
                })
                .collect(),
        };
        let imported = printable(&client, client.post_catalog(&request).await)?;
        changed += imported["changed"].as_u64().unwrap_or(0);
    }
    Ok(json!({"items": items.len(), "changed": changed}))
}

/// Splits items into requests of at most [`MAX_CATALOG_ITEMS`] items and
/// about [`CHUNK_BYTES`] of JSON, well under the API's default body limit
/// whatever the length of the names.
fn chunks(items: &[CatalogItem]) -> Vec<&[CatalogItem]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        // gtin, price and JSON punctuation take < 80 bytes; names may need
        // escaping, at most 6 bytes per byte (\uXXXX).
        let size = 80 + item.name.len().saturating_mul(6);
        if i > start && (i - start == MAX_CATALOG_ITEMS || bytes + size > CHUNK_BYTES) {
            out.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// Target JSON size of one catalog request.
const CHUNK_BYTES: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use tally_sync::Gtin;

    fn item(i: u64, name_len: usize) -> CatalogItem {
        CatalogItem {
            gtin: Gtin::from_body(i).unwrap(),
            name: "n".repeat(name_len),
            price_minor: 1,
        }
    }

    #[test]
    fn chunks_bound_items_and_bytes_and_keep_everything() {
        let small: Vec<_> = (0..12_001).map(|i| item(i, 10)).collect();
        let c = chunks(&small);
        assert!(c.len() > 1);
        assert!(c.iter().all(|c| c.len() <= MAX_CATALOG_ITEMS));
        assert_eq!(c.iter().map(|c| c.len()).sum::<usize>(), small.len());
        let big: Vec<_> = (0..100).map(|i| item(i, 100_000)).collect();
        let c = chunks(&big);
        assert_eq!(c.len(), 100, "one huge item per request");
        for chunk in chunks(&small) {
            let json = serde_json::to_vec(&json!({ "items": chunk })).unwrap();
            assert!(json.len() <= CHUNK_BYTES, "{}", json.len());
        }
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn an_unreachable_agent_is_named_with_a_hint() {
        let e = CliError::Api {
            agent: "http://127.0.0.1:1".into(),
            source: ApiError::Unreachable("cannot connect: Connection refused".into()),
        };
        assert_eq!(
            e.to_string(),
            "cannot reach the agent at http://127.0.0.1:1: cannot connect: Connection refused \
             (is `tally-agent run` running there?)"
        );
    }
}
