//! A throwaway PostgreSQL for tests: one cluster per test process, made
//! with the distribution's `initdb` in a temp dir and served by a real
//! `postgres` on a Unix socket there (no TCP port); each test gets a
//! database of its own ([`database`]).
//!
//! - Binaries: `$TALLY_PG_BINDIR`, else the newest
//!   `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package), else
//!   `PATH`. Missing, the test fails and says what to install.
//! - Root (CI) cannot run `initdb`: the cluster then runs as the
//!   `postgres` user the package creates, in a directory handed to it.
//! - The server lives as long as the test process: it is started under a
//!   shell that waits on a pipe from this process and stops the server
//!   (fast shutdown) and removes its directory when the pipe closes,
//!   however the process ends.
//! - `$TALLY_TEST_DATABASE_URL` (a superuser's URL) uses that server
//!   instead of starting one.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The running cluster of this test process.
pub struct Cluster {
    /// `host=… user=…` to reach the server (without a database).
    base: String,
    _dir: Option<tempfile::TempDir>,
    _server: Option<Mutex<Child>>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

fn bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TALLY_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => PathBuf::new(),
    }
}

fn tool(bin: &Path, name: &str) -> PathBuf {
    let p = bin.join(name);
    if p.exists() {
        p
    } else {
        PathBuf::from(name)
    }
}

/// The unprivileged user to run the server as: `postgres` when this
/// process is root, else this process's own.
fn run_as() -> Option<(u32, u32)> {
    if !nix::unistd::Uid::effective().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("running as root: the 'postgres' user (from the postgresql package) is needed to run a test cluster");
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

fn command(path: PathBuf, user: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(path);
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    c
}

fn start() -> Cluster {
    if let Ok(url) = std::env::var("TALLY_TEST_DATABASE_URL") {
        return Cluster {
            base: url,
            _dir: None,
            _server: None,
        };
    }
    Cluster::start(&Setup::default())
}

/// How a cluster is set up beyond the defaults (a Unix socket only,
/// trust for local connections).
#[derive(Default)]
pub struct Setup {
    /// Also listen on 127.0.0.1 at this port.
    pub tcp_port: Option<u16>,
    /// Files written into the data directory before the server starts
    /// (name, contents; readable by the server's user only).
    pub files: Vec<(String, Vec<u8>)>,
    /// Server settings (`name=value`), given as `-c` options.
    pub settings: Vec<String>,
    /// Replaces `pg_hba.conf`.
    pub hba: Option<String>,
}

/// A free TCP port on 127.0.0.1 (free when asked).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// `host=<socket dir> user=tally`: reaches the server over its
    /// socket (no database named).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Starts a cluster of its own set up as `setup` says: it stops when
    /// dropped (or when the process ends).
    pub fn start(setup: &Setup) -> Cluster {
        start_cluster(setup)
    }
}

fn start_cluster(setup: &Setup) -> Cluster {
    let bin = bindir();
    let user = run_as();
    let dir = tempfile::Builder::new()
        .prefix("tally-pg-")
        .tempdir()
        .unwrap();
    if let Some((uid, gid)) = user {
        nix::unistd::chown(
            dir.path(),
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .unwrap();
    }
    let data = dir.path().join("data");
    let out = command(tool(&bin, "initdb"), user)
        .args(["--auth=trust", "--username=tally", "--no-sync", "--no-locale", "-E", "UTF8", "-D"])
        .arg(&data)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run initdb ({e}): install PostgreSQL (Debian: apt-get install postgresql) or set TALLY_PG_BINDIR"
            )
        });
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, contents) in &setup.files {
        let path = data.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        if let Some((uid, gid)) = user {
            nix::unistd::chown(
                &path,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .unwrap();
        }
    }
    if let Some(hba) = &setup.hba {
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
    }
    let mut settings: Vec<String> = vec![
        format!(
            "listen_addresses={}",
            if setup.tcp_port.is_some() {
                "127.0.0.1"
            } else {
                ""
            }
        ),
        "max_connections=200".into(),
        "shared_buffers=64MB".into(),
    ];
    if let Some(port) = setup.tcp_port {
        settings.push(format!("port={port}"));
    }
    settings.extend(setup.settings.iter().cloned());
    let options: String = settings.iter().map(|s| format!(" -c '{s}'")).collect();
    let postgres = tool(&bin, "postgres");
    let log = dir.path().join("server.log");
    // The shell keeps the pipe from this process as fd 3; when it closes
    // (this process ended, whatever the way), it stops the server.
    let script = format!(
        "exec 3<&0 </dev/null; \"$0\" -D \"$1\" -k \"$2\"{options} >>\"$3\" 2>&1 & pid=$!; \
         read -r _ <&3; kill -INT $pid; wait $pid; rm -rf \"$2\""
    );
    let mut server = command(PathBuf::from("/bin/sh"), user)
        .arg("-c")
        .arg(script)
        .arg(&postgres)
        .arg(&data)
        .arg(dir.path())
        .arg(&log)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    // The socket's name carries the port.
    let port = setup
        .tcp_port
        .map(|p| format!(" port={p}"))
        .unwrap_or_default();
    let base = format!("host={}{port} user=tally", dir.path().display());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if admin(&base, "SELECT 1").is_ok() {
            break;
        }
        if let Ok(Some(status)) = server.try_wait() {
            panic!(
                "postgres exited ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "postgres did not start in 60 s: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Keep the pipe open for the life of the process.
    let _ = server.stdin.as_mut().map(|s| s.flush());
    Cluster {
        base,
        _dir: Some(dir),
        _server: Some(Mutex::new(server)),
    }
}

/// Runs `work` with a client connected to `url`, on a thread and a
/// runtime of its own (callers may be async tests, where blocking on a
/// runtime is not allowed), and answers what it did.
pub fn with_client<T: Send>(
    url: &str,
    work: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error> + Send,
) -> Result<T, tokio_postgres::Error> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
                let driver = tokio::spawn(conn);
                let done = work(&client).await;
                drop(client);
                let _ = driver.await;
                done
            })
        })
        .join()
        .unwrap()
    })
}

/// Runs `sql` on the database at `url`.
fn run_sql(url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    with_client(url, async |c| c.batch_execute(sql).await)
}

/// Runs `sql` on the cluster's `postgres` database.
fn admin(base: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    run_sql(&format!("{base} dbname=postgres"), sql)
}

/// The cluster of this test process, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start)
}

/// A new, empty database on the cluster, named after `hint`: its
/// connection string (`host=… user=… dbname=…`).
pub fn database(hint: &str) -> String {
    let c = cluster();
    let clean: String = hint
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() {
                ch.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let name = format!(
        "t{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        clean
    );
    admin(&c.base, &format!("CREATE DATABASE \"{name}\"")).unwrap();
    format!("{} dbname={name}", c.base)
}

/// Runs `sql` on the database at `url` (a test's own checks).
pub fn execute(url: &str, sql: &str) {
    run_sql(url, sql).unwrap();
}

/// The first column of the first row `sql` answers at `url`, as text
/// (a test's own checks).
pub fn query_text(url: &str, sql: &str) -> String {
    with_client(url, async |c| {
        Ok(c.query_one(sql, &[]).await?.get::<_, String>(0))
    })
    .unwrap()
}

/// The first column of the first row `sql` answers at `url`, as an
/// integer (a test's own checks).
pub fn query_i64(url: &str, sql: &str) -> i64 {
    with_client(url, async |c| {
        Ok(c.query_one(sql, &[]).await?.get::<_, i64>(0))
    })
    .unwrap()
}
