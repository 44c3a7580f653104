//! Screens: known states drawn into ratatui's `TestBackend`, read back as
//! text (the basket and its dialogs, the pick list, pickup, transfers).

use ratatui::backend::TestBackend;
use ratatui::Terminal;
use tally_agent_api::{ApiError, ErrorBody};
use tally_sync::fulfilment::Status;
use tally_sync::Refusal;

use super::{bopis_7, committed, epc_of, gtin_of, status, web_1, Harness, PEN};
use crate::render;
use crate::state::{Action, Key, PosState};

/// The screen as lines of text.
fn screen(s: &PosState, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| render::draw(f, s)).unwrap();
    let buf = t.backend().buffer();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect()
}

pub(super) fn text(s: &PosState) -> String {
    screen(s, 80, 24).join("\n")
}

/// The row holding `needle`, for checks along one line.
fn row_with(s: &PosState, needle: &str) -> String {
    screen(s, 80, 24)
        .into_iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle:?} in\n{}", text(s)))
}

#[test]
fn the_basket_shows_names_quantities_prices_and_the_total() {
    let h = Harness::with_basket();
    let pen = row_with(&h.s, "Pen, blue");
    assert!(pen.contains("    2 "), "{pen}");
    assert!(pen.contains("1.29"), "{pen}");
    assert!(pen.contains("2.58"), "{pen}");
    let gum = row_with(&h.s, "Gum");
    assert!(gum.contains("0.50"), "{gum}");
    assert!(gum.contains("> "), "the selected line is marked: {gum}");
    let totals = row_with(&h.s, "TOTAL");
    assert!(totals.contains("2 lines, 3 units"), "{totals}");
    assert!(totals.contains("TOTAL 3.08"), "{totals}");
    let t = text(&h.s);
    assert!(t.contains("Scan or type barcode > _"), "{t}");
    assert!(t.contains("store store-1"), "{t}");
    assert!(t.contains("agent online"), "{t}");
    assert!(!t.contains("OFFLINE"), "{t}");
    assert!(!t.contains("UNREACHABLE"), "{t}");
}

#[test]
fn the_help_line_names_the_keys() {
    let h = Harness::with_basket();
    let help = screen(&h.s, 120, 24)[22..].join(" ");
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for k in [
        "F2 qty",
        "Del void",
        "F5 pay",
        "F6 returns",
        "F9 orders",
        "F11 transfers",
        "F12 pickup",
        "F10 quit",
        "+/- qty",
    ] {
        assert!(help.contains(k), "{k} in {help}");
    }
}

#[test]
fn offline_banner_with_outbox_depth() {
    let mut h = Harness::with_basket();
    h.act(Action::Status(Ok(status(false, 12))));
    let t = text(&h.s);
    assert!(
        t.contains("OFFLINE: hub not reachable. Outbox: 12 events waiting."),
        "{t}"
    );
    assert!(t.contains("Sales are still recorded"), "{t}");
    assert!(t.contains("here and sync later."), "{t}");
    h.act(Action::Status(Ok(status(false, 1))));
    assert!(text(&h.s).contains("Outbox: 1 event waiting"));
}

#[test]
fn a_stopped_sync_and_a_clock_off_the_hubs_are_shown_as_such() {
    let mut h = Harness::new();
    let mut st = status(false, 3);
    st.sync_error = Some("sync refused (event_out_of_window): event 01… refused".into());
    st.hub_clock_offset_ms = Some(-3 * 86_400_000 - 5_000);
    h.act(Action::Status(Ok(st.clone())));
    let t = text(&h.s);
    assert!(
        t.contains("SYNC STOPPED. Outbox: 3 events waiting. Sales are still recorded here."),
        "{t}"
    );
    assert!(t.contains("clock is 3 days ahead of HQ's"), "{t}");
    assert!(t.contains("Call support: sync refused"), "{t}");
    assert!(!t.contains("hub not reachable"), "{t}");
    // The hub out of reach since: offline, the clock still said.
    st.sync_error = None;
    h.act(Action::Status(Ok(st.clone())));
    let t = text(&h.s);
    assert!(t.contains("OFFLINE: hub not reachable."), "{t}");
    assert!(t.contains("clock is 3 days ahead of HQ's"), "{t}");
    // Synced again, the clock still three days ahead.
    st.online = true;
    h.act(Action::Status(Ok(st.clone())));
    let t = text(&h.s);
    assert!(
        t.contains("CLOCK: The store agent's clock is 3 days ahead of"),
        "{t}"
    );
    st.hub_clock_offset_ms = Some(5 * 3_600_000);
    h.act(Action::Status(Ok(st.clone())));
    assert!(text(&h.s).contains("is 5 h behind HQ's"));
    // A second or so off: nothing to say.
    st.hub_clock_offset_ms = Some(-1_200);
    h.act(Action::Status(Ok(st)));
    assert!(!text(&h.s).contains("CLOCK"));
}

