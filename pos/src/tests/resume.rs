//! A sale or return kept across a restart (`state::resume`): what the
//! journal holds follows the request in flight, never holds a PIN, and
//! opens again in doubt with the same basket, payments and id.

use tally_agent_api::ApiError;
use tally_sync::error_body::ErrorBody;
use tally_sync::Refusal;

use super::{committed, gtin_of, Harness, GUM, PEN};
use crate::state::{Action, Dialog, Effect, Key, Mode, Pending, SavedRequest};

/// The basket paid in exact cash, refused for the pen's stock (the
/// store's rights cover one of two), then approved by manager Ann with
/// her PIN: the approved request posted.
fn approved_by_ann(h: &mut Harness) -> tally_agent_api::SaleRequest {
    let first = h.pay_exact_cash();
    h.act(Action::SaleDone {
        sale_id: first.sale_id,
        result: Err(ApiError::Refused(Refusal::InsufficientStock {
            gtin: gtin_of(PEN),
            requested: 2,
            available: 1,
            on_hand: 3,
        })),
    });
    h.key(Key::Char('o'));
    h.typed("Ann");
    h.key(Key::Enter);
    h.typed("on the shelf");
    h.key(Key::Enter);
    h.typed("4711");
    Harness::post(&h.key(Key::Enter))
}

/// A restarted terminal: a fresh harness resuming what `h` would keep.
fn restarted(h: &Harness) -> (Harness, Vec<Effect>) {
    let saved = h.s.saved().expect("a request is open");
    let mut r = Harness::new();
    let effects = r.s.resume(saved).unwrap();
    (r, effects)
}

#[test]
fn only_a_request_in_flight_or_in_doubt_is_kept() {
    let mut h = Harness::with_basket();
    assert_eq!(h.s.saved(), None, "nothing posted: nothing to keep");
    let sale = h.pay_exact_cash();
    assert!(h.s.saved().is_some(), "posted: kept");
    h.act(Action::SaleDone {
        sale_id: sale.sale_id,
        result: Err(ApiError::Unreachable("timed out".into())),
    });
    assert!(h.s.saved().is_some(), "in doubt: kept");
    h.key(Key::F(5));
    h.act(Action::SaleDone {
        sale_id: sale.sale_id,
        result: committed(sale.sale_id, 308, false),
    });
    assert_eq!(h.s.saved(), None, "confirmed: gone");

    // Refused (definite): the request gone, the payment kept until it is
    // handed back; then nothing. Discarded: gone as well.
    let mut h = Harness::with_basket();
    let sale = h.pay_exact_cash();
    h.act(Action::SaleDone {
        sale_id: sale.sale_id,
        result: Err(ApiError::Refused(Refusal::Invalid("no".into()))),
    });
    assert_eq!(
        h.s.saved().map(|s| s.request),
        Some(SavedRequest::Paying),
        "the cash to hand back"
    );
    h.key(Key::Enter);
    assert_eq!(h.s.saved(), None);
    let mut h = Harness::with_basket();
    let sale = h.pay_exact_cash();
    h.act(Action::SaleDone {
        sale_id: sale.sale_id,
        result: Err(ApiError::Unreachable("timed out".into())),
    });
    h.key(Key::F(8));
    h.key(Key::Char('y'));
    assert_eq!(h.s.saved(), None);
}

#[test]
fn a_restart_opens_the_sale_in_doubt_and_the_retry_is_the_same_request() {
    let mut h = Harness::with_basket();
    let sale = h.pay_exact_cash();
    let (mut r, effects) = restarted(&h);
    assert_eq!(
        effects,
        [
            Effect::LookupCatalog(PEN.into()),
            Effect::LookupCatalog(super::GUM.into())
        ]
    );
    assert!(r.s.in_doubt);
    assert_eq!(r.s.mode, Mode::Sale);
    assert_eq!(r.s.lines, h.s.lines);
    assert_eq!(r.s.tenders, h.s.tenders);
    assert!(matches!(r.s.dialog, Some(Dialog::InDoubt { .. })));
    let screen = super::screens::text(&r.s);
    assert!(screen.contains("NOT CONFIRMED"), "{screen}");
    // Locked: nothing can be added to a sale in doubt.
    r.key(Key::Esc);
    assert!(r.scan("96385074").is_empty());
    assert_eq!(r.s.lines, h.s.lines);
    let again = Harness::post(&r.key(Key::F(5)));
    assert_eq!(again, sale, "the same id and body");
    r.catalog(PEN, "Pen, blue", 129);
    r.catalog(super::GUM, "Gum", 50);
    r.act(Action::SaleDone {
        sale_id: again.sale_id,
        result: committed(again.sale_id, 308, false),
    });
    let Some(Dialog::Receipt(receipt)) = &r.s.dialog else {
        panic!("{:?}", r.s.dialog)
    };
    assert_eq!(Some(receipt.id), sale.sale_id);
    assert_eq!(receipt.total_minor, 308);
    assert_eq!(receipt.lines[0].name, "Pen, blue");
    assert_eq!(r.s.saved(), None);
}

