//! `tally-hub` binary: parses flags, builds a [`tally_hub::Config`],
//! installs tracing and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tally_hub::pki::{self, DataDir};
use tally_hub::storage::postgres::{DatabaseUrl, PgHub};
use tally_hub::Config;
use tally_store::SystemClock;
use tally_sync::ReservePolicy;

const HOUR_MS: u64 = 3_600_000;

/// Tally HQ hub.
#[derive(Debug, Parser)]
#[command(name = "tally-hub", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the hub's CA, its server certificate and the admin token.
    Init {
        /// The hub's data directory (created if missing).
        #[arg(long)]
        data_dir: PathBuf,
        /// A DNS name or IP address stores use to reach the hub (repeat);
        /// default `localhost` and `127.0.0.1`.
        #[arg(long = "hostname")]
        hostnames: Vec<String>,
    },
    /// Issue a store's identity bundle (client certificate, key, CA) with
    /// a key made here: the quick path for a lab. In a chain, use
    /// `enroll-code` and `tally-agent enroll` (the key stays in the store).
    Enroll {
        /// The hub's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// The store id (1-63 of `[a-z0-9._-]`, starting with a letter or
        /// digit, no `..`, not `hub`).
        #[arg(long)]
        store: String,
        /// Where to write the bundle (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a one-time enrollment code for a store: the store's agent
    /// redeems it with `tally-agent enroll`, sending a signing request for
    /// a key it made itself. The hub keeps only the code's hash.
    EnrollCode {
        /// The hub's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// The store id the code enrolls.
        #[arg(long)]
        store: String,
        /// How long the code is valid, in hours.
        #[arg(long, default_value_t = pki::DEFAULT_CODE_TTL_HOURS,
              value_parser = clap::value_parser!(u64).range(1..=24 * 365))]
        ttl_hours: u64,
        /// Keep the code in this PostgreSQL database instead of the data
        /// directory, so the store may redeem it at any hub process
        /// serving the database (once).
        #[arg(long, env = "TALLY_HUB_DATABASE", hide_env_values = true)]
        database: Option<String>,
    },
    /// CA rotation, step 1 (hub stopped): a new CA signs from now on; the
    /// previous ones stay trusted and are given to stores with the new
    /// one at enrollment and renewal (docs/sync.md).
    RotateCa {
        /// The hub's data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// CA rotation, step 2 (hub stopped), once every store trusts the new
    /// CA: a new server certificate from it. Also renews an expiring one.
    ReissueServerCert {
        /// The hub's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// A DNS name or IP address stores use to reach the hub (repeat);
        /// default `localhost` and `127.0.0.1`.
        #[arg(long = "hostname")]
        hostnames: Vec<String>,
    },
    /// Makes the metrics token (DIR/metrics.token) of a data directory
    /// `init`ed without one: it reads `GET /metrics` and nothing else, for
    /// a scraper. Restart the hub to take it up.
    MetricsToken {
        /// The hub's data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// CA rotation, step 3 (hub stopped), once no store needs the old CA:
    /// trust only the current one.
    RetireOldCas {
        /// The hub's data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Revoke every certificate issued to a store so far.
    Revoke {
        /// The hub's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// The store id.
        #[arg(long)]
        store: String,
        /// Also record the revocation in this PostgreSQL database, where
        /// every hub process serving it sees it at once.
        #[arg(long, env = "TALLY_HUB_DATABASE", hide_env_values = true)]
        database: Option<String>,
    },
    /// Create or bring up to date the hub's schema in a PostgreSQL
    /// database ahead of time (`run --database` does it too, at start);
    /// with `--from`, also copy an embedded hub's data into it.
    Migrate {
        /// The database, e.g. `postgres://tally@db.example/tally` or
        /// `host=/run/postgresql dbname=tally` (a password is better in
        /// `PGPASSWORD`-style env than here: put the whole URL in
        /// `TALLY_HUB_DATABASE`).
        #[arg(long, env = "TALLY_HUB_DATABASE", hide_env_values = true)]
        database: String,
        /// Copy everything the embedded hub of this data directory keeps
        /// (its `hub.redb`; the hub must be stopped) into the database,
        /// in one transaction. The database must hold no hub data yet.
        #[arg(long, value_name = "DATA_DIR")]
        from: Option<PathBuf>,
        /// Then compare every read the hub serves on both and fail if
        /// any differs. On a database that already holds the import,
        /// only compares.
        #[arg(long, requires = "from")]
        verify: bool,
    },
    /// Serve the sync endpoint and the admin API.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Read settings from this TOML file: each key one of these flags by
    /// its long name (`database = "postgres://…"`, `max_batch = 128`);
    /// flags on the command line win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The hub's data directory (made by `init`). With `--database` it
    /// holds only the PKI files (CA, server certificate, admin token) and
    /// several hub processes may share it.
    #[arg(long)]
    data_dir: PathBuf,
    /// Keep the hub's data in this PostgreSQL database instead of the
    /// embedded `hub.redb` (schema created or migrated at start): several
    /// hub processes may serve one database. TLS as libpq: add
    /// `sslmode=verify-full&sslrootcert=CA.pem` (docs/postgres.md).
    #[arg(long, env = "TALLY_HUB_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// With `--database`: most read connections open at once (reads
    /// beyond wait); each process also keeps a writer and two listening
    /// connections, so budget `max_connections` for all processes.
    #[arg(long, default_value_t = tally_hub::storage::postgres::DEFAULT_READ_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    database_read_connections: u64,
    /// Address to listen on, e.g. `0.0.0.0:8443` or `127.0.0.1:0`.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: String,
    /// How long a store may be offline that the hub's reserve there should
    /// cover online orders for, in hours (0: no reserve).
    #[arg(long, default_value_t = 24)]
    reserve_horizon_hours: u64,
    /// Half-life of the online-demand estimate, in hours: an order this
    /// old weighs half (at least 1).
    #[arg(long, default_value_t = 7 * 24, value_parser = clap::value_parser!(u64).range(1..))]
    demand_half_life_hours: u64,
    /// A store is online if it synced within this many seconds.
    #[arg(long, default_value_t = 120)]
    online_window_secs: u64,
    /// Largest sync request body, in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_sync_body: usize,
    /// Most write requests committed in one transaction (1 to 100,000).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_batch: u64,
    /// Most TLS connections at once (1 to 1,000,000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Most connections open at once from one address (1 to 1,000,000).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections_per_peer: u64,
    /// A connection that sends no complete request within this many
    /// milliseconds of its TLS handshake is closed.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..))]
    first_request_timeout_ms: u64,
    /// A connection with no request in flight for this many milliseconds
    /// is closed; so is one on which nothing moved for as long while a
    /// request is in flight.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(10..))]
    idle_timeout_ms: u64,
    /// Longest time a client may take to send a request body, in
    /// milliseconds (then 408).
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(10..))]
    body_read_timeout_ms: u64,
    /// Most events in one sync request (then 413 `too_many_events`).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_sync_events: u64,
    /// Most MiB of request bodies read, decoded or waiting for the writer
    /// at once (then 503 with Retry-After).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    max_queued_mib: u64,
    /// How orders that name no store choose among stores that can fill
    /// them: `priority` (the --route-priority list) or `most-spare`.
    #[arg(long, default_value = "priority")]
    route_preference: RoutePreferenceArg,
    /// Stores in order of preference for routed orders, comma-separated
    /// (others after them, by id).
    #[arg(long, value_delimiter = ',')]
    route_priority: Vec<String>,
    /// Heartbeat interval on stores' live links, in milliseconds.
    #[arg(long, default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(10..))]
    heartbeat_ms: u64,
    /// How long an online order short of the hub's reserve waits for a
    /// live store to release rights, in milliseconds (0: never ask).
    #[arg(long, default_value_t = 2_000)]
    rights_wait_ms: u64,
    /// How long a transfer between stores may stay in transit before the
    /// hub raises a `transfer_overdue` exception, in seconds.
    #[arg(long, default_value_t = 48 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    transfer_overdue_secs: u64,
    /// Most enrollments (`POST /v1/enroll`) redeemed at once, 0 to 1,024
    /// (beyond: 503 `busy`, the code not spent; 0 refuses every
    /// enrollment).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(0..=1024))]
    max_enrollments: u64,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    /// Also stop (gracefully) when standard input reaches its end: a
    /// supervisor holding a pipe to it stops the hub by closing the pipe,
    /// or by dying, even of SIGKILL.
    #[arg(long)]
    stop_on_stdin_eof: bool,
}