#[test]
fn unreachable_banner() {
    let mut h = Harness::new();
    h.act(Action::Status(Err(ApiError::Unreachable(
        "connection refused".into(),
    ))));
    let t = text(&h.s);
    assert!(
        t.contains("AGENT UNREACHABLE at http://127.0.0.1:7420: nothing can be recorded"),
        "{t}"
    );
    assert!(t.contains("agent UNREACHABLE"), "{t}");
}

#[test]
fn refusal_dialog_explains_the_shortage_and_offers_the_override() {
    let mut h = Harness::with_basket();
    h.act(Action::Status(Ok(status(true, 0))));
    let req = h.pay_exact_cash();
    h.act(Action::SaleDone {
        sale_id: req.sale_id,
        result: Err(ApiError::Refused(Refusal::InsufficientStock {
            gtin: gtin_of(PEN),
            requested: 2,
            available: 1,
            on_hand: 3,
        })),
    });
    let t = text(&h.s);
    assert!(t.contains("REFUSED: not enough stock"), "{t}");
    assert!(t.contains("Pen, blue: requested 2, available 1."), "{t}");
    assert!(
        t.contains("The other units on hand are held for online orders."),
        "{t}"
    );
    assert!(t.contains("[O] manager override"), "{t}");
    assert!(t.contains("Nothing was recorded."), "{t}");
    h.stock(PEN, 5, 1);
    let t = text(&h.s);
    assert!(
        t.contains("On hand 5; this store may sell 1; 4 held for online orders"),
        "{t}"
    );
    h.key(Key::Char('o'));
    h.typed("Ann");
    let t = text(&h.s);
    assert!(t.contains("MANAGER APPROVAL"), "{t}");
    assert!(t.contains("Approving manager (id): Ann_"), "{t}");
}

/// A line beyond the store's own rights is marked SHORT, unless the units
/// are on the shelf and the hub is reachable: the sale then asks HQ for
/// their rights, and the mark says so.
#[test]
fn a_line_beyond_the_stores_rights_says_whether_hq_is_asked() {
    let mut h = Harness::with_basket();
    h.act(Action::Status(Ok(status(false, 0))));
    h.stock(PEN, 5, 1);
    assert!(row_with(&h.s, "Pen, blue").contains("[SHORT: store may sell 1]"));
    h.act(Action::Status(Ok(status(true, 0))));
    let row = row_with(&h.s, "Pen, blue");
    assert!(row.contains("[may sell 1; asks HQ]"), "{row}");
    // Not on the shelf: short whatever HQ holds.
    h.stock(PEN, 1, 1);
    assert!(row_with(&h.s, "Pen, blue").contains("[SHORT"));
}

/// The dialog says why rights were short: units held for online orders
/// while HQ is out of reach, or no unsold units recorded at all.
#[test]
fn refusal_dialog_says_offline_or_no_stock() {
    for (online, on_hand, says) in [
        (
            false,
            3,
            "Store offline: the other units on hand are held for",
        ),
        (
            true,
            1,
            "No more unsold units are recorded here (1 on hand)",
        ),
        (
            false,
            1,
            "No more unsold units are recorded here (1 on hand)",
        ),
    ] {
        let mut h = Harness::with_basket();
        h.act(Action::Status(Ok(status(online, 0))));
        let req = h.pay_exact_cash();
        h.act(Action::SaleDone {
            sale_id: req.sale_id,
            result: Err(ApiError::Refused(Refusal::InsufficientStock {
                gtin: gtin_of(PEN),
                requested: 2,
                available: 1,
                on_hand,
            })),
        });
        let t = text(&h.s);
        assert!(t.contains(says), "online {online}, on hand {on_hand}: {t}");
    }
}

#[test]
fn already_sold_dialog() {
    let mut h = Harness::new();
    h.scan("3074257BF7194E4000001A85");
    h.catalog("80614141123458", "Jacket", 4999);
    let req = h.pay_exact_cash();
    h.act(Action::SaleDone {
        sale_id: req.sale_id,
        result: Err(ApiError::Refused(Refusal::AlreadySold {
            epc: epc_of("3074257BF7194E4000001A85"),
        })),
    });
    let t = text(&h.s);
    assert!(t.contains("REFUSED: tag already sold"), "{t}");
    assert!(
        t.contains("Tag 3074257BF7194E4000001A85 was already sold."),
        "{t}"
    );
}

