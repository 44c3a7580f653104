//! `tally-agent` binary: parses flags, installs logging, and hands over to
//! the library (`tally_agent::run` for the daemon, `tally_agent::cli` for
//! the client subcommands), to `devices_cli` (decode, devices, listen) or
//! to the cashier terminal (`tally_pos::run`).

mod devices_cli;

/// mimalloc, not glibc's malloc: under 64 concurrent clients glibc's
/// `malloc`/`free` were ~15 % of the committer thread's time (`perf`),
/// much of it freeing on one thread what another allocated (requests made
/// by the HTTP worker and dropped by the committer, replies the other
/// way). In 7 interleaved pairs of bench runs mimalloc cut the agent's CPU
/// per sale from 33–39 µs to 27–34 µs and raised sales/s by ~12 % (ahead
/// in 6 pairs, level in 1); RSS with 100,000 items went from 19 to 38 MiB
/// (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tally_agent::cli::{self, AgentArg, CatalogCommand, CountCommand, RunArgs, StockArgs};
use tally_store::SystemClock;

/// Tally store agent.
#[derive(Debug, Parser)]
#[command(name = "tally-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the agent: durable store, local API.
    Run(RunArgs),
    /// Shows an item's stock (asks the running agent).
    Stock(StockArgs),
    /// Shows the agent's status (asks the running agent).
    Status(AgentArg),
    /// Books a delivery of one item by hand (asks the running agent).
    Receive(cli::ReceiveArgs),
    /// Catalog maintenance.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Counts: one item counted by hand (`count set`), and RFID cycle
    /// counts: start, show, finish, report, accept a session (asks the
    /// running agent; its reader in --rfid-mode count).
    #[command(subcommand)]
    Count(CountCommand),
    /// Decode a scanned barcode or an RFID EPC and print JSON.
    Decode(devices_cli::DecodeArgs),
    /// List serial ports (USB vendor/product where known).
    Devices(devices_cli::DevicesArgs),
    /// Run the scanner and/or RFID drivers and print one event per line.
    Listen(devices_cli::ListenArgs),
    /// Cashier terminal (full screen) on the running agent's API.
    Pos(tally_pos::PosArgs),
    /// Makes a new till token: prints the token (for the till) and the
    /// `[[api.tills]]` entry (for the agent's configuration).
    TillToken {
        /// The till's id.
        #[arg(long)]
        till: String,
    },
    /// Makes the `[[managers]]` entry for a manager: reads the PIN or
    /// password from standard input (one line) and prints its Argon2id
    /// hash; the PIN itself is stored nowhere.
    ManagerPin {
        /// The manager's id.
        #[arg(long)]
        manager: String,
    },
    /// Prints the CA certificate of the agent's API, for the tills of an
    /// agent that serves HTTPS (`--agent-ca`), and its SHA-256
    /// fingerprint on stderr. The agent makes the CA when it first serves
    /// HTTPS (listening beyond loopback, or `[api] tls = true`).
    ApiCa(cli::ApiCaArgs),
    /// Enroll this store with the hub: make its key here, send a signing
    /// request with the one-time code from `tally-hub enroll-code`, and
    /// write the identity bundle (0600) for `--identity`.
    Enroll(EnrollCli),
}

