//! The order screens' flows, action by action: the pick list (F9) fetched
//! page by page, picking by scans (strangers and extras warned about and
//! not counted, `picked` posted once when complete, under one fulfilment
//! id however often it is retried), marking picked by hand, and pickup
//! (F12: an order looked up by its id or barcode, handed over as
//! `collected` or `shipped`, refusals shown with nothing recorded). And
//! property tests of the check-off: a line is never counted beyond its
//! quantity, and `picked` is posted exactly once, when complete.

use proptest::prelude::*;
use tally_agent_api::{ApiError, ErrorBody, OrderList};
use tally_sync::fulfilment::{Fulfilment, MoveError, Status};
use tally_sync::{EventId, Refusal};
use uuid::Uuid;

use super::{bopis_7, gtin_of, move_failed, moved, order, recorded, web_1, Harness, GUM, PEN};
use crate::scan::{ScanError, Scanned};
use crate::state::{
    Action, CheckOff, Dialog, Effect, Key, Level, Listing, OrderWhy, Pick, Pickup, Screen,
};

const MUG: &str = "05901234123457";

fn notice(h: &Harness) -> (Level, String) {
    h.s.notice.clone().expect("a notice")
}

#[test]
fn f9_opens_the_pick_list_with_no_basket_open_and_esc_goes_back() {
    let mut h = Harness::with_basket();
    assert!(h.key(Key::F(9)).is_empty());
    assert_eq!(h.s.screen, Screen::Basket);
    assert!(notice(&h).1.contains("open basket"), "{:?}", h.s.notice);
    assert!(h.key(Key::F(12)).is_empty());
    assert_eq!(h.s.screen, Screen::Basket);

    let mut h = Harness::pick_list(vec![web_1(), bopis_7()]);
    assert_eq!(h.s.screen, Screen::PickList);
    assert_eq!(h.s.orders.list.len(), 2);
    assert_eq!(h.s.orders.selected.as_deref(), Some("web-1"));
    h.key(Key::Down);
    assert_eq!(h.s.orders.selected.as_deref(), Some("bopis-7"));
    h.key(Key::Down);
    assert_eq!(h.s.orders.selected.as_deref(), Some("bopis-7"));
    h.key(Key::Up);
    assert_eq!(h.s.orders.selected.as_deref(), Some("web-1"));
    // Esc clears typing first, then goes back to the basket.
    h.typed("40");
    h.key(Key::Esc);
    assert_eq!((h.s.screen, h.s.input.as_str()), (Screen::PickList, ""));
    h.key(Key::Esc);
    assert_eq!(h.s.screen, Screen::Basket);
    // Ctrl-O and Ctrl-U work as F9 and F12.
    assert_eq!(
        h.key(Key::Ctrl('o')),
        [Effect::ListOrders {
            after: String::new()
        }]
    );
    assert!(h.key(Key::F(12)).is_empty());
    assert_eq!(h.s.screen, Screen::Pickup);
    h.key(Key::Esc);
    assert!(h.key(Key::Ctrl('u')).is_empty());
    assert_eq!(h.s.screen, Screen::Pickup);
}