#[test]
fn receipt_after_commit() {
    let mut h = Harness::with_basket();
    h.key(Key::F(5));
    h.key(Key::Char('c'));
    h.typed("5");
    let req = Harness::post(&h.key(Key::Enter));
    assert!(text(&h.s).contains("Recording sale"));
    h.act(Action::SaleDone {
        sale_id: req.sale_id,
        result: committed(req.sale_id, 308, false),
    });
    let t = text(&h.s);
    assert!(t.contains("SALE COMMITTED"), "{t}");
    assert!(t.contains(&format!("Sale {}", req.sale_id.unwrap())), "{t}");
    let pen = row_with(&h.s, "Pen, blue");
    assert!(pen.contains("2 x      1.29"), "{pen}");
    assert!(pen.contains("2.58"), "{pen}");
    assert!(row_with(&h.s, "TOTAL ").contains("3.08"));
    assert!(row_with(&h.s, "Cash").contains("5.00"));
    assert!(row_with(&h.s, "CHANGE").contains("1.92"));
}

#[test]
fn in_doubt_dialog_says_retrying_is_safe() {
    let mut h = Harness::with_basket();
    let req = h.pay_exact_cash();
    h.act(Action::SaleDone {
        sale_id: req.sale_id,
        result: Err(ApiError::Unreachable("operation timed out".into())),
    });
    let t = text(&h.s);
    assert!(t.contains("NOT CONFIRMED"), "{t}");
    assert!(t.contains(&req.sale_id.unwrap().to_string()), "{t}");
    assert!(t.contains("operation timed out"), "{t}");
    assert!(t.contains("[R] retry"), "{t}");
    assert!(t.contains("AGENT UNREACHABLE"), "{t}");
}

#[test]
fn quit_confirmation_and_returns_mode() {
    let mut h = Harness::with_basket();
    h.key(Key::F(10));
    let t = text(&h.s);
    assert!(t.contains("Quit?"), "{t}");
    assert!(t.contains("2 line(s) is open and will be lost"), "{t}");
    let mut h = Harness::new();
    h.key(Key::F(6));
    let t = text(&h.s);
    assert!(t.contains(" RETURNS "), "{t}");
    assert!(t.contains("Returned item barcode > "), "{t}");
    assert!(t.contains("F7 original sale"), "{t}");
}

#[test]
fn small_and_tiny_terminals_still_draw() {
    let h = Harness::with_basket();
    for (w, hgt) in [(40, 12), (20, 5), (1, 1), (200, 60)] {
        let lines = screen(&h.s, w, hgt);
        assert_eq!(lines.len(), usize::from(hgt));
    }
    let mut h = Harness::with_basket();
    h.key(Key::F(10));
    screen(&h.s, 30, 8);
}

#[test]
fn a_refusal_the_terminal_does_not_know_shows_the_agents_code_and_message() {
    let mut h = Harness::with_basket();
    let req = h.pay_exact_cash();
    h.act(Action::SaleDone {
        sale_id: req.sale_id,
        result: Err(ApiError::Conflict(Box::new(ErrorBody::new(
            "frozen",
            "the store is being counted",
        )))),
    });
    let t = text(&h.s);
    assert!(t.contains(" REFUSED "), "{t}");
    assert!(t.contains("Refused: frozen."), "{t}");
    assert!(t.contains("the store is being counted"), "{t}");
    assert!(t.contains("Nothing was recorded."), "{t}");
    assert!(t.contains("[O] manager override"), "{t}");
}

#[test]
fn the_pick_list_shows_orders_and_what_was_scanned_of_the_selected_one() {
    let mut h = Harness::pick_list(vec![web_1(), bopis_7()]);
    h.scan_item(PEN);
    let t = text(&h.s);
    assert!(t.contains(" PICK LIST "), "{t}");
    assert!(t.contains("Pick list: 2 open orders"), "{t}");
    let web = row_with(&h.s, "> web-1");
    assert!(web.contains("ship"), "{web}");
    assert!(web.contains("allocated"), "{web}");
    assert!(web.contains("1/3"), "{web}");
    let bopis = row_with(&h.s, "bopis-7");
    assert!(bopis.contains("pickup"), "{bopis}");
    assert!(bopis.contains("picked"), "{bopis}");
    assert!(t.contains("Order web-1 (ship, allocated)"), "{t}");
    let pen = row_with(&h.s, "Pen, blue");
    assert!(pen.contains("  2 "), "{pen}");
    assert!(pen.contains(" 1"), "{pen}");
    assert!(row_with(&h.s, "Gum ").contains(" 0"));
    assert!(t.contains("Order web-1: 1 of 3 units scanned"), "{t}");
    assert!(t.contains("Scan item or order barcode > _"), "{t}");
    let help = screen(&h.s, 120, 24)[22..].join(" ");
    for k in ["F5 mark picked", "F9 refresh", "F12 pickup", "Esc back"] {
        assert!(help.contains(k), "{k} in {help}");
    }
    // An empty list says so.
    let h = Harness::pick_list(vec![]);
    assert!(text(&h.s).contains("No open orders are allocated to this store."));
}