/// A sale a manager approved is kept without the PIN; retried after the
/// restart, the agent answers it if it was recorded, else refuses it for
/// the missing PIN, and the terminal asks the same manager again with the
/// payments kept.
#[test]
fn an_approved_sale_is_kept_without_the_pin_and_the_manager_asked_again() {
    let mut h = Harness::with_basket();
    let approved = approved_by_ann(&mut h);
    let first = approved.clone();
    assert_eq!(
        approved.override_.as_ref().unwrap().pin.as_deref(),
        Some("4711")
    );
    let saved = h.s.saved().unwrap();
    let json = serde_json::to_string(&saved).unwrap();
    assert!(!json.contains("4711"), "no PIN kept: {json}");

    let (mut r, _) = restarted(&h);
    let retry = Harness::post(&r.key(Key::F(5)));
    assert_eq!(retry.sale_id, first.sale_id);
    assert_eq!(retry.tenders, first.tenders);
    let o = retry.override_.clone().unwrap();
    assert_eq!((o.approver.as_str(), o.pin), ("Ann", None));
    // Not recorded before the restart: the agent wants the PIN.
    r.act(Action::SaleDone {
        sale_id: retry.sale_id,
        result: Err(ApiError::Denied(Box::new(ErrorBody::new(
            "approval_refused",
            "a manager's PIN is required",
        )))),
    });
    assert!(
        matches!(&r.s.dialog, Some(Dialog::OverridePin { approver, .. }) if approver == "Ann"),
        "{:?}",
        r.s.dialog
    );
    // Not known unrecorded (the first request, with its PIN, may still
    // land): still in doubt, still kept, the payments too.
    assert!(r.s.in_doubt);
    assert_eq!(r.s.saved(), Some(saved.clone()));
    // Esc: back to the sale in doubt, nothing dropped.
    r.key(Key::Esc);
    assert!(
        matches!(r.s.dialog, Some(Dialog::InDoubt { .. })),
        "{:?}",
        r.s.dialog
    );
    assert_eq!(r.s.tenders.len(), 1);
    assert_eq!(r.s.saved(), Some(saved.clone()));
    // Sent again (R): refused for the PIN again; the manager types it and
    // the very same request goes with it.
    let again = Harness::post(&r.key(Key::Char('r')));
    r.act(Action::SaleDone {
        sale_id: again.sale_id,
        result: Err(ApiError::Denied(Box::new(ErrorBody::new(
            "approval_refused",
            "a manager's PIN is required",
        )))),
    });
    r.typed("4711");
    let last = Harness::post(&r.key(Key::Enter));
    assert_eq!(last.sale_id, first.sale_id);
    assert_eq!(last.tenders, first.tenders, "payments kept");
    assert_eq!(last.lines, retry.lines, "the same request");
    assert_eq!(last.override_.unwrap().pin.as_deref(), Some("4711"));
}

#[test]
fn a_return_is_kept_and_resumed_as_a_return() {
    let mut h = Harness::new();
    h.key(Key::F(6));
    assert_eq!(h.s.mode, Mode::Return);
    h.scan("4006381333931");
    h.catalog(PEN, "Pen, blue", 129);
    h.key(Key::F(5));
    let e = h.key(Key::Char('y'));
    assert!(
        e.iter().any(|e| matches!(e, Effect::PostReturn(_))),
        "{e:?}"
    );
    let (r, _) = restarted(&h);
    assert_eq!(r.s.mode, Mode::Return);
    assert!(matches!(r.s.pending, Some(Pending::Return(_))));
    assert_eq!(r.s.pending, h.s.pending);

    // A web order's return keeps the order it names.
    let mut h = Harness::new();
    h.key(Key::F(6));
    h.scan("4006381333931");
    h.catalog(PEN, "Pen, blue", 129);
    h.key(Key::F(7));
    h.typed("web-9");
    h.key(Key::Enter);
    h.key(Key::F(5));
    h.key(Key::Char('y'));
    let (r, _) = restarted(&h);
    assert_eq!(r.s.original_order_id.as_deref(), Some("web-9"));
    assert_eq!(r.s.original_sale_id, None);
    let screen = super::screens::text(&r.s);
    assert!(screen.contains("web order web-9"), "{screen}");
}

