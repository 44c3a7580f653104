//! The HQ dashboard in a real browser. A hub runs over real TLS on
//! 127.0.0.1 with three enrolled stores that synced real data (receipts,
//! sales this hour, an override sale, an EPC sold by two stores), a catalog
//! and an online order; orders with a lifecycle (routed ship orders the
//! store picks or ships, pickup orders waiting, cancelled, or handed over
//! after HQ cancelled them) and transfers (one overdue, one received, one
//! on its way), made through the real APIs and the stores' syncs.
//! Debian's headless Chromium, driven over the Chrome
//! DevTools Protocol (chromiumoxide), uses the page as a person would:
//! a wrong token is refused, the right one logs in, a GTIN is typed into
//! the stock lookup, order statuses are clicked and selected. The test
//! checks what the page renders against the
//! admin API: every store with its online/offline pill, last sync and
//! events, and its lost sales and refused online orders by reason; the
//! exceptions, those of orders and transfers in words; orders counted by
//! status, the open ones (and each other status on demand) with each
//! store's part; transfers in transit (overdue marked) and received; ids
//! a client or store chose that are markup, shown as text and never run;
//! the stock per store with who holds the rights;
//! one chart line per store that sold; after one more sale and a
//! hand-over are synced, the new counts without a reload; and, past 1,000
//! exceptions (one page of the
//! API), the newest first. It saves a screenshot of the logged-in page to
//! `target/artifacts/dashboard.png` (a CI artifact).
//!
//! # Design constraints
//! - Chromium trusts the hub by its CA's public key
//!   (`--ignore-certificate-errors-spki-list`: certificate errors are
//!   ignored only for a chain holding that key), never by ignoring every
//!   certificate error; chromiumoxide's own "ignore HTTPS errors" is off.
//!   The SPKI list is Chromium's mechanism for a private CA without
//!   touching a system or NSS trust store.
//! - Chromium stays off the internet: background services are off, no
//!   host name resolves (`--host-resolver-rules`), and anything that is
//!   not loopback goes to a proxy that does not exist.
//! - Chromium runs in its own process group with a fresh profile and HOME;
//!   [`Chromium`]'s drop kills the whole group before reaping it, so a
//!   failing test leaves no browser behind.
//! - Every wait polls a condition with a deadline; none sleeps a fixed time.
//! - One store is offline deterministically: its one sync ran through the
//!   hub's own storage code with the hub's clock set 12 minutes back,
//!   before the hub started (the online window is 2 minutes). The other
//!   stores sync over `/v1/sync`.
//!
//! Needs `/usr/bin/chromium` (`apt-get install -y chromium`; `.ci/run`
//! installs it). Without it the test fails, unless `TALLY_SKIP_BROWSER=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, Page};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{Admin, SimStore, TestHub};
use tally_hub::pki::{self, DataDir};
use tally_store::SystemClock;
use tally_sync::clock::Clock;
use tally_sync::fulfilment::Status;
use tally_sync::{Gtin, Shortage};

/// Debian's Chromium (a wrapper script that execs the browser).
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long any one condition may take to come true.
const DEADLINE: Duration = Duration::from_secs(30);
const MINUTE_MS: u64 = 60_000;

// ------------------------------------------------------------ Chromium