#[test]
fn the_pickup_screen_shows_the_order_and_what_to_do() {
    let mut h = Harness::new();
    h.key(Key::F(12));
    let t = text(&h.s);
    assert!(t.contains(" PICKUP "), "{t}");
    assert!(t.contains("Scan or type order id > _"), "{t}");
    assert!(t.contains("F5 hand over"), "{t}");
    h.scan("bopis-7");
    assert!(text(&h.s).contains("Looking up order bopis-7"));
    h.act(Action::Order {
        order_id: "bopis-7".into(),
        result: Ok(bopis_7()),
    });
    let t = text(&h.s);
    assert!(t.contains("Order bopis-7   pickup"), "{t}");
    // The agent's times are UTC, and say so.
    assert!(t.contains("allocated 2026-12-05 10:00 UTC"), "{t}");
    assert!(t.contains("Status: PICKED"), "{t}");
    assert!(row_with(&h.s, "Pen, blue").contains(" 1"));
    assert!(
        t.contains("Hand it over, then F5: records it as collected."),
        "{t}"
    );
    let mv = super::moved(&h.key(Key::F(5)));
    assert!(text(&h.s).contains("Recording order bopis-7 as collected"));
    h.act(super::recorded(&mv));
    let t = text(&h.s);
    assert!(t.contains("ORDER COLLECTED"), "{t}");
    assert!(t.contains("Hand the goods to the customer."), "{t}");
    // Cancelled by HQ.
    h.key(Key::Enter);
    let mut cancelled = web_1();
    cancelled.status = Status::Cancelled;
    h.scan("web-1");
    h.act(Action::Order {
        order_id: "web-1".into(),
        result: Ok(cancelled),
    });
    let t = text(&h.s);
    assert!(t.contains("HQ CANCELLED this order"), "{t}");
    assert!(t.contains("put the goods back"), "{t}");
}

#[test]
fn order_refusals_say_what_to_do_and_that_nothing_was_recorded() {
    let mut h = Harness::new();
    h.key(Key::F(12));
    h.scan("4006381333931");
    h.act(Action::Order {
        order_id: "4006381333931".into(),
        result: Err(ApiError::NotFound),
    });
    let t = text(&h.s);
    assert!(t.contains("UNKNOWN ORDER"), "{t}");
    assert!(
        t.contains("Order 4006381333931 is not allocated to this store."),
        "{t}"
    );
    assert!(t.contains("has not reached the store"), "{t}");
    assert!(t.contains("reads as an item's barcode"), "{t}");
    h.key(Key::Esc);
    h.scan("bopis-7");
    h.act(Action::Order {
        order_id: "bopis-7".into(),
        result: Ok(bopis_7()),
    });
    let mv = super::moved(&h.key(Key::F(5)));
    let mut body = ErrorBody::new(
        "order_status",
        "order bopis-7: the allocation was cancelled",
    );
    body.status = Some(Status::Cancelled);
    h.act(super::move_failed(&mv, ApiError::Conflict(Box::new(body))));
    let t = text(&h.s);
    assert!(t.contains("ORDER CANCELLED BY HQ"), "{t}");
    assert!(t.contains("Do NOT hand it over: put the goods back"), "{t}");
    assert!(t.contains("Nothing was recorded."), "{t}");
    // In doubt: retrying is safe.
    h.key(Key::Esc);
    let mut h = Harness::pick_list(vec![web_1()]);
    h.key(Key::F(5));
    let mv = super::moved(&h.key(Key::Char('y')));
    h.act(super::move_failed(
        &mv,
        ApiError::Unreachable("operation timed out".into()),
    ));
    let t = text(&h.s);
    assert!(t.contains("NOT CONFIRMED"), "{t}");
    assert!(t.contains("did not confirm order web-1 as picked"), "{t}");
    assert!(t.contains("[R] retry"), "{t}");
    h.key(Key::Esc);
    let help = screen(&h.s, 120, 24).pop().unwrap();
    assert!(help.contains("F5 retry (same id)  F8 drop"), "{help}");
}

