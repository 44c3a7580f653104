//! The hub's PostgreSQL backend against a real PostgreSQL (a throwaway
//! cluster, `support::pg`): its versioned schema, and a store's day
//! through it (syncs, online orders and demand, the audit) as the
//! embedded hub does it. The storage conformance suite runs every other
//! behaviour on both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{gtin, pg, SimStore};
use tally_hub::storage::postgres::{schema, DatabaseUrl, PgHub};
use tally_hub::storage::{HubStorage, OrderRequest, OrderResult, SyncSettings};
use tally_sync::LocationId;

fn settings() -> SyncSettings {
    let defaults = tally_hub::Config::new(std::path::Path::new("/nonexistent"));
    SyncSettings {
        policy: defaults.policy,
        limits: tally_sync::exchange::HubLimits::default(),
        catalog_page: defaults.catalog_page,
    }
}

/// A fresh database is brought to the latest schema once; a second run
/// finds nothing to do; a database migrated by a newer hub is refused and
/// left as it is.
#[test]
fn the_schema_is_migrated_once_and_a_newer_one_is_refused() {
    let url = pg::database("schema");
    let db: DatabaseUrl = url.parse().unwrap();
    let first = PgHub::migrate(&db).unwrap();
    assert_eq!((first.from, first.to), (0, schema::latest()));
    let again = PgHub::migrate(&db).unwrap();
    assert_eq!((again.from, again.to), (schema::latest(), schema::latest()));

    pg::execute(
        &url,
        "INSERT INTO hub_schema_migrations (version, name) VALUES (9999, 'future')",
    );
    let err = PgHub::connect(&db, settings()).unwrap_err().to_string();
    assert!(err.contains("newer than this hub"), "{err}");
}