fn main() -> ExitCode {
    let (argv, warnings) = match with_config_file(std::env::args_os().collect()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {}", tally_sync::report::one_line(e.as_ref()));
            return ExitCode::FAILURE;
        }
    };
    match run(Cli::parse_from(argv), &warnings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, each cause once (not anyhow's "Caused by" list,
            // which repeats causes our errors already show).
            eprintln!("error: {}", tally_sync::report::one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// `run --config FILE`: the file's settings put before the command
/// line's flags (`tally_hub::config_file`); other commands as they are.
/// Also answers warnings to log once logging is set up.
fn with_config_file(
    mut argv: Vec<std::ffi::OsString>,
) -> anyhow::Result<(Vec<std::ffi::OsString>, Vec<String>)> {
    use clap::CommandFactory;
    let mut warnings = Vec::new();
    if argv.get(1).and_then(|a| a.to_str()) != Some("run") {
        return Ok((argv, warnings));
    }
    let words: Vec<String> = argv[2..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let path = words
        .iter()
        .enumerate()
        .find_map(|(i, w)| match w.strip_prefix("--config") {
            Some("") => words.get(i + 1).cloned(),
            Some(rest) => rest.strip_prefix('=').map(str::to_string),
            None => None,
        });
    let Some(path) = path else {
        return Ok((argv, warnings));
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let cli = Cli::command();
    let flags: Vec<tally_hub::config_file::Flag> = cli
        .find_subcommand("run")
        .map(|run| {
            run.get_arguments()
                .filter_map(|a| {
                    Some(tally_hub::config_file::Flag {
                        long: a.get_long()?.to_string(),
                        takes_value: a.get_action().takes_values(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let given = |long: &str| {
        let flag = format!("--{long}");
        words
            .iter()
            .any(|w| *w == flag || w.starts_with(&format!("{flag}=")))
            || (long == "database" && std::env::var_os("TALLY_HUB_DATABASE").is_some())
    };
    let from_file = tally_hub::config_file::flags_from_toml(&text, &flags, &given)
        .with_context(|| format!("in {path}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        let names_database = text
            .parse::<toml::Table>()
            .is_ok_and(|t| t.contains_key("database"));
        if mode & 0o077 != 0 && names_database {
            warnings.push(format!(
                "{path} names the database (perhaps with its password) and others may read it (mode {:o}): chmod 600 it",
                mode & 0o777
            ));
        }
    }
    argv.splice(2..2, from_file.into_iter().map(std::ffi::OsString::from));
    Ok((argv, warnings))
}

fn run(cli: Cli, warnings: &[String]) -> anyhow::Result<()> {
    match cli.command {
        Command::Init {
            data_dir,
            hostnames,
        } => {
            let report = pki::init(&DataDir::new(&data_dir), &hostnames, &SystemClock)
                .with_context(|| format!("initializing {}", data_dir.display()))?;
            println!(
                "Initialized hub in {} for {}; admin token in {}; metrics token (GET /metrics only) in {}",
                data_dir.display(),
                report.hostnames.join(", "),
                report.admin_token_path.display(),
                report.metrics_token_path.display()
            );
        }
        Command::MetricsToken { data_dir } => {
            let (path, made) = pki::metrics_token(&DataDir::new(&data_dir))
                .with_context(|| format!("the metrics token of {}", data_dir.display()))?;
            if made {
                println!(
                    "Metrics token in {} (GET /metrics only); restart the hub to take it up.",
                    path.display()
                );
            } else {
                println!("Metrics token already in {}.", path.display());
            }
        }
        Command::Enroll {
            data_dir,
            store,
            out,
        } => {
            let e = pki::enroll(&DataDir::new(&data_dir), &store, &out, &SystemClock)
                .with_context(|| format!("enrolling store {store:?}"))?;
            println!(
                "Enrolled store {} (certificate serial {}); identity bundle in {}",
                e.store,
                e.serial,
                e.bundle.display()
            );
        }
        Command::EnrollCode {
            data_dir,
            store,
            ttl_hours,
            database,
        } => {
            let dir = DataDir::new(&data_dir);
            let ttl = ttl_hours.saturating_mul(HOUR_MS);
            let c = match database {
                Some(database) => {
                    let url: DatabaseUrl = database.parse().context("--database")?;
                    let book = tally_hub::storage::postgres::enroll_codes::DbCodeBook::new(url);
                    pki::enroll_code_in(&book, &dir, &store, ttl, &SystemClock)
                }
                None => pki::enroll_code(&dir, &store, ttl, &SystemClock),
            }
            .with_context(|| format!("making an enrollment code for store {store:?}"))?;
            // The code alone on stdout, for scripts; the rest on stderr.
            println!("{}", c.code);
            eprintln!(
                "One-time enrollment code for store {} (valid {ttl_hours} h, until {}). On the \
                 store: tally-agent enroll --hub https://HUB:8443 --ca ca.pem --store-id {} \
                 --code CODE --identity /etc/tally/{}.pem",
                c.store,
                tally_sync::timestamp::rfc3339(c.expires_ms),
                c.store,
                c.store,
            );
        }
        Command::RotateCa { data_dir } => {
            let r = pki::rotate_ca(&DataDir::new(&data_dir), &SystemClock)
                .with_context(|| format!("rotating the CA of {}", data_dir.display()))?;
            println!(
                "New signing CA {} ({} CA certificates trusted); the previous key is in {} \
                 (destroy it once the rotation is over). Start the hub again.",
                r.serial,
                r.trusted,
                r.retired_key.display()
            );
        }
        Command::ReissueServerCert {
            data_dir,
            hostnames,
        } => {
            let names =
                pki::reissue_server_cert(&DataDir::new(&data_dir), &hostnames, &SystemClock)
                    .with_context(|| {
                        format!("reissuing the server certificate of {}", data_dir.display())
                    })?;
            println!(
                "New server certificate for {}; start the hub again.",
                names.join(", ")
            );
        }
        Command::RetireOldCas { data_dir } => {
            let n = pki::retire_old_cas(&DataDir::new(&data_dir))
                .with_context(|| format!("retiring old CAs of {}", data_dir.display()))?;
            println!("Dropped {n} old CA certificate(s); start the hub again.");
        }
        Command::Revoke {
            data_dir,
            store,
            database,
        } => {
            let dir = DataDir::new(&data_dir);
            // Said once every step is done: a failure in the database
            // leaves the other hub processes accepting the certificates.
            let (n, shared) = match database {
                None => (
                    pki::revoke(&dir, &store)
                        .with_context(|| format!("revoking store {store:?}"))?,
                    None,
                ),
                Some(database) => {
                    let url: DatabaseUrl = database.parse().context("--database")?;
                    let (here, there) = revoke_everywhere(&dir, &store, &url)?;
                    (here, Some((there, url)))
                }
            };
            println!("Revoked {n} certificate(s) of store {store}; its next sync gets 403.");
            if let Some((n, url)) = shared {
                println!(
                    "Recorded {n} new revocation(s) in {url}: every hub process serving it refuses them now."
                );
            }
        }
        Command::Migrate {
            database,
            from,
            verify,
        } => {
            let url: DatabaseUrl = database.parse().context("--database")?;
            let report = PgHub::migrate(&url).with_context(|| format!("migrating {url}"))?;
            if report.from == report.to {
                println!("Schema of {url} is up to date (version {}).", report.to);
            } else {
                println!(
                    "Migrated {url} from schema version {} to {}.",
                    report.from, report.to
                );
            }
            if let Some(from) = from {
                migrate_from(&url, &from, verify)?;
            }
        }
        Command::Run(args) => {
            tally_service::log_to_stderr(args.log_json);
            for w in warnings {
                tracing::warn!("{w}");
            }
            let mut config = Config::new(&args.data_dir);
            config.database = match &args.database {
                Some(url) => Some(url.parse().context("--database")?),
                None => None,
            };
            config.database_reads =
                usize::try_from(args.database_read_connections).unwrap_or(usize::MAX);
            config.policy = ReservePolicy {
                horizon_ms: args.reserve_horizon_hours.saturating_mul(HOUR_MS),
                half_life_ms: args.demand_half_life_hours.saturating_mul(HOUR_MS),
            };
            config.online_window = Duration::from_secs(args.online_window_secs);
            config.max_sync_body = args.max_sync_body;
            // In range (the parser's bounds), so they fit a usize.
            let fit = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
            config.max_batch = fit(args.max_batch);
            config.max_connections = fit(args.max_connections);
            config.max_connections_per_peer = fit(args.max_connections_per_peer);
            config.limits.first_request = Duration::from_millis(args.first_request_timeout_ms);
            config.limits.idle = Duration::from_millis(args.idle_timeout_ms);
            config.limits.stall = Duration::from_millis(args.idle_timeout_ms);
            config.body_read_timeout = Duration::from_millis(args.body_read_timeout_ms);
            config.max_sync_events = usize::try_from(args.max_sync_events).unwrap_or(usize::MAX);
            config.max_queued_bytes =
                usize::try_from(args.max_queued_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
            config.heartbeat = Duration::from_millis(args.heartbeat_ms);
            config.rights_wait = Duration::from_millis(args.rights_wait_ms);
            config.transfer_overdue = Duration::from_secs(args.transfer_overdue_secs);
            config.max_enrollments = fit(args.max_enrollments);
            config.routing = tally_hub::storage::routed::RoutingSettings {
                preference: match args.route_preference {
                    RoutePreferenceArg::Priority => tally_sync::routing::Preference::Priority,
                    RoutePreferenceArg::MostSpare => tally_sync::routing::Preference::MostSpare,
                },
                priority: args
                    .route_priority
                    .iter()
                    .map(|s| {
                        tally_sync::LocationId::new(s.trim())
                            .with_context(|| format!("--route-priority: {s:?}"))
                    })
                    .collect::<anyhow::Result<_>>()?,
            };
            let stop_on_stdin_eof = args.stop_on_stdin_eof;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            runtime.block_on(async move {
                let shutdown = tally_service::shutdown_signal(stop_on_stdin_eof);
                let listener = tally_service::serve::bind(&args.listen)
                    .await
                    .with_context(|| format!("binding {}", args.listen))?;
                // One line on stdout for scripts and tests that listen on
                // :0, once the hub has started.
                let ready = |addr| println!("tally-hub listening on https://{addr}");
                tally_hub::run(config, Arc::new(SystemClock), listener, ready, shutdown)
                    .await
                    .context("running the hub")
            })?;
        }
    }
    Ok(())
}

/// `migrate --from DATA_DIR [--verify]`: the import (unless `--verify`
/// finds it done already), then the comparison.
fn migrate_from(url: &DatabaseUrl, from: &std::path::Path, verify: bool) -> anyhow::Result<()> {
    use tally_hub::storage::postgres::import;
    let held = import::hub_data_in(url).with_context(|| format!("reading {url}"))?;
    if verify && !held.is_empty() {
        println!(
            "{url} holds hub data already: comparing it with {}, importing nothing.",
            from.display()
        );
    } else {
        let report = import::import(url, from)
            .with_context(|| format!("importing {} into {url}", from.display()))?;
        println!("{report}");
    }
    if verify {
        let report = tally_hub::storage::verify::verify(from, url)
            .with_context(|| format!("comparing {} with {url}", from.display()))?;
        print!("{report}");
        anyhow::ensure!(
            report.is_clean(),
            "{url} answers {} reads differently from {}",
            report.differences(),
            from.display()
        );
    }
    Ok(())
}

/// `--route-preference`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RoutePreferenceArg {
    /// The --route-priority list first.
    Priority,
    /// The store left with the most units of the order's items.
    MostSpare,
}

/// `revoke --database`: every certificate of `store` that the data
/// directory `dir` or the database at `url` records (issued at any host),
/// revoked in both, listed again after each write until nothing new
/// turns up (so a renewal racing with it is refused or revoked too:
/// `pki::renew_for_csr`). Answers how many were newly revoked in `dir`
/// and in the database.
fn revoke_everywhere(
    dir: &DataDir,
    store: &str,
    url: &DatabaseUrl,
) -> anyhow::Result<(usize, usize)> {
    use tally_hub::storage::postgres::revocations;
    let (mut here, mut there) = (0, 0);
    loop {
        // A store may have enrolled at another host only.
        let local = match pki::revoke(dir, store) {
            Ok(n) => n,
            Err(pki::PkiError::UnknownStore(_)) => 0,
            Err(e) => return Err(e).with_context(|| format!("revoking store {store:?}")),
        };
        let mut serials = match pki::issued_serials(dir, store) {
            Ok(s) => s,
            Err(pki::PkiError::UnknownStore(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        serials.extend(
            revocations::issued_serials(url, store)
                .with_context(|| format!("reading the store's certificates in {url}"))?,
        );
        serials.sort();
        serials.dedup();
        if serials.is_empty() {
            anyhow::bail!("no certificate was ever issued to store {store} (nothing to revoke)");
        }
        let added = revocations::record(url, store, &serials).with_context(|| {
            format!(
                "recording the revocation in {url} (revoked in {} only)",
                dir.root().display()
            )
        })?;
        here += local;
        there += added;
        if added == 0 {
            return Ok((here, there));
        }
    }
}
