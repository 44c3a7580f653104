//! The committer thread as the agent starts it: its priority, and that
//! holding batches never keeps a lone request waiting for a crowd.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use tally_agent::commit::{Committer, Limits, RefusedSale, Rerun};
use tally_agent::metrics::Metrics;
use tally_agent::store::AgentDb;
use tally_store::SystemClock;
use tally_sync::command::{Command, LineIn, Outcome, Overrides, ReceiptLine};
use tally_sync::{Gtin, ReplicaId};

fn store_id() -> ReplicaId {
    ReplicaId::new("store-committer").unwrap()
}

/// The store's database in `dir` and a committer over it.
fn start_with_db(
    dir: &std::path::Path,
    limits: Limits,
) -> (Arc<AgentDb>, Committer, tally_service::vital::Vital) {
    let db = Arc::new(AgentDb::open(dir, Some(&store_id())).unwrap());
    let (committer, thread) = Committer::start(
        db.clone(),
        Arc::new(Metrics::new()),
        limits,
        Arc::new(SystemClock),
    )
    .unwrap();
    (db, committer, thread)
}

fn start(dir: &std::path::Path, limits: Limits) -> (Committer, tally_service::vital::Vital) {
    let (_, committer, thread) = start_with_db(dir, limits);
    (committer, thread)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn item() -> Gtin {
    "4006381333931".parse().unwrap()
}

fn receipt(qty: u64) -> Command {
    Command::Receipt {
        id: None,
        lines: vec![ReceiptLine {
            gtin: item(),
            qty,
            epc: None,
        }],
        staff: Default::default(),
    }
}

fn sale() -> Command {
    Command::Sale {
        id: None,
        lines: vec![LineIn {
            gtin: item(),
            qty: 1,
            unit_price_minor: Some(100),
            epc: None,
            price_from_label: false,
        }],
        tenders: Vec::new(),
        staff: Default::default(),
    }
}

fn recorded(done: &Outcome) -> bool {
    matches!(done, Outcome::Recorded { new: true, .. })
}

/// The nice values of this process's `tally-committer` threads (tests run
/// in parallel, each with its own committer).
fn committer_nices() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "tally-committer")
        })
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            stat.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(16)?
                .parse()
                .ok()
        })
        .collect()
}

/// Whether this process may set a thread's nice value to `nice`, tried on
/// a scratch thread.
fn may_set_nice(nice: i32) -> bool {
    std::thread::spawn(move || {
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice).is_ok()
    })
    .join()
    .unwrap()
}

#[test]
fn the_committer_thread_runs_at_its_configured_priority() {
    let dir = tempfile::tempdir().unwrap();
    let process_nice = rustix::process::getpriority_process(None).unwrap();
    let (committer, thread) = start(
        dir.path(),
        Limits {
            nice: -5,
            ..Limits::default()
        },
    );
    // The thread sets its priority before it takes its first request.
    let rt = runtime();
    let done = rt.block_on(committer.command(receipt(5))).unwrap();
    assert!(recorded(&done), "{done:?}");
    let expected = if may_set_nice(-5) { -5 } else { process_nice };
    let nices = committer_nices();
    assert!(
        nices.contains(&expected),
        "expected a committer at nice {expected}: {nices:?}"
    );
    drop(committer);
    thread.join().unwrap();
}

#[test]
fn a_lone_request_after_a_batch_is_answered_without_a_crowd() {
    // An hour's hold: if a lone request were held for a batch the size of
    // the one before, the second phase would not finish by the deadline.
    let (_dir, committer, thread, rt) = held(Duration::from_secs(3600));
    rt.block_on(async {
        let deadline = Duration::from_secs(30);
        let done = tokio::time::timeout(deadline, committer.command(receipt(10)))
            .await
            .expect("a first request is never held")
            .unwrap();
        assert!(recorded(&done), "{done:?}");
        for _ in 0..3 {
            let done = tokio::time::timeout(deadline, committer.command(sale()))
                .await
                .expect("one client's requests are never held")
                .unwrap();
            assert!(recorded(&done), "{done:?}");
        }
    });
    drop(committer);
    thread.join().unwrap();
}