#[test]
fn the_pick_list_is_fetched_page_by_page_and_keeps_the_selection() {
    let mut h = Harness::pick_list(vec![web_1()]);
    h.act(Action::Orders {
        after: "stale".into(),
        result: Ok(OrderList {
            next: None,
            orders: vec![],
        }),
    });
    assert_eq!(h.s.orders.list.len(), 1, "an answer not awaited is ignored");
    // The periodic refresh: first page full, then the rest.
    let e = h.act(Action::RefreshOrders);
    assert_eq!(
        e,
        [Effect::ListOrders {
            after: String::new()
        }]
    );
    assert!(
        h.act(Action::RefreshOrders).is_empty(),
        "one fetch at a time"
    );
    let a = order(
        "a-1",
        Fulfilment::Ship,
        Status::Allocated,
        &[(PEN, None, 1)],
    );
    let e = h.act(Action::Orders {
        after: String::new(),
        result: Ok(OrderList {
            next: Some("a-1".into()),
            orders: vec![a.clone()],
        }),
    });
    assert_eq!(
        e,
        [Effect::ListOrders {
            after: "a-1".into()
        }]
    );
    assert_eq!(h.s.orders.list.len(), 1, "shown once complete");
    h.act(Action::Orders {
        after: "a-1".into(),
        result: Ok(OrderList {
            next: None,
            orders: vec![bopis_7(), web_1()],
        }),
    });
    assert_eq!(h.s.orders.list.len(), 3);
    assert_eq!(h.s.orders.listing, Listing::Loaded);
    assert_eq!(h.s.orders.selected.as_deref(), Some("web-1"));
    // A failed refresh keeps the list shown.
    h.key(Key::F(9));
    h.act(Action::Orders {
        after: String::new(),
        result: Err(ApiError::Unreachable("connection refused".into())),
    });
    assert_eq!(h.s.orders.list.len(), 3);
    assert!(matches!(h.s.orders.listing, Listing::Failed(_)));
    // Once the agent answers again, the list is asked again.
    let e = h.act(Action::Status(Ok(super::status(true, 0))));
    assert_eq!(
        e,
        [Effect::ListOrders {
            after: String::new()
        }]
    );
    // An empty page ends the list, whatever `next` it names.
    let e = h.act(Action::Orders {
        after: String::new(),
        result: Ok(OrderList {
            next: Some("zz".into()),
            orders: vec![],
        }),
    });
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(h.s.orders.listing, Listing::Loaded);
    assert!(h.s.orders.list.is_empty());
    assert_eq!(h.s.orders.selected, None);
    // The basket ignores the refresh.
    let mut h = Harness::new();
    assert!(h.act(Action::RefreshOrders).is_empty());
}

#[test]
fn scans_check_off_lines_warn_about_strangers_and_extras_and_post_picked_once() {
    let mut h = Harness::pick_list(vec![web_1(), bopis_7()]);
    h.s.cashier = "Bea".into();
    h.s.till = Some("till-2".into());
    // Typed, through the same decoder as the basket's.
    assert!(h.scan("4006381333931").is_empty());
    assert_eq!(h.s.pick_of(&web_1()).counted, [1, 0]);
    assert_eq!(
        notice(&h),
        (
            Level::Info,
            "Pen, blue: 1 of 2 (order web-1: 1 of 3 units).".into()
        )
    );
    assert!(h.scan_item(MUG).is_empty());
    let (level, text) = notice(&h);
    assert_eq!(level, Level::Error);
    assert!(text.contains("NOT in order web-1"), "{text}");
    assert_eq!(h.s.pick_of(&web_1()).counted, [1, 0], "not counted");
    h.scan_item(PEN);
    assert!(h.scan_item(PEN).is_empty());
    let (level, text) = notice(&h);
    assert_eq!(level, Level::Error);
    assert!(text.contains("needs only 2"), "{text}");
    assert!(text.contains("put it back"), "{text}");
    assert_eq!(h.s.pick_of(&web_1()).counted, [2, 0]);
    // The last unit posts `picked`, with a fresh id and who picked it.
    let e = h.scan("96385074");
    let mv = moved(&e);
    assert_eq!((mv.order_id.as_str(), mv.to), ("web-1", Status::Picked));
    assert!(mv.body.fulfilment_id.is_some());
    assert_eq!(mv.body.cashier.as_deref(), Some("Bea"));
    assert_eq!(mv.body.till.as_deref(), Some("till-2"));
    assert_eq!(h.s.dialog, Some(Dialog::Sending));
    // Waiting: scans are not counted, keys do nothing.
    assert!(h.scan_item(GUM).is_empty());
    assert!(h.key(Key::F(5)).is_empty());
    let e = h.act(recorded(&mv));
    assert_eq!(
        e,
        [Effect::ListOrders {
            after: String::new()
        }]
    );
    assert_eq!(h.s.dialog, None);
    assert_eq!(h.s.orders.list[0].status, Status::Picked);
    assert!(h.s.orders.picks.is_empty());
    assert!(notice(&h).1.contains("web-1 recorded as picked"));
    // A picked order takes no more scans; nothing else is ever posted.
    assert!(h.scan_item(PEN).is_empty());
    assert!(notice(&h).1.contains("picked already"), "{:?}", h.s.notice);
    let posts = h
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::Fulfil(_)))
        .count();
    assert_eq!(posts, 1);
}

