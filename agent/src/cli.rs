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
use crate::client::{ApiClient, ClientError};
use crate::config::{self, default_agent_url, ConfigError};
use crate::store::{put_catalog, AgentDb, OpenError};

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
}

/// `tally-agent stock GTIN`.
#[derive(Debug, Clone, Args)]
pub struct StockArgs {
    /// GTIN-8, -12, -13 or -14.
    pub gtin: String,
    #[command(flatten)]
    pub agent: AgentArg,
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
    /// The API could not be reached or answered garbage.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The API answered with an error.
    #[error("the agent answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The JSON body.
        body: Value,
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
}

fn ok(status: hyper::StatusCode, body: Value) -> Result<Value, CliError> {
    if status.is_success() {
        Ok(body)
    } else {
        Err(CliError::Status {
            status: status.as_u16(),
            body,
        })
    }
}

/// `stock`: the item's stock as the agent reports it.
pub async fn stock(args: &StockArgs) -> Result<Value, CliError> {
    let client = ApiClient::new(&args.agent.agent);
    let (status, body) = client.get(&format!("/v1/stock/{}", args.gtin)).await?;
    ok(status, body)
}

/// `status`: the agent's status.
pub async fn status(agent: &AgentArg) -> Result<Value, CliError> {
    let client = ApiClient::new(&agent.agent);
    let (status, body) = client.get("/v1/status").await?;
    ok(status, body)
}

fn read_csv(file: &Path) -> Result<Vec<tally_sync::message::CatalogItem>, CliError> {
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
        let txn = db.begin_write()?;
        let changed = put_catalog(&txn, &items)?;
        txn.commit()?;
        return Ok(json!({"items": items.len(), "changed": changed}));
    }
    let client = ApiClient::new(&args.agent.agent);
    let mut changed = 0u64;
    for chunk in items.chunks(MAX_CATALOG_ITEMS) {
        let (status, body) = client
            .post("/v1/catalog", &json!({ "items": chunk }))
            .await?;
        let body = ok(status, body)?;
        changed += body["changed"].as_u64().unwrap_or(0);
    }
    Ok(json!({"items": items.len(), "changed": changed}))
}
