//! The cashier terminal for real: the real agent (`tally-agent run` on
//! loopback, stock received and a catalog imported through its API and
//! CLI) and the real `tally-agent pos` in a detached tmux session of a
//! fixed size, with its scanner on a pseudo-terminal. Keys are sent with
//! `tmux send-keys`, the screen is read with `tmux capture-pane -p`
//! (polled with a deadline), and every sale the screen reports is checked
//! against the agent's API.
//!
//! A second test runs an RFID count from the terminal's Count screen (F1)
//! against the real agent: a listed item with stock and no tag read is
//! reported missing, accepting it removes it; the terminal restarted
//! while the session counts opens it again by its id.
//!
//! Needs `tmux` (CI installs it). The last screen of each step is printed
//! on failure; the main, receipt, refusal and count report screens are
//! saved as `target/pos-screen.txt`, `pos-receipt.txt`, `pos-refused.txt`
//! and `pos-count.txt`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::pty::Pty;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tally-agent");
const PEN: &str = "04006381333931";
const GUM: &str = "00000096385074";
const WIDTH: u16 = 96;
const HEIGHT: u16 = 24;
/// How long one step may take (debug build, 2 shared cores).
const STEP: Duration = Duration::from_secs(30);

/// The agent process, killed on drop.
struct Agent {
    child: Child,
    url: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PIN of the store's manager, Ann.
const MANAGER_PIN: &str = "4711";

fn start_agent(data: &Path) -> Agent {
    start_agent_with(data, "")
}

/// The agent with `more` configuration besides its manager.
fn start_agent_with(data: &Path, more: &str) -> Agent {
    // Manager Ann approves overrides with PIN 4711 (a cheap hash: a test).
    let config = data.with_extension("toml");
    let hash = tally_agent::managers::hash_pin_cheap(MANAGER_PIN).unwrap();
    std::fs::write(
        &config,
        format!("[[managers]]\nid = \"Ann\"\npin_argon2 = \"{hash}\"\n{more}"),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--store-id", "store-pos"])
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("tally-agent listening on ") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let url = rx.recv_timeout(STEP).unwrap_or_else(|_| {
        panic!(
            "the agent did not print its address: {:?}",
            child.try_wait()
        )
    });
    Agent { child, url }
}

/// A tiny JSON client of the agent (reqwest, as the terminal uses).
struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

impl Http {
    /// A client of the agent at `base`; for `https://`, trusting the API
    /// CA of the agent whose data directory is `data`.
    fn new(base: &str, data: &Path) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if base.starts_with("https://") {
            let ca = std::fs::read(tally_agent::api_tls::ApiTlsDir::new(data).ca_cert()).unwrap();
            builder = builder.tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()]);
        }
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: builder.build().unwrap(),
            base: base.to_string(),
        }
    }

    fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        self.rt.block_on(async {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.json::<Value>().await.unwrap_or(Value::Null);
            (status, body)
        })
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(format!("{}{path}", self.base)))
    }

    /// The value of a Prometheus series on `/metrics`.
    fn metric(&self, series: &str) -> String {
        let text = self.rt.block_on(async {
            let resp = self
                .client
                .get(format!("{}/metrics", self.base))
                .send()
                .await
                .unwrap();
            resp.text().await.unwrap()
        });
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
            .to_string()
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.client.post(format!("{}{path}", self.base)).json(&body))
    }

    /// Waits until the agent answers its status.
    fn wait_ready(&self) {
        let deadline = Instant::now() + STEP;
        loop {
            let ok = self.rt.block_on(async {
                self.client
                    .get(format!("{}/v1/status", self.base))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "the agent never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux (install it: apt-get install -y tmux)")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.tmux(args);
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `command` in a detached session `pos` of WIDTH×HEIGHT; the
    /// pane stays after the program exits so its end can be read.
    fn start(socket: String, conf: &Path, command: &str) -> Self {
        std::fs::write(conf, "set -g remain-on-exit on\nset -g status off\n").unwrap();
        let t = Tmux { socket };
        t.ok(&[
            "-f",
            conf.to_str().unwrap(),
            "new-session",
            "-d",
            "-s",
            "pos",
            "-x",
            &WIDTH.to_string(),
            "-y",
            &HEIGHT.to_string(),
            command,
        ]);
        t
    }

    /// Runs `command` again in the pane (the program there is killed).
    fn respawn(&self, command: &str) {
        self.ok(&["respawn-pane", "-k", "-t", "pos", command]);
    }

    fn screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-t", "pos"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "pos"];
        args.extend_from_slice(keys);
        self.ok(&args);
    }

    fn type_text(&self, text: &str) {
        self.ok(&["send-keys", "-t", "pos", "-l", text]);
    }

    /// Polls the screen until `pred` holds on a settled screen (two
    /// captures in a row alike: a capture may catch a frame half drawn);
    /// panics with the last screen after STEP.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let s = self.screen();
            if pred(&s) && self.screen() == s {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "waited {STEP:?} for {what}; the screen is:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for(&self, needle: &str) -> String {
        self.wait_all(&[needle], &[])
    }

    /// Waits for a settled screen showing every one of `all` and none of
    /// `none`.
    fn wait_all(&self, all: &[&str], none: &[&str]) -> String {
        self.wait(&format!("{all:?} and not {none:?}"), |s| {
            all.iter().all(|n| s.contains(n)) && !none.iter().any(|n| s.contains(n))
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// The sale id on the receipt screen.
fn receipt_id(screen: &str) -> String {
    screen
        .lines()
        .find_map(|l| {
            let i = l.find("Sale ")?;
            let id: String = l[i + 5..].chars().take(36).collect();
            (id.len() == 36 && id.chars().filter(|&c| c == '-').count() == 4).then_some(id)
        })
        .unwrap_or_else(|| panic!("no sale id on the receipt:\n{screen}"))
}

/// The outbox depth in the header.
fn outbox(screen: &str) -> u64 {
    let head = screen.lines().next().unwrap_or_default();
    head.split("outbox ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no outbox depth in the header:\n{screen}"))
}

/// Keeps a screen as a text screenshot beside the build (docs/pos.md, CI
/// artifacts): `target/<name>`.
fn save(name: &str, screen: &str) {
    if let Some(target) = Path::new(env!("CARGO_TARGET_TMPDIR")).parent() {
        let _ = std::fs::write(target.join(name), screen);
    }
}

fn row<'a>(screen: &'a str, needle: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle:?}:\n{screen}"))
}

#[test]
fn cashier_sells_overrides_and_quits_under_tmux() {
    needs_tmux();
    let scratch = tempfile::tempdir().unwrap();
    let agent = start_agent(&scratch.path().join("data"));
    let http = Http::new(&agent.url, &scratch.path().join("data"));
    http.wait_ready();

    // A catalog (through the CLI) and stock (through the API): 5 pens, 1 gum.
    let csv = scratch.path().join("catalog.csv");
    std::fs::write(
        &csv,
        format!("gtin,name,price_minor\n{PEN},\"Pen, blue\",129\n{GUM},Gum,50\n"),
    )
    .unwrap();
    let import = Command::new(BIN)
        .args(["catalog", "import"])
        .arg(&csv)
        .args(["--agent", &agent.url])
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "catalog import: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let (s, v) = http.post(
        "/v1/receipts",
        json!({"lines": [{"gtin": PEN, "qty": 5}, {"gtin": GUM, "qty": 1}]}),
    );
    assert_eq!(s, 201, "{v}");

    let mut scanner = Pty::open();
    // The wrapper shell reaps pos and writes its exit status to a file
    // (tmux 3.3's pane_dead_status was seen to stay empty, the pane
    // process a zombie tmux had not reaped).
    let status_file = scratch.path().join("pos-exit-status");
    let command = format!(
        "'{BIN}' pos --agent '{}' --scanner '{}' --timeout-secs 5 --journal '{}'; echo $? > '{}'",
        agent.url,
        scanner.slave_path.display(),
        scratch.path().join("pos.redb").display(),
        status_file.display()
    );
    let socket = format!("tally-pos-test-{}", std::process::id());
    let tmux = Tmux::start(socket, &scratch.path().join("tmux.conf"), &command);
    // A store agent without a hub is offline: the banner says so, with
    // the outbox depth.
    let screen = tmux.wait_all(
        &[
            "store store-pos",
            "agent OFFLINE",
            "OFFLINE: hub not reachable. Outbox:",
            "scanner ready",
            "Empty basket",
        ],
        &[],
    );
    let outbox_before = outbox(&screen);

    // 1. Two pens: one typed, one from the scanner.
    tmux.type_text("4006381333931");
    tmux.keys(&["Enter"]);
    tmux.wait_all(&["Pen, blue", "TOTAL 1.29"], &[]);
    scanner.master.write_all(b"]E04006381333931\r").unwrap();
    let screen = tmux.wait_all(&["TOTAL 2.58", "1 line, 2 units"], &[]);
    let pen = row(&screen, "Pen, blue");
    assert!(pen.contains("    2 "), "{pen}");
    assert!(pen.contains("1.29"), "{pen}");
    save("pos-screen.txt", &screen);

    // 2. Pay cash 5.00: change 2.42, receipt on screen.
    tmux.keys(&["F5"]);
    tmux.wait_for("[C] cash");
    tmux.keys(&["c"]);
    tmux.wait_for("Cash given (Enter alone = exact): _");
    tmux.type_text("5");
    tmux.keys(&["Enter"]);
    let receipt = tmux.wait_all(&["SALE COMMITTED", "CHANGE", "[Enter] next customer"], &[]);
    save("pos-receipt.txt", &receipt);
    assert!(row(&receipt, "CHANGE").contains("2.42"), "{receipt}");
    assert!(row(&receipt, "Cash").contains("5.00"), "{receipt}");
    let id = receipt_id(&receipt);
    let (s, sale) = http.get(&format!("/v1/sales/{id}"));
    assert_eq!(s, 200, "{sale}");
    assert_eq!(sale["total_minor"], 258, "{sale}");
    assert_eq!(sale["overridden"], false, "{sale}");
    assert_eq!(sale["tenders"][0]["method"], "cash", "{sale}");
    assert_eq!(sale["tenders"][0]["amount_minor"], 258, "{sale}");
    let (_, stock) = http.get(&format!("/v1/stock/{PEN}"));
    assert_eq!(stock["on_hand"], 3, "{stock}");
    // The sale waits in the outbox for the hub: the next status poll shows it.
    let want = format!("outbox {}", outbox_before + 1);
    tmux.wait_for(&want);

    // 3. Two gums, one in stock, the hub out of reach: the store cannot
    // sell the second without a manager, who approves before the
    // customer pays; then the card.
    tmux.keys(&["Enter"]);
    tmux.wait_all(&["Empty basket"], &["SALE COMMITTED"]);
    tmux.type_text("96385074");
    tmux.keys(&["Enter"]);
    tmux.wait_all(&["Gum", "TOTAL 0.50"], &[]);
    tmux.keys(&["+"]);
    tmux.wait_all(&["TOTAL 1.00", "Gum [SHORT: store may sell 1]"], &[]);
    tmux.keys(&["F5"]);
    let approval = tmux.wait_all(
        &[
            "MANAGER APPROVAL",
            "Gum: requested 2, available 1.",
            "A manager approves this sale before payment.",
            "Approving manager (id): _",
        ],
        &["[K] card"],
    );
    save("pos-refused.txt", &approval);
    tmux.type_text("Ann");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Reason: _");
    tmux.type_text("two on the shelf");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Manager's PIN: _");
    tmux.type_text(MANAGER_PIN);
    tmux.wait_for("Manager's PIN: ****");
    tmux.keys(&["Enter"]);
    tmux.wait_for("[K] card");
    tmux.keys(&["k"]);
    tmux.wait_for("Card reference: _");
    tmux.type_text("AUTH-42");
    tmux.keys(&["Enter"]);
    let receipt = tmux.wait_all(
        &[
            "SALE COMMITTED",
            "Manager override by Ann: two on the shelf",
            "[Enter] next customer",
        ],
        &[],
    );
    let id = receipt_id(&receipt);
    let (s, sale) = http.get(&format!("/v1/sales/{id}"));
    assert_eq!(s, 200, "{sale}");
    assert_eq!(sale["overridden"], true, "{sale}");
    assert_eq!(sale["total_minor"], 100, "{sale}");
    assert_eq!(sale["tenders"][0]["reference"], "AUTH-42", "{sale}");

    // 4. Quit with an empty basket: the program ends cleanly.
    tmux.keys(&["Enter"]);
    tmux.wait_all(&["Empty basket"], &["SALE COMMITTED"]);
    tmux.keys(&["F10"]);
    let deadline = Instant::now() + STEP;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if text.ends_with('\n') {
                break text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "pos did not exit:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.trim(), "0", "pos exit status");
    let end = tmux.screen();
    assert!(
        !end.contains("Tally POS"),
        "the screen was restored:\n{end}"
    );
}

/// Waits for the exit status the wrapper shell writes to `file`.
fn exit_status(tmux: &Tmux, file: &Path) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            if text.ends_with('\n') {
                return text.trim().to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "pos did not exit:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The session id in the Count screen's title (` Count ID: … `).
fn count_id(screen: &str) -> String {
    screen
        .lines()
        .find_map(|l| {
            let i = l.find("Count count-")?;
            let id: String = l[i + 6..].chars().take_while(|c| *c != ':').collect();
            (id.len() == "count-".len() + 8).then_some(id)
        })
        .unwrap_or_else(|| panic!("no count session id on the screen:\n{screen}"))
}

#[test]
fn cashier_counts_a_listed_item_finishes_and_accepts_under_tmux() {
    needs_tmux();
    let scratch = tempfile::tempdir().unwrap();
    let agent = start_agent(&scratch.path().join("data"));
    let http = Http::new(&agent.url, &scratch.path().join("data"));
    http.wait_ready();
    let csv = scratch.path().join("catalog.csv");
    std::fs::write(
        &csv,
        format!("gtin,name,price_minor\n{PEN},\"Pen, blue\",129\n"),
    )
    .unwrap();
    let import = Command::new(BIN)
        .args(["catalog", "import"])
        .arg(&csv)
        .args(["--agent", &agent.url])
        .output()
        .unwrap();
    assert!(import.status.success(), "catalog import failed");
    // Three pens in stock, no tag read: the count finds none.
    let (s, v) = http.post("/v1/receipts", json!({"lines": [{"gtin": PEN, "qty": 3}]}));
    assert_eq!(s, 201, "{v}");

    let status_file = scratch.path().join("pos-exit-status");
    let command = format!(
        "'{BIN}' pos --agent '{}' --timeout-secs 5 --journal '{}'; echo $? > '{}'",
        agent.url,
        scratch.path().join("pos.redb").display(),
        status_file.display()
    );
    let socket = format!("tally-pos-count-{}", std::process::id());
    let tmux = Tmux::start(socket, &scratch.path().join("tmux.conf"), &command);
    tmux.wait_all(&["store store-pos", "Empty basket", "F1 count"], &[]);

    // 1. Set up: the pen on the list, a zone; Enter starts.
    tmux.keys(&["F1"]);
    tmux.wait_all(&["COUNT", "New count", "Items: the whole store"], &[]);
    tmux.type_text("4006381333931");
    tmux.keys(&["Enter"]);
    tmux.wait_all(&["Items: the 1 listed below", "Pen, blue"], &[]);
    tmux.keys(&["F2"]);
    tmux.wait_for("Zone: _");
    tmux.type_text("aisle 3");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Zone: aisle 3");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_all(&["COUNTING", "Tags 0", "reads 0", "Pen, blue"], &[]);
    let id = count_id(&screen);
    let (s, session) = http.get(&format!("/v1/counts/sessions/{id}"));
    assert_eq!(s, 200, "{session}");
    assert_eq!(session["status"], "counting", "{session}");
    assert_eq!(session["zone"], "aisle 3", "{session}");
    assert_eq!(session["gtins"], json!([PEN]), "{session}");

    // 2. The terminal restarted while it counts: its id opens it again.
    // (Another status file: the shell killed with the first might write
    // one.)
    let status_file = scratch.path().join("pos-exit-status-2");
    let command = format!(
        "'{BIN}' pos --agent '{}' --timeout-secs 5 --journal '{}'; echo $? > '{}'",
        agent.url,
        scratch.path().join("pos.redb").display(),
        status_file.display()
    );
    tmux.respawn(&command);
    tmux.wait_all(&["Empty basket"], &["COUNTING"]);
    tmux.keys(&["F1"]);
    tmux.wait_for("New count");
    tmux.type_text(&id);
    tmux.keys(&["Enter"]);
    tmux.wait_all(&["COUNTING", &format!("Count {id}")], &[]);

    // 3. Finish: the pens are missing.
    tmux.keys(&["F5"]);
    let report = tmux.wait_all(
        &["FINISHED, variance", "Missing tags: 0", "F5 accepts"],
        &[],
    );
    save("pos-count.txt", &report);
    let pen = row(&report, "Pen, blue");
    assert!(
        pen.contains(" 3 ") && pen.contains(" 0 ") && pen.contains("-3"),
        "{pen}"
    );

    // 4. Accept, asked first: three pens removed from stock.
    tmux.keys(&["F5"]);
    tmux.wait_for("Accept count?");
    tmux.keys(&["y"]);
    let done = tmux.wait_all(&["ACCEPTED, adjustments recorded", "1 adjustment"], &[]);
    let pen = row(&done, "Pen, blue");
    assert!(pen.contains("down") && pen.contains(" 3 "), "{pen}");
    let (_, stock) = http.get(&format!("/v1/stock/{PEN}"));
    assert_eq!(stock["on_hand"], 0, "{stock}");
    let (_, session) = http.get(&format!("/v1/counts/sessions/{id}"));
    assert_eq!(session["status"], "accepted", "{session}");
    // Accepting twice records nothing.
    tmux.keys(&["F5"]);
    tmux.wait_for("accepted already");
    let (_, stock) = http.get(&format!("/v1/stock/{PEN}"));
    assert_eq!(stock["on_hand"], 0, "{stock}");

    tmux.keys(&["F10"]);
    assert_eq!(exit_status(&tmux, &status_file), "0", "pos exit status");
}

/// Fails the test, saying how, without tmux.
fn needs_tmux() {
    let tmux_version = Command::new("tmux").arg("-V").output();
    assert!(
        tmux_version.is_ok_and(|o| o.status.success()),
        "this test needs tmux: apt-get install -y tmux (CI installs it in .ci/run)"
    );
}

/// An agent (with `more` configuration) under `scratch` whose catalog has
/// the pen at 1.29, three of them in stock; its client.
fn three_pens(scratch: &Path, more: &str) -> (Agent, Http) {
    let agent = start_agent_with(&scratch.join("data"), more);
    let http = Http::new(&agent.url, &scratch.join("data"));
    http.wait_ready();
    let (s, v) = http.post(
        "/v1/catalog",
        json!({"items": [{"gtin": PEN, "name": "Pen, blue", "price_minor": 129}]}),
    );
    assert!(s == 200 || s == 201, "{v}");
    let (s, v) = http.post("/v1/receipts", json!({"lines": [{"gtin": PEN, "qty": 3}]}));
    assert_eq!(s, 201, "{v}");
    (agent, http)
}

/// The sale id in the not-confirmed dialog.
fn in_doubt_id(screen: &str) -> String {
    screen
        .lines()
        .find_map(|l| {
            let i = l.find("did not confirm sale ")?;
            let id: String = l[i + 21..].chars().take(36).collect();
            (id.len() == 36).then_some(id)
        })
        .unwrap_or_else(|| panic!("no sale id in doubt on the screen:\n{screen}"))
}

/// Sends `signal` (`STOP`, `CONT`) to the agent.
fn signal(agent: &Agent, signal: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(agent.child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{signal}");
}

/// The till killed while its sale is in doubt (the agent frozen: no
/// answer) comes back with that sale in doubt under the same id, from its
/// journal; once the agent answers, the retry is recorded once.
#[test]
fn a_sale_in_doubt_survives_the_till_being_killed_under_tmux() {
    needs_tmux();
    let scratch = tempfile::tempdir().unwrap();
    let (agent, http) = three_pens(scratch.path(), "");

    let journal = scratch.path().join("state/pos.redb");
    let command = |n: u32| {
        format!(
            "'{BIN}' pos --agent '{}' --timeout-secs 1 --journal '{}'; echo $? > '{}'",
            agent.url,
            journal.display(),
            scratch.path().join(format!("pos-exit-{n}")).display()
        )
    };
    let socket = format!("tally-pos-journal-{}", std::process::id());
    let tmux = Tmux::start(socket, &scratch.path().join("tmux.conf"), &command(1));
    tmux.wait_all(&["store store-pos", "Empty basket"], &[]);
    tmux.type_text("4006381333931");
    tmux.keys(&["Enter"]);
    tmux.wait_all(&["Pen, blue", "TOTAL 1.29"], &[]);
    tmux.keys(&["F5"]);
    tmux.wait_for("[C] cash");
    tmux.keys(&["c"]);
    tmux.wait_for("Cash given (Enter alone = exact): _");

    // The agent frozen: the sale is posted and never answered.
    signal(&agent, "STOP");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_all(&["NOT CONFIRMED"], &[]);
    let id = in_doubt_id(&screen);

    // The till killed and started again: the same sale, in doubt.
    tmux.respawn(&command(2));
    let screen = tmux.wait_all(
        &[
            "NOT CONFIRMED",
            "the till stopped before the agent's answer arrived",
        ],
        &[],
    );
    assert_eq!(in_doubt_id(&screen), id, "{screen}");
    assert!(
        screen.contains("Pen, blue") || screen.contains(PEN),
        "{screen}"
    );

    // The agent back: the retry is answered under the same id.
    signal(&agent, "CONT");
    http.wait_ready();
    tmux.keys(&["r"]);
    let receipt = tmux.wait_all(&["SALE COMMITTED", "[Enter] next customer"], &[]);
    assert_eq!(receipt_id(&receipt), id, "{receipt}");
    let (s, sale) = http.get(&format!("/v1/sales/{id}"));
    assert_eq!(s, 200, "{sale}");
    assert_eq!(sale["total_minor"], 129, "{sale}");
    let (_, stock) = http.get(&format!("/v1/stock/{PEN}"));
    assert_eq!(stock["on_hand"], 2, "one pen sold, once: {stock}");

    // Confirmed: a third start finds nothing in doubt.
    tmux.respawn(&command(3));
    tmux.wait_all(&["Empty basket"], &["NOT CONFIRMED"]);
}

/// Where cashiers sign in, the terminal asks the cashier's PIN at start
/// and the sale is recorded under the signed-in cashier. The agent serves
/// HTTPS (`[api] tls`): the till trusts its CA (`--agent-ca`), so the PIN
/// never crosses the network in clear.
#[test]
fn a_cashier_signs_in_and_the_sale_records_them_under_tmux() {
    needs_tmux();
    let scratch = tempfile::tempdir().unwrap();
    let hash = tally_agent::managers::hash_pin_cheap("2468").unwrap();
    let (agent, http) = three_pens(
        scratch.path(),
        &format!("[[cashiers]]\nid = \"c-104\"\npin_argon2 = \"{hash}\"\n[api]\ntls = true\n"),
    );
    assert!(agent.url.starts_with("https://"), "{}", agent.url);
    let ca = tally_agent::api_tls::ApiTlsDir::new(&scratch.path().join("data")).ca_cert();

    let command = format!(
        "'{BIN}' pos --agent '{}' --agent-ca '{}' --cashier c-104 --timeout-secs 5 --journal '{}'; echo $? > '{}'",
        agent.url,
        ca.display(),
        scratch.path().join("pos.redb").display(),
        scratch.path().join("pos-exit").display()
    );
    let socket = format!("tally-pos-signin-{}", std::process::id());
    let tmux = Tmux::start(socket, &scratch.path().join("tmux.conf"), &command);
    tmux.wait_all(&["SIGN IN", "Cashier: c-104", "PIN: _"], &[]);
    tmux.type_text("1111");
    tmux.keys(&["Enter"]);
    tmux.wait_all(
        &["Not signed in: cashier or PIN not accepted", "PIN: _"],
        &[],
    );
    tmux.type_text("2468");
    tmux.wait_for("PIN: ****");
    tmux.keys(&["Enter"]);
    tmux.wait_all(&["Signed in: c-104.", "Empty basket"], &["SIGN IN"]);
    tmux.type_text("4006381333931");
    tmux.keys(&["Enter"]);
    tmux.wait_all(&["Pen, blue", "TOTAL 1.29"], &[]);
    tmux.keys(&["F5"]);
    tmux.wait_for("[C] cash");
    tmux.keys(&["c"]);
    tmux.wait_for("Cash given (Enter alone = exact): _");
    tmux.keys(&["Enter"]);
    let receipt = tmux.wait_all(&["SALE COMMITTED", "[Enter] next customer"], &[]);
    let id = receipt_id(&receipt);
    let (s, sale) = http.get(&format!("/v1/sales/{id}"));
    assert_eq!(s, 200, "{sale}");
    assert_eq!(sale["staff"]["cashier"], "c-104", "{sale}");

    // Quitting the terminal signs the cashier out at the agent.
    assert_eq!(http.metric("tally_agent_cashier_sessions"), "1");
    tmux.keys(&["Enter"]);
    tmux.wait_all(&["Empty basket"], &["SALE COMMITTED"]);
    tmux.keys(&["F10"]);
    assert_eq!(
        exit_status(&tmux, &scratch.path().join("pos-exit")),
        "0",
        "pos exit status"
    );
    assert_eq!(http.metric("tally_agent_cashier_sessions"), "0");
}
