//! The agent's typed configuration: a TOML file (optional) overridden by
//! command-line flags, resolved once at start into a [`Config`].
//!
//! ```toml
//! data_dir = "/var/lib/tally"
//! listen = "127.0.0.1:7420"
//! store_id = "store-001"
//!
//! [api]
//! max_body_bytes = 1048576
//! allowed_hosts = ["pos-07.store-001.example"]   # besides loopback names
//! # tls = true       # HTTPS (default: exactly when listening beyond loopback)
//!
//! [[managers]]         # who may approve an override (none: nobody)
//! id = "ann"
//! pin_argon2 = "$argon2id$v=19$m=19456,t=2,p=1$…"   # tally-agent manager-pin --manager ann
//!
//! [[cashiers]]         # with any, sales and returns need a signed-in cashier
//! id = "c-104"
//! pin_argon2 = "$argon2id$…"                        # tally-agent manager-pin --manager c-104
//!
//! [[api.tills]]        # with any, every request needs a till's token
//! id = "till-1"
//! token_sha256 = "…"   # tally-agent till-token --till till-1 prints it
//!
//! [commit]
//! max_batch = 1024
//! queue = 4096
//! flush_after_events = 65536     # a crash replays at most this many
//! flush_after_counters = 4096    # counters held in memory at most
//! hold_us = 200                  # wait for a batch to regrow (0: never)
//! nice = -10                     # committer thread priority (0: the process's)
//!
//! [sync]
//! hub = "https://hub.example.com:8443"
//! identity = "/etc/tally/store-001.pem"
//! interval_secs = 30
//! timeout_secs = 60
//! backoff_cap_secs = 60
//! rights_wait_ms = 1000   # a sale short of rights asks the hub this long (0: never)
//! debounce_ms = 250      # after a change, gather more this long before syncing
//! renew_percent_left = 33 # renew the certificate in the last third of its life (0: never)
//! foreign_returns_offline = "approve" # or "refuse": returns of other stores' sales while the hub is unreachable
//!
//! [devices]            # see crate::devices (scanner that sells, RFID that receives)
//! scanner = "/dev/serial/by-id/usb-Honeywell_1900-if00"
//! scanner_mode = "sell"
//! rfid = "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0" # or "llrp://10.0.0.5[:5084]"
//! rfid_mode = "receive"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tally_service::serve::ServeLimits;
use tally_sync::store_id::{check_store_id, StoreIdError};
use tally_sync::ReplicaId;

use crate::commit::{FlushBound, Limits};
use crate::devices::{DeviceConfigError, DevicesConfig, DevicesFileConfig};
use crate::sync::SyncConfig;

/// The port the agent's API listens on by default (loopback only).
pub const DEFAULT_PORT: u16 = 7420;

/// The default listen address: loopback, never all interfaces.
pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))
}

/// The default API base URL for the CLI's client subcommands.
pub fn default_agent_url() -> String {
    format!("http://127.0.0.1:{DEFAULT_PORT}")
}