#[test]
fn an_orders_barcode_selects_it_and_an_unknown_one_is_named() {
    let mut h = Harness::pick_list(vec![web_1(), bopis_7()]);
    h.scan("bopis-7");
    assert_eq!(h.s.orders.selected.as_deref(), Some("bopis-7"));
    // Scanned as Code 128, with its AIM identifier.
    h.act(Action::Scanned(Err(ScanError::NoGtin {
        raw: "]C0web-1".into(),
        symbology: "code-128".into(),
    })));
    assert_eq!(h.s.orders.selected.as_deref(), Some("web-1"));
    h.scan("nope-9");
    assert_eq!(
        notice(&h),
        (
            Level::Error,
            "No open order nope-9 on the pick list (F9 refreshes it).".into()
        )
    );
    assert_eq!(h.s.orders.selected.as_deref(), Some("web-1"));
    // A bad item code says why, as in the basket.
    h.scan("4006381333932");
    assert!(notice(&h).1.contains("check digit"), "{:?}", h.s.notice);
    // An order id that reads as a GTIN selects its order.
    let digits = order(
        "4006381333931",
        Fulfilment::Pickup,
        Status::Allocated,
        &[(GUM, None, 1)],
    );
    let mut h = Harness::pick_list(vec![web_1(), digits]);
    h.scan("4006381333931");
    assert_eq!(h.s.orders.selected.as_deref(), Some("4006381333931"));
    assert!(h.s.orders.picks.is_empty(), "not counted as a pen");
}

#[test]
fn a_tag_counts_once() {
    let tagged = order(
        "tags-1",
        Fulfilment::Ship,
        Status::Allocated,
        &[("80614141123458", Some("Jacket"), 2)],
    );
    let mut h = Harness::pick_list(vec![tagged]);
    h.scan("3074257BF7194E4000001A85");
    assert!(h.scan("3074257BF7194E4000001A85").is_empty());
    assert!(notice(&h).1.contains("counted already"), "{:?}", h.s.notice);
    assert_eq!(h.s.orders.picks["tags-1"].counted, [1]);
    let e = h.act(Action::Scanned(Ok(Scanned {
        raw: "x".into(),
        gtin: "80614141123458".into(),
        epc: Some("3074257BF7194E4000001A86".into()),
        measure: None,
    })));
    assert_eq!(moved(&e).to, Status::Picked);
}

#[test]
fn a_pick_in_doubt_is_retried_with_the_same_fulfilment_id_or_dropped() {
    let mut h = Harness::pick_list(vec![web_1(), bopis_7()]);
    h.scan_item(PEN);
    h.scan_item(PEN);
    let first = moved(&h.scan_item(GUM));
    h.act(move_failed(
        &first,
        ApiError::Unreachable("operation timed out".into()),
    ));
    assert!(matches!(h.s.dialog, Some(Dialog::MoveInDoubt { .. })));
    assert!(h.s.orders.in_doubt);
    // Back from the dialog: locked until retried or dropped.
    h.key(Key::Esc);
    assert!(h.key(Key::Esc).is_empty());
    assert_eq!(h.s.screen, Screen::PickList, "cannot leave a move in doubt");
    h.scan_item(PEN);
    assert_eq!(h.s.orders.picks["web-1"].counted, [2, 1], "nothing counted");
    assert!(notice(&h).1.contains("F5 retries it"), "{:?}", h.s.notice);
    assert!(h.key(Key::F(12)).is_empty());
    assert_eq!(h.s.screen, Screen::PickList);
    let again = moved(&h.key(Key::F(5)));
    assert_eq!(again, first, "the same request, same fulfilment id");
    // Answers to another id are stale.
    let mut other = first.clone();
    other.body.fulfilment_id = Some(EventId(Uuid::from_u128(999)));
    assert!(h.act(recorded(&other)).is_empty());
    assert_eq!(h.s.dialog, Some(Dialog::Sending));
    h.act(move_failed(
        &first,
        ApiError::Unavailable("stopping".into()),
    ));
    let again = moved(&h.key(Key::Char('r')));
    assert_eq!(again, first);
    h.act(recorded(&first));
    assert_eq!(h.s.orders.moving, None);
    assert_eq!(h.s.orders.list[0].status, Status::Picked);

    // Dropped on purpose: the list shows where it stands.
    let mut h = Harness::pick_list(vec![web_1()]);
    h.scan_item(PEN);
    h.scan_item(PEN);
    let mv = moved(&h.scan_item(GUM));
    h.act(move_failed(&mv, ApiError::Unreachable("timed out".into())));
    let e = h.key(Key::F(8));
    assert_eq!(
        e,
        [Effect::ListOrders {
            after: String::new()
        }]
    );
    assert_eq!(h.s.orders.moving, None);
    assert!(!h.s.orders.in_doubt);
    assert!(notice(&h).1.contains("may or may not be recorded"));
}