#[test]
fn mark_picked_by_hand_asks_with_what_was_scanned() {
    let mut h = Harness::pick_list(vec![web_1()]);
    h.scan_item(PEN);
    h.key(Key::F(5));
    let t = text(&h.s);
    assert!(t.contains("Mark picked?"), "{t}");
    assert!(t.contains("Order web-1: 1 of 3 units scanned."), "{t}");
    assert!(t.contains("[Y] mark picked"), "{t}");
}

#[test]
fn the_transfers_screen_lists_what_comes_in_and_says_what_was_refused() {
    use super::transfers::{t_0_out, t_1, t_2, transfers_screen};
    use crate::state::Effect;

    let mut h = transfers_screen(vec![t_1(), t_2(), t_0_out()]);
    let t = text(&h.s);
    assert!(t.contains(" TRANSFERS "), "{t}");
    assert!(
        t.contains("Transfers in transit: 2 to receive, 1 sent"),
        "{t}"
    );
    let row = row_with(&h.s, "t-1 ");
    assert!(row.contains("> t-1"), "selected: {row}");
    assert!(row.contains("from store-2"), "{row}");
    assert!(row.contains("2026-12-05 09:30"), "{row}");
    assert!(row.contains("    2     4"), "lines, units: {row}");
    let out = row_with(&h.s, "t-0");
    assert!(out.contains("to store-4"), "{out}");
    // The selected transfer's lines (an item not in the catalog by GTIN).
    assert!(t.contains("Transfer t-1 from store-2"), "{t}");
    let pen = row_with(&h.s, "Pen, blue");
    assert!(pen.contains("    3"), "{pen}");
    assert!(t.contains(super::GUM), "{t}");
    assert!(t.contains("Scan or type transfer id > _"), "{t}");
    let help = screen(&h.s, 120, 24).join(" ");
    assert!(help.contains("F5 receive  F11 refresh  Esc back"), "{help}");

    // Received already: said so, nothing recorded.
    let effects = h.key(Key::F(5));
    let Some(Effect::ReceiveTransfer(r)) = effects.first().cloned() else {
        panic!("{effects:?}")
    };
    assert!(text(&h.s).contains("Recording transfer t-1 as received"));
    h.act(Action::TransferReceived {
        transfer_id: "t-1".into(),
        event_id: r.body.event_id,
        result: Err(ApiError::Refused(Refusal::TransferReceived("t-1".into()))),
    });
    let t = text(&h.s);
    assert!(t.contains("ALREADY RECEIVED"), "{t}");
    assert!(t.contains("do not receive it again"), "{t}");
    assert!(t.contains("Nothing was recorded."), "{t}");
    h.key(Key::Esc);
    // Unknown here yet: the hub's page has not arrived.
    h.act(Action::Transfers {
        after: String::new(),
        result: Ok(tally_agent_api::TransferList {
            next: None,
            transfers: vec![t_2()],
        }),
    });
    let effects = h.key(Key::F(5));
    let Some(Effect::ReceiveTransfer(r)) = effects.first().cloned() else {
        panic!("{effects:?}")
    };
    h.act(Action::TransferReceived {
        transfer_id: "t-2".into(),
        event_id: r.body.event_id,
        result: Err(ApiError::NotFound),
    });
    let t = text(&h.s);
    assert!(t.contains("UNKNOWN TRANSFER"), "{t}");
    assert!(t.contains("not known at this store yet"), "{t}");
    h.key(Key::Esc);
    // In doubt: retrying is safe.
    let effects = h.key(Key::F(5));
    let Some(Effect::ReceiveTransfer(r)) = effects.first().cloned() else {
        panic!("{effects:?}")
    };
    h.act(Action::TransferReceived {
        transfer_id: "t-2".into(),
        event_id: r.body.event_id,
        result: Err(ApiError::Unreachable("operation timed out".into())),
    });
    let t = text(&h.s);
    assert!(t.contains("NOT CONFIRMED"), "{t}");
    assert!(
        t.contains("did not confirm transfer t-2 as received"),
        "{t}"
    );
    h.key(Key::Esc);
    let help = screen(&h.s, 120, 24).pop().unwrap();
    assert!(help.contains("F5 retry (same id)  F8 drop"), "{help}");

    // Nothing on its way.
    let h = transfers_screen(Vec::new());
    assert!(text(&h.s).contains("No transfer is on its way"));
}