/// Why a configuration could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        detail: String,
    },
    /// A nice value outside -20 ..= 19.
    #[error("commit.nice = {0}: a nice value is between -20 and 19")]
    Nice(i32),
    /// No data directory in flags or file.
    #[error("no data directory: pass --data-dir or set data_dir in the config file")]
    NoDataDir,
    /// The store id breaks the store id rule
    /// (`tally_service::store_id`; `hub` is the hub's).
    #[error(transparent)]
    StoreId(#[from] StoreIdError),
    /// `sync.renew_percent_left` above 100.
    #[error("sync.renew_percent_left = {0}: a percentage is at most 100")]
    RenewPercent(u8),
    /// A limit that must be positive is zero.
    #[error("{0} must be greater than 0")]
    Zero(&'static str),
    /// A setting beyond what the agent can honour.
    #[error("{what} = {value}: at most {max}")]
    TooLarge {
        /// The setting.
        what: &'static str,
        /// What was given.
        value: u64,
        /// The largest it may be.
        max: u64,
    },
    /// A hub without an identity, or the other way round.
    #[error("sync needs both a hub URL (--hub) and an identity bundle (--identity)")]
    HalfSync,
    /// The hub URL is not https.
    #[error("hub URL {0:?} must start with https://")]
    HubUrl(String),
    /// The device settings are unusable.
    #[error("devices: {0}")]
    Devices(#[from] DeviceConfigError),
    /// A till's entry is unusable.
    #[error("[[api.tills]]: {0}")]
    Till(String),
    /// A manager's entry is unusable.
    #[error("[[managers]]: {0}")]
    Manager(String),
    /// A cashier's entry is unusable.
    #[error("[[cashiers]]: {0}")]
    Cashier(String),
    /// An `[api] allowed_hosts` entry cannot be a name in the API's
    /// certificate.
    #[error("[api] allowed_hosts: {0} (a host name or IP address, no port)")]
    AllowedHost(String),
    /// The API would serve plain HTTP beyond loopback.
    #[error("the API would listen on {0}, beyond loopback, in plain HTTP: remove `tls = false` from [api] (tills then need the agent's CA: tally-agent api-ca) or listen on 127.0.0.1")]
    PlainApi(SocketAddr),
    /// The API would listen beyond loopback with no till tokens.
    #[error("the API would listen on {0}, beyond loopback, without till tokens: configure [[api.tills]] (tally-agent till-token) or listen on 127.0.0.1")]
    OpenApi(SocketAddr),
}

/// Sync settings in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncFileConfig {
    /// The hub's base URL.
    pub hub: Option<String>,
    /// The identity bundle.
    pub identity: Option<PathBuf>,
    /// Seconds between syncs when nothing changes.
    pub interval_secs: Option<u64>,
    /// Seconds before one request is given up.
    pub timeout_secs: Option<u64>,
    /// Longest retry wait in seconds while the hub is unreachable.
    pub backoff_cap_secs: Option<u64>,
    /// How long a sale short of rights the hub holds waits for the hub to
    /// grant them, in milliseconds (0: never ask).
    pub rights_wait_ms: Option<u64>,
    /// How long after a sale (or any change) the agent waits, gathering
    /// more, before it syncs, in milliseconds (default 250; 0: at once).
    pub debounce_ms: Option<u64>,
    /// Renew the certificate when less than this percentage of its
    /// lifetime is left (default 33; 0: never; 100: at every chance).
    pub renew_percent_left: Option<u8>,
    /// `approve` (default) or `refuse`: returns the store cannot check
    /// itself while the hub cannot be asked.
    pub foreign_returns_offline: Option<crate::sync::ForeignReturns>,
}

/// API limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Most connections served at once (more wait to be accepted).
    pub max_connections: usize,
    /// A connection that sends no complete request within this many
    /// milliseconds is closed.
    pub first_request_timeout_ms: u64,
    /// A connection with no request in flight for this many milliseconds
    /// is closed (so is one on which nothing moved for as long while a
    /// request is in flight).
    pub idle_timeout_ms: u64,
    /// Longest time one request may take, body read included (then 408;
    /// a command already queued still commits, and its id answers a
    /// retry).
    pub request_timeout_ms: u64,
    /// Host names the API answers to besides loopback names and its
    /// listen address (e.g. the POS box's name on the store network).
    pub allowed_hosts: Vec<String>,
    /// Tills and their tokens: when any is configured, every request needs
    /// one (`Authorization: Bearer TOKEN`). Required to listen beyond
    /// loopback.
    pub tills: Vec<TillConfig>,
    /// HTTPS with the agent's own CA (`crate::api_tls`): unset means on
    /// exactly when the API listens beyond loopback; `true` on loopback
    /// too; `false` beyond loopback is refused (tokens and PINs would
    /// cross the store network in clear).
    pub tls: Option<bool>,
}

/// A till allowed to use the API (`[[api.tills]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TillConfig {
    /// The till's id, recorded on what it does.
    pub id: String,
    /// SHA-256 of its token, 64 hex digits (`tally-agent till-token`
    /// prints both).
    pub token_sha256: String,
}

impl TillConfig {
    /// The digest, if it is 64 hex digits.
    pub fn digest(&self) -> Option<[u8; 32]> {
        let hex = self.token_sha256.trim();
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(out)
    }