#[test]
fn f5_marks_picked_by_hand_asking_first_when_units_are_missing() {
    let mut h = Harness::pick_list(vec![web_1()]);
    h.scan_item(PEN);
    assert!(h.key(Key::F(5)).is_empty());
    assert_eq!(
        h.s.dialog,
        Some(Dialog::ConfirmPicked {
            order_id: "web-1".into()
        })
    );
    assert!(h.key(Key::Char('n')).is_empty());
    assert_eq!(h.s.dialog, None);
    h.key(Key::F(5));
    let mv = moved(&h.key(Key::Char('y')));
    assert_eq!((mv.order_id.as_str(), mv.to), ("web-1", Status::Picked));
    h.act(recorded(&mv));
    // Picked already: F5 says so and posts nothing.
    assert!(h.key(Key::F(5)).is_empty());
    assert!(notice(&h).1.contains("picked already"));
    // F8 clears the selected order's scans.
    let mut h = Harness::pick_list(vec![web_1()]);
    h.scan_item(PEN);
    h.key(Key::F(8));
    assert!(h.s.orders.picks.is_empty());
}

#[test]
fn a_refused_pick_says_hq_cancelled_it_and_records_nothing() {
    let mut h = Harness::pick_list(vec![web_1()]);
    h.scan_item(PEN);
    h.scan_item(PEN);
    let mv = moved(&h.scan_item(GUM));
    let mut body = ErrorBody::new("order_status", "order web-1: the allocation was cancelled");
    body.order_id = Some("web-1".into());
    body.status = Some(Status::Cancelled);
    let e = h.act(move_failed(&mv, ApiError::Conflict(Box::new(body))));
    assert_eq!(
        e,
        [Effect::ListOrders {
            after: String::new()
        }]
    );
    let Some(Dialog::OrderRefused(r)) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert_eq!(r.order_id, "web-1");
    assert_eq!(r.to, Some(Status::Picked));
    assert!(matches!(
        r.why,
        OrderWhy::Status {
            status: Some(Status::Cancelled),
            ..
        }
    ));
    assert_eq!(h.s.orders.moving, None);
    assert!(h.s.orders.picks.is_empty());
    assert_eq!(h.s.orders.list[0].status, Status::Cancelled);
    h.key(Key::Esc);
    assert_eq!(h.s.dialog, None);
}

