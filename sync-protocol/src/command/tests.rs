//! The command core's tests, on an in-memory store: every rule of
//! planning, idempotent retries, refunds and EPCs, and a property test of
//! the refund bound against a model.

use super::*;
use crate::event::Direction;
use crate::ids::ReplicaId;
use crate::memstore::MemStore;

fn who() -> Identity {
    Identity {
        replica: ReplicaId::new("s1").unwrap(),
        location: LocationId::new("s1").unwrap(),
    }
}

fn gtin(n: u64) -> Gtin {
    Gtin::from_body(n).unwrap()
}

fn stamp(n: u8) -> Stamp {
    Stamp {
        now_ms: 1_700_000_000_000 + u64::from(n),
        random: [n; 10],
    }
}

fn line(g: u64, qty: u64, price: Option<i64>) -> LineIn {
    LineIn {
        gtin: gtin(g),
        qty,
        unit_price_minor: price,
        epc: None,
        price_from_label: false,
    }
}

/// A cashier at a till, with a manager's approval.
fn manager() -> Staff {
    Staff {
        cashier: Some("c-7".into()),
        till: Some("till-2".into()),
        approval: Some(Approval {
            approver: "mgr".into(),
            reason: "checked".into(),
        }),
    }
}

fn sale(id: Option<u8>, lines: Vec<LineIn>) -> Command {
    Command::Sale {
        id: id.map(|n| EventId::v7(1, [n; 10])),
        lines,
        tenders: vec![],
        staff: Default::default(),
    }
}

fn receive(l: &mut MemStore, g: u64, qty: u64) {
    let cmd = Command::Receipt {
        id: None,
        lines: vec![ReceiptLine::units(gtin(g), qty)],
        staff: Default::default(),
    };
    static N: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(100);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = execute(l, &who(), &cmd, stamp(n)).unwrap();
    assert!(matches!(out, Outcome::Recorded { new: true, .. }));
}

fn on_hand(l: &MemStore, g: u64) -> u64 {
    l.replica
        .inventory
        .counter(&ItemKey::new(who().location, gtin(g)))
        .value()
}

#[test]
fn sale_uses_catalog_price_or_given_price() {
    let mut l = MemStore::new(who());
    l.set_price(gtin(1), 250);
    receive(&mut l, 1, 5);
    receive(&mut l, 2, 5);
    let cmd = sale(Some(1), vec![line(1, 2, None), line(2, 1, Some(99))]);
    let Outcome::Recorded { event, new } = execute(&mut l, &who(), &cmd, stamp(1)).unwrap() else {
        panic!("refused")
    };
    assert!(new);
    assert_eq!(event.total_minor(), 599);
    assert_eq!((on_hand(&l, 1), on_hand(&l, 2)), (3, 4));
    assert_eq!(l.outbox.len(), 3);
}

#[test]
fn unknown_item_without_price_is_invalid_and_changes_nothing() {
    let mut l = MemStore::new(who());
    receive(&mut l, 1, 5);
    let before = l.clone();
    let out = execute(
        &mut l,
        &who(),
        &sale(None, vec![line(1, 1, None)]),
        stamp(1),
    )
    .unwrap();
    assert!(matches!(
        out,
        Outcome::Refused {
            refusal: Refusal::Invalid(_),
            ..
        }
    ));
    assert_eq!(l.outbox, before.outbox);
    assert_eq!(on_hand(&l, 1), 5);
}