/// A headless Chromium in its own process group, killed with its group on
/// drop.
struct Chromium {
    child: Child,
    ws_url: String,
    log: Arc<Mutex<Vec<String>>>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts Chromium trusting only certificate chains that hold the key
    /// `spki_sha256_b64`, and waits (with a deadline) for its DevTools URL.
    fn launch(spki_sha256_b64: &str) -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let home = profile.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = Command::new(CHROMIUM);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--no-pings",
            "--metrics-recording-only",
            "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
            // Off the internet: no name resolves, and anything but loopback
            // (which Chromium never proxies) goes to a closed port.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=http://127.0.0.1:9",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1280,900",
            "--force-device-scale-factor=1",
            "--hide-scrollbars",
            "--lang=en-US",
        ])
        .arg(format!("--ignore-certificate-errors-spki-list={spki_sha256_b64}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        // Nothing of the user's HOME (NSS database, crash reports) is read.
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
                let mut l = lines.lock().unwrap();
                if l.len() < 500 {
                    l.push(line);
                }
            }
        });
        let mut chromium = Chromium {
            child,
            ws_url: String::new(),
            log,
            _profile: profile,
        };
        match rx.recv_timeout(DEADLINE) {
            Ok(url) => chromium.ws_url = url,
            Err(e) => panic!(
                "Chromium gave no DevTools URL ({e}); its stderr:\n{}",
                chromium.log_tail()
            ),
        }
        chromium
    }

    /// The last lines Chromium wrote to stderr, for failure messages
    /// (less its complaints that there is no D-Bus, as in any container).
    fn log_tail(&self) -> String {
        let l = self.log.lock().unwrap();
        let useful: Vec<&str> = l
            .iter()
            .map(String::as_str)
            .filter(|line| !line.contains("dbus"))
            .collect();
        useful[useful.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The leader is not reaped yet, so its pid still names this group.
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Whether the test can run: true if Chromium is installed; false (after
/// printing why) if it is not and `TALLY_SKIP_BROWSER=1`; otherwise a
/// panic telling how to install it.
fn chromium_installed_or_skip() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    if std::env::var("TALLY_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!(
            "SKIPPED dashboard_chromium: {CHROMIUM} is not installed and TALLY_SKIP_BROWSER=1."
        );
        return false;
    }
    panic!(
        "{CHROMIUM} is not installed; the dashboard test drives Debian's headless Chromium.\n\
         Install it with: sudo apt-get update && sudo apt-get install -y chromium\n\
         (.ci/run does this), or set TALLY_SKIP_BROWSER=1 to skip this test."
    );
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of the first certificate in a
/// PEM file: the form `--ignore-certificate-errors-spki-list` takes.
fn spki_sha256_b64(pem_path: &Path) -> String {
    let pem = std::fs::read(pem_path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.public_key().raw);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// The directory for CI artifacts: `<target>/artifacts`, `<target>` being
/// the one this test binary was built in (`<target>/debug/deps/…`).
fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "deps"))
        .and_then(|deps| deps.parent()?.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ------------------------------------------------------------ the page

/// Runs `function` (a JS function taking no argument) in the page and
/// returns its JSON result.
async fn js(page: &Page, function: &str) -> Value {
    page.evaluate_function(function)
        .await
        .unwrap_or_else(|e| panic!("evaluating {function}: {e}"))
        .into_value::<Value>()
        .unwrap_or(Value::Null)
}

/// Polls `function` until it returns something other than `null`/`false`,
/// with a deadline; returns that value.
async fn wait_until(page: &Page, what: &str, function: &str) -> Value {
    let start = Instant::now();
    loop {
        let v = js(page, function).await;
        if !matches!(v, Value::Null | Value::Bool(false)) {
            return v;
        }
        if start.elapsed() > DEADLINE {
            let shown = js(page, "() => document.body.innerText").await;
            panic!("timed out after {DEADLINE:?} waiting for {what}; the page shows:\n{shown}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks the element and types `text` into it, as a person does.
async fn type_into(page: &Page, selector: &str, text: &str) {
    page.find_element(selector)
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str(text)
        .await
        .unwrap();
}

async fn click(page: &Page, selector: &str) {
    page.find_element(selector)
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The stores table as rendered: store → what its cells show.
const STORES_TABLE: &str = r#"() => Object.fromEntries(
  [...document.querySelectorAll('[data-testid=stores] tbody tr[data-store]')].map((tr) => {
    const td = tr.querySelectorAll('td');
    const pill = tr.querySelector('.pill');
    const time = td[2].querySelector('time');
    return [td[0].innerText.trim(), {
      pill: pill.innerText.trim(), pill_class: pill.className,
      live: !!tr.querySelector('.badge.live'),
      last_sync: time ? time.getAttribute('datetime') : td[2].innerText.trim(),
      lag: td[3].innerText.trim(), events: td[4].innerText.trim(),
      lost: Object.fromEntries([...td[5].querySelectorAll('[data-reason]')].map((r) => [r.dataset.reason, r.innerText.trim()])),
      lost_text: td[5].innerText.trim(), lost_title: td[5].title,
      refused: Object.fromEntries([...td[6].querySelectorAll('[data-reason]')].map((r) => [r.dataset.reason, r.innerText.trim()])),
      refused_text: td[6].innerText.trim(),
      visible: tr.checkVisibility(),
    }];
  }))"#;

/// The exceptions table as rendered.
const EXCEPTIONS_TABLE: &str = r#"() =>
  [...document.querySelectorAll('[data-testid=exceptions] tbody tr[data-kind]')].map((tr) => {
    const td = tr.querySelectorAll('td');
    const time = td[4].querySelector('time');
    return {
      kind: tr.dataset.kind, kind_text: td[0].innerText.trim(), store: td[1].innerText.trim(),
      detail: td[2].innerText.trim(),
      event_ids: [...td[3].querySelectorAll('[data-event-id]')].map((c) => c.dataset.eventId),
      at: time ? time.getAttribute('datetime') : td[4].innerText.trim(),
    };
  })"#;

/// The stock lookup's result as rendered.
const STOCK_TABLE: &str = r#"() => {
  const total = document.querySelector('[data-testid=stock-total]');
  if (!total) return null;
  const rows = Object.fromEntries([...document.querySelectorAll('#stock tbody tr[data-store]')].map((tr) => {
    const td = tr.querySelectorAll('td');
    return [td[0].innerText.trim(), { on_hand: td[1].innerText.trim(),
      store_rights: td[2].innerText.trim(), hub_rights: td[3].innerText.trim() }];
  }));
  const name = total.querySelector('[data-testid=stock-name]');
  return { total: total.innerText.trim(), gtin: total.querySelector('code').innerText.trim(),
    name: name ? name.innerText.trim() : null, rows };
}"#;

/// The chart as rendered: one entry per path, with its store.
const CHART: &str = r#"() => ({
  paths: [...document.querySelectorAll('#chart path[data-store]')].map((p) => ({
    store: p.dataset.store, title: p.querySelector('title').textContent,
    offline: p.dataset.offline === 'true',
    points: (p.getAttribute('d').match(/[ML]/g) || []).length, length: p.getTotalLength() })),
  legend: [...document.querySelectorAll('#legend span[data-store]')].map((s) => ({
    store: s.dataset.store, text: s.innerText.trim() })),
})"#;

/// The orders panel as rendered: the count chips, the status selected
/// and the rows with each store's part.
const ORDERS_PANEL: &str = r#"() => ({
  counts: Object.fromEntries([...document.querySelectorAll('#order-counts button[data-status]')].map((b) =>
    [b.dataset.status, b.innerText.trim()])),
  selected: document.querySelector('#order-status').value,
  rows: [...document.querySelectorAll('[data-testid=orders] tbody tr[data-order-id]')].map((tr) => {
    const td = tr.querySelectorAll('td');
    const time = td[3].querySelector('time');
    return {
      id: td[0].innerText.trim(), id_attr: tr.dataset.orderId, fulfilment: td[1].innerText.trim(),
      status: td[2].innerText.trim(), at: time ? time.getAttribute('datetime') : null,
      allocations: [...td[4].querySelectorAll('.alloc')].map((a) => ({
        store: a.dataset.store, status: a.dataset.status,
        lines: [...a.querySelectorAll('.line')].map((l) => l.innerText.trim()) })),
    };
  }),
})"#;

/// The transfers panel as rendered.
const TRANSFERS_PANEL: &str = r#"() => {
  const rows = (id) => [...document.querySelectorAll(`[data-testid=${id}] tbody tr[data-transfer-id]`)].map((tr) => {
    const td = tr.querySelectorAll('td');
    const time = (i) => { const t = td[i].querySelector('time'); return t ? t.getAttribute('datetime') : null; };
    return { id: td[0].innerText.trim(), id_attr: tr.dataset.transferId, from: td[1].innerText.trim(),
      to: td[2].innerText.trim(), units: td[3].innerText.trim(), items: td[4].innerText.trim(),
      sent: time(5), received: time(6), overdue: !!td[6].querySelector('[data-testid=overdue]'),
      state: td[6].innerText.trim() };
  });
  return { transit: rows('transfers-in-transit'), received: rows('transfers-received'),
    counts: [...document.querySelectorAll('#transfer-counts .count')].map((c) => c.innerText.trim()),
    markup_in_ids: document.querySelectorAll('[data-testid^=transfers] tbody i').length };
}"#;