    /// Whether the entry is usable: an id of 1 to 64 letters, digits, `-`
    /// or `_`, and a digest of 64 hex digits.
    pub fn check(&self) -> Result<(), String> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            return Err(format!(
                "till id {:?}: 1 to 64 letters, digits, '-' or '_'",
                self.id
            ));
        }
        if self.digest().is_none() {
            return Err(format!(
                "till {}: token_sha256 must be 64 hex digits",
                self.id
            ));
        }
        Ok(())
    }

    /// A till whose token is `token` (tests, `till-token`).
    pub fn with_token(id: &str, token: &str) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(token.as_bytes());
        Self {
            id: id.to_string(),
            token_sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_connections: 512,
            first_request_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            request_timeout_ms: 30_000,
            allowed_hosts: Vec::new(),
            tills: Vec::new(),
            tls: None,
        }
    }
}

impl ApiConfig {
    /// Whether the API listening on `listen` serves HTTPS.
    pub fn tls_on(&self, listen: SocketAddr) -> bool {
        self.tls.unwrap_or(!listen.ip().is_loopback())
    }

    /// The clocks each connection is held to.
    pub fn limits(&self) -> ServeLimits {
        let ms = |v: u64| Duration::from_millis(v.max(10));
        ServeLimits {
            first_request: ms(self.first_request_timeout_ms),
            idle: ms(self.idle_timeout_ms),
            stall: ms(self.idle_timeout_ms),
            ..ServeLimits::default()
        }
    }
}

/// Group-commit limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommitConfig {
    /// Most commands in one transaction.
    pub max_batch: usize,
    /// Commands waiting for the committer before senders wait in turn.
    pub queue: usize,
    /// Flush the counters held back in memory once this many events'
    /// changes wait (bounds the replay after a crash).
    pub flush_after_events: u64,
    /// ... or once this many counters wait (bounds the memory).
    pub flush_after_counters: usize,
    /// Microseconds the committer may wait for a batch to grow back to
    /// the size of the one before (`crate::commit::keep_holding`); 0
    /// commits at once.
    pub hold_us: u64,
    /// The committer thread's nice value, -20 ..= 19 (0 leaves it at the
    /// process's; below 0 needs `CAP_SYS_NICE` or `RLIMIT_NICE`).
    pub nice: i32,
}

/// The committer's own defaults ([`Limits::default`]), in the file's units.
impl Default for CommitConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            max_batch: limits.max_batch,
            queue: limits.queue,
            flush_after_events: limits.flush.events,
            flush_after_counters: limits.flush.counters,
            hold_us: u64::try_from(limits.hold.as_micros()).unwrap_or(u64::MAX),
            nice: limits.nice,
        }
    }
}

impl CommitConfig {
    /// The committer's limits this section sets.
    #[must_use]
    pub fn limits(&self) -> Limits {
        Limits {
            max_batch: self.max_batch,
            queue: self.queue,
            flush: FlushBound {
                events: self.flush_after_events,
                counters: self.flush_after_counters,
            },
            hold: Duration::from_micros(self.hold_us),
            nice: self.nice,
        }
    }
}

/// The configuration file, every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where the database lives.
    pub data_dir: Option<PathBuf>,
    /// API address.
    pub listen: Option<SocketAddr>,
    /// This store's id (= replica id = location id).
    pub store_id: Option<String>,
    /// API limits.
    #[serde(default)]
    pub api: ApiConfig,
    /// Group-commit limits.
    #[serde(default)]
    pub commit: CommitConfig,
    /// Sync with the hub.
    #[serde(default)]
    pub sync: SyncFileConfig,
    /// Devices the agent reads itself.
    #[serde(default)]
    pub devices: DevicesFileConfig,
    /// Managers who may approve overrides (`[[managers]]`).
    #[serde(default)]
    pub managers: Vec<ManagerConfig>,
    /// Cashiers who sign in at the tills (`[[cashiers]]`; the same fields).
    #[serde(default)]
    pub cashiers: Vec<ManagerConfig>,
}

/// A manager who may approve what a cashier alone may not
/// (`[[managers]]`; see `crate::managers`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerConfig {
    /// The manager's id, as the approval names it and the event records it.
    pub id: String,
    /// Argon2id hash of the PIN or password, a PHC string
    /// (`tally-agent manager-pin --manager ID` makes one).
    pub pin_argon2: String,
}