#[derive(Debug, clap::Args)]
struct EnrollCli {
    /// The hub's base URL, e.g. `https://hub.example.com:8443`.
    #[arg(long)]
    hub: String,
    /// This store's id (the one the code was made for).
    #[arg(long)]
    store_id: String,
    /// The one-time enrollment code.
    #[arg(long, env = "TALLY_ENROLL_CODE", hide_env_values = true)]
    code: String,
    /// The hub's CA certificate (`ca.pem` from the hub's data directory),
    /// the only root trusted to reach the hub.
    #[arg(long)]
    ca: PathBuf,
    /// Where to write the identity bundle (must not exist).
    #[arg(long)]
    identity: PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_secs: u64,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Decode(args) => return devices_cli::run_decode(args, &SystemClock),
        Command::Devices(args) => return devices_cli::run_devices(args),
        Command::Listen(args) => return devices_cli::run_listen(args, &SystemClock),
        Command::Pos(args) => return tally_pos::run(args),
        Command::Run(args) => run(&args),
        Command::TillToken { till } => till_token(&till),
        Command::ApiCa(args) => api_ca(&args),
        Command::ManagerPin { manager } => manager_pin(&manager),
        Command::Enroll(args) => runtime().and_then(|rt| rt.block_on(enroll(args))),
        Command::Stock(args) => runtime().and_then(|rt| print(rt.block_on(cli::stock(&args))?)),
        Command::Status(args) => runtime().and_then(|rt| print(rt.block_on(cli::status(&args))?)),
        Command::Receive(args) => runtime().and_then(|rt| print(rt.block_on(cli::receive(&args))?)),
        Command::Count(cmd) => runtime().and_then(|rt| print(rt.block_on(cli::count(&cmd))?)),
        Command::Catalog(CatalogCommand::Import(args)) => {
            runtime().and_then(|rt| print(rt.block_on(cli::catalog_import(&args))?))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole chain of causes.
            eprintln!("error: {}", tally_sync::report::one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// `tally-agent enroll`.
async fn enroll(args: EnrollCli) -> anyhow::Result<()> {
    let store = tally_agent::config::parse_store_id(&args.store_id)?;
    let e = tally_agent::enroll::enroll(&tally_agent::enroll::EnrollArgs {
        hub: args.hub,
        store,
        code: args.code,
        ca: args.ca,
        identity: args.identity,
        timeout: std::time::Duration::from_secs(args.timeout_secs),
    })
    .await
    .with_context(|| format!("enrolling store {:?}", args.store_id))?;
    println!(
        "Enrolled store {} (certificate serial {}, valid until {}); identity bundle in {}",
        e.cert.store,
        e.cert.serial,
        tally_sync::timestamp::rfc3339(e.cert.not_after_ms),
        e.identity.display()
    );
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The runtime of `tally-agent run`: one core is left to the committer
/// thread, whose commits every sale waits on. On 2 cores, one HTTP worker
/// instead of two gave 30,000–33,000 committed sales/s at 64 clients
/// instead of 23,000–25,500 (docs/benchmarks.md). `TOKIO_WORKER_THREADS`
/// still wins.
fn server_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        builder.worker_threads(cores.saturating_sub(1).max(1));
    }
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn print(v: serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// Logs to stderr, for subcommands whose stdout is their output.
fn log_to_stderr() {
    tally_service::log_to_stderr(false);
}

/// `tally-agent run`: binds the API and serves until SIGINT or SIGTERM
/// (or, with `--stop-on-stdin-eof`, the end of standard input).
fn run(args: &RunArgs) -> anyhow::Result<()> {
    // Logs go to stderr (stdout carries the "listening on" line).
    log_to_stderr();
    let config = args.resolve()?;
    let stop_on_stdin_eof = args.stop_on_stdin_eof;
    let rt = server_runtime()?;
    rt.block_on(async move {
        let listener = tally_service::serve::bind(&config.listen.to_string())
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let shutdown = tally_service::shutdown_signal(stop_on_stdin_eof);
        // Tests and scripts read this line to find the port (e.g. with
        // --listen 127.0.0.1:0); it comes once the store is open.
        let scheme = match listener.local_addr() {
            Ok(addr) if config.api.tls_on(addr) => "https",
            _ => "http",
        };
        let ready = move |addr| println!("tally-agent listening on {scheme}://{addr}");
        tally_agent::run(config, Arc::new(SystemClock), listener, ready, shutdown)
            .await
            .context("tally-agent stopped with an error")
    })
}

/// `tally-agent api-ca`: the API's CA certificate on stdout, its
/// fingerprint on stderr. Reads only: a mistyped `--data-dir` finds no
/// CA rather than making one the tills would be given by mistake.
fn api_ca(args: &cli::ApiCaArgs) -> anyhow::Result<()> {
    let dir = tally_agent::api_tls::ApiTlsDir::new(&args.data_dir()?);
    let pem = tally_agent::api_tls::read_ca(&dir)
        .with_context(|| format!("the API's CA in {}", dir.root().display()))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no API CA in {}: the agent makes it when it first serves HTTPS (listening beyond \
                 loopback, or [api] tls = true); start it so, then run this again",
                dir.root().display()
            )
        })?;
    print!("{pem}");
    eprintln!(
        "SHA-256 fingerprint: {} ({}); give this file to each till (--agent-ca) and compare \
         the fingerprint there (openssl x509 -noout -fingerprint -sha256 -in FILE)",
        tally_agent::api_tls::fingerprint(&pem).unwrap_or_default(),
        dir.ca_cert().display()
    );
    Ok(())
}

/// `tally-agent till-token`: 32 random bytes from the OS, as hex.
fn till_token(till: &str) -> anyhow::Result<()> {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| anyhow::anyhow!("reading the OS's randomness: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let entry = tally_agent::config::TillConfig::with_token(till, &token);
    entry.check().map_err(|e| anyhow::anyhow!(e))?;
    println!("token for the till (TALLY_TILL_TOKEN or --token): {token}");
    println!(
        "for the agent's configuration file:\n\n[[api.tills]]\nid = {:?}\ntoken_sha256 = {:?}",
        entry.id, entry.token_sha256
    );
    Ok(())
}

/// `tally-agent manager-pin`: the PIN from one line of standard input.
fn manager_pin(manager: &str) -> anyhow::Result<()> {
    let ok = !manager.is_empty()
        && manager.len() <= 64
        && manager
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        anyhow::bail!("manager id {manager:?}: 1 to 64 letters, digits, '.', '-' or '_'");
    }
    eprintln!("Type the PIN or password for {manager}, then Enter:");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| anyhow::anyhow!("reading the PIN: {e}"))?;
    let pin = line.trim_end_matches(['\r', '\n']);
    if pin.len() < 4 {
        anyhow::bail!("a PIN has at least 4 characters");
    }
    let hash = tally_agent::managers::hash_pin(pin).map_err(|e| anyhow::anyhow!(e))?;
    println!("[[managers]]\nid = {manager:?}\npin_argon2 = {hash:?}");
    Ok(())
}