#[test]
fn a_held_batch_is_committed_when_the_hold_runs_out() {
    // A burst of 8 sets a target of up to 8; the lone sale after it waits
    // at most the (short) hold, then is committed.
    let (_dir, committer, thread, rt) = held(Duration::from_millis(20));
    rt.block_on(async {
        let deadline = Duration::from_secs(30);
        let done = committer.command(receipt(100)).await.unwrap();
        assert!(recorded(&done), "{done:?}");
        let tickets = burst(&committer, 8).await;
        assert!(tickets.iter().all(recorded), "{tickets:?}");
        let done = tokio::time::timeout(deadline, committer.command(sale()))
            .await
            .expect("a held batch is committed once the hold runs out")
            .unwrap();
        assert!(recorded(&done), "{done:?}");
    });
    drop(committer);
    thread.join().unwrap();
}

/// A committer with this hold over a fresh database, and a runtime to
/// wait on it with deadlines.
fn held(
    hold: Duration,
) -> (
    tempfile::TempDir,
    Committer,
    tally_service::vital::Vital,
    tokio::runtime::Runtime,
) {
    let dir = tempfile::tempdir().unwrap();
    let (committer, thread) = start(
        dir.path(),
        Limits {
            hold,
            ..Limits::default()
        },
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    (dir, committer, thread, rt)
}

/// Queues `n` sales at once and waits for all of them.
async fn burst(committer: &Committer, n: usize) -> Vec<Outcome> {
    let mut tickets = Vec::new();
    for _ in 0..n {
        tickets.push(committer.enqueue_command(sale()).await.unwrap());
    }
    let mut done = Vec::new();
    for t in tickets {
        done.push(t.wait().await.unwrap());
    }
    done
}

#[test]
fn lost_sales_are_counted_durably_and_every_sync_request_carries_the_totals() {
    use tally_sync::{LostSales, Shortage};
    let dir = tempfile::tempdir().unwrap();
    let (db, committer, thread) = start_with_db(dir.path(), Limits::default());
    let rt = runtime();
    assert!(db.sync_request(10).unwrap().lost.is_empty());
    rt.block_on(async {
        // Queued without waiting: the next batch commits them, so once a
        // command queued after them is answered, they are durable.
        drop(
            committer
                .lost_sale(Shortage::Offline, 2, None)
                .await
                .unwrap(),
        );
        drop(
            committer
                .lost_sale(Shortage::Offline, 3, None)
                .await
                .unwrap(),
        );
        let no_stock = committer
            .lost_sale(Shortage::NoStock, 1, None)
            .await
            .unwrap();
        assert!(recorded(&committer.command(receipt(1)).await.unwrap()));
        no_stock.wait().await.unwrap();
        // A hostile count saturates instead of overflowing.
        let huge = committer
            .lost_sale(Shortage::HeldElsewhere, u64::MAX, None)
            .await;
        huge.unwrap().wait().await.unwrap();
        let more = committer.lost_sale(Shortage::HeldElsewhere, 5, None).await;
        more.unwrap().wait().await.unwrap();
        // A sale with an id (a till's, kept across its retries) waits its
        // grace before it counts, and counts once: not in these totals.
        let id = tally_sync::EventId(uuid::Uuid::from_u128(7));
        for _ in 0..3 {
            let at_ms = tally_sync::clock::Clock::now_ms(&SystemClock);
            let sale = Some(RefusedSale { id, at_ms });
            let retried = committer.lost_sale(Shortage::NoStock, 4, sale).await;
            retried.unwrap().wait().await.unwrap();
        }
    });
    let expected = vec![
        LostSales {
            reason: Shortage::NoStock,
            sales: 1,
            units: 1,
        },
        LostSales {
            reason: Shortage::HeldElsewhere,
            sales: 2,
            units: u64::MAX,
        },
        LostSales {
            reason: Shortage::Offline,
            sales: 2,
            units: 5,
        },
    ];
    // Cumulative: a second request carries the same totals.
    assert_eq!(db.sync_request(10).unwrap().lost, expected);
    assert_eq!(db.sync_request(10).unwrap().lost, expected);
    drop((committer, db));
    thread.join().unwrap();
    let db = AgentDb::open(dir.path(), Some(&store_id())).unwrap();
    assert_eq!(
        db.sync_request(10).unwrap().lost,
        expected,
        "after a restart"
    );
}

/// The hub's answer to `request` that acknowledges all of it and sends
/// nothing back.
fn acked_all(request: &tally_sync::SyncRequest) -> tally_sync::SyncResponse {
    tally_sync::SyncResponse {
        version: tally_sync::PROTOCOL_VERSION,
        acked_delta_version: request.delta_version,
        acked_events_upto: request.events_upto,
        rejected_events: Vec::new(),
        delta: Default::default(),
        hub_cursor: request.hub_cursor,
        reserve: Vec::new(),
        catalog: Vec::new(),
        catalog_cursor: request.catalog_cursor,
        more: false,
    }
}

/// A till's sale refused again and again under its id counts as one lost
/// sale, once its grace is over, with the next sync's answer; a sale that
/// went through under its id (a manager's override) is no lost sale.
#[test]
fn a_refused_sale_counts_as_lost_once_after_its_grace_unless_it_went_through() {
    use tally_sync::clock::ManualClock;
    use tally_sync::{EventId, LostSales, Shortage};
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(AgentDb::open(dir.path(), Some(&store_id())).unwrap());
    let clock = Arc::new(ManualClock::new(1_780_000_000_000));
    let (committer, thread) = Committer::start(
        db.clone(),
        Arc::new(Metrics::new()),
        Limits::default(),
        clock.clone(),
    )
    .unwrap();
    let rt = runtime();
    let (lost, overridden) = (
        EventId(uuid::Uuid::from_u128(
            0x0192_0000_0000_7000_8000_0000_0000_0001,
        )),
        EventId(uuid::Uuid::from_u128(
            0x0192_0000_0000_7000_8000_0000_0000_0002,
        )),
    );
    let sync = || async {
        let request = db.sync_request(10).unwrap();
        let response = acked_all(&request);
        let job = tally_agent::commit::SyncJob { request, response };
        committer.apply_sync(job).await.unwrap();
    };
    rt.block_on(async {
        for _ in 0..3 {
            let refused = Some(RefusedSale {
                id: lost,
                at_ms: tally_sync::clock::Clock::now_ms(&*clock),
            });
            let t = committer.lost_sale(Shortage::NoStock, 2, refused).await;
            t.unwrap().wait().await.unwrap();
        }
        let refused = Some(RefusedSale {
            id: overridden,
            at_ms: tally_sync::clock::Clock::now_ms(&*clock),
        });
        let t = committer.lost_sale(Shortage::Offline, 1, refused).await;
        t.unwrap().wait().await.unwrap();
        assert!(recorded(&committer.command(receipt(1)).await.unwrap()));
        let Command::Sale {
            lines,
            tenders,
            staff,
            ..
        } = sale()
        else {
            unreachable!()
        };
        let through = Command::Sale {
            id: Some(overridden),
            lines,
            tenders,
            staff,
        };
        assert!(recorded(&committer.command(through).await.unwrap()));
        sync().await;
        assert!(
            db.sync_request(10).unwrap().lost.is_empty(),
            "within the grace"
        );
        clock.advance(tally_agent::store::LOST_GRACE_MS);
        sync().await;
    });
    assert_eq!(
        db.sync_request(10).unwrap().lost,
        vec![LostSales {
            reason: Shortage::NoStock,
            sales: 1,
            units: 2
        }]
    );
    drop((committer, db));
    thread.join().unwrap();
}

/// A sale refused for rights the hub holds counts its shortfall as
/// refused demand once: run again (another till's grant landed, or with
/// a grant of its own) and refused again, it adds nothing more, so the
/// demand the next sync reports is one customer's, however many rounds
/// rights on demand took.
#[test]
fn a_rerun_of_a_refused_sale_does_not_count_its_demand_again() {
    let dir = tempfile::tempdir().unwrap();
    let (db, committer, thread) = start_with_db(dir.path(), Limits::default());
    let rt = runtime();
    let three = || match sale() {
        Command::Sale {
            lines,
            tenders,
            staff,
            ..
        } => Command::Sale {
            id: None,
            lines: lines.into_iter().map(|l| LineIn { qty: 3, ..l }).collect(),
            tenders,
            staff,
        },
        _ => unreachable!(),
    };
    // A receipt of another item: answered once its batch is durable, so
    // what the commands queued before it wrote is committed then.
    let settled = || Command::Receipt {
        id: None,
        lines: vec![ReceiptLine {
            gtin: Gtin::from_body(96_385_074).unwrap(),
            qty: 1,
            epc: None,
        }],
        staff: Default::default(),
    };
    rt.block_on(async {
        assert!(recorded(&committer.command(receipt(1)).await.unwrap()));
        // The hub holds 5 units' rights at the store (its own entries).
        let hub = tally_sync::BoundedCounter::from_entries([(ReplicaId::hub(), 5)], [], []);
        committer.release(item(), 0, hub).await.unwrap();
        let refused = committer.command(three()).await.unwrap();
        assert!(
            matches!(&refused, Outcome::Refused { demand, .. } if !demand.is_empty()),
            "{refused:?}"
        );
        committer.command(settled()).await.unwrap();
        let first = db.demand().unwrap();
        assert_eq!(first.get(&item()), Some(&2), "the shortfall, once");
        for _ in 0..3 {
            let again = committer
                .rerun(Rerun {
                    cmd: three(),
                    first_demand: Vec::new(),
                    overrides: Overrides::Apply,
                })
                .await
                .unwrap();
            assert!(matches!(again, Outcome::Refused { .. }), "{again:?}");
        }
        committer.command(settled()).await.unwrap();
        assert_eq!(db.demand().unwrap(), first, "not counted again");
        // A new sale is a new customer's demand.
        committer.command(three()).await.unwrap();
        committer.command(settled()).await.unwrap();
        assert_eq!(db.demand().unwrap().get(&item()), Some(&4));
        // A till's retry under the sale's id (its refusal noted as a lost
        // sale) is that customer's demand again, not a new one's.
        let id = tally_sync::EventId(uuid::Uuid::from_u128(
            0x0192_0000_0000_7000_8000_0000_0000_0009,
        ));
        let with_id = || match three() {
            Command::Sale {
                lines,
                tenders,
                staff,
                ..
            } => Command::Sale {
                id: Some(id),
                lines,
                tenders,
                staff,
            },
            _ => unreachable!(),
        };
        let Outcome::Refused {
            demand: first_demand,
            ..
        } = committer.command(with_id()).await.unwrap()
        else {
            panic!("refused")
        };
        assert!(!first_demand.is_empty());
        // Noted after the hub was asked, the row keeps when the refusal
        // was answered (a sync in between reported its demand).
        let answered_at_ms = 1_780_000_000_000;
        let sale = Some(RefusedSale {
            id,
            at_ms: answered_at_ms,
        });
        let noted = committer
            .lost_sale(tally_sync::Shortage::HeldElsewhere, 3, sale)
            .await;
        noted.unwrap().wait().await.unwrap();
        assert_eq!(db.first_refused_at(id).unwrap(), Some(answered_at_ms));
        committer.command(settled()).await.unwrap();
        assert_eq!(db.demand().unwrap().get(&item()), Some(&6));
        for _ in 0..2 {
            let again = committer.command(with_id()).await.unwrap();
            assert!(matches!(again, Outcome::Refused { .. }), "{again:?}");
        }
        committer.command(settled()).await.unwrap();
        assert_eq!(db.demand().unwrap().get(&item()), Some(&6), "a retry");
        // Rights of its own since (a receipt here, as a grant would be):
        // the rerun records the sale, and its first refusal's demand is
        // met, not left for the hub to move more units here.
        assert!(recorded(&committer.command(receipt(5)).await.unwrap()));
        let done = committer
            .rerun(Rerun {
                cmd: with_id(),
                first_demand: first_demand.clone(),
                overrides: Overrides::Apply,
            })
            .await
            .unwrap();
        assert!(
            matches!(done, Outcome::Recorded { new: true, .. }),
            "{done:?}"
        );
        committer.command(settled()).await.unwrap();
        let met: u64 = first_demand.iter().map(|s| s.units).sum();
        assert_eq!(
            db.demand().unwrap().get(&item()).copied().unwrap_or(0),
            6 - met
        );
    });
    drop((committer, db));
    thread.join().unwrap();
}

/// The hub's answer is held to the request it answers: an
/// acknowledgement beyond the events sent takes none of the unsent ones
/// out of the outbox, and an event both acknowledged and refused counts
/// once in the outbox depth.
#[test]
fn an_answer_acknowledges_at_most_what_was_sent_and_a_refusal_counts_once() {
    use tally_sync::message::RejectedEvent;
    use tally_sync::SyncResponse;
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(AgentDb::open(dir.path(), Some(&store_id())).unwrap());
    let metrics = Arc::new(Metrics::new());
    let (committer, thread) = Committer::start(
        db.clone(),
        metrics.clone(),
        Limits::default(),
        Arc::new(tally_store::SystemClock),
    )
    .unwrap();
    let rt = runtime();
    rt.block_on(async {
        for qty in 1..=5 {
            assert!(recorded(&committer.command(receipt(qty)).await.unwrap()));
        }
        let request = db.sync_request(3).unwrap();
        assert_eq!(request.events.len(), 3);
        let refused = request.events[1].id;
        let response = SyncResponse {
            // More than was sent.
            acked_events_upto: request.events_upto + 100,
            rejected_events: vec![RejectedEvent {
                id: refused,
                reason: "test".into(),
            }],
            ..acked_all(&request)
        };
        let job = tally_agent::commit::SyncJob { request, response };
        committer.apply_sync(job).await.unwrap();
    });
    assert_eq!(db.outbox_len().unwrap(), 2, "the two unsent events stay");
    assert_eq!(metrics.outbox_depth(), 2, "the refused one counted once");
    drop((committer, db));
    thread.join().unwrap();
}

/// A store with more changed counters than one request may carry (a
/// first receipt of a large catalogue) sends them in pages of at most
/// `MAX_DELTA_ENTRIES`, oldest change first, each page saying whether
/// more waits; once the hub has taken every page, nothing is left.
#[test]
fn a_delta_larger_than_one_request_goes_in_pages() {
    use std::collections::BTreeSet;
    use tally_sync::limits::{MAX_DELTA_ENTRIES, MAX_LINES};
    let dir = tempfile::tempdir().unwrap();
    let (db, committer, thread) = start_with_db(dir.path(), Limits::default());
    let rt = runtime();
    let items = MAX_DELTA_ENTRIES + MAX_LINES / 2;
    rt.block_on(async {
        let gtins: Vec<Gtin> = (0..items as u64)
            .map(|n| Gtin::from_body(400_000_000_000 + n).unwrap())
            .collect();
        for chunk in gtins.chunks(MAX_LINES) {
            let receipt = Command::Receipt {
                id: None,
                lines: chunk
                    .iter()
                    .map(|&gtin| ReceiptLine {
                        gtin,
                        qty: 1,
                        epc: None,
                    })
                    .collect(),
                staff: Default::default(),
            };
            assert!(recorded(&committer.command(receipt).await.unwrap()));
        }
        committer.flush().await.unwrap();
        let mut sent = BTreeSet::new();
        let mut pages = Vec::new();
        loop {
            let page = db.sync_page(2 * items).unwrap();
            let request = page.request;
            assert!(request.delta.entries.len() <= MAX_DELTA_ENTRIES);
            for e in &request.delta.entries {
                assert!(sent.insert(e.key.gtin), "{} sent twice", e.key.gtin);
            }
            pages.push((request.events.len(), request.delta.entries.len()));
            let response = acked_all(&request);
            let job = tally_agent::commit::SyncJob { request, response };
            committer.apply_sync(job).await.unwrap();
            if !page.more {
                break;
            }
            assert!(pages.len() < 10, "paging does not end: {pages:?}");
        }
        let events = items.div_ceil(MAX_LINES);
        assert_eq!(
            pages,
            vec![(events, MAX_DELTA_ENTRIES), (0, items - MAX_DELTA_ENTRIES)]
        );
        assert_eq!(sent.len(), items, "every changed counter sent once");
        let last = db.sync_page(10).unwrap();
        assert!(!last.more);
        assert!(last.request.delta.entries.is_empty());
    });
    drop((committer, db));
    thread.join().unwrap();
}

/// A commit the disk fails ends the committer, and the agent with it (its
/// service manager starts it again), instead of leaving it up refusing
/// every sale: the failed batch and every later command get an error,
/// the thread reports why, and the database opened again holds every
/// acknowledged command.
#[test]
fn a_failed_commit_stops_the_committer_for_a_restart() {
    use std::path::Path;
    use tally_agent::commit::CommitError;
    use tally_store::sim_disk::SimDisk;
    let disk = SimDisk::new();
    let open = || {
        Arc::new(
            AgentDb::open_with_backend(disk.clone(), Path::new("sim"), Some(&store_id())).unwrap(),
        )
    };
    let db = open();
    let (committer, thread) = Committer::start(
        db.clone(),
        Arc::new(Metrics::new()),
        Limits::default(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let (handle, died) = thread.split();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(recorded(&committer.command(receipt(3)).await.unwrap()));
        disk.power_cut_after(0);
        let failed = committer.command(receipt(4)).await;
        assert!(matches!(failed, Err(CommitError::Storage(_))), "{failed:?}");
        let why = tokio::time::timeout(Duration::from_secs(10), died.wait())
            .await
            .expect("the committer reports why it stopped");
        assert!(why.contains("failed to commit"), "{why}");
        let after = committer.command(receipt(5)).await;
        assert!(matches!(after, Err(CommitError::Closed)), "{after:?}");
    });
    handle.join().unwrap();
    drop(committer);
    drop(Arc::into_inner(db).expect("the committer let go of the database"));
    disk.restore_power(7);
    let db = open();
    assert_eq!(
        db.stock(item()).unwrap().on_hand,
        3,
        "the acknowledged receipt"
    );
}