impl FileConfig {
    /// Parses TOML text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }
}

/// What the command line says; each `Some` overrides the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--store-id`.
    pub store_id: Option<String>,
    /// `--hub`.
    pub hub: Option<String>,
    /// `--identity`.
    pub identity: Option<PathBuf>,
    /// `--sync-interval`.
    pub sync_interval_secs: Option<u64>,
    /// `--scanner`, `--scanner-mode`, `--rfid`, `--rfid-mode`, ….
    pub devices: DevicesFileConfig,
    /// `--sync-timeout`.
    pub sync_timeout_secs: Option<u64>,
    /// `--sync-backoff-cap`.
    pub sync_backoff_cap_secs: Option<u64>,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the database lives (created if missing).
    pub data_dir: PathBuf,
    /// API address.
    pub listen: SocketAddr,
    /// The store id if configured; required on the first run, then checked
    /// against the one stored in the database.
    pub store_id: Option<ReplicaId>,
    /// Managers who may approve overrides (none: nobody can).
    pub managers: Vec<ManagerConfig>,
    /// Cashiers who sign in at the tills (none: a request names its
    /// cashier; see `crate::cashiers`).
    pub cashiers: Vec<ManagerConfig>,
    /// API limits.
    pub api: ApiConfig,
    /// Group-commit limits.
    pub commit: CommitConfig,
    /// Sync with the hub, if configured.
    pub sync: Option<SyncConfig>,
    /// Devices the agent reads itself (none by default).
    pub devices: DevicesConfig,
}

