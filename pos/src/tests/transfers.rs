//! The Transfers screen's flows, action by action: F11 from an empty
//! basket, the transfers in transit fetched page by page (inbound ones
//! first and selectable, outbound ones read-only), selection by arrows or
//! by a scanned or typed id (one not on the list looked up), a receipt
//! posted once under one event id through a timeout and its retries, and
//! refusals (404, 409 `transfer_received`, 422) shown with nothing
//! recorded.

use tally_agent_api::{ApiError, TransferLineView, TransferList, TransferRecorded, TransferView};
use tally_sync::transfer::TransferStatus;
use tally_sync::{EventId, LocationId, Refusal};

use super::{gtin_of, Harness, GUM, PEN};
use crate::state::{
    Action, Dialog, Effect, Key, Level, Listing, Receive, Screen, TransferRefused, TransferWhy,
};

/// A transfer between `from` and `to` (store-1 is this store), in transit:
/// `lines` as (GTIN, name, qty).
pub fn transfer(
    id: &str,
    from: &str,
    to: &str,
    lines: &[(&str, Option<&str>, u64)],
) -> TransferView {
    TransferView {
        direction: if from == "store-1" { "out" } else { "in" }.into(),
        from_store: LocationId::new(from).unwrap(),
        lines: lines
            .iter()
            .map(|(gtin, name, qty)| TransferLineView {
                epc: None,
                gtin: gtin_of(gtin),
                name: name.map(str::to_string),
                qty: *qty,
            })
            .collect(),
        sent_at: "2026-12-05T09:30:00.000Z".into(),
        status: TransferStatus::InTransit,
        to_store: LocationId::new(to).unwrap(),
        transfer_id: id.into(),
    }
}

/// t-1 from store-2: three pens and a gum.
pub fn t_1() -> TransferView {
    transfer(
        "t-1",
        "store-2",
        "store-1",
        &[(PEN, Some("Pen, blue"), 3), (GUM, None, 1)],
    )
}

/// t-2 from store-3: one pen.
pub fn t_2() -> TransferView {
    transfer("t-2", "store-3", "store-1", &[(PEN, Some("Pen, blue"), 1)])
}

/// t-0, sent by this store to store-4: two pens.
pub fn t_0_out() -> TransferView {
    transfer("t-0", "store-1", "store-4", &[(PEN, Some("Pen, blue"), 2)])
}

fn list_effect(after: &str) -> Effect {
    Effect::ListTransfers {
        after: after.into(),
    }
}

fn page(after: &str, transfers: Vec<TransferView>, next: Option<&str>) -> Action {
    Action::Transfers {
        after: after.into(),
        result: Ok(TransferList {
            next: next.map(str::to_string),
            transfers,
        }),
    }
}

/// F11 from the basket, and the agent's answer: one page.
pub fn transfers_screen(transfers: Vec<TransferView>) -> Harness {
    let mut h = Harness::new();
    assert_eq!(h.key(Key::F(11)), [list_effect("")]);
    assert_eq!(h.s.screen, Screen::Transfers);
    h.act(page("", transfers, None));
    h
}