#[test]
fn an_entry_the_terminal_cannot_take_back_is_refused_whole() {
    let mut h = Harness::with_basket();
    h.pay_exact_cash();
    let mut saved = h.s.saved().unwrap();
    saved.tenders[0].method = "voucher".into();
    let mut r = Harness::new();
    let before = r.s.clone();
    assert!(r.s.resume(saved).is_err());
    assert_eq!(r.s, before, "nothing changed");
}

/// A journal that cannot keep a request about to be posted stops the post
/// (the caller drops it): nothing leaves that a restart could lose; the
/// cashier is told nothing was recorded.
#[test]
fn a_request_the_journal_cannot_keep_is_not_posted() {
    let mut h = Harness::with_basket();
    h.pay_exact_cash();
    assert!(h.s.journal_failed("disk full"));
    assert_eq!(h.s.pending, None);
    assert_eq!(
        h.s.saved().map(|s| s.request),
        Some(SavedRequest::Paying),
        "nothing posted; the payment to hand back"
    );
    let Some(Dialog::Invalid { message }) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert!(message.contains("nothing was sent"), "{message}");
    // Back: the payment is handed back, the basket kept.
    h.key(Key::Esc);
    assert!(h.s.tenders.is_empty());
    assert_eq!(h.s.lines.len(), 2);
    // Clearing that fails (after an answer) is only said.
    assert!(!h.s.journal_failed("disk full"));
}

/// The approved sale resumed after a restart whose first retry gets no
/// answer (the agent still starting): the next retry refused for the PIN
/// still asks the manager, the sale still in doubt and kept.
#[test]
fn a_resumed_approved_sale_keeps_its_approval_across_a_timed_out_retry() {
    let mut h = Harness::with_basket();
    approved_by_ann(&mut h);
    let saved = h.s.saved().unwrap();

    let (mut r, _) = restarted(&h);
    let retry = Harness::post(&r.key(Key::F(5)));
    r.act(Action::SaleDone {
        sale_id: retry.sale_id,
        result: Err(ApiError::Unreachable("connection refused".into())),
    });
    assert!(r.s.in_doubt);
    let again = Harness::post(&r.key(Key::Char('r')));
    r.act(Action::SaleDone {
        sale_id: again.sale_id,
        result: Err(ApiError::Denied(Box::new(ErrorBody::new(
            "approval_refused",
            "a manager's PIN is required",
        )))),
    });
    assert!(
        matches!(&r.s.dialog, Some(Dialog::OverridePin { approver, .. }) if approver == "Ann"),
        "{:?}",
        r.s.dialog
    );
    assert!(r.s.in_doubt, "not known unrecorded");
    assert_eq!(r.s.saved(), Some(saved));
}

/// A retry of a sale in doubt refused before the agent looked its id up
/// (here the till's token, after a restart with a wrong one) says
/// nothing of the first attempt: still in doubt, still kept. Only the
/// command core's refusal is definite for a retry.
#[test]
fn a_retry_refused_for_the_caller_leaves_the_sale_in_doubt() {
    let mut h = Harness::with_basket();
    let first = h.pay_exact_cash();
    h.act(Action::SaleDone {
        sale_id: first.sale_id,
        result: Err(ApiError::Unreachable("operation timed out".into())),
    });
    let saved = h.s.saved().unwrap();
    for early in [
        ApiError::Denied(Box::new(ErrorBody::new(
            "till_token_required",
            "this till's token is missing or wrong",
        ))),
        ApiError::Invalid {
            status: 422,
            message: "cashier \"c-1\" is not the signed-in cashier".into(),
        },
        ApiError::Unexpected {
            status: 418,
            body: "?".into(),
        },
        ApiError::Conflict(Box::new(ErrorBody::new(
            "hub_unreachable",
            "the hub could not be asked about the original sale",
        ))),
    ] {
        let retry = Harness::post(&h.key(Key::Char('r')));
        assert_eq!(retry, first);
        h.act(Action::SaleDone {
            sale_id: retry.sale_id,
            result: Err(early.clone()),
        });
        assert!(h.s.in_doubt, "{early:?}");
        assert!(
            matches!(h.s.dialog, Some(Dialog::InDoubt { .. })),
            "{early:?}: {:?}",
            h.s.dialog
        );
        assert_eq!(h.s.saved(), Some(saved.clone()), "{early:?}");
    }
    // The command core's refusal of the retry is definite.
    let retry = Harness::post(&h.key(Key::Char('r')));
    h.act(Action::SaleDone {
        sale_id: retry.sale_id,
        result: Err(ApiError::Refused(Refusal::InsufficientStock {
            gtin: gtin_of(PEN),
            requested: 2,
            available: 0,
            on_hand: 0,
        })),
    });
    assert!(!h.s.in_doubt);
    assert_eq!(
        h.s.saved().map(|s| s.request),
        Some(SavedRequest::Paying),
        "nothing recorded; the payment to hand back"
    );
}