impl Config {
    /// A configuration with defaults for `data_dir` (tests, tools).
    pub fn new(data_dir: impl Into<PathBuf>, store_id: Option<ReplicaId>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: default_listen(),
            store_id,
            managers: Vec::new(),
            cashiers: Vec::new(),
            api: ApiConfig::default(),
            commit: CommitConfig::default(),
            sync: None,
            devices: DevicesConfig::default(),
        }
    }

    /// Resolves `file` (if any) with `flags` taking precedence.
    pub fn resolve(file: Option<FileConfig>, flags: Overrides) -> Result<Self, ConfigError> {
        let file = file.unwrap_or_default();
        let data_dir = flags
            .data_dir
            .or(file.data_dir)
            .ok_or(ConfigError::NoDataDir)?;
        let store_id = match flags.store_id.or(file.store_id) {
            None => None,
            Some(id) => Some(parse_store_id(&id)?),
        };
        if file.commit.max_batch == 0 {
            return Err(ConfigError::Zero("commit.max_batch"));
        }
        if file.commit.queue == 0 {
            return Err(ConfigError::Zero("commit.queue"));
        }
        at_most("commit.queue", file.commit.queue as u64, MAX_QUEUE)?;
        at_most(
            "api.max_connections",
            file.api.max_connections as u64,
            MAX_CONNECTIONS,
        )?;
        if file.commit.flush_after_events == 0 {
            return Err(ConfigError::Zero("commit.flush_after_events"));
        }
        if file.commit.flush_after_counters == 0 {
            return Err(ConfigError::Zero("commit.flush_after_counters"));
        }
        if !(-20..=19).contains(&file.commit.nice) {
            return Err(ConfigError::Nice(file.commit.nice));
        }
        if file.api.max_body_bytes == 0 {
            return Err(ConfigError::Zero("api.max_body_bytes"));
        }
        for till in &file.api.tills {
            till.check().map_err(ConfigError::Till)?;
        }
        crate::managers::Managers::new(&file.managers)
            .map_err(|e| ConfigError::Manager(e.to_string()))?;
        crate::managers::Managers::new(&file.cashiers)
            .map_err(|e| ConfigError::Cashier(e.to_string()))?;
        let listen = flags.listen.or(file.listen).unwrap_or_else(default_listen);
        if !listen.ip().is_loopback() && file.api.tills.is_empty() {
            return Err(ConfigError::OpenApi(listen));
        }
        if !listen.ip().is_loopback() && file.api.tls == Some(false) {
            return Err(ConfigError::PlainApi(listen));
        }
        if file.api.tls_on(listen) {
            // They go in the API's certificate: refused here, naming the
            // setting, not when the certificate is made.
            for host in &file.api.allowed_hosts {
                tally_service::certs::hostname_san(host.trim())
                    .map_err(|e| ConfigError::AllowedHost(e.to_string()))?;
            }
        }
        let sync = match (
            flags.hub.or(file.sync.hub),
            flags.identity.or(file.sync.identity),
        ) {
            (None, None) => None,
            (Some(hub), Some(identity)) => {
                if !hub.starts_with("https://") {
                    return Err(ConfigError::HubUrl(hub));
                }
                let mut s = SyncConfig::new(hub, identity);
                let secs =
                    |flag: Option<u64>, file: Option<u64>, what, into: &mut std::time::Duration| {
                        match flag.or(file) {
                            Some(0) => Err(ConfigError::Zero(what)),
                            Some(n) => {
                                at_most(what, n, MAX_SYNC_SECS)?;
                                *into = std::time::Duration::from_secs(n);
                                Ok(())
                            }
                            None => Ok(()),
                        }
                    };
                secs(
                    flags.sync_interval_secs,
                    file.sync.interval_secs,
                    "sync interval",
                    &mut s.interval,
                )?;
                secs(
                    flags.sync_timeout_secs,
                    file.sync.timeout_secs,
                    "sync timeout",
                    &mut s.request_timeout,
                )?;
                secs(
                    flags.sync_backoff_cap_secs,
                    file.sync.backoff_cap_secs,
                    "sync backoff cap",
                    &mut s.backoff_cap,
                )?;
                s.backoff_base = s.backoff_base.min(s.backoff_cap);
                if let Some(ms) = file.sync.rights_wait_ms {
                    s.rights_wait = std::time::Duration::from_millis(ms);
                }
                if let Some(ms) = file.sync.debounce_ms {
                    s.debounce = std::time::Duration::from_millis(ms);
                }
                if let Some(policy) = file.sync.foreign_returns_offline {
                    s.foreign_returns_offline = policy;
                }
                if let Some(p) = file.sync.renew_percent_left {
                    if p > 100 {
                        return Err(ConfigError::RenewPercent(p));
                    }
                    s.renew_percent_left = p;
                }
                Some(s)
            }
            _ => return Err(ConfigError::HalfSync),
        };
        let devices = DevicesFileConfig::resolve(flags.devices, file.devices)?;
        Ok(Self {
            data_dir,
            listen,
            store_id,
            managers: file.managers,
            cashiers: file.cashiers,
            api: file.api,
            commit: file.commit,
            sync,
            devices,
        })
    }
}

/// The longest sync interval, timeout or backoff cap: a week.
const MAX_SYNC_SECS: u64 = 7 * 24 * 3600;
/// The most commands queued for the committer.
const MAX_QUEUE: u64 = 1 << 24;
/// The most connections the local API serves at once.
const MAX_CONNECTIONS: u64 = 1 << 20;

/// `Err` when `value` of `what` is above `max`: bounds that keep a
/// mistyped setting from overflowing a timer or a channel.
fn at_most(what: &'static str, value: u64, max: u64) -> Result<(), ConfigError> {
    if value > max {
        return Err(ConfigError::TooLarge { what, value, max });
    }
    Ok(())
}