/// Every order of `api` (the API's answer) is a row of the rendered
/// orders panel `shown`, with its fulfilment, status, time and each
/// store's part, and nothing else is.
fn assert_orders_shown(shown: &Value, api: &[Value]) {
    let rows = shown["rows"].as_array().unwrap();
    assert_eq!(rows.len(), api.len(), "{shown} vs {api:?}");
    for o in api {
        let row = rows
            .iter()
            .find(|r| r["id"] == o["order_id"])
            .unwrap_or_else(|| panic!("order {o} not shown: {shown}"));
        assert_eq!(row["id_attr"], o["order_id"], "{row}");
        assert_eq!(row["fulfilment"], o["fulfilment"], "{row}");
        assert_eq!(row["status"], o["status"], "{row}");
        assert_eq!(row["at"], o["at"], "{row}");
        let allocs = o["allocations"].as_array().unwrap();
        assert_eq!(
            row["allocations"].as_array().unwrap().len(),
            allocs.len(),
            "{row}"
        );
        for (a, r) in allocs.iter().zip(row["allocations"].as_array().unwrap()) {
            assert_eq!(r["store"], a["store"], "{row}");
            assert_eq!(r["status"], a["status"], "{row}");
            let lines: Vec<String> = a["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| format!("{} × {}", l["qty"], l["gtin"].as_str().unwrap()))
                .collect();
            assert_eq!(r["lines"], json!(lines), "{row}");
        }
    }
}

/// The rendered transfers `shown` are those of `api`, each with its ends,
/// units, items and times.
fn assert_transfers_shown(shown: &Value, api: &Value, received: bool) {
    let rows = shown.as_array().unwrap();
    let api = api.as_array().unwrap();
    assert_eq!(rows.len(), api.len(), "{shown} vs {api:?}");
    for t in api {
        let row = rows
            .iter()
            .find(|r| r["id"] == t["transfer_id"])
            .unwrap_or_else(|| panic!("transfer {t} not shown: {shown}"));
        assert_eq!(row["id_attr"], t["transfer_id"], "{row}");
        assert_eq!(row["from"], t["from_store"], "{row}");
        assert_eq!(row["to"], t["to_store"], "{row}");
        assert_eq!(row["units"], t["units"].to_string(), "{row}");
        assert_eq!(row["sent"], t["sent_at"], "{row}");
        let items: Vec<String> = t["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| format!("{} × {}", l["qty"], l["gtin"].as_str().unwrap()))
            .collect();
        assert_eq!(row["items"], items.join(", "), "{row}");
        if received {
            assert_eq!(row["received"], t["received_at"], "{row}");
        } else {
            assert_eq!(row["overdue"], t["overdue"], "{row}");
        }
    }
}

// ------------------------------------------------------------ the chain

/// Syncs `store` through the hub's own storage code (the same
/// `hub_handle` in one durable transaction that `/v1/sync` runs) with the
/// hub's clock at `hub_now_ms`, while the hub is not running. This is how
/// a store that last synced minutes ago is made without waiting minutes.
fn sync_in_the_past(tmp: &Path, data: &DataDir, store: &mut SimStore, hub_now_ms: u64) {
    support::with_storage(tmp, data, |hub| loop {
        let (_, resp) = store.sync_in_storage(hub, hub_now_ms);
        if !resp.more && !store.has_pending() {
            return;
        }
    });
}

/// What the admin API says, for the checks.
async fn api(admin: &Admin, path: &str) -> Value {
    let (status, body) = admin.get(path).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

fn gtin13(g: Gtin) -> String {
    g.to_string().trim_start_matches('0').to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_what_the_api_says_in_headless_chromium() {
    if !chromium_installed_or_skip() {
        return;
    }
    let started = Instant::now();
    let now = SystemClock.now_ms();
    let pencil = Gtin::parse("4006381333931").unwrap();
    let notebook = Gtin::from_body(400638133394).unwrap();
    let jacket = Gtin::from_body(400638133395).unwrap();
    let lamp = Gtin::from_body(400638133396).unwrap();
    let epc = "3074257BF7194E4000001A85";

    // --- store-east: sold 25 to 15 minutes ago, last synced 12 minutes ago.
    let tmp = tempfile::tempdir().unwrap();
    let data = DataDir::new(tmp.path().join("hub"));
    pki::init(&data, &[], &tally_store::SystemClock).unwrap();
    pki::enroll(
        &data,
        "store-east",
        &tmp.path().join("east.pem"),
        &tally_store::SystemClock,
    )
    .unwrap();
    let mut east = SimStore::new("store-east", 3);
    // A sale it lost a day and a half ago, reported then: in its totals,
    // not in the last 24 hours the page shows.
    east.mem.lost.get_mut(Shortage::Offline).add_sale(5);
    sync_in_the_past(tmp.path(), &data, &mut east, now - 36 * 60 * MINUTE_MS);
    east.set_clock(now - 30 * MINUTE_MS);
    east.receive(pencil, 40);
    east.receive(notebook, 12);
    // Sales its tills refused for lack of rights, reported with its sync.
    east.mem.lost.get_mut(Shortage::NoStock).add_sale(2);
    for (ago, qty) in [(25, 2), (22, 4), (19, 3), (16, 5)] {
        east.set_clock(now - ago * MINUTE_MS);
        east.sell(pencil, qty).unwrap();
    }
    // A transfer store-east sent store-north 14 minutes ago, which the hub
    // learned of 12 minutes ago: overdue (the hub allows 10 minutes here).
    east.set_clock(now - 14 * MINUTE_MS);
    east.transfer_out("tr-east-1", "store-north", pencil, 2)
        .unwrap();
    sync_in_the_past(tmp.path(), &data, &mut east, now - 12 * MINUTE_MS);

    let hub = TestHub::serve(tmp, data, |c| {
        c.transfer_overdue = Duration::from_secs(10 * 60);
    })
    .await;
    let admin = hub.admin();
    let (status, body) = admin
        .post(
            "/v1/catalog",
            &json!({"items": [
                {"gtin": pencil.to_string(), "name": "Pencil HB", "price_minor": 129},
                {"gtin": notebook.to_string(), "name": "Notebook A5", "price_minor": 499},
                {"gtin": jacket.to_string(), "name": "Rain jacket (RFID)", "price_minor": 8999},
                {"gtin": lamp.to_string(), "name": "Desk lamp", "price_minor": 3499},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // --- store-north and store-south sync over /v1/sync (real TLS).
    let north_client = hub.store_client(&hub.enroll("store-north"));
    let south_client = hub.store_client(&hub.enroll("store-south"));
    let mut north = SimStore::new("store-north", 1);
    let mut south = SimStore::new("store-south", 2);
    // Online demand for pencils at store-north: the hub keeps a reserve
    // there.
    admin.online_demand("store-north", pencil, 1).await;
    // And for notebooks at store-south: the hub keeps a reserve there that
    // the orders below are allocated from.
    admin.online_demand("store-south", notebook, 50).await;
    north.set_clock(now - 50 * MINUTE_MS);
    north.receive(pencil, 60);
    north.receive(jacket, 3);
    south.set_clock(now - 50 * MINUTE_MS);
    south.receive(pencil, 25);
    south.receive(jacket, 2);
    south.receive(notebook, 8);
    for (ago, qty) in [
        (44, 3),
        (37, 6),
        (31, 2),
        (24, 7),
        (18, 4),
        (11, 8),
        (6, 5),
        (2, 3),
    ] {
        north.set_clock(now - ago * MINUTE_MS);
        north.sell(pencil, qty).unwrap();
    }
    for (ago, qty) in [(41, 1), (33, 2), (27, 4), (20, 2), (13, 3), (8, 1), (3, 2)] {
        south.set_clock(now - ago * MINUTE_MS);
        south.sell(pencil, qty).unwrap();
    }
    // The same RFID-tagged jacket sold by both stores; a manager sells a
    // lamp the store holds no rights to.
    north.set_clock(now - 9 * MINUTE_MS);
    let epc_north = north.sell_epc(jacket, epc).unwrap();
    south.set_clock(now - 4 * MINUTE_MS);
    let epc_south = south.sell_epc(jacket, epc).unwrap();
    north.set_clock(now - 5 * MINUTE_MS);
    let override_sale = north.sell_override(lamp, 1);
    // Sales north's tills refused: two while the hub was out of reach
    // (one of 2 units), one the hub's reserve held.
    north.mem.lost.get_mut(Shortage::Offline).add_sale(2);
    north.mem.lost.get_mut(Shortage::Offline).add_sale(1);
    north.mem.lost.get_mut(Shortage::HeldElsewhere).add_sale(1);
    north.sync_all(&north_client, 10).await;
    south.sync_all(&south_client, 10).await;
    // Online orders refused at store-north: notebooks, which it has none
    // of (an item it sells would now have the hub reserve it all).
    for id in ["web-big-1", "web-big-2"] {
        let (status, body) = admin
            .post(
                "/v1/orders",
                &json!({"order_id": id, "store": "store-north",
                        "lines": [{"gtin": notebook.to_string(), "qty": 2}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["reason"], "no_stock", "{body}");
    }

    // An online order takes one pencil of the hub's reserve at store-north,
    // which store-north learns on its next sync.
    let (status, receipt) = admin
        .post(
            "/v1/orders",
            &json!({"order_id": "web-1001", "store": "store-north",
                    "lines": [{"gtin": pencil.to_string(), "qty": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    north.sync_all(&north_client, 10).await;

    // --- Orders with a lifecycle, from the hub's notebook reserve at
    // store-south. Two ship orders naming no store are routed there; it
    // picks one and ships the other. Of three pickup orders there, one
    // waits, HQ cancels one, and HQ cancels one the store hands over
    // before it hears of it (an `order_conflict`: the hand-over stands).
    let stock = api(&admin, &format!("/v1/stock/{notebook}")).await;
    let reserve = stock["stores"]["store-south"]["hub_rights"]
        .as_u64()
        .unwrap_or(0);
    assert!(reserve >= 4, "the hub's notebook reserve: {stock}");
    let ship = |id: &str| {
        json!({"order_id": id, "fulfilment": "ship",
               "lines": [{"gtin": notebook.to_string(), "qty": 1}]})
    };
    let pickup = |id: &str| {
        json!({"order_id": id, "fulfilment": "pickup", "store": "store-south",
               "lines": [{"gtin": notebook.to_string(), "qty": 1}]})
    };
    // An order id is the client's: the page must show it as text.
    let hostile_order = "web-<img/src=x/onerror=window.tallyXss=1>";
    for body in [
        ship("web-ship-1"),
        ship(hostile_order),
        pickup("bopis-1"),
        pickup("bopis-2"),
        pickup("bopis-3"),
    ] {
        let (status, order) = admin.post("/v1/orders", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        assert_eq!(order["allocations"][0]["store"], "store-south", "{order}");
    }
    south.fetch_allocations(&south_client).await;
    south.set_clock(SystemClock.now_ms());
    south.fulfil("web-ship-1", Status::Picked).unwrap();
    south.fulfil(hostile_order, Status::Shipped).unwrap();
    for id in ["bopis-2", "bopis-3"] {
        let (status, order) = admin
            .post(&format!("/v1/orders/{id}/cancel"), &json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{order}");
        assert_eq!(order["status"], "cancelled", "{order}");
    }
    south.fulfil("bopis-3", Status::Collected).unwrap();
    south.sync_all(&south_client, 10).await;

    // --- Transfers: store-north sends store-south pencils, which it
    // receives; store-south sends store-east one (in transit, not overdue:
    // store-east is offline). A transfer id is a store's: shown as text.
    let hostile_transfer = "tr-<i>south</i>&amp;";
    north.set_clock(SystemClock.now_ms());
    north
        .transfer_out("tr-north-1", "store-south", pencil, 3)
        .unwrap();
    north.sync_all(&north_client, 10).await;
    south.fetch_allocations(&south_client).await;
    south.transfer_in("tr-north-1").unwrap();
    south
        .transfer_out(hostile_transfer, "store-east", pencil, 1)
        .unwrap();
    south.sync_all(&south_client, 10).await;
    south.fetch_allocations(&south_client).await;
    let stats = api(&admin, "/v1/stats/orders").await;
    assert_eq!(
        stats,
        json!({"orders": {"allocated": 1, "picked": 1, "collected": 1, "shipped": 1, "cancelled": 1},
               "transfers": {"in_transit": 2, "received": 1}})
    );
    // The hub's sweep flags store-east's transfer overdue as it starts.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let x = api(&admin, "/v1/exceptions").await;
        if x["exceptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "transfer_overdue")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no transfer_overdue: {x}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // --- Chromium, trusting the hub's CA key only.
    let chromium = Chromium::launch(&spki_sha256_b64(&hub.data.ca_cert()));
    let config = HandlerConfig {
        ignore_https_errors: false,
        viewport: Some(Viewport {
            width: 1280,
            height: 900,
            ..Viewport::default()
        }),
        ..HandlerConfig::default()
    };
    let (mut browser, mut handler) = Browser::connect_with_config(&chromium.ws_url, config)
        .await
        .unwrap();
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
    // The page runs under its Content-Security-Policy (everything below
    // works under it): its own script only, no framing.
    let served = admin
        .client
        .http
        .get(format!("{}/", hub.base()))
        .send()
        .await
        .unwrap();
    let csp = served.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    for rule in ["script-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(rule), "{rule} in {csp}");
    }
    let page = browser.new_page("about:blank").await.unwrap();
    page.goto(format!("{}/", hub.base()))
        .await
        .unwrap_or_else(|e| panic!("loading the dashboard: {e}\n{}", chromium.log_tail()));

    // The login form, and nothing of the dashboard, is shown.
    wait_until(
        &page,
        "the login form",
        "() => document.querySelector('#token') && document.querySelector('#login').checkVisibility()",
    )
    .await;
    assert_eq!(
        js(
            &page,
            "() => document.querySelector('#app').checkVisibility()"
        )
        .await,
        json!(false),
        "the dashboard must not show before login"
    );

    // A wrong token is refused.
    type_into(&page, "#token", "not-the-admin-token").await;
    click(&page, "#login-button").await;
    wait_until(
        &page,
        "the refusal of a wrong token",
        "() => document.querySelector('#login-error').innerText.trim() === 'That token was refused.'",
    )
    .await;
    assert_eq!(
        js(
            &page,
            "() => document.querySelector('#app').checkVisibility()"
        )
        .await,
        json!(false)
    );

    // store-north holds its live link open (as its agent would).
    let mut north_link = support::link::Link::open(&north_client).await;
    assert!(matches!(
        north_link.next().await,
        tally_sync::link::Notice::Hello { .. }
    ));

    // The right one logs in.
    js(
        &page,
        "() => { document.querySelector('#token').value = ''; }",
    )
    .await;
    type_into(&page, "#token", &hub.token).await;
    click(&page, "#login-button").await;
    wait_until(
        &page,
        "body[data-loaded=true]",
        "() => document.body.dataset.loaded === 'true'",
    )
    .await;
    js(&page, "() => { window.tallyNotReloaded = true; }").await;
    assert_eq!(
        js(&page, "() => [document.querySelector('#app').checkVisibility(), document.querySelector('#login').checkVisibility()]").await,
        json!([true, false])
    );

    // --- Stores: as /v1/stores says, one row each.
    let stores = api(&admin, "/v1/stores").await;
    let rendered = js(&page, STORES_TABLE).await;
    let list = stores["stores"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{stores}");
    let live: Vec<&str> = list
        .iter()
        .filter(|s| s["live"] == json!(true))
        .filter_map(|s| s["store"].as_str())
        .collect();
    assert_eq!(live, ["store-north"], "{stores}");
    assert_eq!(rendered.as_object().unwrap().len(), 3, "{rendered}");
    for s in list {
        let id = s["store"].as_str().unwrap();
        let row = &rendered[id];
        assert!(
            row.is_object(),
            "store {id} missing from the page: {rendered}"
        );
        let online = s["online"].as_bool().unwrap();
        let want = if online { "online" } else { "offline" };
        assert_eq!(row["pill"], want, "{id}: {row}");
        assert!(row["pill_class"].as_str().unwrap().contains(want), "{row}");
        // A store with its live link open is marked live.
        assert_eq!(row["live"], s["live"], "{id}: {row}");
        assert_eq!(
            row["events"],
            s["events_received"].to_string(),
            "{id}: {row}"
        );
        assert_eq!(row["last_sync"], s["last_sync_at"], "{id}: {row}");
        assert!(row["lag"].as_str().unwrap().ends_with(" ago"), "{row}");
        assert_eq!(row["visible"], true);
        // Lost sales and refused online orders: one line per reason with
        // any, "none" otherwise.
        let (mut lost, mut refused) = (serde_json::Map::new(), serde_json::Map::new());
        for (reason, label) in [
            ("no_stock", "no stock"),
            ("held_elsewhere", "held elsewhere"),
            ("offline", "offline"),
        ] {
            let l = &s["last_24h"]["lost_sales"][reason];
            let (sales, units) = (l["sales"].as_u64().unwrap(), l["units"].as_u64().unwrap());
            if sales > 0 {
                let plural =
                    |n: u64, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
                let shown = format!(
                    "{label}: {}, {}",
                    plural(sales, "sale"),
                    plural(units, "unit")
                );
                lost.insert(reason.into(), json!(shown));
            }
            let n = s["last_24h"]["refused_orders"][reason].as_u64().unwrap();
            if n > 0 {
                refused.insert(reason.into(), json!(format!("{label}: {n}")));
            }
        }
        assert_eq!(row["lost"], Value::Object(lost.clone()), "{id}: {row}");
        assert_eq!(
            row["refused"],
            Value::Object(refused.clone()),
            "{id}: {row}"
        );
        if lost.is_empty() {
            assert_eq!(row["lost_text"], "none", "{id}: {row}");
        }
        if refused.is_empty() {
            assert_eq!(row["refused_text"], "none", "{id}: {row}");
        }
    }
    // What the stores reported and the hub refused, as the page shows it.
    assert_eq!(
        rendered["store-north"]["lost"],
        json!({"held_elsewhere": "held elsewhere: 1 sale, 1 unit",
               "offline": "offline: 2 sales, 3 units"})
    );
    assert_eq!(
        rendered["store-east"]["lost"],
        json!({"no_stock": "no stock: 1 sale, 2 units"}),
        "the sale lost 36 hours ago is not in the last day"
    );
    let east_api = list.iter().find(|s| s["store"] == "store-east").unwrap();
    assert_eq!(
        east_api["lost_sales"]["offline"],
        json!({"sales": 1, "units": 5}),
        "but in the totals: {east_api}"
    );
    assert_eq!(
        rendered["store-east"]["lost_title"],
        "since its first sync: 2 sales lost, 0 online orders refused"
    );
    assert_eq!(
        rendered["store-north"]["refused"],
        json!({"no_stock": "no stock: 2"})
    );
    assert_eq!(rendered["store-south"]["lost_text"], "none");
    let online: BTreeMap<&str, bool> = list
        .iter()
        .map(|s| (s["store"].as_str().unwrap(), s["online"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        online,
        BTreeMap::from([
            ("store-east", false),
            ("store-north", true),
            ("store-south", true)
        ])
    );
    assert!(rendered["store-east"]["lag"]
        .as_str()
        .unwrap()
        .contains("min ago"));
    let summary = js(&page, "() => document.querySelector('#summary').innerText").await;
    assert!(
        summary.as_str().unwrap().contains("2/3 stores online"),
        "{summary}"
    );
    assert!(
        summary.as_str().unwrap().contains("4 sales lost in 24 h"),
        "{summary}"
    );

    // --- Exceptions: the override sale, the EPC sold twice, the overdue
    // transfer and the order handed over after HQ cancelled it.
    let exceptions = api(&admin, "/v1/exceptions").await;
    let api_list = exceptions["exceptions"].as_array().unwrap();
    assert_eq!(api_list.len(), 4, "{exceptions}");
    let rendered = js(&page, EXCEPTIONS_TABLE).await;
    let rows = rendered.as_array().unwrap();
    assert_eq!(rows.len(), api_list.len(), "{rendered}");
    for x in api_list {
        let row = rows
            .iter()
            .find(|r| r["kind"] == x["kind"] && r["at"] == x["at"])
            .unwrap_or_else(|| panic!("exception {x} not shown: {rendered}"));
        assert_eq!(row["store"], x["store"], "{row}");
        let mut shown: Vec<&str> = row["event_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut want: Vec<&str> = x["event_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        shown.sort_unstable();
        want.sort_unstable();
        assert_eq!(shown, want, "{row}");
    }
    let ov = rows.iter().find(|r| r["kind"] == "override_sale").unwrap();
    assert_eq!(ov["kind_text"], "override sale");
    assert_eq!(ov["store"], "store-north");
    assert_eq!(ov["event_ids"], json!([override_sale.to_string()]));
    let detail = ov["detail"].as_str().unwrap();
    assert!(
        detail.contains("manager") && detail.contains("on the shelf"),
        "{ov}"
    );
    let twice = rows.iter().find(|r| r["kind"] == "epc_sold_twice").unwrap();
    assert_eq!(twice["kind_text"], "epc sold twice");
    let detail = twice["detail"].as_str().unwrap();
    assert!(detail.contains(epc), "{twice}");
    assert!(
        detail.contains("store-north") && detail.contains("store-south"),
        "the detail names both stores that sold it: {twice}"
    );
    let mut ids = vec![epc_north.to_string(), epc_south.to_string()];
    ids.sort();
    let mut shown: Vec<String> = serde_json::from_value(twice["event_ids"].clone()).unwrap();
    shown.sort();
    assert_eq!(shown, ids);
    // Orders and transfers that went wrong, by their ids, in words.
    let overdue = rows
        .iter()
        .find(|r| r["kind"] == "transfer_overdue")
        .unwrap();
    assert_eq!(overdue["kind_text"], "transfer overdue");
    assert_eq!(
        overdue["store"], "store-north",
        "the destination: {overdue}"
    );
    assert!(
        overdue["detail"].as_str().unwrap().starts_with(
            "transfer tr-east-1 from store-east to store-north, 2 units: in transit longer"
        ),
        "{overdue}"
    );
    let conflict = rows.iter().find(|r| r["kind"] == "order_conflict").unwrap();
    assert_eq!(conflict["kind_text"], "order conflict");
    assert_eq!(conflict["store"], "store-south");
    let detail = conflict["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("order bopis-3 (collected stands): the store handed over"),
        "{conflict}"
    );

    // --- Acknowledging: a reviewer signs one off with a note, as a person
    // does (without a name first, the page asks for it); the API records
    // it, the summary counts one open fewer, "open only" hides it.
    let summary = js(
        &page,
        "() => document.querySelector('#sum-exceptions').innerText",
    )
    .await;
    assert_eq!(summary, "4 open exceptions of 4", "{summary}");
    click(&page, "tr[data-kind=override_sale] button[data-ack]").await;
    type_into(
        &page,
        "tr[data-kind=override_sale] form[data-ack-form] input[name=note]",
        "units found on the shelf",
    )
    .await;
    click(
        &page,
        "tr[data-kind=override_sale] form[data-ack-form] button[type=submit]",
    )
    .await;
    wait_until(
        &page,
        "the reviewer's name asked for",
        "() => document.querySelector('#ack-error').innerText.includes('Type your name')",
    )
    .await;
    type_into(&page, "#reviewer", "lp-ann").await;
    click(
        &page,
        "tr[data-kind=override_sale] form[data-ack-form] button[type=submit]",
    )
    .await;
    wait_until(
        &page,
        "the override sale acknowledged",
        "() => document.querySelector('tr[data-kind=override_sale] [data-acked-by=\"lp-ann\"]') !== null",
    )
    .await;
    let acked = api(&admin, "/v1/exceptions").await;
    let ov = acked["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "override_sale")
        .unwrap();
    assert_eq!(ov["acknowledged"]["by"], "lp-ann", "{ov}");
    assert_eq!(
        ov["acknowledged"]["note"], "units found on the shelf",
        "{ov}"
    );
    assert_eq!(
        (&acked["open"], &acked["acknowledged"]),
        (&json!(3), &json!(1))
    );
    wait_until(
        &page,
        "3 open exceptions",
        "() => document.querySelector('#sum-exceptions').innerText === '3 open exceptions of 4'",
    )
    .await;
    click(&page, "#open-only").await;
    let open_rows = js(&page, EXCEPTIONS_TABLE).await;
    assert_eq!(open_rows.as_array().unwrap().len(), 3, "{open_rows}");
    assert!(
        !open_rows.to_string().contains("override_sale"),
        "{open_rows}"
    );
    click(&page, "#open-only").await;
    assert_eq!(
        js(&page, EXCEPTIONS_TABLE).await.as_array().unwrap().len(),
        4
    );

    // --- Orders: the counts by status, and the open ones with each
    // store's part, as the API says.
    let stats = api(&admin, "/v1/stats/orders").await;
    let shown = js(&page, ORDERS_PANEL).await;
    for status in ["allocated", "picked", "collected", "shipped", "cancelled"] {
        assert_eq!(
            shown["counts"][status],
            format!("{} {status}", stats["orders"][status]),
            "{shown}"
        );
    }
    assert_eq!(shown["counts"]["open"], "2 open", "{shown}");
    assert_eq!(shown["selected"], "open");
    let mut open = Vec::new();
    for status in ["allocated", "picked"] {
        let body = api(&admin, &format!("/v1/orders?status={status}")).await;
        open.extend(body["orders"].as_array().unwrap().iter().cloned());
    }
    assert_orders_shown(&shown, &open);
    let ids: Vec<&str> = shown["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    // Oldest first: web-ship-1 was placed before bopis-1.
    assert_eq!(ids, ["web-ship-1", "bopis-1"], "{shown}");
    let summary = js(&page, "() => document.querySelector('#summary').innerText").await;
    assert!(
        summary.as_str().unwrap().contains("2 open orders"),
        "{summary}"
    );
    // Cancelled, collected and shipped orders are one click away: the
    // count chips and the selector.
    for status in ["cancelled", "collected", "shipped"] {
        click(
            &page,
            &format!("#order-counts button[data-status={status}]"),
        )
        .await;
        let shown = wait_until(
            &page,
            &format!("the {status} orders"),
            &format!(
                "() => {{ const o = ({ORDERS_PANEL})(); \
                   return o.selected === '{status}' && o.rows.length && o.rows.every((r) => r.status === '{status}') ? o : null; }}"
            ),
        )
        .await;
        let body = api(&admin, &format!("/v1/orders?status={status}")).await;
        assert_orders_shown(&shown, body["orders"].as_array().unwrap());
    }
    // The shipped one's id was markup: shown as text, never run.
    let shipped = js(&page, ORDERS_PANEL).await;
    assert_eq!(shipped["rows"][0]["id"], hostile_order, "{shipped}");
    assert_eq!(shipped["rows"][0]["id_attr"], hostile_order, "{shipped}");
    assert_eq!(
        js(
            &page,
            "() => document.querySelectorAll('[data-testid=orders] tbody img').length"
        )
        .await,
        json!(0)
    );
    js(
        &page,
        "() => { const s = document.querySelector('#order-status'); s.value = 'open'; s.dispatchEvent(new Event('change')); }",
    )
    .await;
    wait_until(
        &page,
        "the open orders again",
        &format!("() => {{ const o = ({ORDERS_PANEL})(); return o.selected === 'open' && o.rows.length === 2; }}"),
    )
    .await;

    // --- Returns across stores: none in this chain, and the panel says so
    // (the rows are checked end to end in tests/orders_e2e.rs).
    let returns = api(&admin, "/v1/returns").await;
    assert_eq!(returns["returns"], json!([]), "{returns}");
    let panel = js(
        &page,
        "() => document.querySelector('[data-testid=returns-across-stores] tbody').innerText.trim()",
    )
    .await;
    assert_eq!(panel, "No return across stores yet.", "{panel}");

    // --- Transfers: in transit (the overdue one marked) and received.
    let transit = api(&admin, "/v1/transfers?status=in_transit").await;
    let received = api(&admin, "/v1/transfers?status=received&order=recent").await;
    let shown = js(&page, TRANSFERS_PANEL).await;
    assert_transfers_shown(&shown["transit"], &transit["transfers"], false);
    assert_transfers_shown(&shown["received"], &received["transfers"], true);
    let by_id = |id: &str| {
        shown["transit"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in transit: {shown}"))
    };
    assert_eq!(by_id("tr-east-1")["overdue"], true, "{shown}");
    assert_eq!(by_id(hostile_transfer)["overdue"], false, "{shown}");
    // The overdue one first.
    assert_eq!(shown["transit"][0]["id"], "tr-east-1", "{shown}");
    assert_eq!(shown["received"][0]["id"], "tr-north-1", "{shown}");
    assert_eq!(
        shown["counts"],
        json!(["2 in transit", "1 overdue", "1 received"]),
        "{shown}"
    );
    assert_eq!(shown["markup_in_ids"], 0, "{shown}");
    assert_eq!(
        js(&page, "() => window.tallyXss === undefined").await,
        json!(true),
        "nothing a client or store sent ran as script"
    );

    // --- Chart: one line per store that sold this hour.
    let sales = api(&admin, "/v1/stats/sales").await;
    let sold: Vec<&String> = sales["stores"].as_object().unwrap().keys().collect();
    assert_eq!(
        sold,
        ["store-east", "store-north", "store-south"],
        "{sales}"
    );
    let chart = js(&page, CHART).await;
    let paths = chart["paths"].as_array().unwrap();
    let drawn: Vec<&str> = paths.iter().map(|p| p["store"].as_str().unwrap()).collect();
    assert_eq!(drawn, sold, "{chart}");
    let full = paths
        .iter()
        .map(|p| p["points"].as_u64().unwrap())
        .max()
        .unwrap();
    for p in paths {
        assert!(p["points"].as_u64().unwrap() >= 2, "a visible line: {p}");
        assert!(p["length"].as_f64().unwrap() > 10.0, "a visible line: {p}");
        if p["store"] == "store-east" {
            // Offline: drawn up to its last sync, not as zero since.
            assert_eq!(p["offline"], true, "{p}");
            assert!(p["points"].as_u64().unwrap() < full, "{chart}");
            assert!(
                p["title"]
                    .as_str()
                    .unwrap()
                    .starts_with("store-east: offline since "),
                "{p}"
            );
        } else {
            assert_eq!(p["title"], p["store"], "{p}");
            assert_eq!(p["offline"], false, "{p}");
            assert_eq!(p["points"].as_u64().unwrap(), full, "{p}");
        }
    }
    let legend = chart["legend"].as_array().unwrap();
    let named: Vec<&str> = legend
        .iter()
        .map(|l| l["store"].as_str().unwrap())
        .collect();
    assert_eq!(named, sold, "{chart}");
    for l in legend {
        let units: u64 = sales["stores"][l["store"].as_str().unwrap()]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["units"].as_u64().unwrap())
            .sum();
        assert!(
            l["text"]
                .as_str()
                .unwrap()
                .ends_with(&format!(" {units} units")),
            "legend {l} vs {units} units sold"
        );
    }

    // --- Stock lookup, typed as a person reads the barcode (GTIN-13).
    type_into(&page, "#gtin", &gtin13(pencil)).await;
    click(&page, "#stock-button").await;
    let pencil14 = pencil.to_string();
    let shown = wait_until(
        &page,
        "the stock lookup's result",
        &format!("() => {{ const s = ({STOCK_TABLE})(); return s && s.gtin === '{pencil14}' ? s : null; }}"),
    )
    .await;
    let stock = api(&admin, &format!("/v1/stock/{pencil}")).await;
    // The item's catalog name, not only its number.
    assert_eq!(stock["name"], "Pencil HB", "{stock}");
    assert_eq!(shown["name"], "Pencil HB", "{shown}");
    let api_stores = stock["stores"].as_object().unwrap();
    assert_eq!(api_stores.len(), 3, "{stock}");
    assert_eq!(shown["rows"].as_object().unwrap().len(), 3, "{shown}");
    for (id, s) in api_stores {
        let row = &shown["rows"][id];
        for field in ["on_hand", "store_rights", "hub_rights"] {
            assert_eq!(
                row[field],
                s[field].to_string(),
                "{id} {field}: {shown} vs {stock}"
            );
        }
    }
    assert!(
        shown["total"]
            .as_str()
            .unwrap()
            .contains(&format!("{} on hand", stock["on_hand"])),
        "{shown}"
    );
    // The hub's reserve was sold online at store-north: it holds rights
    // there that the page shows as the hub's.
    assert!(
        api_stores["store-north"]["hub_rights"].as_u64().unwrap() > 0,
        "{stock}"
    );

    // A malformed GTIN gets the hub's message, not a code.
    js(
        &page,
        "() => { document.querySelector('#gtin').value = ''; }",
    )
    .await;
    type_into(&page, "#gtin", "12345").await;
    click(&page, "#stock-button").await;
    let error = wait_until(
        &page,
        "the stock lookup's error",
        "() => document.querySelector('#stock-error').innerText.trim() || null",
    )
    .await;
    assert!(
        error.as_str().unwrap().contains("8, 12, 13 or 14 digits"),
        "{error}"
    );
    js(
        &page,
        "() => { document.querySelector('#gtin').value = ''; }",
    )
    .await;
    type_into(&page, "#gtin", &gtin13(pencil)).await;
    click(&page, "#stock-button").await;
    wait_until(
        &page,
        "the lookup error to clear",
        "() => document.querySelector('#stock-error').innerText.trim() === '' && !!document.querySelector('[data-testid=stock-total]')",
    )
    .await;

    // --- One more sale at store-north: the page shows it without reload.
    let before = api(&admin, "/v1/stores").await;
    north.set_clock(SystemClock.now_ms());
    north.sell(pencil, 1).unwrap();
    north.sync_all(&north_client, 10).await;
    let after = api(&admin, "/v1/stores").await;
    let events_of = |v: &Value| {
        v["stores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["store"] == "store-north")
            .unwrap()["events_received"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(events_of(&after), events_of(&before) + 1);
    let want = events_of(&after).to_string();
    wait_until(
        &page,
        "store-north's new events count",
        &format!(
            "() => {{ const r = ({STORES_TABLE})(); return r['store-north'] && r['store-north'].events === '{want}'; }}"
        ),
    )
    .await;
    // store-south hands bopis-1 over: the orders panel follows.
    south.set_clock(SystemClock.now_ms());
    south.fulfil("bopis-1", Status::Collected).unwrap();
    south.sync_all(&south_client, 10).await;
    wait_until(
        &page,
        "bopis-1 off the open orders",
        &format!(
            "() => {{ const o = ({ORDERS_PANEL})(); \
               return o.counts.open === '1 open' && o.counts.collected === '2 collected' \
                 && o.rows.length === 1 && o.rows[0].id === 'web-ship-1'; }}"
        ),
    )
    .await;
    assert_eq!(
        js(&page, "() => window.tallyNotReloaded === true").await,
        json!(true),
        "refreshed without a reload"
    );

    // --- The screenshot, a CI artifact.
    let png = page
        .screenshot(
            ScreenshotParams::builder()
                .format(CaptureScreenshotFormat::Png)
                .full_page(true)
                .build(),
        )
        .await
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = artifacts_dir().join("dashboard.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("Screenshot: {} ({} bytes).", path.display(), png.len());

    // --- More exceptions than one page of the API (1,000): the page keeps
    // up by cursor and shows the newest first.
    north.set_clock(SystemClock.now_ms());
    let mut last = None;
    for _ in 0..1_000 {
        last = Some(north.sell_override(lamp, 1));
    }
    north.sync_all(&north_client, 10).await;
    let last = last.unwrap().to_string();
    let (_, page2) = admin.get("/v1/exceptions?since=1000").await;
    assert_eq!(
        page2["exceptions"].as_array().unwrap().len(),
        4,
        "1,004 in all"
    );
    let newest = wait_until(
        &page,
        "the newest of 1,004 exceptions",
        &format!(
            "() => {{ const r = ({EXCEPTIONS_TABLE})(); \
               return r.length && r[0].event_ids[0] === '{last}' ? r : null; }}"
        ),
    )
    .await;
    assert_eq!(
        newest.as_array().unwrap().len(),
        100,
        "the latest 100 shown"
    );
    let count = js(
        &page,
        "() => document.querySelector('#exceptions-count').innerText",
    )
    .await;
    assert!(count.as_str().unwrap().contains("1004 in all"), "{count}");

    // --- Open only, with the newest 150 acknowledged by another reviewer
    // (through the API): the open rows shown are older than the newest
    // 100, and what is acknowledged meanwhile among them leaves the view.
    for id in 855..=1004 {
        let (s, v) = admin
            .post(
                &format!("/v1/exceptions/{id}/ack"),
                &json!({"by": "lp-bo", "note": "checked"}),
            )
            .await;
        assert!(s.is_success(), "{v}");
    }
    const OPEN_IDS: &str = "() => [...document.querySelectorAll('[data-testid=exceptions] tbody tr[data-id]')].map((tr) => Number(tr.dataset.id))";
    click(&page, "#open-only").await;
    let ids = wait_until(
        &page,
        "the open exceptions below the 150 acknowledged",
        &format!("() => {{ const ids = ({OPEN_IDS})(); return ids.length === 100 && ids[0] === 854 ? ids : null; }}"),
    )
    .await;
    assert_eq!(ids.as_array().unwrap().last(), Some(&json!(755)), "{ids}");
    let (s, v) = admin
        .post("/v1/exceptions/800/ack", &json!({"by": "lp-bo"}))
        .await;
    assert!(s.is_success(), "{v}");
    wait_until(
        &page,
        "exception 800, acknowledged elsewhere, gone from the open view",
        &format!("() => {{ const ids = ({OPEN_IDS})(); return ids.length === 100 && !ids.includes(800) && ids.includes(754); }}"),
    )
    .await;

    let _ = browser.close().await;
    events.abort();
    drop(chromium);
    hub.stop().await;
    eprintln!("The dashboard test took {:?}.", started.elapsed());
}