/// A sale being paid (a card charged for part of it, nothing posted) is
/// kept too: the till restarted opens the basket with that payment, not
/// in doubt (nothing was sent), and the rest is paid and posted once;
/// given back, nothing is kept.
#[test]
fn a_sale_half_paid_by_card_survives_a_restart_with_its_payment() {
    let mut h = Harness::with_basket();
    h.key(Key::F(5));
    h.key(Key::Char('k'));
    h.typed("GIFT-1");
    h.key(Key::Tab);
    h.typed("1,08");
    h.key(Key::Enter);
    let saved = h.s.saved().expect("a card charged: kept");
    assert_eq!(saved.request, SavedRequest::Paying);
    assert_eq!(saved.tenders.len(), 1);
    let json = serde_json::to_string(&saved).unwrap();
    let back: crate::state::Saved = serde_json::from_str(&json).unwrap();
    assert_eq!(back, saved);

    let (mut r, effects) = restarted(&h);
    assert!(!effects.is_empty(), "the lines' prices looked up again");
    r.catalog(PEN, "Pen, blue", 129);
    r.catalog(GUM, "Gum", 50);
    assert!(!r.s.in_doubt, "nothing was sent");
    assert_eq!(r.s.pending, None);
    assert_eq!(r.s.tenders.len(), 1);
    assert_eq!(r.s.lines.len(), 2);
    assert_eq!(r.s.due(), Some(200));
    assert_eq!(r.s.saved(), Some(saved));
    // The rest paid: one sale with both payments.
    r.key(Key::F(5));
    assert_eq!(r.s.dialog, Some(Dialog::Tender));
    r.key(Key::Char('k'));
    r.typed("VISA-2");
    let sale = Harness::post(&r.key(Key::Enter));
    assert_eq!(sale.tenders.len(), 2);
    assert_eq!(
        sale.tenders.iter().map(|t| t.amount_minor).sum::<i64>(),
        308
    );
    // Given back instead: nothing kept.
    let (mut r, _) = restarted(&h);
    r.catalog(PEN, "Pen, blue", 129);
    r.catalog(GUM, "Gum", 50);
    r.key(Key::F(5));
    r.key(Key::Char('r'));
    assert!(r.s.tenders.is_empty());
    assert_eq!(r.s.saved(), None);
}

/// A retry of an approved sale in doubt refused for its approval (the
/// manager locked out since) says nothing of the first attempt: still in
/// doubt, the manager asked again, the very same request sent with it.
#[test]
fn a_retry_refused_for_its_approval_stays_in_doubt() {
    let mut h = Harness::with_basket();
    let approved = approved_by_ann(&mut h);
    h.act(Action::SaleDone {
        sale_id: approved.sale_id,
        result: Err(ApiError::Unreachable("operation timed out".into())),
    });
    let saved = h.s.saved().unwrap();
    let retry = Harness::post(&h.key(Key::Char('r')));
    assert_eq!(retry, approved);
    h.act(Action::SaleDone {
        sale_id: retry.sale_id,
        result: Err(ApiError::Denied(Box::new(ErrorBody::new(
            "approval_locked",
            "too many wrong PINs for Ann: try again later",
        )))),
    });
    assert!(h.s.in_doubt, "not known unrecorded");
    assert_eq!(h.s.saved(), Some(saved));
    assert!(
        matches!(&h.s.dialog, Some(Dialog::OverridePin { approver, .. }) if approver == "Ann"),
        "{:?}",
        h.s.dialog
    );
    h.typed("4711");
    let again = Harness::post(&h.key(Key::Enter));
    assert_eq!(again.sale_id, approved.sale_id);
    assert_eq!(again.lines, approved.lines);
    assert_eq!(again.tenders, approved.tenders);
}
