//! Screens: known states drawn into ratatui's `TestBackend`, read back as
//! text.

use ratatui::backend::TestBackend;
use ratatui::Terminal;
use tally_agent_api::{ApiError, ErrorBody};
use tally_sync::Refusal;

use super::{committed, epc_of, gtin_of, status, Harness, PEN};
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
    let help = screen(&h.s, 120, 24).pop().unwrap();
    for k in [
        "F2 qty",
        "Del void",
        "F5 pay",
        "F6 returns",
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
    assert!(t.contains("Approving manager: Ann_"), "{t}");
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