/// The single receipt of `effects`.
fn receipt(effects: &[Effect]) -> Receive {
    let r: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::ReceiveTransfer(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(r.len(), 1, "expected one receipt in {effects:?}");
    r[0].clone()
}

fn answered(r: &Receive, result: Result<TransferRecorded, ApiError>) -> Action {
    Action::TransferReceived {
        transfer_id: r.transfer_id.clone(),
        event_id: r.body.event_id,
        result,
    }
}

fn recorded(r: &Receive, units: u64) -> Result<TransferRecorded, ApiError> {
    Ok(TransferRecorded {
        event_id: r.body.event_id.unwrap(),
        store: LocationId::new("store-2").unwrap(),
        status: "committed".into(),
        transfer_id: r.transfer_id.clone(),
        transfer_status: TransferStatus::Received,
        units,
    })
}

fn notice(h: &Harness) -> (Level, String) {
    h.s.notice.clone().expect("a notice")
}

#[test]
fn f11_opens_the_transfers_with_no_basket_open_and_esc_goes_back() {
    let mut h = Harness::with_basket();
    assert!(h.key(Key::F(11)).is_empty());
    assert_eq!(h.s.screen, Screen::Basket);
    assert!(notice(&h).1.contains("open basket"), "{:?}", h.s.notice);

    let mut h = Harness::new();
    assert_eq!(h.key(Key::Ctrl('t')), [list_effect("")]);
    assert_eq!(h.s.screen, Screen::Transfers);
    // Pages are asked for until the last; inbound ones come first.
    assert_eq!(
        h.act(page("", vec![t_0_out(), t_1()], Some("t-1"))),
        [list_effect("t-1")]
    );
    assert!(h.act(page("t-1", vec![t_2()], None)).is_empty());
    assert_eq!(h.s.transfers.listing, Listing::Loaded);
    let ids: Vec<_> =
        h.s.transfers
            .list
            .iter()
            .map(|t| t.transfer_id.as_str())
            .collect();
    assert_eq!(ids, ["t-1", "t-2", "t-0"]);
    assert_eq!(h.s.transfers.selected.as_deref(), Some("t-1"));
    // Up/Down move among the inbound ones only.
    h.key(Key::Down);
    assert_eq!(h.s.transfers.selected.as_deref(), Some("t-2"));
    h.key(Key::Down);
    assert_eq!(h.s.transfers.selected.as_deref(), Some("t-2"));
    h.key(Key::Up);
    assert_eq!(h.s.transfers.selected.as_deref(), Some("t-1"));
    // F11 and the periodic refresh fetch it again; a stale page is ignored.
    assert_eq!(h.key(Key::F(11)), [list_effect("")]);
    assert!(
        h.act(Action::RefreshOrders).is_empty(),
        "one fetch at a time"
    );
    assert!(h.act(page("t-9", vec![t_2()], None)).is_empty());
    h.act(page("", vec![t_2()], None));
    assert_eq!(h.s.transfers.list.len(), 1);
    assert_eq!(
        h.s.transfers.selected.as_deref(),
        Some("t-2"),
        "t-1 is gone"
    );
    assert_eq!(h.act(Action::RefreshOrders), [list_effect("")]);
    // Esc clears typing first, then goes back to the basket.
    h.typed("t-");
    h.key(Key::Esc);
    assert_eq!((h.s.screen, h.s.input.as_str()), (Screen::Transfers, ""));
    h.key(Key::Esc);
    assert_eq!(h.s.screen, Screen::Basket);
    assert!(
        h.act(Action::RefreshOrders).is_empty(),
        "not refreshed elsewhere"
    );
}

#[test]
fn a_scanned_or_typed_id_selects_the_transfer_or_looks_it_up() {
    let mut h = transfers_screen(vec![t_1(), t_2(), t_0_out()]);
    assert!(h.typed("t-2").is_empty());
    assert!(h.key(Key::Enter).is_empty());
    assert_eq!(h.s.transfers.selected.as_deref(), Some("t-2"));
    assert!(notice(&h).1.contains("from store-3"), "{:?}", h.s.notice);
    // A Code 128 label of t-1, from the scanner.
    h.act(Action::Scanned(crate::scan::from_typed("]C0t-1", &[])));
    assert_eq!(h.s.transfers.selected.as_deref(), Some("t-1"));
    // One this store sent: not selected, said so.
    h.typed("t-0");
    assert!(h.key(Key::Enter).is_empty());
    assert_eq!(h.s.transfers.selected.as_deref(), Some("t-1"));
    let (level, text) = notice(&h);
    assert_eq!(level, Level::Error);
    assert!(text.contains("sent BY this store to store-4"), "{text}");

    // Not on the list: looked up. Unknown here: said so, nothing posted.
    h.typed("t-9");
    assert_eq!(h.key(Key::Enter), [Effect::LookupTransfer("t-9".into())]);
    h.act(Action::Transfer {
        transfer_id: "t-9".into(),
        result: Err(ApiError::NotFound),
    });
    assert_eq!(
        h.s.dialog,
        Some(Dialog::TransferRefused(TransferRefused {
            transfer_id: "t-9".into(),
            posted: false,
            why: TransferWhy::NotHere,
        }))
    );
    h.key(Key::Esc);
    // Received already: said so.
    h.typed("t-8");
    h.key(Key::Enter);
    let mut t8 = transfer("t-8", "store-2", "store-1", &[(PEN, None, 1)]);
    t8.status = TransferStatus::Received;
    h.act(Action::Transfer {
        transfer_id: "t-8".into(),
        result: Ok(t8),
    });
    assert!(
        matches!(&h.s.dialog, Some(Dialog::TransferRefused(r)) if r.why == TransferWhy::Received),
        "{:?}",
        h.s.dialog
    );
    h.key(Key::Esc);
    // Arrived since the list was fetched: added and selected.
    h.typed("t-3");
    h.key(Key::Enter);
    h.act(Action::Transfer {
        transfer_id: "t-3".into(),
        result: Ok(transfer("t-3", "store-5", "store-1", &[(GUM, None, 4)])),
    });
    assert_eq!(h.s.dialog, None);
    assert_eq!(h.s.transfers.selected.as_deref(), Some("t-3"));
    let ids: Vec<_> =
        h.s.transfers
            .list
            .iter()
            .map(|t| t.transfer_id.as_str())
            .collect();
    assert_eq!(ids, ["t-1", "t-2", "t-3", "t-0"]);
    // A stale answer is ignored.
    h.act(Action::Transfer {
        transfer_id: "t-7".into(),
        result: Err(ApiError::NotFound),
    });
    assert_eq!(h.s.dialog, None);
}

#[test]
fn f5_receives_once_under_one_event_id_through_a_timeout_and_its_retries() {
    let mut h = transfers_screen(vec![t_1(), t_2()]);
    h.s.cashier = "Bea".into();
    h.s.till = Some("till-2".into());
    let first = receipt(&h.key(Key::F(5)));
    assert_eq!(first.transfer_id, "t-1");
    assert!(first.body.event_id.is_some());
    assert_eq!(first.body.cashier.as_deref(), Some("Bea"));
    assert_eq!(first.body.till.as_deref(), Some("till-2"));
    assert_eq!(h.s.dialog, Some(Dialog::Sending));
    // Keys while it is in flight post nothing.
    assert!(h.key(Key::F(5)).is_empty());

    // A timeout: not confirmed; R re-sends the very same request.
    h.act(answered(
        &first,
        Err(ApiError::Unreachable("timed out".into())),
    ));
    assert!(h.s.transfers.in_doubt);
    assert!(matches!(h.s.dialog, Some(Dialog::ReceiptInDoubt { .. })));
    assert_eq!(receipt(&h.key(Key::Char('r'))), first);
    h.act(answered(
        &first,
        Err(ApiError::Unavailable("stopping".into())),
    ));
    // Esc closes the dialog, but the screen cannot be left, nothing else
    // is received, and quitting asks.
    h.key(Key::Esc);
    assert_eq!(h.s.dialog, None);
    h.key(Key::Esc);
    assert_eq!(h.s.screen, Screen::Transfers);
    h.key(Key::Down);
    assert_eq!(receipt(&h.key(Key::F(5))), first, "F5 retries the same one");
    h.act(answered(
        &first,
        Err(ApiError::Unreachable("timed out".into())),
    ));
    h.key(Key::Esc);
    assert!(h.key(Key::F(10)).is_empty());
    assert!(matches!(h.s.dialog, Some(Dialog::ConfirmQuit { .. })));
    h.key(Key::Char('n'));
    // A stale answer (another event id) is ignored.
    let mut other = first.clone();
    other.body.event_id = Some(EventId(uuid::Uuid::from_u128(999)));
    assert!(h.act(answered(&other, recorded(&other, 4))).is_empty());
    assert!(h.s.transfers.in_doubt);
    // The retry is answered: received, the list fetched again.
    assert_eq!(receipt(&h.key(Key::F(5))), first);
    assert_eq!(
        h.act(answered(&first, recorded(&first, 4))),
        [list_effect("")]
    );
    assert_eq!(h.s.transfers.receiving, None);
    assert!(!h.s.transfers.in_doubt);
    assert_eq!(h.s.dialog, None);
    let (level, text) = notice(&h);
    assert_eq!(level, Level::Info);
    assert!(
        text.contains("t-1 from store-2 received: 4 units"),
        "{text}"
    );
    let posts = h
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::ReceiveTransfer(_)))
        .count();
    assert_eq!(posts, 4, "one receipt, sent four times unchanged");
    h.act(page("", vec![t_2()], None));
    assert_eq!(h.s.transfers.selected.as_deref(), Some("t-2"));
    // The next one gets a new event id.
    let second = receipt(&h.key(Key::F(5)));
    assert_eq!(second.transfer_id, "t-2");
    assert_ne!(second.body.event_id, first.body.event_id);
}