#[test]
fn a_tender_without_method_negative_or_short_of_the_total_is_invalid() {
    let mut l = MemStore::new(who());
    receive(&mut l, 1, 5);
    let before = l.clone();
    let tender = |method: &str, amount_minor| Tender {
        method: method.into(),
        amount_minor,
        reference: None,
    };
    for (tenders, says) in [
        (vec![tender(" ", 250)], "tenders[0].method is empty"),
        (
            vec![tender("card", 200), tender("cash", -50)],
            "tenders[1].amount_minor must be >= 0, got -50",
        ),
        (
            vec![tender("card", 100), tender("cash", 49)],
            "the tenders pay 149 of the total 150 minor units",
        ),
        (
            vec![tender("card", i64::MAX), tender("cash", 1)],
            "the tenders add up to more than 9223372036854775807",
        ),
    ] {
        let cmd = Command::Sale {
            id: None,
            lines: vec![line(1, 1, Some(150))],
            tenders,
            staff: Default::default(),
        };
        match execute(&mut l, &who(), &cmd, stamp(1)).unwrap() {
            Outcome::Refused {
                refusal: Refusal::Invalid(d),
                ..
            } => assert_eq!(d, says),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(l.outbox, before.outbox);
    assert_eq!(on_hand(&l, 1), 5);
    let paid = Command::Sale {
        id: None,
        lines: vec![line(1, 1, Some(150))],
        tenders: vec![tender("voucher", 0), tender("cash", 150)],
        staff: Default::default(),
    };
    recorded(execute(&mut l, &who(), &paid, stamp(2)).unwrap());
    // Cash handed over beyond the total (change given) is fine.
    let with_change = Command::Sale {
        id: None,
        lines: vec![line(1, 1, Some(150))],
        tenders: vec![tender("cash", 200)],
        staff: Default::default(),
    };
    recorded(execute(&mut l, &who(), &with_change, stamp(3)).unwrap());
}

#[test]
fn a_total_beyond_the_bounds_is_invalid_and_changes_nothing() {
    use crate::limits::{MAX_AMOUNT_MINOR, MAX_LINE_QTY, MAX_UNIT_PRICE_MINOR};
    let mut l = MemStore::new(who());
    receive(&mut l, 1, MAX_LINE_QTY);
    let before = l.clone();
    let huge_total = vec![line(1, MAX_LINE_QTY, Some(MAX_UNIT_PRICE_MINOR))];
    let two_max_prices = vec![line(1, 1, Some(i64::MAX)), line(1, 1, Some(1))];
    let huge_qty = vec![line(1, 4_000_000_000_000_000_000, Some(100))];
    for lines in [huge_total, two_max_prices, huge_qty] {
        for cmd in [sale(None, lines.clone()), ret(None, lines, None)] {
            match execute(&mut l, &who(), &cmd, stamp(1)).unwrap() {
                Outcome::Refused {
                    refusal: Refusal::Invalid(d),
                    ..
                } => assert!(
                    d.contains("more than the") || d.contains("exceeds 9223372036854775807"),
                    "{d}"
                ),
                other => panic!("{cmd:?}: {other:?}"),
            }
        }
    }
    // A receipt beyond the bound per line is refused too.
    let cmd = Command::Receipt {
        id: None,
        lines: vec![ReceiptLine::units(gtin(1), MAX_LINE_QTY + 1)],
        staff: Default::default(),
    };
    assert!(matches!(
        execute(&mut l, &who(), &cmd, stamp(1)).unwrap(),
        Outcome::Refused { .. }
    ));
    assert_eq!(l.outbox, before.outbox);
    assert_eq!(on_hand(&l, 1), MAX_LINE_QTY);
    // The largest total allowed is recorded as it is.
    let qty = u64::try_from(MAX_AMOUNT_MINOR / MAX_UNIT_PRICE_MINOR).unwrap();
    let fits = sale(None, vec![line(1, qty, Some(MAX_UNIT_PRICE_MINOR))]);
    let Outcome::Recorded { event, .. } = execute(&mut l, &who(), &fits, stamp(2)).unwrap() else {
        panic!("refused")
    };
    assert_eq!(event.total_minor(), MAX_AMOUNT_MINOR);
}

#[test]
fn insufficient_stock_refuses_whole_sale_and_records_demand() {
    let mut l = MemStore::new(who());
    receive(&mut l, 1, 2);
    receive(&mut l, 2, 1);
    let cmd = sale(
        Some(1),
        vec![
            line(1, 1, Some(1)),
            line(2, 3, Some(1)),
            line(1, 2, Some(1)),
        ],
    );
    let out = execute(&mut l, &who(), &cmd, stamp(1)).unwrap();
    let Outcome::Refused { refusal, demand } = out else {
        panic!("accepted")
    };
    assert!(matches!(refusal, Refusal::InsufficientStock { .. }));
    assert_eq!(
        demand,
        vec![
            Shortfall {
                gtin: gtin(1),
                units: 1
            },
            Shortfall {
                gtin: gtin(2),
                units: 2
            }
        ]
    );
    assert_eq!(l.demand.get(&gtin(2)), Some(&2));
    assert_eq!((on_hand(&l, 1), on_hand(&l, 2)), (2, 1));
    assert_eq!(l.outbox.len(), 2, "only the two receipts");
    // The refused id was not recorded: posting it again may succeed.
    receive(&mut l, 2, 5);
    receive(&mut l, 1, 5);
    assert!(matches!(
        execute(&mut l, &who(), &cmd, stamp(2)).unwrap(),
        Outcome::Recorded { new: true, .. }
    ));
}

#[test]
fn same_id_is_applied_once() {
    let mut l = MemStore::new(who());
    receive(&mut l, 1, 5);
    let cmd = sale(Some(7), vec![line(1, 2, Some(10))]);
    let first = execute(&mut l, &who(), &cmd, stamp(1)).unwrap();
    let again = execute(&mut l, &who(), &cmd, stamp(2)).unwrap();
    let (
        Outcome::Recorded {
            event: a,
            new: true,
        },
        Outcome::Recorded {
            event: b,
            new: false,
        },
    ) = (first, again)
    else {
        panic!("not recorded once")
    };
    assert_eq!(a, b);
    assert_eq!(on_hand(&l, 1), 3);
    // The same id as another kind is refused.
    let ret = Command::Return {
        id: Some(a.id),
        lines: vec![line(1, 1, Some(10))],
        original_sale: None,
        staff: Default::default(),
        checked: None,
    };
    assert!(matches!(
        execute(&mut l, &who(), &ret, stamp(3)).unwrap(),
        Outcome::Refused {
            refusal: Refusal::Invalid(_),
            ..
        }
    ));
}

#[test]
fn a_changed_request_under_a_recorded_id_is_refused_and_changes_nothing() {
    let mut l = MemStore::new(who());
    l.set_price(gtin(1), 250);
    receive(&mut l, 1, 9);
    receive(&mut l, 2, 9);
    let first = sale(Some(7), vec![line(1, 2, None), line(2, 1, Some(10))]);
    assert!(matches!(
        execute(&mut l, &who(), &first, stamp(1)).unwrap(),
        Outcome::Recorded { new: true, .. }
    ));
    let before = l.clone();
    // A true retry after the catalog price changed: the price was not
    // given, so it is not compared.
    l.set_price(gtin(1), 300);
    assert!(matches!(
        execute(&mut l, &who(), &first, stamp(2)).unwrap(),
        Outcome::Recorded { new: false, .. }
    ));
    let with = |f: &dyn Fn(&mut Command)| {
        let mut c = first.clone();
        f(&mut c);
        c
    };
    fn lines(c: &mut Command) -> &mut Vec<LineIn> {
        match c {
            Command::Sale { lines, .. } => lines,
            _ => unreachable!(),
        }
    }
    let changed = [
        with(&|c| lines(c)[0].qty = 3),
        with(&|c| lines(c)[1].unit_price_minor = Some(11)),
        with(&|c| lines(c)[0].unit_price_minor = Some(300)),
        with(&|c| lines(c)[1].gtin = gtin(3)),
        with(&|c| lines(c)[1].epc = Some(Epc::from_hex("3074257bf7194e4000001a85").unwrap())),
        with(&|c| lines(c).truncate(1)),
        with(&|c| {
            if let Command::Sale { tenders, .. } = c {
                tenders.push(Tender {
                    method: "cash".into(),
                    amount_minor: 510,
                    reference: None,
                });
            }
        }),
        with(&|c| {
            if let Command::Sale { staff, .. } = c {
                staff.approval = Some(Approval {
                    approver: "mgr".into(),
                    reason: "shelf".into(),
                });
            }
        }),
    ];
    for (n, cmd) in changed.iter().enumerate() {
        let out = execute(&mut l, &who(), cmd, stamp(3)).unwrap();
        let Outcome::Refused {
            refusal: Refusal::Invalid(detail),
            ..
        } = out
        else {
            panic!("change {n} accepted: {out:?}")
        };
        assert!(
            detail.contains("already recorded as a different sale"),
            "{detail}"
        );
    }
    assert_eq!(
        (on_hand(&l, 1), on_hand(&l, 2)),
        (7, 8),
        "counters unchanged"
    );
    assert_eq!(l.outbox, before.outbox, "nothing recorded");

    // Returns, receipts and counts are held to the same rule.
    let sale_id = EventId::v7(1, [7; 10]);
    let r = ret(Some(8), vec![line(1, 1, None)], Some(sale_id));
    assert!(matches!(
        execute(&mut l, &who(), &r, stamp(4)).unwrap(),
        Outcome::Recorded { new: true, .. }
    ));
    assert_eq!(retry_mismatch(&r, &recorded_event(&l, &r)), None);
    let other_sale = ret(Some(8), vec![line(1, 1, None)], None);
    assert!(retry_mismatch(&other_sale, &recorded_event(&l, &r)).is_some());
    let receipt = |qty| Command::Receipt {
        id: Some(EventId::v7(1, [9; 10])),
        lines: vec![ReceiptLine::units(gtin(2), qty)],
        staff: Default::default(),
    };
    execute(&mut l, &who(), &receipt(4), stamp(5)).unwrap();
    assert_eq!(
        retry_mismatch(&receipt(4), &recorded_event(&l, &receipt(4))),
        None
    );
    assert!(retry_mismatch(&receipt(5), &recorded_event(&l, &receipt(4))).is_some());
    let count = |counted| Command::Count {
        id: Some(EventId::v7(1, [10; 10])),
        gtin: gtin(2),
        counted,
        staff: Default::default(),
    };
    execute(&mut l, &who(), &count(4), stamp(6)).unwrap();
    assert_eq!(
        retry_mismatch(&count(4), &recorded_event(&l, &count(4))),
        None
    );
    assert!(retry_mismatch(&count(5), &recorded_event(&l, &count(4))).is_some());
}

fn recorded_event(l: &MemStore, cmd: &Command) -> Event {
    l.event(&cmd.id().unwrap()).unwrap().unwrap()
}

/// Held ([`Overrides::Hold`]), an approved sale short of rights is
/// refused for them like any sale, and nothing is written, not even
/// demand (its approval will record it); its approval still covers a
/// price off the catalog, and within rights it is recorded. Applied, the
/// same sale is an override.
#[test]
fn an_override_held_is_refused_for_rights_until_applied() {
    let mut l = MemStore::new(who());
    l.set_price(gtin(1), 100);
    receive(&mut l, 1, 1);
    let cmd = Command::Sale {
        id: Some(EventId::v7(1, [40; 10])),
        lines: vec![line(1, 3, Some(90))],
        tenders: vec![],
        staff: manager(),
    };
    let before = l.clone();
    match execute_with(&mut l, &who(), &cmd, stamp(1), Overrides::Hold).unwrap() {
        Outcome::Refused {
            refusal:
                Refusal::InsufficientStock {
                    requested,
                    available,
                    ..
                },
            demand,
        } => {
            assert_eq!((requested, available), (3, 1));
            assert_eq!(demand, vec![], "no customer turned away");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(l.demand, before.demand, "no demand");
    assert_eq!(l.outbox, before.outbox, "nothing recorded");
    assert_eq!(on_hand(&l, 1), 1);
    // Within rights, held or not, the approval covers the price.
    let within = Command::Sale {
        id: Some(EventId::v7(1, [41; 10])),
        lines: vec![line(1, 1, Some(90))],
        tenders: vec![],
        staff: manager(),
    };
    let e = recorded(execute_with(&mut l, &who(), &within, stamp(2), Overrides::Hold).unwrap());
    assert!(!e.is_override() && !e.price_overrides.is_empty());
    // Applied, the held sale sells beyond rights under its own id.
    let e = recorded(execute_with(&mut l, &who(), &cmd, stamp(3), Overrides::Apply).unwrap());
    assert!(e.is_override());
    assert_eq!(Some(e.id), cmd.id());
}

#[test]
fn override_sells_beyond_rights_and_is_flagged() {
    let mut l = MemStore::new(who());
    receive(&mut l, 1, 1);
    let cmd = Command::Sale {
        id: None,
        lines: vec![line(1, 3, Some(100))],
        tenders: vec![],
        staff: Staff {
            approval: Some(Approval {
                approver: "mgr".into(),
                reason: "on the shelf".into(),
            }),
            ..Staff::default()
        },
    };
    let Outcome::Recorded { event, .. } = execute(&mut l, &who(), &cmd, stamp(1)).unwrap() else {
        panic!("refused")
    };
    assert!(event.is_override());
    let EventKind::Sale {
        override_: Some(ov),
        ..
    } = &event.kind
    else {
        panic!("no override")
    };
    assert_eq!(
        ov.shortfall,
        vec![Shortfall {
            gtin: gtin(1),
            units: 2
        }]
    );
    assert_eq!(on_hand(&l, 1), 0);
    // An approval needs a name and a reason.
    let bad = Command::Sale {
        id: None,
        lines: vec![line(1, 1, Some(100))],
        tenders: vec![],
        staff: Staff {
            approval: Some(Approval {
                approver: " ".into(),
                reason: "x".into(),
            }),
            ..Staff::default()
        },
    };
    assert!(matches!(
        execute(&mut l, &who(), &bad, stamp(2)).unwrap(),
        Outcome::Refused {
            refusal: Refusal::Invalid(_),
            ..
        }
    ));
}

#[test]
fn epc_sold_once_then_returned_then_sold_again() {
    let mut l = MemStore::new(who());
    receive(&mut l, 1, 5);
    let epc = Epc::from_hex("3074257BF7194E4000001A85").unwrap();
    let tagged = |price| LineIn {
        epc: Some(epc.clone()),
        ..line(1, 1, Some(price))
    };
    let s = |n| Command::Sale {
        id: Some(EventId::v7(1, [n; 10])),
        lines: vec![tagged(10)],
        tenders: vec![],
        staff: Default::default(),
    };
    assert!(matches!(
        execute(&mut l, &who(), &s(1), stamp(1)).unwrap(),
        Outcome::Recorded { new: true, .. }
    ));
    assert_eq!(
        execute(&mut l, &who(), &s(2), stamp(2)).unwrap(),
        Outcome::Refused {
            refusal: Refusal::AlreadySold { epc: epc.clone() },
            demand: vec![]
        }
    );
    let ret = Command::Return {
        id: None,
        lines: vec![tagged(10)],
        original_sale: None,
        staff: manager(),
        checked: None,
    };
    assert!(matches!(
        execute(&mut l, &who(), &ret, stamp(3)).unwrap(),
        Outcome::Recorded { new: true, .. }
    ));
    assert!(matches!(
        execute(&mut l, &who(), &ret, stamp(4)).unwrap(),
        Outcome::Refused {
            refusal: Refusal::NotSold { .. },
            ..
        }
    ));
    assert!(matches!(
        execute(&mut l, &who(), &s(3), stamp(5)).unwrap(),
        Outcome::Recorded { new: true, .. }
    ));
    assert_eq!(on_hand(&l, 1), 4);
}

#[test]
fn count_moves_on_hand_to_counted() {
    let mut l = MemStore::new(who());
    receive(&mut l, 1, 10);
    let count = |counted| Command::Count {
        id: None,
        gtin: gtin(1),
        counted,
        staff: Default::default(),
    };
    let Outcome::Recorded { event, .. } = execute(&mut l, &who(), &count(7), stamp(1)).unwrap()
    else {
        panic!("refused")
    };
    assert_eq!(
        event.kind,
        EventKind::CountAdjustment {
            counted: 7,
            direction: Direction::Down,
            unresolved: 0
        }
    );
    assert_eq!(on_hand(&l, 1), 7);
    execute(&mut l, &who(), &count(12), stamp(2)).unwrap();
    assert_eq!(on_hand(&l, 1), 12);
    let Outcome::Recorded { event, .. } = execute(&mut l, &who(), &count(12), stamp(3)).unwrap()
    else {
        panic!("refused")
    };
    assert_eq!(event.lines[0].qty, 0);
    assert_eq!(on_hand(&l, 1), 12);
}

#[test]
fn count_cannot_remove_units_whose_rights_another_replica_holds() {
    let mut l = MemStore::new(who());
    receive(&mut l, 1, 10);
    let key = ItemKey::new(who().location, gtin(1));
    let mut c = l.replica.inventory.counter(&key);
    c.transfer(&who().replica, &ReplicaId::hub(), 4).unwrap();
    l.replica.inventory.put(&key, c);
    let cmd = Command::Count {
        id: None,
        gtin: gtin(1),
        counted: 1,
        staff: Default::default(),
    };
    let Outcome::Recorded { event, .. } = execute(&mut l, &who(), &cmd, stamp(1)).unwrap() else {
        panic!("refused")
    };
    assert_eq!(
        event.kind,
        EventKind::CountAdjustment {
            counted: 1,
            direction: Direction::Down,
            unresolved: 3
        }
    );
    assert_eq!(on_hand(&l, 1), 4);
}

#[test]
fn a_tagged_receipt_line_keeps_its_epc_on_the_event() {
    let epc = Epc::from_hex("3074257BF7194E4000001A85").unwrap();
    let cmd = Command::Receipt {
        id: None,
        lines: vec![
            ReceiptLine::tagged(gtin(1), epc.clone()),
            ReceiptLine::units(gtin(2), 5),
        ],
        staff: Default::default(),
    };
    let e = plan(&cmd, &who(), &Loaded::default(), stamp(3)).unwrap();
    assert_eq!(e.lines[0].epc, Some(epc));
    assert_eq!(e.lines[0].qty, 1);
    assert_eq!(e.lines[1].epc, None);
    assert_eq!(e.lines[1].qty, 5);
}

#[test]
fn plan_generates_a_v7_id_from_the_stamp() {
    let cmd = Command::Receipt {
        id: None,
        lines: vec![ReceiptLine::units(gtin(1), 1)],
        staff: Default::default(),
    };
    let e = plan(&cmd, &who(), &Loaded::default(), stamp(9)).unwrap();
    assert_eq!(e.id, EventId::v7(stamp(9).now_ms, [9; 10]));
    assert_eq!(e.at_ms, stamp(9).now_ms);
}

#[test]
fn negative_price_and_empty_lines_are_invalid() {
    let mut l = MemStore::new(who());
    for cmd in [
        sale(None, vec![line(1, 1, Some(-1))]),
        sale(None, vec![]),
        sale(None, vec![line(1, 0, Some(1))]),
    ] {
        assert!(matches!(
            execute(&mut l, &who(), &cmd, stamp(1)).unwrap(),
            Outcome::Refused {
                refusal: Refusal::Invalid(_),
                ..
            }
        ));
    }
    assert!(l.outbox.is_empty());
}

/// A return, approved by a manager (needed unless it names a sale this
/// store recorded).
fn ret(id: Option<u8>, lines: Vec<LineIn>, original_sale: Option<EventId>) -> Command {
    Command::Return {
        id: id.map(|n| EventId::v7(2, [n; 10])),
        lines,
        original_sale,
        staff: manager(),
        checked: None,
    }
}

fn recorded(out: Outcome) -> Event {
    match out {
        Outcome::Recorded { event, new: true } => event,
        other => panic!("not recorded: {other:?}"),
    }
}

#[test]
fn a_return_against_a_sale_is_refunded_at_its_price_and_bounded_by_it() {
    let mut l = MemStore::new(who());
    l.set_price(gtin(1), 500);
    receive(&mut l, 1, 10);
    receive(&mut l, 2, 10);
    let s = recorded(
        execute(
            &mut l,
            &who(),
            &sale(None, vec![line(1, 3, Some(150)), line(2, 1, Some(80))]).with_staff(manager()),
            stamp(1),
        )
        .unwrap(),
    );
    // Refunded at the 150 it was sold at, not the catalog's 500.
    let r = recorded(
        execute(
            &mut l,
            &who(),
            &ret(None, vec![line(1, 2, None)], Some(s.id)),
            stamp(2),
        )
        .unwrap(),
    );
    assert_eq!(r.lines[0].unit_price_minor, 150);
    assert_eq!(on_hand(&l, 1), 9);
    let before = l.clone();
    let refused = |l: &mut MemStore, lines, n| match execute(
        l,
        &who(),
        &ret(None, lines, Some(s.id)),
        stamp(n),
    )
    .unwrap()
    {
        Outcome::Refused { refusal, demand } => {
            assert!(demand.is_empty());
            refusal
        }
        other => panic!("not refused: {other:?}"),
    };
    // One of the three is left to return.
    assert_eq!(
        refused(&mut l, vec![line(1, 2, None)], 3),
        Refusal::ExceedsSale {
            sale: s.id,
            gtin: gtin(1),
            requested: 2,
            returnable: 1
        }
    );
    // Two lines of the same item count together.
    assert!(matches!(
        refused(&mut l, vec![line(1, 1, None), line(1, 1, None)], 4),
        Refusal::ExceedsSale { requested: 2, .. }
    ));
    // An item the sale did not sell: nothing returnable.
    assert_eq!(
        refused(&mut l, vec![line(3, 1, Some(10))], 5),
        Refusal::ExceedsSale {
            sale: s.id,
            gtin: gtin(3),
            requested: 1,
            returnable: 0
        }
    );
    // A refund above the price paid is invalid.
    assert!(matches!(
        refused(&mut l, vec![line(2, 1, Some(81))], 6),
        Refusal::Invalid(_)
    ));
    // The refusals changed nothing.
    assert_eq!(l.outbox, before.outbox);
    assert_eq!(l.returned, before.returned);
    assert_eq!(l.replica.journal.len(), before.replica.journal.len());
    assert_eq!(on_hand(&l, 1), 9);
    // The last unit, at a lower price (a damaged item), and the other item.
    let r = recorded(
        execute(
            &mut l,
            &who(),
            &ret(
                None,
                vec![line(1, 1, Some(100)), line(2, 1, None)],
                Some(s.id),
            ),
            stamp(7),
        )
        .unwrap(),
    );
    assert_eq!(
        r.lines
            .iter()
            .map(|l| l.unit_price_minor)
            .collect::<Vec<_>>(),
        [100, 80]
    );
    assert_eq!(
        l.returned[&s.id],
        BTreeMap::from([(gtin(1), 3), (gtin(2), 1)])
    );
    assert_eq!(
        refused(&mut l, vec![line(2, 1, None)], 8),
        Refusal::ExceedsSale {
            sale: s.id,
            gtin: gtin(2),
            requested: 1,
            returnable: 0
        }
    );
}

#[test]
fn a_retried_return_counts_once_and_only_sales_can_be_named() {
    let mut l = MemStore::new(who());
    l.set_price(gtin(1), 40);
    let receipt = Command::Receipt {
        id: Some(EventId::v7(3, [1; 10])),
        lines: vec![ReceiptLine::units(gtin(1), 5)],
        staff: Default::default(),
    };
    let receipt = recorded(execute(&mut l, &who(), &receipt, stamp(1)).unwrap());
    let s = recorded(
        execute(
            &mut l,
            &who(),
            &sale(Some(1), vec![line(1, 2, None)]),
            stamp(2),
        )
        .unwrap(),
    );
    let r = ret(Some(9), vec![line(1, 2, None)], Some(s.id));
    recorded(execute(&mut l, &who(), &r, stamp(3)).unwrap());
    assert!(matches!(
        execute(&mut l, &who(), &r, stamp(4)).unwrap(),
        Outcome::Recorded { new: false, .. }
    ));
    assert_eq!(l.returned[&s.id][&gtin(1)], 2);
    assert_eq!(on_hand(&l, 1), 5);
    // A receipt is not a sale.
    assert!(matches!(
        execute(
            &mut l,
            &who(),
            &ret(None, vec![line(1, 1, None)], Some(receipt.id)),
            stamp(5)
        )
        .unwrap(),
        Outcome::Refused {
            refusal: Refusal::Invalid(_),
            ..
        }
    ));
    // A sale this store never recorded (another store's) cannot be
    // checked: priced from the catalog and taken back.
    let elsewhere = EventId::v7(4, [4; 10]);
    let r = recorded(
        execute(
            &mut l,
            &who(),
            &ret(None, vec![line(1, 3, None)], Some(elsewhere)),
            stamp(6),
        )
        .unwrap(),
    );
    assert_eq!(r.lines[0].unit_price_minor, 40);
    assert!(!l.returned.contains_key(&elsewhere));
}

#[test]
fn a_tagged_return_must_name_the_sale_that_sold_the_tag() {
    let mut l = MemStore::new(who());
    let tag = |hex: &str| Epc::from_hex(hex).unwrap();
    let (a, b) = (
        tag("3074257BF7194E4000001A85"),
        tag("3074257BF7194E4000001A86"),
    );
    for epc in [&a, &b] {
        let cmd = Command::Receipt {
            id: None,
            lines: vec![ReceiptLine::tagged(gtin(1), epc.clone())],
            staff: Default::default(),
        };
        recorded(execute(&mut l, &who(), &cmd, stamp(epc.as_bytes()[11])).unwrap());
    }
    let tagged = |epc: &Epc| LineIn {
        epc: Some(epc.clone()),
        ..line(1, 1, Some(900))
    };
    let s1 = recorded(execute(&mut l, &who(), &sale(None, vec![tagged(&a)]), stamp(1)).unwrap());
    let s2 = recorded(execute(&mut l, &who(), &sale(None, vec![tagged(&b)]), stamp(2)).unwrap());
    let wrong = ret(
        None,
        vec![LineIn {
            unit_price_minor: None,
            ..tagged(&b)
        }],
        Some(s1.id),
    );
    assert!(matches!(
        execute(&mut l, &who(), &wrong, stamp(3)).unwrap(),
        Outcome::Refused {
            refusal: Refusal::Invalid(_),
            ..
        }
    ));
    let right = ret(
        None,
        vec![LineIn {
            unit_price_minor: None,
            ..tagged(&b)
        }],
        Some(s2.id),
    );
    let r = recorded(execute(&mut l, &who(), &right, stamp(4)).unwrap());
    assert_eq!(r.lines[0].unit_price_minor, 900);
}

proptest::proptest! {
    /// However returns are made against this store's sales, no sale
    /// gets more of an item back than it sold, nor refunds more than it
    /// took in; and a return is refused exactly when it would.
    #[test]
    fn returns_never_exceed_their_sale(
        ops in proptest::collection::vec(
            (proptest::bool::ANY, 0usize..8, 1u64..4, 1u64..4, proptest::option::of(0i64..120)),
            1..60,
        )
    ) {
        let mut l = MemStore::new(who());
        for g in 1..4 {
            receive(&mut l, g, 1_000);
        }
        let mut sales: Vec<Event> = Vec::new();
        // Model: units returned per (sale, item).
        let mut model: BTreeMap<(EventId, Gtin), u64> = BTreeMap::new();
        for (n, (is_sale, pick, g, qty, price)) in ops.into_iter().enumerate() {
            let st = Stamp { now_ms: 1_000 + n as u64, random: [0; 10] };
            if is_sale || sales.is_empty() {
                let cmd = sale(None, vec![line(g, qty, Some(100)), line(1, 1, Some(60))]);
                sales.push(recorded(execute(&mut l, &who(), &cmd, st).unwrap()));
                continue;
            }
            let s = &sales[pick % sales.len()];
            let sold: u64 = s.lines.iter().filter(|x| x.gtin == gtin(g)).map(|x| x.qty).sum();
            let lowest = s.lines.iter().filter(|x| x.gtin == gtin(g)).map(|x| x.unit_price_minor).min();
            let earlier = model.get(&(s.id, gtin(g))).copied().unwrap_or(0);
            let out = execute(&mut l, &who(), &ret(None, vec![line(g, qty, price)], Some(s.id)), st).unwrap();
            let price_ok = match (price, lowest) {
                (Some(p), Some(at)) => p <= at,
                _ => true,
            };
            match out {
                Outcome::Recorded { event, new: true } => {
                    proptest::prop_assert!(price_ok && earlier + qty <= sold);
                    proptest::prop_assert_eq!(Some(event.lines[0].unit_price_minor), price.or(lowest));
                    *model.entry((s.id, gtin(g))).or_default() += qty;
                }
                Outcome::Refused { refusal: Refusal::ExceedsSale { returnable, .. }, .. } => {
                    proptest::prop_assert!(price_ok && earlier + qty > sold);
                    proptest::prop_assert_eq!(returnable, sold - earlier);
                }
                Outcome::Refused { refusal: Refusal::Invalid(_), .. } => {
                    proptest::prop_assert!(!price_ok);
                }
                other => proptest::prop_assert!(false, "{:?}", other),
            }
        }
        // The invariant, from the journal alone.
        for s in &sales {
            let mut back: BTreeMap<Gtin, (u64, i64)> = BTreeMap::new();
            for e in l.replica.journal.iter() {
                if e.kind == (EventKind::Return { original_sale: Some(s.id) }) {
                    for x in &e.lines {
                        let b = back.entry(x.gtin).or_default();
                        b.0 += x.qty;
                        b.1 += x.unit_price_minor * x.qty as i64;
                    }
                }
            }
            for (g, (units, refund)) in back {
                let sold = s.lines.iter().filter(|x| x.gtin == g);
                proptest::prop_assert!(units <= sold.clone().map(|x| x.qty).sum::<u64>());
                proptest::prop_assert!(refund <= sold.map(|x| x.unit_price_minor * x.qty as i64).sum::<i64>());
            }
        }
    }
}

#[test]
fn a_tag_comes_back_only_as_the_item_it_was_sold_as() {
    let epc = Epc::from_hex("3074257BF7194E4000001A85").unwrap();
    let tagged = |g, price| LineIn {
        epc: Some(epc.clone()),
        ..line(g, 1, price)
    };
    let mut l = MemStore::new(who());
    receive(&mut l, 1, 5);
    let s = recorded(
        execute(
            &mut l,
            &who(),
            &sale(None, vec![tagged(1, Some(100))]),
            stamp(1),
        )
        .unwrap(),
    );
    // Named sale or not, another item is refused; the right one is taken.
    for original in [Some(s.id), None] {
        match execute(
            &mut l,
            &who(),
            &ret(None, vec![tagged(2, Some(100))], original),
            stamp(2),
        )
        .unwrap()
        {
            Outcome::Refused {
                refusal: Refusal::Invalid(d),
                ..
            } => assert!(d.contains("was sold as"), "{d}"),
            other => panic!("{other:?}"),
        }
    }
    recorded(
        execute(
            &mut l,
            &who(),
            &ret(None, vec![tagged(1, Some(100))], None),
            stamp(3),
        )
        .unwrap(),
    );
}

#[test]
fn a_refund_the_store_cannot_check_needs_a_managers_approval() {
    let mut l = MemStore::new(who());
    l.set_price(gtin(1), 500);
    receive(&mut l, 1, 5);
    let sold = recorded(
        execute(
            &mut l,
            &who(),
            &sale(None, vec![line(1, 2, None)]),
            stamp(1),
        )
        .unwrap(),
    );
    let before = l.clone();
    let elsewhere = EventId::v7(9, [9; 10]);
    for original in [None, Some(elsewhere)] {
        let unapproved = ret(None, vec![line(1, 1, None)], original).with_staff(Staff::default());
        match execute(&mut l, &who(), &unapproved, stamp(2)).unwrap() {
            Outcome::Refused {
                refusal: Refusal::ApprovalRequired(what),
                ..
            } => assert!(what.contains("refund"), "{what}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(l.outbox, before.outbox, "a refused refund changes nothing");
        assert_eq!(on_hand(&l, 1), on_hand(&before, 1));
    }
    // With the receipt of a sale recorded here, no approval is needed and
    // none is an exception.
    let checked = ret(None, vec![line(1, 1, None)], Some(sold.id)).with_staff(Staff::default());
    let e = recorded(execute(&mut l, &who(), &checked, stamp(3)).unwrap());
    assert!(e.exceptions().is_empty());
    // Approved: recorded with who keyed and who approved, an exception.
    let e = recorded(
        execute(
            &mut l,
            &who(),
            &ret(None, vec![line(1, 1, None)], None),
            stamp(4),
        )
        .unwrap(),
    );
    assert_eq!(e.staff, manager());
    assert_eq!(
        e.exceptions(),
        vec![crate::event::Exception::NoReceiptRefund]
    );
}

#[test]
fn a_price_other_than_the_catalogs_needs_approval_and_is_recorded() {
    let mut l = MemStore::new(who());
    l.set_price(gtin(1), 500);
    receive(&mut l, 1, 5);
    let before = l.clone();
    // The catalog's own price, given or not, needs nothing; an item the
    // catalog does not know has no price to override.
    for (n, price) in [(10, None), (11, Some(500))] {
        let e = recorded(
            execute(
                &mut l,
                &who(),
                &sale(None, vec![line(1, 1, price)]),
                stamp(n),
            )
            .unwrap(),
        );
        assert!(e.price_overrides.is_empty() && e.exceptions().is_empty());
    }
    receive(&mut l, 2, 1);
    let e = recorded(
        execute(
            &mut l,
            &who(),
            &sale(None, vec![line(2, 1, Some(70))]),
            stamp(2),
        )
        .unwrap(),
    );
    assert!(e.price_overrides.is_empty());
    let after_plain = l.clone();
    let markdown = sale(None, vec![line(1, 1, Some(450))]);
    match execute(&mut l, &who(), &markdown, stamp(3)).unwrap() {
        Outcome::Refused {
            refusal: Refusal::ApprovalRequired(what),
            ..
        } => assert!(what.contains("keyed at 450 (catalog 500)"), "{what}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(l.outbox, after_plain.outbox);
    assert_eq!(on_hand(&l, 1), on_hand(&after_plain, 1));
    assert_ne!(l.outbox, before.outbox);
    // Approved: the catalog price it replaced is on the event; within
    // rights the approval is no override.
    let e = recorded(execute(&mut l, &who(), &markdown.with_staff(manager()), stamp(4)).unwrap());
    assert_eq!(
        e.price_overrides,
        vec![crate::event::PriceOverride {
            gtin: gtin(1),
            catalog_minor: 500,
            keyed_minor: 450,
        }]
    );
    assert!(!e.is_override());
    assert_eq!(e.exceptions(), vec![crate::event::Exception::PriceOverride]);
    assert_eq!(
        e.staff.approval.as_ref().map(|a| a.approver.as_str()),
        Some("mgr")
    );
    crate::limits::check_event(&e).unwrap();
}

/// A label's price is the item's price only where a label can carry one:
/// a variable-measure item. For any other item, a "label" price is keyed
/// and needs a manager like any other price off the catalog.
#[test]
fn a_label_price_is_no_override_only_for_a_variable_measure_item() {
    let mut l = MemStore::new(who());
    // 21 12345 00000 8: a restricted-circulation number (prefix 21).
    let (cheese, pen) = (211_234_500_000, 1);
    for g in [cheese, pen] {
        l.set_price(gtin(g), 1999);
        receive(&mut l, g, 5);
    }
    let label = |g: u64, price: i64| LineIn {
        price_from_label: true,
        ..line(g, 1, Some(price))
    };
    let e = recorded(
        execute(
            &mut l,
            &who(),
            &sale(None, vec![label(cheese, 1234)]),
            stamp(1),
        )
        .unwrap(),
    );
    assert!(e.price_overrides.is_empty() && e.exceptions().is_empty());
    assert_eq!(e.lines[0].unit_price_minor, 1234);
    let before = l.clone();
    match execute(&mut l, &who(), &sale(None, vec![label(pen, 1)]), stamp(2)).unwrap() {
        Outcome::Refused {
            refusal: Refusal::ApprovalRequired(what),
            ..
        } => assert!(what.contains("keyed at 1 (catalog 1999)"), "{what}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(l.outbox, before.outbox);
}

#[test]
fn who_keyed_an_event_is_recorded_and_a_retry_may_come_from_another_till() {
    let mut l = MemStore::new(who());
    l.set_price(gtin(1), 500);
    let keyed = Staff {
        cashier: Some("c-1".into()),
        till: Some("till-1".into()),
        approval: None,
    };
    let receipt = Command::Receipt {
        id: Some(EventId::v7(5, [5; 10])),
        lines: vec![ReceiptLine::units(gtin(1), 3)],
        staff: keyed.clone(),
    };
    let e = recorded(execute(&mut l, &who(), &receipt, stamp(1)).unwrap());
    assert_eq!(e.staff, keyed);
    let again = receipt.with_staff(Staff::default());
    assert!(matches!(
        execute(&mut l, &who(), &again, stamp(2)).unwrap(),
        Outcome::Recorded { new: false, .. }
    ));
    // A return re-posted with another approval is not a retry.
    let r = ret(Some(3), vec![line(1, 1, None)], None);
    recorded(execute(&mut l, &who(), &r, stamp(3)).unwrap());
    let mut other = manager();
    other.approval = Some(Approval {
        approver: "another".into(),
        reason: "checked".into(),
    });
    match execute(&mut l, &who(), &r.with_staff(other), stamp(4)).unwrap() {
        Outcome::Refused {
            refusal: Refusal::Invalid(d),
            ..
        } => assert!(d.contains("approval"), "{d}"),
        other => panic!("{other:?}"),
    }
}

fn allocated(order_id: &str, fulfilment: crate::fulfilment::Fulfilment) -> OrderAllocation {
    OrderAllocation {
        order_id: order_id.into(),
        fulfilment,
        lines: vec![crate::routing::AllocatedLine {
            gtin: gtin(1),
            qty: 2,
        }],
        status: crate::fulfilment::Status::Allocated,
        at_ms: 1,
    }
}

fn fulfil(id: u8, order_id: &str, to: crate::fulfilment::Status) -> Command {
    Command::Fulfil {
        id: Some(EventId::v7(1, [id; 10])),
        order_id: order_id.into(),
        to,
        staff: Default::default(),
    }
}

#[test]
fn a_store_moves_its_allocation_forward_by_events_that_move_no_stock() {
    use crate::fulfilment::{Fulfilment, MoveError, Status};
    let mut l = MemStore::new(who());
    receive(&mut l, 1, 5);
    let out = execute(
        &mut l,
        &who(),
        &fulfil(1, "web-1", Status::Picked),
        stamp(1),
    )
    .unwrap();
    assert!(
        matches!(&out, Outcome::Refused { refusal: Refusal::UnknownOrder(o), .. } if o == "web-1"),
        "{out:?}"
    );
    merge_allocations(&mut l, &[allocated("web-1", Fulfilment::Pickup)]).unwrap();
    let before = on_hand(&l, 1);
    let out = execute(
        &mut l,
        &who(),
        &fulfil(2, "web-1", Status::Picked),
        stamp(2),
    )
    .unwrap();
    let Outcome::Recorded { event, new: true } = out else {
        panic!("{out:?}");
    };
    assert!(event.lines.is_empty());
    assert_eq!(
        event.kind,
        EventKind::Fulfilment {
            order_id: "web-1".into(),
            status: Status::Picked
        }
    );
    assert_eq!(l.allocations["web-1"].status, Status::Picked);
    assert_eq!(l.outbox.len(), 2, "synced like every event");
    // A retry of the same id is the recorded move; another move under it is not.
    let again = execute(
        &mut l,
        &who(),
        &fulfil(2, "web-1", Status::Picked),
        stamp(3),
    )
    .unwrap();
    assert!(matches!(again, Outcome::Recorded { new: false, .. }));
    let other = execute(
        &mut l,
        &who(),
        &fulfil(2, "web-1", Status::Collected),
        stamp(3),
    )
    .unwrap();
    assert!(matches!(
        other,
        Outcome::Refused {
            refusal: Refusal::Invalid(_),
            ..
        }
    ));
    // Shipping a pickup order is refused, collecting it goes.
    let ship = execute(
        &mut l,
        &who(),
        &fulfil(3, "web-1", Status::Shipped),
        stamp(4),
    )
    .unwrap();
    assert!(matches!(
        ship,
        Outcome::Refused {
            refusal: Refusal::Move {
                error: MoveError::WrongFulfilment(Fulfilment::Pickup, Status::Shipped),
                ..
            },
            ..
        }
    ));
    execute(
        &mut l,
        &who(),
        &fulfil(4, "web-1", Status::Collected),
        stamp(5),
    )
    .unwrap();
    assert_eq!(l.allocations["web-1"].status, Status::Collected);
    assert_eq!(on_hand(&l, 1), before, "the hub's order took the units");
    // A store never cancels: HQ does.
    let cancel = execute(
        &mut l,
        &who(),
        &fulfil(5, "web-1", Status::Cancelled),
        stamp(6),
    )
    .unwrap();
    assert!(matches!(
        cancel,
        Outcome::Refused {
            refusal: Refusal::Invalid(_),
            ..
        }
    ));
}

#[test]
fn the_hubs_page_never_undoes_a_move_made_here_and_brings_cancellations() {
    use crate::fulfilment::{Fulfilment, Status};
    let mut l = MemStore::new(who());
    let a = allocated("web-2", Fulfilment::Ship);
    let b = allocated("web-3", Fulfilment::Ship);
    assert_eq!(
        merge_allocations(&mut l, &[a.clone(), b.clone()])
            .unwrap()
            .len(),
        2
    );
    execute(
        &mut l,
        &who(),
        &fulfil(1, "web-2", Status::Picked),
        stamp(1),
    )
    .unwrap();
    // The hub's page, sent before it heard of the pick, and HQ's cancel.
    let cancelled = OrderAllocation {
        status: Status::Cancelled,
        ..b
    };
    let changed = merge_allocations(&mut l, &[a, cancelled]).unwrap();
    assert_eq!(l.allocations["web-2"].status, Status::Picked);
    assert_eq!(l.allocations["web-3"].status, Status::Cancelled);
    assert_eq!(changed.len(), 1);
    let refused = execute(
        &mut l,
        &who(),
        &fulfil(2, "web-3", Status::Shipped),
        stamp(2),
    )
    .unwrap();
    assert!(matches!(
        refused,
        Outcome::Refused {
            refusal: Refusal::Move { .. },
            ..
        }
    ));
}

#[test]
fn a_transfer_leaves_the_sender_within_its_rights_and_arrives_once_at_its_destination() {
    use crate::transfer::TransferStatus;
    let (a, b) = (
        who(),
        Identity {
            replica: ReplicaId::new("s2").unwrap(),
            location: LocationId::new("s2").unwrap(),
        },
    );
    let mut sa = MemStore::new(a.clone());
    let mut sb = MemStore::new(b.clone());
    receive(&mut sa, 1, 5);
    let out = |id: u8, qty: u64| Command::TransferOut {
        id: Some(EventId::v7(1, [id; 10])),
        transfer_id: "t-1".into(),
        to: b.location.clone(),
        lines: vec![ReceiptLine::units(gtin(1), qty)],
        staff: Default::default(),
    };
    let refused = execute(&mut sa, &a, &out(1, 6), stamp(1)).unwrap();
    assert!(matches!(
        refused,
        Outcome::Refused {
            refusal: Refusal::InsufficientStock { .. },
            ..
        }
    ));
    let sent = execute(&mut sa, &a, &out(2, 3), stamp(2)).unwrap();
    assert!(
        matches!(sent, Outcome::Recorded { new: true, .. }),
        "{sent:?}"
    );
    assert_eq!(on_hand(&sa, 1), 2);
    let t = sa.transfers["t-1"].clone();
    assert_eq!(t.status, TransferStatus::InTransit);
    // A retry is the recorded transfer; the id cannot name a second one.
    let again = execute(&mut sa, &a, &out(2, 3), stamp(3)).unwrap();
    assert!(matches!(again, Outcome::Recorded { new: false, .. }));
    let reused = execute(&mut sa, &a, &out(3, 1), stamp(4)).unwrap();
    assert!(matches!(
        reused,
        Outcome::Refused {
            refusal: Refusal::Invalid(_),
            ..
        }
    ));

    let receive_t = |id: u8| Command::TransferIn {
        id: Some(EventId::v7(2, [id; 10])),
        transfer_id: "t-1".into(),
        staff: Default::default(),
    };
    let unknown = execute(&mut sb, &b, &receive_t(1), stamp(5)).unwrap();
    assert!(matches!(
        unknown,
        Outcome::Refused {
            refusal: Refusal::UnknownTransfer(_),
            ..
        }
    ));
    // The sender cannot receive its own transfer.
    let own = execute(&mut sa, &a, &receive_t(9), stamp(5)).unwrap();
    assert!(matches!(
        own,
        Outcome::Refused {
            refusal: Refusal::Invalid(_),
            ..
        }
    ));
    assert_eq!(
        merge_transfers(&mut sb, std::slice::from_ref(&t))
            .unwrap()
            .len(),
        1
    );
    let got = execute(&mut sb, &b, &receive_t(2), stamp(6)).unwrap();
    let Outcome::Recorded { event, new: true } = got else {
        panic!("{got:?}");
    };
    assert_eq!(event.lines.len(), 1);
    assert_eq!(sb.transfers["t-1"].status, TransferStatus::Received);
    let on_b = sb
        .replica
        .inventory
        .counter(&ItemKey::new(b.location.clone(), gtin(1)))
        .value();
    assert_eq!(on_b, 3);
    let twice = execute(&mut sb, &b, &receive_t(3), stamp(7)).unwrap();
    assert!(matches!(
        twice,
        Outcome::Refused {
            refusal: Refusal::TransferReceived(_),
            ..
        }
    ));
    // The hub's page, older than the receipt, does not undo it.
    merge_transfers(&mut sb, &[t]).unwrap();
    assert_eq!(sb.transfers["t-1"].status, TransferStatus::Received);
    // Conservation from events alone: 5 in at s1 = 2 on hand + 3 sent;
    // 3 arrived at s2.
    let mut events: Vec<Event> = sa.replica.journal.iter().cloned().collect();
    events.extend(sb.replica.journal.iter().cloned());
    let flows = crate::audit::flows(&events);
    let fa = flows[&ItemKey::new(a.location.clone(), gtin(1))];
    let fb = flows[&ItemKey::new(b.location.clone(), gtin(1))];
    assert_eq!((fa.on_hand(), fa.transferred_out), (2, 3));
    assert_eq!((fb.on_hand(), fb.transferred_in), (3, 3));
}

/// A transfer received adds to the destination's stock of the item: the
/// receipt reads the destination's counters for the transfer's lines
/// (the command names none), never applying to an empty one.
#[test]
fn a_received_transfer_adds_to_the_stock_already_there() {
    let (a, b) = (
        who(),
        Identity {
            replica: ReplicaId::new("s2").unwrap(),
            location: LocationId::new("s2").unwrap(),
        },
    );
    let mut sa = MemStore::new(a.clone());
    let mut sb = MemStore::new(b.clone());
    receive(&mut sa, 1, 5);
    let stocked = execute(
        &mut sb,
        &b,
        &Command::Receipt {
            id: None,
            lines: vec![ReceiptLine::units(gtin(1), 4)],
            staff: Default::default(),
        },
        stamp(3),
    )
    .unwrap();
    assert!(matches!(stocked, Outcome::Recorded { new: true, .. }));
    let sent = execute(
        &mut sa,
        &a,
        &Command::TransferOut {
            id: None,
            transfer_id: "t-9".into(),
            to: b.location.clone(),
            lines: vec![ReceiptLine::units(gtin(1), 3)],
            staff: Default::default(),
        },
        stamp(1),
    )
    .unwrap();
    assert!(matches!(sent, Outcome::Recorded { new: true, .. }));
    let t = sa.transfers["t-9"].clone();
    merge_transfers(&mut sb, &[t]).unwrap();
    let got = execute(
        &mut sb,
        &b,
        &Command::TransferIn {
            id: None,
            transfer_id: "t-9".into(),
            staff: Default::default(),
        },
        stamp(2),
    )
    .unwrap();
    assert!(
        matches!(got, Outcome::Recorded { new: true, .. }),
        "{got:?}"
    );
    assert_eq!(sb.on_hand(gtin(1)), 7);
    assert_eq!(sb.rights(gtin(1)), 7);
}