/// Validates a store id against the store id rule
/// (`tally_sync::store_id`: 1-63 of `[a-z0-9._-]`, starting with a
/// letter or digit, no `..`, not `hub`), the hub's rule too.
pub fn parse_store_id(id: &str) -> Result<ReplicaId, ConfigError> {
    Ok(check_store_id(id)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::{MAX_UNFLUSHED_COUNTERS, MAX_UNFLUSHED_EVENTS};

    /// Resolves `file` with only `--data-dir /d` on the command line.
    fn resolve_with_data_dir(file: Option<FileConfig>) -> Result<Config, ConfigError> {
        Config::resolve(
            file,
            Overrides {
                data_dir: Some("/d".into()),
                ..Default::default()
            },
        )
    }

    #[test]
    fn flags_override_the_file() {
        let file = FileConfig::parse(
            "data_dir = \"/a\"\nlisten = \"127.0.0.1:9000\"\nstore_id = \"s1\"\n[commit]\nmax_batch = 8\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let c = Config::resolve(
            Some(file.clone()),
            Overrides {
                data_dir: Some("/b".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/b"));
        assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.store_id.unwrap().as_str(), "s1");
        assert_eq!(c.commit.max_batch, 8);
        assert_eq!(c.commit.queue, CommitConfig::default().queue);
        let c = Config::resolve(
            Some(file),
            Overrides {
                store_id: Some("s2".into()),
                listen: Some("127.0.0.1:1".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.store_id.unwrap().as_str(), "s2");
        assert_eq!(c.listen.port(), 1);
    }

    #[test]
    fn listening_beyond_loopback_needs_till_tokens() {
        let open = |text: &str| {
            Config::resolve(
                Some(FileConfig::parse(text, Path::new("t.toml")).unwrap()),
                Overrides {
                    data_dir: Some("/d".into()),
                    ..Default::default()
                },
            )
        };
        assert!(matches!(
            open("listen = \"0.0.0.0:7420\"\n"),
            Err(ConfigError::OpenApi(_))
        ));
        let hash = TillConfig::with_token("till-1", "t").token_sha256;
        let c = open(&format!(
            "listen = \"0.0.0.0:7420\"\n[api]\nallowed_hosts = [\"pos.example\"]\n\
             [[api.tills]]\nid = \"till-1\"\ntoken_sha256 = \"{hash}\"\n"
        ))
        .unwrap();
        assert_eq!(c.api.tills.len(), 1);
        assert_eq!(c.api.allowed_hosts, vec!["pos.example".to_string()]);
        for bad in [
            "[[api.tills]]\nid = \"till 1\"\ntoken_sha256 = \"00\"\n".to_string(),
            "[[api.tills]]\nid = \"till-1\"\ntoken_sha256 = \"xyz\"\n".to_string(),
        ] {
            assert!(matches!(open(&bad), Err(ConfigError::Till(_))), "{bad}");
        }
    }

    #[test]
    fn the_api_serves_https_beyond_loopback_and_never_plain_http_there() {
        let open = |text: &str| {
            let hash = TillConfig::with_token("till-1", "t").token_sha256;
            Config::resolve(
                Some(
                    FileConfig::parse(
                        &format!(
                            "{text}\n[[api.tills]]\nid = \"till-1\"\ntoken_sha256 = \"{hash}\"\n"
                        ),
                        Path::new("t.toml"),
                    )
                    .unwrap(),
                ),
                Overrides {
                    data_dir: Some("/d".into()),
                    ..Default::default()
                },
            )
        };
        let c = open("listen = \"0.0.0.0:7420\"").unwrap();
        assert!(c.api.tls_on(c.listen));
        let c = open("listen = \"10.0.0.7:7420\"\n[api]\ntls = true").unwrap();
        assert!(c.api.tls_on(c.listen));
        assert!(matches!(
            open("listen = \"10.0.0.7:7420\"\n[api]\ntls = false"),
            Err(ConfigError::PlainApi(_))
        ));
        // Loopback: plain unless asked.
        let c = open("listen = \"127.0.0.1:7420\"").unwrap();
        assert!(!c.api.tls_on(c.listen));
        let c = open("listen = \"127.0.0.1:7420\"\n[api]\ntls = true").unwrap();
        assert!(c.api.tls_on(c.listen));
        // Names for the certificate are checked where they are set.
        for bad in ["pos:7420", "bad host", "[::1]"] {
            let err = open(&format!(
                "listen = \"0.0.0.0:7420\"\n[api]\nallowed_hosts = [\"{bad}\"]"
            ))
            .unwrap_err();
            assert!(matches!(err, ConfigError::AllowedHost(_)), "{bad}: {err}");
        }
        assert!(open(
            "listen = \"0.0.0.0:7420\"\n[api]\nallowed_hosts = [\"pos-07.lan\", \"10.0.0.7\"]"
        )
        .is_ok());
    }

    #[test]
    fn defaults_and_errors() {
        let c = resolve_with_data_dir(None).unwrap();
        assert_eq!(c.listen, default_listen());
        assert!(c.listen.ip().is_loopback());
        assert!(c.store_id.is_none());
        assert!(matches!(
            Config::resolve(None, Overrides::default()),
            Err(ConfigError::NoDataDir)
        ));
        let bad_id = Overrides {
            data_dir: Some("/d".into()),
            store_id: Some("a b".into()),
            ..Default::default()
        };
        assert!(matches!(
            Config::resolve(None, bad_id),
            Err(ConfigError::StoreId(_))
        ));
        assert!(matches!(
            parse_store_id("hub"),
            Err(ConfigError::StoreId(_))
        ));
        for bad in ["..", ".x", "A1", "a/b", "a..b"] {
            let e = parse_store_id(bad).unwrap_err();
            assert!(e.to_string().contains("a store id is 1-63"), "{e}");
        }
        for good in ["s1", "store-north", "honest", "store-042"] {
            parse_store_id(good).unwrap();
        }
        let half = Overrides {
            data_dir: Some("/d".into()),
            hub: Some("https://hub:8443".into()),
            ..Default::default()
        };
        assert!(matches!(
            Config::resolve(None, half),
            Err(ConfigError::HalfSync)
        ));
        let plain = Overrides {
            data_dir: Some("/d".into()),
            hub: Some("http://hub".into()),
            identity: Some("/id.pem".into()),
            ..Default::default()
        };
        assert!(matches!(
            Config::resolve(None, plain),
            Err(ConfigError::HubUrl(_))
        ));
        let file = FileConfig::parse(
            "[sync]\nhub = \"https://hub:8443\"\nidentity = \"/id.pem\"\ninterval_secs = 5\n",
            Path::new("s.toml"),
        )
        .unwrap();
        let c = resolve_with_data_dir(Some(file)).unwrap();
        let sync = c.sync.unwrap();
        assert_eq!(sync.hub, "https://hub:8443");
        assert_eq!(sync.interval, std::time::Duration::from_secs(5));
        let e = FileConfig::parse("nope = 1", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("x.toml"), "{e}");
        for key in [
            "max_batch",
            "queue",
            "flush_after_events",
            "flush_after_counters",
        ] {
            let zero =
                FileConfig::parse(&format!("[commit]\n{key} = 0"), Path::new("x.toml")).unwrap();
            let err = resolve_with_data_dir(Some(zero)).unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn settings_too_large_for_a_timer_or_a_channel_are_refused() {
        // The largest integer TOML holds.
        let value = i64::MAX;
        for (section, key, what) in [
            ("sync", "interval_secs", "sync interval"),
            ("sync", "timeout_secs", "sync timeout"),
            ("sync", "backoff_cap_secs", "sync backoff cap"),
            ("commit", "queue", "commit.queue"),
            ("api", "max_connections", "api.max_connections"),
        ] {
            let text = format!(
                "[sync]\nhub = \"https://hub:8443\"\nidentity = \"/id.pem\"\n\
                 {}\n",
                if section == "sync" {
                    format!("{key} = {value}")
                } else {
                    format!("[{section}]\n{key} = {value}")
                }
            );
            let file = FileConfig::parse(&text, Path::new("big.toml")).unwrap();
            let err = resolve_with_data_dir(Some(file)).unwrap_err();
            assert!(
                matches!(&err, ConfigError::TooLarge { what: w, .. } if *w == what),
                "{key}: {err}"
            );
        }
        // The largest allowed still resolves.
        let file = FileConfig::parse(
            &format!(
                "[sync]\nhub = \"https://hub:8443\"\nidentity = \"/id.pem\"\n\
                 interval_secs = {MAX_SYNC_SECS}\n"
            ),
            Path::new("week.toml"),
        )
        .unwrap();
        let c = resolve_with_data_dir(Some(file)).unwrap();
        assert_eq!(
            c.sync.unwrap().interval,
            std::time::Duration::from_secs(MAX_SYNC_SECS)
        );
    }

    #[test]
    fn hold_and_nice_come_from_the_commit_section() {
        let c = resolve_with_data_dir(None).unwrap();
        assert_eq!(c.commit.hold_us, 200);
        assert_eq!(c.commit.nice, -10);
        let file =
            FileConfig::parse("[commit]\nhold_us = 0\nnice = 0\n", Path::new("h.toml")).unwrap();
        let c = resolve_with_data_dir(Some(file)).unwrap();
        assert_eq!((c.commit.hold_us, c.commit.nice), (0, 0));
        for nice in [-21, 20] {
            let file =
                FileConfig::parse(&format!("[commit]\nnice = {nice}\n"), Path::new("n.toml"))
                    .unwrap();
            let err = resolve_with_data_dir(Some(file)).unwrap_err();
            assert!(err.to_string().contains("commit.nice"), "{nice}: {err}");
        }
    }

    #[test]
    fn flush_bounds_come_from_the_commit_section() {
        let file =
            FileConfig::parse("[commit]\nflush_after_events = 16\n", Path::new("f.toml")).unwrap();
        let c = resolve_with_data_dir(Some(file)).unwrap();
        assert_eq!(c.commit.flush_after_events, 16);
        assert_eq!(c.commit.flush_after_counters, MAX_UNFLUSHED_COUNTERS);
        assert_eq!(
            CommitConfig::default().flush_after_events,
            MAX_UNFLUSHED_EVENTS
        );
    }

    #[test]
    fn devices_come_from_the_file_and_flags() {
        let file = FileConfig::parse(
            "data_dir = \"/d\"\n[devices]\nscanner = \"/dev/ttyACM0\"\nscanner_mode = \"sell\"\n\
             rfid = \"/dev/ttyUSB0\"\nrfid_mode = \"receive\"\nrfid_window_ms = 750\n",
            Path::new("d.toml"),
        )
        .unwrap();
        let c = Config::resolve(Some(file.clone()), Overrides::default()).unwrap();
        let scanner = c.devices.scanner.unwrap();
        assert_eq!(scanner.path, PathBuf::from("/dev/ttyACM0"));
        assert_eq!(scanner.mode, crate::devices::ScannerMode::Sell);
        let rfid = c.devices.rfid.unwrap();
        assert_eq!(rfid.window, std::time::Duration::from_millis(750));
        let c = Config::resolve(
            Some(file),
            Overrides {
                devices: DevicesFileConfig {
                    rfid: Some("/dev/other".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            c.devices.rfid.unwrap().address,
            tally_hardware::rfid::address::ReaderAddress::Serial("/dev/other".into())
        );
        let no_mode = FileConfig::parse(
            "data_dir = \"/d\"\n[devices]\nscanner = \"/dev/x\"\n",
            Path::new("m.toml"),
        )
        .unwrap();
        let e = Config::resolve(Some(no_mode), Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("--scanner-mode sell"), "{e}");
        let bad = FileConfig::parse(
            "[devices]\nrfid = \"/dev/x\"\nrfid_mode = \"tally\"\n",
            Path::new("c.toml"),
        );
        assert!(bad.is_err(), "only the modes that exist are accepted");
        let count = FileConfig::parse(
            "data_dir = \"/d\"\n[devices]\nrfid = \"/dev/x\"\nrfid_mode = \"count\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let c = Config::resolve(Some(count), Overrides::default()).unwrap();
        assert_eq!(
            c.devices.rfid.unwrap().mode,
            crate::devices::RfidMode::Count
        );
    }

    #[test]
    fn an_llrp_reader_is_an_address_in_the_file() {
        use tally_hardware::rfid::address::ReaderAddress;
        let file = FileConfig::parse(
            "data_dir = \"/d\"\n[devices]\nrfid = \"llrp://10.0.0.5\"\nrfid_mode = \"receive\"\n",
            Path::new("l.toml"),
        )
        .unwrap();
        let c = Config::resolve(Some(file), Overrides::default()).unwrap();
        assert_eq!(
            c.devices.rfid.unwrap().address,
            ReaderAddress::Llrp {
                host: "10.0.0.5".into(),
                port: 5084
            }
        );
        let bad = FileConfig::parse(
            "data_dir = \"/d\"\n[devices]\nrfid = \"llrp://\"\nrfid_mode = \"receive\"\n",
            Path::new("b.toml"),
        )
        .unwrap();
        let e = Config::resolve(Some(bad), Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("without a host"), "{e}");
    }
}