#[test]
fn pickup_looks_up_an_order_and_hands_it_over_by_its_fulfilment() {
    let mut h = Harness::new();
    h.key(Key::F(12));
    assert_eq!(h.s.screen, Screen::Pickup);
    h.typed("bopis-7");
    assert_eq!(h.key(Key::Enter), [Effect::LookupOrder("bopis-7".into())]);
    // F5 before the answer: nothing to hand over yet.
    assert!(h.key(Key::F(5)).is_empty());
    h.act(Action::Order {
        order_id: "bopis-7".into(),
        result: Ok(bopis_7()),
    });
    assert_eq!(h.s.orders.pickup, Pickup::Shown(bopis_7()));
    assert!(notice(&h).1.contains("F5 (collected)"), "{:?}", h.s.notice);
    let mv = moved(&h.key(Key::F(5)));
    assert_eq!(
        (mv.order_id.as_str(), mv.to),
        ("bopis-7", Status::Collected)
    );
    assert!(mv.body.fulfilment_id.is_some());
    h.act(recorded(&mv));
    let Some(Dialog::HandedOver { order, already }) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert_eq!((order.order_id.as_str(), *already), ("bopis-7", false));
    assert_eq!(h.s.orders.pickup, Pickup::Empty);
    // The next scan closes the confirmation and looks its order up: a
    // ship order is shipped, picking skipped.
    let e = h.act(Action::Scanned(Err(ScanError::NoGtin {
        raw: "]C0web-1".into(),
        symbology: "code-128".into(),
    })));
    assert_eq!(e, [Effect::LookupOrder("web-1".into())]);
    assert_eq!(h.s.dialog, None);
    h.act(Action::Order {
        order_id: "web-1".into(),
        result: Ok(web_1()),
    });
    assert!(notice(&h).1.contains("not picked yet"), "{:?}", h.s.notice);
    let mv = moved(&h.key(Key::F(5)));
    assert_eq!(mv.to, Status::Shipped);
    // Already there at the agent (another till): shown as such.
    h.act(Action::Fulfilled {
        order_id: mv.order_id.clone(),
        fulfilment_id: mv.body.fulfilment_id,
        result: Ok(tally_agent_api::FulfilmentRecorded {
            fulfilment_id: None,
            order_id: "web-1".into(),
            order_status: Status::Shipped,
            status: "committed".into(),
        }),
    });
    assert!(matches!(
        h.s.dialog,
        Some(Dialog::HandedOver { already: true, .. })
    ));
}

#[test]
fn pickup_refuses_unknown_cancelled_and_handed_over_orders() {
    let mut h = Harness::new();
    h.key(Key::F(12));
    // Not allocated here (or not synced yet).
    h.scan("nope-1");
    h.act(Action::Order {
        order_id: "nope-1".into(),
        result: Err(ApiError::NotFound),
    });
    let Some(Dialog::OrderRefused(r)) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert_eq!(r.why, OrderWhy::NotHere { item_code: false });
    assert_eq!(r.to, None);
    h.key(Key::Esc);
    // An item's barcode is looked up as an order too, and the refusal
    // says what it reads as.
    assert_eq!(
        h.scan("4006381333931"),
        [Effect::LookupOrder("4006381333931".into())]
    );
    h.act(Action::Order {
        order_id: "4006381333931".into(),
        result: Err(ApiError::NotFound),
    });
    assert!(matches!(
        &h.s.dialog,
        Some(Dialog::OrderRefused(r)) if r.why == OrderWhy::NotHere { item_code: true }
    ));
    h.key(Key::Esc);
    // Cancelled by HQ: F5 records nothing.
    let mut cancelled = bopis_7();
    cancelled.status = Status::Cancelled;
    h.scan("bopis-7");
    h.act(Action::Order {
        order_id: "bopis-7".into(),
        result: Ok(cancelled),
    });
    assert_eq!(notice(&h).0, Level::Error);
    assert!(h.key(Key::F(5)).is_empty());
    assert!(
        notice(&h).1.contains("put the goods back"),
        "{:?}",
        h.s.notice
    );
    // Collected already: nothing to record.
    let mut collected = bopis_7();
    collected.status = Status::Collected;
    h.scan("bopis-7");
    h.act(Action::Order {
        order_id: "bopis-7".into(),
        result: Ok(collected),
    });
    assert!(h.key(Key::F(5)).is_empty());
    assert!(notice(&h).1.contains("collected already"));
    // Shown as picked, cancelled at HQ meanwhile: the agent refuses.
    h.scan("bopis-7");
    h.act(Action::Order {
        order_id: "bopis-7".into(),
        result: Ok(bopis_7()),
    });
    let mv = moved(&h.key(Key::F(5)));
    h.act(move_failed(
        &mv,
        ApiError::Refused(Refusal::Move {
            order_id: "bopis-7".into(),
            error: MoveError::Cancelled,
        }),
    ));
    let Some(Dialog::OrderRefused(r)) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert_eq!(r.to, Some(Status::Collected));
    assert!(matches!(
        r.why,
        OrderWhy::Status {
            status: Some(Status::Cancelled),
            ..
        }
    ));
    assert!(
        matches!(&h.s.orders.pickup, Pickup::Shown(o) if o.status == Status::Cancelled),
        "{:?}",
        h.s.orders.pickup
    );
    assert_eq!(h.s.orders.moving, None);
}