/// Every hub process over one database takes its links' places in one
/// order (the database's sequence), rising whichever process asks.
#[test]
fn link_openings_are_ordered_across_hub_processes() {
    let url = pg::database("link_order");
    let db: DatabaseUrl = url.parse().unwrap();
    let (a, b) = (
        PgHub::connect(&db, settings()).unwrap(),
        PgHub::connect(&db, settings()).unwrap(),
    );
    let mut seen = Vec::new();
    for hub in [&a, &b, &a, &b] {
        seen.push(hub.next_link_order().unwrap().unwrap());
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
}

/// A hub process already running when a newer hub migrates the database
/// (a rolling upgrade) writes nothing more: each batch checks the schema
/// version under the write lock.
#[test]
fn a_running_hub_writes_nothing_once_a_newer_one_migrated() {
    use tally_sync::message::CatalogItem;
    let url = pg::database("rolling");
    let db: DatabaseUrl = url.parse().unwrap();
    let hub = PgHub::connect(&db, settings()).unwrap();
    let put = |price| {
        hub.write_batch(&mut |txn| {
            txn.catalog(&[CatalogItem {
                gtin: gtin(1),
                name: "Oats".into(),
                price_minor: price,
            }])?;
            Ok(())
        })
    };
    put(100).unwrap();
    pg::execute(
        &url,
        "INSERT INTO hub_schema_migrations (version, name) VALUES (9999, 'future')",
    );
    let err = put(120).unwrap_err().to_string();
    assert!(err.contains("newer than this hub process"), "{err}");
    assert_eq!(
        hub.catalog_item(gtin(1)).unwrap().map(|i| i.price_minor),
        Some(100),
        "nothing written"
    );
}

/// A database (or a URL) that turns `synchronous_commit` off does not
/// make the hub answer before its commits are on disk: every hub session
/// sets it on again.
#[test]
fn the_hub_commits_synchronously_whatever_the_database_says() {
    let url = pg::database("durability");
    let name = url.rsplit("dbname=").next().unwrap().to_string();
    pg::execute(
        &url,
        &format!("ALTER DATABASE \"{name}\" SET synchronous_commit = off"),
    );
    let db: DatabaseUrl = url.parse().unwrap();
    let hub = PgHub::connect(&db, settings()).unwrap();
    let seen = hub.durability().unwrap();
    assert_eq!(seen.synchronous_commit, "on", "{seen:?}");
    drop(hub);
    let in_url: DatabaseUrl = format!("{url} options='-c synchronous_commit=off'")
        .parse()
        .unwrap();
    let hub = PgHub::connect(&in_url, settings()).unwrap();
    assert_eq!(hub.durability().unwrap().synchronous_commit, "on");
}

/// A database whose default isolation is SERIALIZABLE (or REPEATABLE
/// READ) does not change the hub's write transactions: they run READ
/// COMMITTED, so each statement after the write lock sees what the writer
/// before committed.
#[test]
fn the_hub_writes_read_committed_whatever_the_database_says() {
    let url = pg::database("isolation");
    let name = url.rsplit("dbname=").next().unwrap().to_string();
    pg::execute(
        &url,
        &format!("ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'serializable'"),
    );
    let db: DatabaseUrl = url.parse().unwrap();
    let hub = PgHub::connect(&db, settings()).unwrap();
    assert_eq!(hub.durability().unwrap().write_isolation, "read committed");
}

/// A hub process that stops answering in the middle of a transaction
/// (its host cut off, its VM paused) does not hold the write lock for
/// the hours the server's default TCP keepalive takes: every hub session
/// asks the server to end it after a minute idle in a transaction.
#[test]
fn a_stuck_hub_session_is_ended_by_the_server() {
    // Over TCP, as a hub on another host reaches its database.
    let port = pg::free_port();
    let cluster = pg::Cluster::start(&pg::Setup {
        tcp_port: Some(port),
        ..Default::default()
    });
    let db: DatabaseUrl = format!("host=127.0.0.1 port={port} user=tally dbname=postgres")
        .parse()
        .unwrap();
    let hub = PgHub::connect(&db, settings()).unwrap();
    let seen = hub.durability().unwrap();
    assert_eq!(seen.idle_in_transaction_timeout, "1min", "{seen:?}");
    // The server probes a silent hub after 10 s, not the OS's 2 h.
    assert_eq!(seen.tcp_keepalives_idle, "10", "{seen:?}");
    drop(hub);
    drop(cluster);
}

/// A COMMIT whose connection breaks under it is resolved by looking for
/// the batch's mark: here a deferred trigger (the test's own) ends the
/// hub's session as the COMMIT runs, so the batch is rolled back, and the
/// storage answers a lost race (nothing written: the writer runs it
/// again), not `outcome_unknown`; the next batch commits on a new
/// connection. A COMMIT the server refuses is answered with its error.
/// A mark there reads as committed.
#[test]
fn a_commit_cut_off_is_resolved_by_asking_the_server() {
    use tally_hub::storage::postgres::unknown_commit::{commit_status, CommitStatus, Noted};
    use tally_hub::storage::StorageError;
    use tally_sync::message::CatalogItem;
    let url = pg::database("unknown_commit");
    let db: DatabaseUrl = url.parse().unwrap();
    let hub = PgHub::connect(&db, settings()).unwrap();
    pg::execute(
        &url,
        "CREATE FUNCTION cut_off() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$;
         CREATE CONSTRAINT TRIGGER cut_off_at_commit AFTER INSERT OR UPDATE ON hub_catalog
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cut_off();",
    );
    let item = |price| CatalogItem {
        gtin: gtin(1),
        name: "Oats".into(),
        price_minor: price,
    };
    let put = |price| {
        hub.write_batch(&mut |txn| {
            txn.catalog(&[item(price)])?;
            Ok(())
        })
    };
    let err = put(100).unwrap_err();
    assert!(
        matches!(
            &err,
            StorageError::Retry(tally_hub::storage::RetryReason::RolledBack)
        ),
        "{err:?}"
    );
    // A COMMIT the server refuses on a session that goes on (a deferred
    // check) rolled back for certain: answered so, without asking.
    pg::execute(
        &url,
        "DROP TRIGGER cut_off_at_commit ON hub_catalog;
         CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'refused at commit'; END $$;
         CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT OR UPDATE ON hub_catalog
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    let err = put(110).unwrap_err();
    assert!(
        matches!(&err, StorageError::Db(m) if m.contains("refused at commit")),
        "{err:?}"
    );
    assert_eq!(hub.catalog_item(gtin(1)).unwrap(), None, "nothing written");
    pg::execute(&url, "DROP TRIGGER refuse_at_commit ON hub_catalog");
    put(120).unwrap();
    assert_eq!(hub.catalog_item(gtin(1)).unwrap(), Some(item(120)));
    // One mark per process: each writing batch deletes the one before.
    put(130).unwrap();
    let marks = || pg::query_i64(&url, "SELECT count(*) FROM hub_commit_marks");
    assert_eq!(marks(), 1);
    // The mark there: committed; not there, its session gone: not.
    let token = pg::query_text(&url, "SELECT token::text FROM hub_commit_marks");
    let noted = |token: &str| Noted {
        token: Some(token.parse().unwrap()),
        pid: 0,
        session_start: String::new(),
    };
    assert_eq!(
        commit_status(&db, &noted(&token)).unwrap(),
        CommitStatus::Committed
    );
    assert_eq!(
        commit_status(&db, &noted("0192f000-0000-7000-8000-000000000001")).unwrap(),
        CommitStatus::Aborted
    );
}

/// Online demand is recorded by an order's first attempt, refused or
/// accepted, in the order's own transaction; a sync's reserve targets
/// follow it; it survives a new connection (another hub process).
#[test]
fn a_store_syncs_and_online_orders_follow_the_reserve_on_postgres() {
    const NOW: u64 = 1_750_000_000_000;
    let db: DatabaseUrl = pg::database("day").parse().unwrap();
    let hub = PgHub::connect(&db, settings()).unwrap();
    let a = gtin(1);
    let order = |id: &str, qty, record_demand| OrderRequest {
        order_id: id.into(),
        store: LocationId::new("s1").unwrap(),
        lines: vec![(a, qty)],
        event_id: tally_sync::EventId::v7(NOW, [id.as_bytes()[1]; 10]),
        now_ms: NOW,
        record_demand,
    };
    let place = |hub: &dyn HubStorage, o: OrderRequest| {
        let mut out = None;
        hub.write_batch(&mut |txn| {
            out = Some(txn.order(&o)?);
            Ok(())
        })
        .unwrap();
        out.unwrap()
    };
    let mut s1 = SimStore::new("s1", 1);
    s1.receive(a, 10);
    let (_, resp) = s1.sync_in_storage(&hub, NOW);
    assert!(resp.reserve.is_empty(), "{:?}", resp.reserve);
    assert_eq!(hub.stores().unwrap().len(), 1);
    let stock = hub.stock(a).unwrap();
    assert_eq!(stock.len(), 1);
    assert_eq!(stock[0].1.on_hand, 10);

    // Refused for stock: demand all the same, kept across processes.
    let r = place(&hub, order("w2", 15, true));
    assert!(matches!(r, OrderResult::InsufficientStock { .. }), "{r:?}");
    drop(hub);
    let hub = PgHub::connect(&db, settings()).unwrap();
    let (_, resp) = s1.sync_in_storage(&hub, NOW);
    assert_eq!(
        resp.reserve,
        vec![tally_sync::ReserveTarget { gtin: a, units: 2 }]
    );
    assert_eq!(s1.rights(a), 8);
    // The hub learns of the store's transfer on the next sync, then
    // sells from its reserve.
    s1.sync_in_storage(&hub, NOW);
    let r = place(&hub, order("w3", 2, true));
    let OrderResult::Accepted(receipt) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        place(&hub, order("w3", 2, true)),
        OrderResult::Replayed(receipt)
    );
    assert!(matches!(
        place(&hub, order("w3", 1, true)),
        OrderResult::IdConflict { .. }
    ));
    s1.sync_in_storage(&hub, NOW);
    assert_eq!(s1.on_hand(a), 8, "10 received, 2 ordered online");

    let audit = hub.audit().unwrap();
    assert_eq!(audit.double_sold, 0);
    assert_eq!(audit.holdings_disagreeing, 0);
    assert!(audit
        .rows
        .iter()
        .all(|r| r.on_hand as u128 == r.on_hand_by_events));
    assert_eq!(audit.rows.len(), 1);
}

/// `tally-hub migrate` makes the schema ahead of time and says so; run
/// again it finds it up to date; a bad URL is a clear error, not a panic.
#[test]
fn the_migrate_command_makes_the_schema_ahead_of_time() {
    let url = pg::database("cli");
    let run = |database: &str| support::child::hub_output(&["migrate", "--database", database]);
    let (code, stdout, stderr) = run(&url);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("from schema version 0 to {}", schema::latest())),
        "{stdout}"
    );
    let (code, stdout, _) = run(&url);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("is up to date"), "{stdout}");
    let (code, _, stderr) = run("postgres://tally@/nodb?host=/nonexistent-dir");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.starts_with("error: migrating"), "{stderr}");
    let (code, _, stderr) = run("not a url at all =");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--database"), "{stderr}");
}