#[test]
fn a_receipt_in_doubt_may_be_dropped_on_purpose() {
    let mut h = transfers_screen(vec![t_1()]);
    let r = receipt(&h.key(Key::F(5)));
    h.act(answered(&r, Err(ApiError::Unreachable("timed out".into()))));
    assert_eq!(h.key(Key::F(8)), [list_effect("")]);
    assert_eq!(h.s.transfers.receiving, None);
    assert!(!h.s.transfers.in_doubt);
    assert!(notice(&h).1.contains("may or may not be received"));
    h.key(Key::Esc);
    assert_eq!(h.s.screen, Screen::Basket);
}

#[test]
fn refusals_are_shown_and_nothing_stays_pending() {
    let cases = [
        (ApiError::NotFound, TransferWhy::NotHere),
        (
            ApiError::Refused(Refusal::TransferReceived("t-1".into())),
            TransferWhy::Received,
        ),
        (
            ApiError::Invalid {
                status: 422,
                message: "transfer t-1 goes to store-9".into(),
            },
            TransferWhy::Other("transfer t-1 goes to store-9".into()),
        ),
    ];
    for (error, why) in cases {
        let mut h = transfers_screen(vec![t_1()]);
        let r = receipt(&h.key(Key::F(5)));
        assert_eq!(h.act(answered(&r, Err(error))), [list_effect("")]);
        assert_eq!(
            h.s.dialog,
            Some(Dialog::TransferRefused(TransferRefused {
                transfer_id: "t-1".into(),
                posted: true,
                why,
            }))
        );
        assert_eq!(h.s.transfers.receiving, None);
        assert!(!h.s.transfers.in_doubt);
        // Esc closes it; the screen can be left.
        h.key(Key::Esc);
        assert_eq!(h.s.dialog, None);
        h.key(Key::Esc);
        assert_eq!(h.s.screen, Screen::Basket);
    }
}

#[test]
fn nothing_to_receive_without_an_inbound_transfer() {
    let mut h = transfers_screen(vec![t_0_out()]);
    assert_eq!(h.s.transfers.selected, None);
    assert!(h.key(Key::F(5)).is_empty());
    assert_eq!(notice(&h).0, Level::Error);
    // A failed fetch is asked again when the agent answers again.
    let mut h = Harness::new();
    h.key(Key::F(11));
    h.act(Action::Transfers {
        after: String::new(),
        result: Err(ApiError::Unreachable("refused".into())),
    });
    assert!(matches!(h.s.transfers.listing, Listing::Failed(_)));
    let e = h.act(Action::Status(Ok(super::status(true, 0))));
    assert_eq!(e, [list_effect("")]);
}