#[test]
fn the_refresh_updates_the_order_shown_at_pickup() {
    let mut h = Harness::new();
    h.key(Key::F(12));
    assert!(h.act(Action::RefreshOrders).is_empty(), "nothing shown");
    h.scan("bopis-7");
    // A stale answer (another id) is ignored.
    h.act(Action::Order {
        order_id: "web-1".into(),
        result: Ok(web_1()),
    });
    assert!(matches!(h.s.orders.pickup, Pickup::Looking { .. }));
    h.act(Action::Order {
        order_id: "bopis-7".into(),
        result: Ok(bopis_7()),
    });
    assert_eq!(
        h.act(Action::RefreshOrders),
        [Effect::LookupOrder("bopis-7".into())]
    );
    let mut cancelled = bopis_7();
    cancelled.status = Status::Cancelled;
    h.act(Action::Order {
        order_id: "bopis-7".into(),
        result: Ok(cancelled),
    });
    let (level, text) = notice(&h);
    assert_eq!(level, Level::Error);
    assert!(text.contains("HQ CANCELLED order bopis-7"), "{text}");
    // A failed refresh keeps what is shown.
    h.act(Action::Order {
        order_id: "bopis-7".into(),
        result: Err(ApiError::Unreachable("refused".into())),
    });
    assert!(matches!(h.s.orders.pickup, Pickup::Shown(_)));
    // Esc clears the order, then goes back to the basket.
    h.key(Key::Esc);
    assert_eq!(h.s.orders.pickup, Pickup::Empty);
    h.key(Key::Esc);
    assert_eq!(h.s.screen, Screen::Basket);
}

#[test]
fn quitting_with_a_move_in_flight_asks() {
    let mut h = Harness::pick_list(vec![bopis_7(), web_1()]);
    h.key(Key::Down);
    h.scan_item(PEN);
    h.scan_item(PEN);
    moved(&h.scan_item(GUM));
    assert!(h.key(Key::F(10)).is_empty());
    assert!(matches!(h.s.dialog, Some(Dialog::ConfirmQuit { .. })));
    assert_eq!(h.key(Key::Char('y')), [Effect::Quit]);
}

/// The quit question over a move being sent, answered "no" after the
/// move's answer came: the sending dialog does not come back (it would
/// wait for an answer already in, swallowing every key).
#[test]
fn declining_to_quit_after_the_answer_came_leaves_no_sending_dialog() {
    let mut h = Harness::pick_list(vec![bopis_7(), web_1()]);
    h.key(Key::Down);
    h.scan_item(PEN);
    h.scan_item(PEN);
    let mv = moved(&h.scan_item(GUM));
    assert_eq!(h.s.dialog, Some(Dialog::Sending));
    h.key(Key::F(10));
    assert!(matches!(h.s.dialog, Some(Dialog::ConfirmQuit { .. })));
    h.act(recorded(&mv));
    h.key(Key::Char('n'));
    assert_eq!(h.s.dialog, None);
    // Declined while still waiting: the sending dialog comes back.
    let mut h = Harness::pick_list(vec![bopis_7(), web_1()]);
    h.key(Key::Down);
    h.scan_item(PEN);
    h.scan_item(PEN);
    moved(&h.scan_item(GUM));
    h.key(Key::F(10));
    h.key(Key::Char('n'));
    assert_eq!(h.s.dialog, Some(Dialog::Sending));
}