/// Enrollment codes in the database: a code is redeemed once, by its
/// store, before it expires; a wrong store does not burn it; a process
/// keeps one connection for codes however many tries it gets; of many
/// processes racing on one code exactly one gets it.
#[test]
fn an_enrollment_code_in_the_database_is_redeemed_once() {
    use tally_hub::pki::{BookAnswer, CodeBook};
    use tally_hub::storage::postgres::enroll_codes::DbCodeBook;
    const NOW: u64 = 1_750_000_000_000;
    let raw = pg::database("codes");
    let url: DatabaseUrl = raw.parse().unwrap();
    let book = DbCodeBook::new(url.clone());
    let hash = |n: u8| [n; 32];
    book.add(&hash(1), "s1", NOW + 1_000, NOW).unwrap();
    book.add(&hash(2), "s2", NOW + 1_000, NOW).unwrap();
    assert_eq!(book.redeem(&hash(9), "s1", NOW), Ok(BookAnswer::Unknown));
    assert_eq!(book.redeem(&hash(1), "s2", NOW), Ok(BookAnswer::WrongStore));
    assert_eq!(book.redeem(&hash(1), "s1", NOW), Ok(BookAnswer::Redeemed));
    assert_eq!(book.redeem(&hash(1), "s1", NOW), Ok(BookAnswer::Unknown));
    // Expired: refused and removed.
    assert_eq!(
        book.redeem(&hash(2), "s2", NOW + 1_000),
        Ok(BookAnswer::Expired)
    );
    assert_eq!(book.redeem(&hash(2), "s2", NOW), Ok(BookAnswer::Unknown));
    // Adding a code drops the expired ones.
    book.add(&hash(3), "s3", NOW + 10, NOW).unwrap();
    book.add(&hash(4), "s4", NOW + 1_000, NOW + 10).unwrap();
    assert_eq!(book.redeem(&hash(3), "s3", NOW), Ok(BookAnswer::Unknown));

    // One book (a process) keeps one connection, however many tries.
    for n in 0..20u8 {
        let _ = book.redeem(&hash(200 + n), "s9", NOW);
    }
    let open = pg::query_i64(
        &raw,
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'tally-hub'",
    );
    assert_eq!(open, 1, "one connection for enrollment codes");

    // Six books (six processes) racing on one code.
    let books: Vec<DbCodeBook> = (0..6).map(|_| DbCodeBook::new(url.clone())).collect();
    for round in 0..5u8 {
        let code = hash(100 + round);
        book.add(&code, "s5", NOW + 1_000, NOW).unwrap();
        let answers: Vec<BookAnswer> = std::thread::scope(|s| {
            let racers: Vec<_> = books
                .iter()
                .map(|b| s.spawn(|| b.redeem(&code, "s5", NOW).unwrap()))
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let won = answers
            .iter()
            .filter(|a| **a == BookAnswer::Redeemed)
            .count();
        assert_eq!(won, 1, "round {round}: {answers:?}");
        assert!(
            answers
                .iter()
                .all(|a| matches!(a, BookAnswer::Redeemed | BookAnswer::Unknown)),
            "{answers:?}"
        );
    }
}

/// Reads share a bounded pool: eight threads reading at once through a
/// hub allowed two read connections open at most two (beside its
/// writer), and every read is answered.
#[test]
fn reads_share_a_bounded_pool_of_connections() {
    let url = pg::database("pool");
    let db: DatabaseUrl = url.parse().unwrap();
    let hub = PgHub::connect(&db, settings())
        .unwrap()
        .with_read_connections(2);
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..20 {
                    assert!(hub.stock(gtin(1)).unwrap().is_empty());
                }
            });
        }
    });
    let open = pg::query_i64(
        &url,
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'tally-hub'",
    );
    assert!(
        (2..=3).contains(&open),
        "{open} connections: writer + at most 2 readers"
    );
}