/// The GTINs of the property tests (14 digits, valid check digits).
const POOL: [&str; 6] = [
    PEN,
    GUM,
    MUG,
    "00036000291452",
    "09506000134352",
    "10614141000415",
];

proptest! {
    /// Whatever is scanned, a line is never counted beyond its quantity,
    /// an item counts exactly up to what its lines ask for, and the pick
    /// is complete exactly when every line was scanned in full.
    #[test]
    fn check_off_never_counts_beyond_a_lines_qty(
        lines in proptest::collection::vec((0..4usize, 0..4u64), 0..5),
        scans in proptest::collection::vec(0..6usize, 0..40),
    ) {
        let lines: Vec<(&str, Option<&str>, u64)> =
            lines.iter().map(|&(g, q)| (POOL[g], None, q)).collect();
        let o = order("p-1", Fulfilment::Ship, Status::Allocated, &lines);
        let mut pick = Pick::new(&o);
        for &g in &scans {
            let before = pick.clone();
            let checked = pick.check_off(&o, POOL[g], None);
            for (i, l) in o.lines.iter().enumerate() {
                prop_assert!(pick.on_line(i) <= l.qty);
            }
            match checked {
                CheckOff::Counted { line, counted, qty } => {
                    prop_assert_eq!(pick.on_line(line), before.on_line(line) + 1);
                    prop_assert_eq!(counted, pick.on_line(line));
                    prop_assert_eq!(qty, o.lines[line].qty);
                }
                _ => prop_assert_eq!(&pick, &before, "a refused scan changes nothing"),
            }
        }
        for (g, gtin) in POOL.iter().enumerate() {
            let asked: u64 = o.lines.iter().filter(|l| l.gtin == gtin_of(gtin)).map(|l| l.qty).sum();
            let scanned = scans.iter().filter(|&&s| s == g).count() as u64;
            let counted: u64 = (0..o.lines.len())
                .filter(|&i| o.lines[i].gtin == gtin_of(gtin))
                .map(|i| pick.on_line(i))
                .sum();
            prop_assert_eq!(counted, scanned.min(asked));
        }
        let complete = o.lines.iter().enumerate().all(|(i, l)| pick.on_line(i) == l.qty);
        prop_assert_eq!(pick.complete(&o), complete);
    }

    /// Through the terminal: scans of an order's items (one line per
    /// item, as the agent keeps it) and of strangers, in any order, post
    /// `picked` exactly once when the order is complete, and never
    /// otherwise, whether the agent answers at once or not at all.
    #[test]
    fn picked_is_posted_exactly_once_when_complete(
        qtys in proptest::collection::vec(1..4u64, 1..4),
        scans in proptest::collection::vec(0..6usize, 0..30),
        answer in any::<bool>(),
    ) {
        let lines: Vec<(&str, Option<&str>, u64)> =
            qtys.iter().enumerate().map(|(i, &q)| (POOL[i], None, q)).collect();
        let o = order("p-1", Fulfilment::Pickup, Status::Allocated, &lines);
        let mut h = Harness::pick_list(vec![o.clone()]);
        let mut posts = Vec::new();
        for &g in &scans {
            let e = h.scan_item(POOL[g]);
            for effect in &e {
                if let Effect::Fulfil(mv) = effect {
                    posts.push(mv.clone());
                }
            }
            if answer {
                if let Some(mv) = h.s.orders.moving.clone() {
                    h.act(recorded(&mv));
                }
            }
            if let Some(pick) = h.s.orders.picks.get("p-1") {
                for (i, l) in o.lines.iter().enumerate() {
                    prop_assert!(pick.on_line(i) <= l.qty);
                }
            }
        }
        let complete = o.lines.iter().enumerate().all(|(i, l)| {
            scans.iter().filter(|&&g| g == i).count() as u64 >= l.qty
        });
        prop_assert_eq!(posts.len(), usize::from(complete));
        if let Some(mv) = posts.first() {
            prop_assert_eq!(mv.order_id.as_str(), "p-1");
            prop_assert_eq!(mv.to, Status::Picked);
            prop_assert!(mv.body.fulfilment_id.is_some());
        }
    }
}
