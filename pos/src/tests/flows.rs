//! The state machine's flows, action by action.

use tally_agent_api::{ApiError, ReturnRecorded, ReturnedUnits, SaleView};
use tally_sync::{EventId, LocationId, Refusal, Tender};
use uuid::Uuid;

use super::{committed, epc_of, gtin_of, status, Harness, GUM, PEN};
use crate::scan::{Measure, Scanned};
use crate::state::{Action, AgentLink, CatalogEntry, Dialog, Effect, Key, Level, Mode, Why};

#[test]
fn a_typed_barcode_adds_a_line_and_asks_for_name_price_and_stock() {
    let mut h = Harness::new();
    let e = h.scan("4006381333931");
    assert_eq!(
        e,
        [
            Effect::LookupCatalog(PEN.into()),
            Effect::FetchStock(PEN.into())
        ]
    );
    assert_eq!(h.s.input, "");
    assert_eq!(h.s.lines.len(), 1);
    assert_eq!(h.s.lines[0].gtin, PEN);
    assert_eq!(h.s.lines[0].qty, 1);
    assert_eq!(h.s.total(), Err(0), "no price before the catalog answers");
    h.catalog(PEN, "Pen, blue", 129);
    assert_eq!(h.s.name(&h.s.lines[0]), "Pen, blue");
    assert_eq!(h.s.total(), Ok(129));
}

#[test]
fn scanning_the_same_item_again_adds_to_its_line() {
    let mut h = Harness::with_basket();
    assert_eq!(h.s.lines.len(), 2);
    assert_eq!(h.s.lines[0].qty, 2);
    assert_eq!(h.s.total(), Ok(2 * 129 + 50));
    // From the scanner driver too, without asking the catalog again.
    let scanned = Scanned {
        raw: "]E04006381333931".into(),
        gtin: PEN.into(),
        epc: None,
        measure: None,
    };
    let e = h.act(Action::Scanned(Ok(scanned)));
    assert_eq!(e, [Effect::FetchStock(PEN.into())]);
    assert_eq!(h.s.lines[0].qty, 3);
    assert_eq!(h.s.selected, 0);
}

#[test]
fn a_digital_link_qr_code_sells_like_an_ean() {
    // GS1 "Sunrise 2027": the item's 2D code carries a Digital Link URI
    // with lot and expiry; the till adds the GTIN's line as for its EAN-13.
    let mut h = Harness::with_basket();
    let e = h.scan("]Q1https://id.gs1.org/01/04006381333931/10/LOT7?17=271231");
    assert_eq!(e, [Effect::FetchStock(PEN.into())]);
    assert_eq!(h.s.lines[0].qty, 3);
    // A web address that is no item adds nothing.
    h.scan("]Q1https://example.com/menu");
    assert_eq!(h.s.lines.len(), 2);
}

#[test]
fn a_bad_code_is_refused_with_its_reason_and_adds_nothing() {
    let mut h = Harness::new();
    let e = h.scan("4006381333932");
    assert!(e.is_empty());
    assert!(h.s.lines.is_empty());
    let (_, text) = h.s.notice.clone().unwrap();
    assert!(text.contains("check digit"), "{text}");
}

#[test]
fn weighed_goods_carry_their_price_or_weight() {
    let mut h = Harness::new();
    // Price-embedded EAN-13: item 02112345000008 at 12.34.
    h.scan("2112345012346");
    h.catalog("02112345000008", "Cheese", 1999);
    assert_eq!(h.s.lines[0].measure, Some(Measure::Price(1234)));
    assert_eq!(h.s.total(), Ok(1234));
    // A second scan of a weighed item is a new line, never a quantity.
    h.scan("2112345012346");
    assert_eq!(h.s.lines.len(), 2);
    // Weight: 750 g at 19.99/kg = 14.99 (rounded half up from 14.9925).
    h.act(Action::Scanned(Ok(Scanned {
        raw: "x".into(),
        gtin: "02112345000008".into(),
        epc: None,
        measure: Some(Measure::Grams(750)),
    })));
    assert_eq!(h.s.line_total(&h.s.lines[2]), Some(1499));
    // Its quantity is fixed.
    h.key(Key::Char('+'));
    assert_eq!(h.s.lines[2].qty, 1);
    assert!(h.s.notice.as_ref().unwrap().1.contains("fixed"));
}

#[test]
fn quantity_keys_and_dialog() {
    let mut h = Harness::with_basket();
    h.key(Key::Up);
    assert_eq!(h.s.selected, 0);
    assert_eq!(h.key(Key::Char('+')), [Effect::FetchStock(PEN.into())]);
    assert_eq!(h.s.lines[0].qty, 3);
    h.key(Key::Char('-'));
    h.key(Key::Char('-'));
    h.key(Key::Char('-'));
    assert_eq!(h.s.lines[0].qty, 1, "never below 1");
    h.key(Key::F(2));
    assert!(matches!(h.s.dialog, Some(Dialog::Quantity { .. })));
    h.typed("0x");
    h.key(Key::Enter);
    assert!(
        matches!(&h.s.dialog, Some(Dialog::Quantity { input }) if input == "0"),
        "letters are not typed, 0 is refused: {:?}",
        h.s.dialog
    );
    h.key(Key::Backspace);
    h.typed("12");
    let e = h.key(Key::Enter);
    assert_eq!(e, [Effect::FetchStock(PEN.into())]);
    assert_eq!(h.s.dialog, None);
    assert_eq!(h.s.lines[0].qty, 12);
    assert_eq!(h.s.total(), Ok(12 * 129 + 50));
    // + typed into a non-empty input is text (GS1 CSET 82 has +).
    h.typed("9+");
    assert_eq!(h.s.input, "9+");
    assert_eq!(h.s.lines[0].qty, 12);
}

#[test]
fn void_removes_the_selected_line() {
    let mut h = Harness::with_basket();
    assert_eq!(h.s.selected, 1);
    h.key(Key::Delete);
    assert_eq!(h.s.lines.len(), 1);
    assert_eq!(h.s.lines[0].gtin, PEN);
    assert_eq!(h.s.selected, 0);
    assert!(h.s.notice.as_ref().unwrap().1.contains("Voided: Gum"));
    h.key(Key::F(3));
    assert!(h.s.lines.is_empty());
    assert_eq!(h.s.total(), Ok(0));
    h.key(Key::Delete);
    assert!(h.s.lines.is_empty());
}

#[test]
fn cash_tender_gives_change_and_posts_the_sale_once() {
    let mut h = Harness::with_basket();
    h.key(Key::F(5));
    assert_eq!(h.s.dialog, Some(Dialog::Tender));
    h.key(Key::Char('c'));
    h.typed("5");
    let e = h.key(Key::Enter);
    let req = Harness::post(&e);
    assert_eq!(h.s.dialog, Some(Dialog::Sending));
    assert_eq!(h.s.event_id, Some(req.sale_id.unwrap()));
    assert_eq!(req.lines.len(), 2);
    assert_eq!(req.lines[0].qty, 2);
    assert_eq!(req.lines[0].unit_price_minor, Some(129));
    assert_eq!(
        req.tenders,
        [Tender {
            method: "cash".into(),
            amount_minor: 308,
            reference: None
        }]
    );
    assert_eq!(req.override_, None);
    h.act(Action::SaleDone {
        sale_id: req.sale_id,
        result: committed(req.sale_id, 308, false),
    });
    let Some(Dialog::Receipt(r)) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert_eq!(r.id, req.sale_id.unwrap());
    assert_eq!(r.total_minor, 308);
    assert_eq!(r.change_minor, 500 - 308);
    assert_eq!(r.lines.len(), 2);
    assert_eq!(r.lines[0].name, "Pen, blue");
    assert_eq!(r.lines[0].total_minor, 258);
    assert_eq!(r.local_total_minor, None);
    assert!(h.s.lines.is_empty(), "next customer starts empty");
    assert_eq!(h.s.event_id, None);
    // A scan on the receipt starts the next sale, with a new id later.
    h.scan("96385074");
    assert_eq!(h.s.dialog, None);
    assert_eq!(h.s.lines.len(), 1);
}

#[test]
fn exact_cash_partial_cash_then_card() {
    let mut h = Harness::with_basket();
    h.key(Key::Enter); // empty input: pay
    h.key(Key::Char('c'));
    h.typed("1");
    assert!(h.key(Key::Enter).is_empty());
    assert_eq!(h.s.dialog, Some(Dialog::Tender));
    assert_eq!(h.s.due(), Some(208));
    // The basket is locked while paying.
    h.key(Key::Esc);
    h.key(Key::Delete);
    assert_eq!(h.s.lines.len(), 2);
    h.key(Key::F(5));
    h.key(Key::Char('k'));
    h.key(Key::Enter);
    assert!(
        matches!(h.s.dialog, Some(Dialog::Card { .. })),
        "a card needs its reference"
    );
    h.typed("AUTH-77");
    let req = Harness::post(&h.key(Key::Enter));
    assert_eq!(
        req.tenders,
        [
            Tender {
                method: "cash".into(),
                amount_minor: 100,
                reference: None
            },
            Tender {
                method: "card".into(),
                amount_minor: 208,
                reference: Some("AUTH-77".into())
            }
        ]
    );
    h.act(Action::SaleDone {
        sale_id: req.sale_id,
        result: committed(req.sale_id, 308, false),
    });
    let Some(Dialog::Receipt(r)) = &h.s.dialog else {
        panic!()
    };
    assert_eq!(r.change_minor, 0);
    assert_eq!(r.tenders.len(), 2);
    // Enter with an empty cash field takes exact cash.
    let mut h = Harness::with_basket();
    let req = h.pay_exact_cash();
    assert_eq!(req.tenders[0].amount_minor, 308);
}

/// A payment taken by mistake is taken back in the payment dialog; with
/// none left the basket can be edited again (one item off) without
/// discarding the sale.
#[test]
fn a_payment_is_taken_back_and_the_basket_edited_again() {
    let mut h = Harness::with_basket();
    h.key(Key::F(5));
    h.key(Key::Char('c'));
    h.typed("1");
    h.key(Key::Enter);
    assert_eq!(h.s.tenders.len(), 1);
    assert!(h.key(Key::Char('r')).is_empty(), "nothing is posted");
    assert!(h.s.tenders.is_empty());
    let (_, notice) = h.s.notice.clone().unwrap();
    assert!(notice.contains("hand back cash 1.00"), "{notice}");
    assert_eq!(h.s.dialog, Some(Dialog::Tender));
    h.key(Key::Esc);
    h.key(Key::Delete);
    assert_eq!(h.s.lines.len(), 1, "editable again");
    let req = h.pay_exact_cash();
    assert_eq!(req.lines.len(), 1);
}

#[test]
fn bad_cash_is_refused_in_the_dialog() {
    let mut h = Harness::with_basket();
    h.key(Key::F(5));
    h.key(Key::Char('c'));
    h.typed("1.234");
    assert!(h.key(Key::Enter).is_empty());
    assert!(matches!(h.s.dialog, Some(Dialog::Cash { .. })));
    assert!(h.s.notice.as_ref().unwrap().1.contains("decimals"));
    assert!(h.s.tenders.is_empty());
}

#[test]
fn refusal_then_manager_override_reposts_the_same_sale() {
    let mut h = Harness::with_basket();
    let first = h.pay_exact_cash();
    let refusal = Refusal::InsufficientStock {
        gtin: gtin_of(PEN),
        requested: 2,
        available: 1,
        on_hand: 3,
    };
    let e = h.act(Action::SaleDone {
        sale_id: first.sale_id,
        result: Err(ApiError::Refused(refusal.clone())),
    });
    assert_eq!(e, [Effect::FetchStock(PEN.into())]);
    let Some(Dialog::Refused(r)) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert_eq!(r.why, Why::Rule(refusal));
    assert!(r.can_override);
    assert!(!h.s.in_doubt, "a refusal is definite");
    h.stock(PEN, 3, 1);
    let Some(Dialog::Refused(r)) = &h.s.dialog else {
        panic!()
    };
    assert_eq!(r.stock.map(|s| s.others_rights), Some(2));
    // Override: approver, reason, the manager's PIN (all required), then
    // the same sale again.
    h.key(Key::Char('o'));
    h.key(Key::Enter);
    assert!(matches!(h.s.dialog, Some(Dialog::OverrideApprover { .. })));
    h.typed("Ann");
    h.key(Key::Enter);
    assert!(matches!(h.s.dialog, Some(Dialog::OverrideReason { .. })));
    assert!(h.key(Key::Enter).is_empty(), "a reason is required");
    h.typed("units on the shelf");
    h.key(Key::Enter);
    assert!(matches!(h.s.dialog, Some(Dialog::OverridePin { .. })));
    assert!(h.key(Key::Enter).is_empty(), "a PIN is required");
    h.typed("4711");
    let screen = super::screens::text(&h.s);
    assert!(screen.contains("Manager's PIN: ****"), "masked:\n{screen}");
    assert!(!screen.contains("4711"), "never shown:\n{screen}");
    let second = Harness::post(&h.key(Key::Enter));
    assert_eq!(second.sale_id, first.sale_id);
    assert_eq!(second.lines, first.lines);
    assert_eq!(second.tenders, first.tenders);
    let o = second.override_.clone().unwrap();
    assert_eq!(
        (o.approver.as_str(), o.reason.as_str(), o.pin.as_deref()),
        ("Ann", "units on the shelf", Some("4711"))
    );
    h.act(Action::SaleDone {
        sale_id: second.sale_id,
        result: committed(second.sale_id, 308, true),
    });
    let Some(Dialog::Receipt(r)) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert_eq!(
        r.override_,
        Some(("Ann".into(), "units on the shelf".into()))
    );
}

/// A PIN the agent does not accept (wrong, or the manager locked out)
/// asks for the PIN again, with what the agent said; the tenders stay,
/// and the sale goes again under its id.
#[test]
fn a_pin_not_accepted_asks_for_the_pin_again_and_keeps_the_tenders() {
    let mut h = Harness::with_basket();
    let first = h.pay_exact_cash();
    let short = Refusal::InsufficientStock {
        gtin: gtin_of(PEN),
        requested: 2,
        available: 1,
        on_hand: 3,
    };
    h.act(Action::SaleDone {
        sale_id: first.sale_id,
        result: Err(ApiError::Refused(short)),
    });
    h.key(Key::Char('o'));
    h.typed("mgr-7");
    h.key(Key::Enter);
    h.typed("on the shelf");
    h.key(Key::Enter);
    h.typed("0000");
    let second = Harness::post(&h.key(Key::Enter));
    for (code, message) in [
        ("approval_refused", "manager or PIN not accepted"),
        (
            "approval_locked",
            "too many wrong PINs for this manager; try again in 30 s",
        ),
    ] {
        h.act(Action::SaleDone {
            sale_id: second.sale_id,
            result: Err(ApiError::Denied(Box::new(
                tally_sync::error_body::ErrorBody::new(code, message),
            ))),
        });
        assert!(
            matches!(&h.s.dialog, Some(Dialog::OverridePin { approver, input, .. }) if approver == "mgr-7" && input.is_empty()),
            "{:?}",
            h.s.dialog
        );
        let (_, notice) = h.s.notice.clone().unwrap();
        assert!(notice.contains(message), "{notice}");
        assert!(!h.s.in_doubt);
        h.typed("4711");
        let again = Harness::post(&h.key(Key::Enter));
        assert_eq!(again.sale_id, first.sale_id);
        assert_eq!(again.tenders, first.tenders, "tenders kept");
        assert_eq!(again.override_.unwrap().pin.as_deref(), Some("4711"));
    }
}

#[test]
fn a_refused_override_cannot_be_overridden_again() {
    let mut h = Harness::with_basket();
    let first = h.pay_exact_cash();
    let sold = Refusal::AlreadySold {
        epc: epc_of("3074257BF7194E4000001A85"),
    };
    h.act(Action::SaleDone {
        sale_id: first.sale_id,
        result: Err(ApiError::Refused(sold.clone())),
    });
    h.key(Key::Char('o'));
    h.typed("Ann");
    h.key(Key::Enter);
    h.typed("tag misread");
    h.key(Key::Enter);
    h.typed("4711");
    let second = Harness::post(&h.key(Key::Enter));
    h.act(Action::SaleDone {
        sale_id: second.sale_id,
        result: Err(ApiError::Refused(sold)),
    });
    let Some(Dialog::Refused(r)) = h.s.dialog.clone() else {
        panic!()
    };
    assert!(!r.can_override);
    assert!(h.key(Key::Char('o')).is_empty());
    assert!(matches!(h.s.dialog, Some(Dialog::Refused(_))));
}

#[test]
fn back_from_a_refusal_drops_tenders_and_unlocks_the_basket() {
    let mut h = Harness::with_basket();
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
    h.key(Key::Esc);
    assert_eq!(h.s.dialog, None);
    assert!(h.s.tenders.is_empty());
    assert!(h.s.notice.as_ref().unwrap().1.contains("hand back"));
    // Edit: one pen only; the agent recorded nothing, so the id is reused.
    h.key(Key::Up);
    h.key(Key::Char('-'));
    assert_eq!(h.s.lines[0].qty, 1);
    let second = h.pay_exact_cash();
    assert_eq!(second.sale_id, first.sale_id);
    assert_eq!(second.lines[0].qty, 1);
    assert_eq!(second.tenders[0].amount_minor, 179);
}

#[test]
fn invalid_shows_the_agents_message() {
    let mut h = Harness::with_basket();
    let req = h.pay_exact_cash();
    h.act(Action::SaleDone {
        sale_id: req.sale_id,
        result: Err(ApiError::Invalid {
            status: 422,
            message: "qty must be > 0".into(),
        }),
    });
    assert_eq!(
        h.s.dialog,
        Some(Dialog::Invalid {
            message: "qty must be > 0".into()
        })
    );
    h.key(Key::Enter);
    assert_eq!(h.s.dialog, None);
    assert_eq!(h.s.lines.len(), 2);
}

#[test]
fn a_timeout_locks_the_basket_and_retries_keep_the_sale_id_and_body() {
    let mut h = Harness::with_basket();
    h.key(Key::F(5));
    h.key(Key::Char('c'));
    h.typed("10");
    let first = Harness::post(&h.key(Key::Enter));
    h.act(Action::SaleDone {
        sale_id: first.sale_id,
        result: Err(ApiError::Unreachable("operation timed out".into())),
    });
    assert!(h.s.in_doubt);
    assert!(matches!(h.s.dialog, Some(Dialog::InDoubt { .. })));
    assert!(matches!(h.s.agent, AgentLink::Down(_)));
    // Retry from the dialog: the very same request.
    let again = Harness::post(&h.key(Key::Char('r')));
    assert_eq!(again, first);
    h.act(Action::SaleDone {
        sale_id: first.sale_id,
        result: Err(ApiError::Unavailable("shutting down".into())),
    });
    // Back to the basket: locked; scans and edits are refused.
    h.key(Key::Esc);
    assert_eq!(h.s.dialog, None);
    h.key(Key::Delete);
    h.scan("96385074");
    assert_eq!(h.s.lines.len(), 2);
    assert_eq!(h.s.lines[1].qty, 1);
    assert!(h.s.notice.as_ref().unwrap().1.contains("same id"));
    // F5 retries, still the same request; many fresh ids were offered.
    let third = Harness::post(&h.key(Key::F(5)));
    assert_eq!(third, first);
    // A stale answer for another id is ignored.
    h.act(Action::SaleDone {
        sale_id: Some(EventId(Uuid::from_u128(999))),
        result: committed(EventId(Uuid::from_u128(999)), 1, false),
    });
    assert_eq!(h.s.dialog, Some(Dialog::Sending));
    h.act(Action::SaleDone {
        sale_id: first.sale_id,
        result: committed(first.sale_id, 308, false),
    });
    let Some(Dialog::Receipt(r)) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert_eq!(r.id, first.sale_id.unwrap());
    assert_eq!(r.change_minor, 1000 - 308);
    assert!(!h.s.in_doubt);
    let posts = h
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::PostSale(_)))
        .count();
    assert_eq!(posts, 3);
}

#[test]
fn a_sale_in_doubt_can_be_discarded_only_on_purpose() {
    let mut h = Harness::with_basket();
    let first = h.pay_exact_cash();
    h.act(Action::SaleDone {
        sale_id: first.sale_id,
        result: Err(ApiError::Unreachable("connection refused".into())),
    });
    h.key(Key::F(8));
    assert_eq!(h.s.dialog, Some(Dialog::ConfirmDiscard));
    h.key(Key::Char('x'));
    assert_eq!(h.s.dialog, None);
    assert!(h.s.in_doubt);
    h.key(Key::F(8));
    h.key(Key::Char('y'));
    assert!(!h.s.in_doubt);
    assert!(h.s.lines.is_empty());
    h.scan("96385074");
    h.catalog(GUM, "Gum", 50);
    let next = h.pay_exact_cash();
    assert_ne!(next.sale_id, first.sale_id, "a new basket, a new id");
}

#[test]
fn status_drives_the_offline_and_unreachable_states() {
    let mut h = Harness::new();
    h.act(Action::Status(Ok(status(false, 12))));
    assert!(matches!(&h.s.agent, AgentLink::Up(s) if !s.online && s.outbox_events == 12));
    // A lookup that gets no answer marks the agent down and is retried
    // once the agent answers again.
    h.scan("4006381333931");
    h.act(Action::Catalog {
        gtin: PEN.into(),
        result: Err(ApiError::Unreachable("connection refused".into())),
    });
    assert!(matches!(h.s.agent, AgentLink::Down(_)));
    assert!(matches!(
        h.s.catalog.get(PEN),
        Some(CatalogEntry::Failed(_))
    ));
    h.act(Action::Status(Err(ApiError::Unreachable("refused".into()))));
    assert_eq!(h.s.agent, AgentLink::Down("refused".into()));
    let e = h.act(Action::Status(Ok(status(true, 0))));
    assert_eq!(e, [Effect::LookupCatalog(PEN.into())]);
    assert_eq!(h.s.catalog.get(PEN), Some(&CatalogEntry::Pending));
    // Steady state: no more lookups.
    assert!(h.act(Action::Status(Ok(status(true, 0)))).is_empty());
}

/// A terminal without its till's token (or with a wrong one) is told so
/// at once, not left "connecting" with every lookup failing.
#[test]
fn a_terminal_the_agent_refuses_says_why_and_what_to_do() {
    let mut h = Harness::new();
    let denied = ApiError::Denied(Box::new(tally_sync::error_body::ErrorBody::new(
        "till_token_required",
        "this agent needs a till's token: Authorization: Bearer TOKEN",
    )));
    h.act(Action::Status(Err(denied)));
    let AgentLink::Refused(why) = &h.s.agent else {
        panic!("{:?}", h.s.agent)
    };
    assert!(why.contains("--token"), "{why}");
    let screen = super::screens::text(&h.s);
    assert!(screen.contains("REFUSED by the agent"), "{screen}");
    assert!(screen.contains("agent REFUSES THIS TILL"), "{screen}");
    // A manager's PIN refused is about one request, not the terminal.
    h.act(Action::Status(Ok(status(true, 0))));
    h.act(Action::Status(Err(ApiError::Denied(Box::new(
        tally_sync::error_body::ErrorBody::new("approval_refused", "manager or PIN not accepted"),
    )))));
    assert!(matches!(h.s.agent, AgentLink::Up(_)));
}

#[test]
fn unknown_items_need_a_price_before_payment() {
    let mut h = Harness::new();
    h.scan("96385074");
    h.act(Action::Catalog {
        gtin: GUM.into(),
        result: Err(ApiError::NotFound),
    });
    assert!(h.s.name(&h.s.lines[0]).contains("not in catalog"));
    assert!(h.key(Key::F(5)).is_empty());
    assert_eq!(h.s.dialog, None);
    assert!(h.s.notice.as_ref().unwrap().1.contains("F4"));
    h.key(Key::F(4));
    h.typed("2,5");
    h.key(Key::Enter);
    assert_eq!(h.s.lines[0].manual_price, Some(250));
    assert_eq!(h.s.total(), Ok(250));
    let req = h.pay_exact_cash();
    assert_eq!(req.lines[0].unit_price_minor, Some(250));
}

#[test]
fn stock_answers_flag_lines_the_store_cannot_sell() {
    let mut h = Harness::with_basket();
    h.stock(PEN, 5, 1);
    assert_eq!(h.s.short_of(&h.s.lines[0]), Some(1));
    h.stock(GUM, 5, 5);
    assert_eq!(h.s.short_of(&h.s.lines[1]), None);
}

#[test]
fn quitting_asks_when_a_basket_is_open() {
    let mut h = Harness::new();
    assert_eq!(h.key(Key::Ctrl('q')), [Effect::Quit]);
    let mut h = Harness::with_basket();
    assert!(h.key(Key::F(10)).is_empty());
    assert!(matches!(h.s.dialog, Some(Dialog::ConfirmQuit { .. })));
    assert!(h.key(Key::Char('n')).is_empty());
    assert_eq!(h.s.dialog, None);
    assert_eq!(h.s.lines.len(), 2);
    h.key(Key::Ctrl('c'));
    assert_eq!(h.key(Key::Char('y')), [Effect::Quit]);
}

/// While a sale's first attempt is on its way, nothing pays, discards
/// or sends it again: declining to quit puts the sending dialog back, F5
/// takes no new payment, F8 discards nothing; the answer then gives the
/// receipt, and one request was posted.
#[test]
fn a_sale_on_its_way_cannot_be_paid_again_or_discarded() {
    let mut h = Harness::with_basket();
    let first = h.pay_exact_cash();
    assert!(h.s.in_flight());
    h.key(Key::F(10));
    assert!(matches!(h.s.dialog, Some(Dialog::ConfirmQuit { .. })));
    h.key(Key::Char('n'));
    assert_eq!(h.s.dialog, Some(Dialog::Sending), "back to sending");
    // Esc on the sending dialog keeps it; without it, F5 and F8 do nothing.
    h.s.dialog = None;
    assert!(h.key(Key::F(5)).is_empty());
    assert_eq!(h.s.dialog, None, "no payment dialog");
    h.key(Key::F(8));
    assert_eq!(h.s.dialog, None, "no discard");
    assert_eq!(h.s.tenders.len(), 1, "the payment stays");
    h.act(Action::SaleDone {
        sale_id: first.sale_id,
        result: committed(first.sale_id, 308, false),
    });
    assert!(matches!(h.s.dialog, Some(Dialog::Receipt(_))));
    let posts = h
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::PostSale(_)))
        .count();
    assert_eq!(posts, 1);
}

#[test]
fn scans_wait_while_a_dialog_is_open() {
    let mut h = Harness::with_basket();
    h.key(Key::F(5));
    let e = h.act(Action::Scanned(Ok(Scanned {
        raw: "96385074".into(),
        gtin: GUM.into(),
        epc: None,
        measure: None,
    })));
    assert!(e.is_empty());
    assert_eq!(h.s.lines[1].qty, 1);
    assert!(h.s.notice.as_ref().unwrap().1.contains("Scan ignored"));
}

#[test]
fn tagged_items_are_one_line_per_tag() {
    let mut h = Harness::new();
    h.scan("3074257BF7194E4000001A85");
    assert_eq!(
        h.s.lines[0].epc.as_deref(),
        Some("3074257BF7194E4000001A85")
    );
    assert_eq!(h.s.lines[0].gtin, "80614141123458");
    h.scan("3074257bf7194e4000001a85");
    assert_eq!(h.s.lines.len(), 1, "the same tag twice is refused");
    assert!(h
        .s
        .notice
        .as_ref()
        .unwrap()
        .1
        .contains("already in the basket"));
    h.catalog("80614141123458", "Jacket", 4999);
    let req = h.pay_exact_cash();
    assert_eq!(
        req.lines[0].epc.as_deref(),
        Some("3074257BF7194E4000001A85")
    );
    // The same tag typed as its tag URI (EPC TDS), and an SGTIN-198 tag
    // (alphanumeric serial, 208 bits) typed as hex.
    let mut h = Harness::new();
    h.scan("urn:epc:tag:sgtin-96:3.0614141.812345.6789");
    assert_eq!(
        h.s.lines[0].epc.as_deref(),
        Some("3074257BF7194E4000001A85")
    );
    h.scan("3674257BF6B7A659B2C2BF100000000000000000000000000000");
    assert_eq!(h.s.lines[1].gtin, "70614141123451");
    assert_eq!(h.s.lines.len(), 2);
}

#[test]
fn returns_post_lines_and_the_original_sale() {
    let mut h = Harness::with_basket();
    h.key(Key::F(6));
    assert_eq!(h.s.mode, Mode::Sale, "not with an open basket");
    h.key(Key::F(8));
    h.key(Key::Char('y'));
    h.key(Key::F(6));
    assert_eq!(h.s.mode, Mode::Return);
    let e = h.scan("4006381333931");
    assert_eq!(e, [Effect::LookupCatalog(PEN.into())], "no stock check");
    h.catalog(PEN, "Pen, blue", 129);
    h.key(Key::F(7));
    h.typed("not a uuid");
    h.key(Key::Enter);
    assert!(matches!(h.s.dialog, Some(Dialog::OriginalSale { .. })));
    for _ in 0.."not a uuid".len() {
        h.key(Key::Backspace);
    }
    let original = EventId(Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001));
    h.typed(&original.to_string());
    let e = h.key(Key::Enter);
    assert_eq!(h.s.original_sale_id, Some(original));
    assert_eq!(e, [Effect::LookupSale(original)]);
    // The agent knows the sale: what is left to return is shown; an
    // answer for another id is stale and ignored.
    let record = SaleView {
        at_ms: 1,
        lines: vec![tally_sync::Line {
            gtin: gtin_of(PEN),
            qty: 2,
            unit_price_minor: 129,
            epc: None,
        }],
        overridden: false,
        override_: None,
        returned: vec![ReturnedUnits {
            gtin: gtin_of(PEN),
            units: 1,
        }],
        sale_id: original,
        status: "committed".into(),
        store_id: LocationId::new("store-1").unwrap(),
        tenders: Vec::new(),
        total_minor: 258,
        staff: Default::default(),
        price_overrides: Vec::new(),
    };
    h.act(Action::OriginalSale {
        id: EventId(Uuid::from_u128(7)),
        result: Err(ApiError::NotFound),
    });
    assert!(h
        .s
        .notice
        .as_ref()
        .is_none_or(|(_, t)| !t.contains("not recorded")));
    h.act(Action::OriginalSale {
        id: original,
        result: Ok(record),
    });
    let (level, text) = h.s.notice.clone().unwrap();
    assert_eq!(level, Level::Info);
    assert!(text.contains("2 units sold, 1 left to return"), "{text}");
    h.act(Action::OriginalSale {
        id: original,
        result: Err(ApiError::NotFound),
    });
    let (level, text) = h.s.notice.clone().unwrap();
    assert_eq!(level, Level::Error);
    assert!(text.contains("not recorded at this store"), "{text}");
    h.key(Key::F(5));
    assert_eq!(h.s.dialog, Some(Dialog::ConfirmRefund));
    let e = h.key(Key::Enter);
    let [Effect::PostReturn(req)] = e.as_slice() else {
        panic!("{e:?}")
    };
    assert_eq!(req.original_sale_id, Some(original));
    assert_eq!(req.lines[0].gtin, PEN);
    // Against a named sale the agent refunds what that sale charged.
    assert_eq!(req.lines[0].unit_price_minor, None);
    // A timeout: the retry is the same return.
    let req = req.clone();
    h.act(Action::ReturnDone {
        return_id: req.return_id,
        result: Err(ApiError::Unreachable("timed out".into())),
    });
    let e = h.key(Key::Char('r'));
    assert_eq!(e, [Effect::PostReturn(req.clone())]);
    h.act(Action::ReturnDone {
        return_id: req.return_id,
        result: Ok(ReturnRecorded {
            return_id: req.return_id.unwrap(),
            status: "committed".into(),
            total_minor: 129,
        }),
    });
    let Some(Dialog::Receipt(r)) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert_eq!(r.mode, Mode::Return);
    assert_eq!(r.original_sale_id, Some(original));
    assert_eq!(r.total_minor, 129);
    assert_eq!(h.s.mode, Mode::Return, "stays in returns mode");
}

/// A return against a sale shows what the agent will refund: what that
/// sale charged (the price has risen since), not today's catalog price.
#[test]
fn a_return_against_a_sale_shows_the_refund_at_what_it_charged() {
    let mut h = Harness::new();
    h.key(Key::F(6));
    h.scan("4006381333931");
    h.catalog(PEN, "Pen, blue", 129);
    h.key(Key::F(7));
    let original = EventId(Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0002));
    h.typed(&original.to_string());
    h.key(Key::Enter);
    let line = |price| tally_sync::Line {
        gtin: gtin_of(PEN),
        qty: 1,
        unit_price_minor: price,
        epc: None,
    };
    h.act(Action::OriginalSale {
        id: original,
        result: Ok(SaleView {
            at_ms: 1,
            lines: vec![line(99), line(109)],
            overridden: false,
            override_: None,
            returned: Vec::new(),
            sale_id: original,
            status: "committed".into(),
            store_id: LocationId::new("store-1").unwrap(),
            tenders: Vec::new(),
            total_minor: 208,
            staff: Default::default(),
            price_overrides: Vec::new(),
        }),
    });
    assert_eq!(
        h.s.total(),
        Ok(99),
        "its lowest price, as the agent refunds"
    );
    h.key(Key::F(5));
    let screen = super::screens::text(&h.s);
    assert!(screen.contains("0.99"), "{screen}");
    assert!(!screen.contains("1.29"), "{screen}");
    // Another sale named: its own prices, or the catalog's until known.
    h.key(Key::Esc);
    h.key(Key::F(7));
    for _ in 0..36 {
        h.key(Key::Backspace);
    }
    h.key(Key::Enter);
    assert_eq!(h.s.total(), Ok(129));
}

#[test]
fn a_refused_return_offers_no_override() {
    let mut h = Harness::new();
    h.key(Key::F(6));
    h.scan("3074257BF7194E4000001A85");
    h.catalog("80614141123458", "Jacket", 4999);
    h.key(Key::F(5));
    let e = h.key(Key::Enter);
    let [Effect::PostReturn(req)] = e.as_slice() else {
        panic!("{e:?}")
    };
    let id = req.return_id;
    h.act(Action::ReturnDone {
        return_id: id,
        result: Err(ApiError::Refused(Refusal::NotSold {
            epc: epc_of("3074257BF7194E4000001A85"),
        })),
    });
    let Some(Dialog::Refused(r)) = &h.s.dialog else {
        panic!()
    };
    assert!(!r.can_override);
    assert!(h.key(Key::Char('o')).is_empty());
    h.key(Key::Esc);
    assert_eq!(h.s.dialog, None);
}

#[test]
fn the_agent_total_wins_and_a_difference_is_shown() {
    let mut h = Harness::with_basket();
    let req = h.pay_exact_cash();
    h.act(Action::SaleDone {
        sale_id: req.sale_id,
        result: committed(req.sale_id, 310, false),
    });
    let Some(Dialog::Receipt(r)) = &h.s.dialog else {
        panic!()
    };
    assert_eq!(r.total_minor, 310);
    assert_eq!(r.local_total_minor, Some(308));
}

#[test]
fn a_refund_without_a_receipt_is_reposted_with_a_managers_approval() {
    let mut h = Harness::new();
    h.key(Key::F(6));
    h.scan("4006381333931");
    h.catalog(PEN, "Pen, blue", 129);
    h.key(Key::F(5));
    let e = h.key(Key::Enter);
    let [Effect::PostReturn(first)] = e.as_slice() else {
        panic!("{e:?}")
    };
    let first = first.clone();
    assert_eq!(first.approval, None);
    assert_eq!(first.cashier.as_deref(), Some("cashier"), "who keys it");
    h.act(Action::ReturnDone {
        return_id: first.return_id,
        result: Err(ApiError::Refused(Refusal::ApprovalRequired(
            "a refund without a receipt".into(),
        ))),
    });
    let Some(Dialog::Refused(r)) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert!(r.can_override, "a manager may approve it");
    let screen = super::screens::text(&h.s);
    assert!(screen.contains("MANAGER APPROVAL NEEDED"), "{screen}");
    assert!(
        screen.contains("A manager's approval is needed: a refund without a receipt."),
        "{screen}"
    );
    h.key(Key::Char('o'));
    h.typed("Ann");
    h.key(Key::Enter);
    h.typed("lost receipt");
    h.key(Key::Enter);
    h.typed("4711");
    let e = h.key(Key::Enter);
    let [Effect::PostReturn(second)] = e.as_slice() else {
        panic!("{e:?}")
    };
    assert_eq!(second.return_id, first.return_id, "the same return");
    assert_eq!(second.lines, first.lines);
    let a = second.approval.clone().unwrap();
    assert_eq!(
        (a.approver.as_str(), a.reason.as_str(), a.pin.as_deref()),
        ("Ann", "lost receipt", Some("4711"))
    );
    h.act(Action::ReturnDone {
        return_id: second.return_id,
        result: Ok(ReturnRecorded {
            return_id: second.return_id.unwrap(),
            status: "committed".into(),
            total_minor: 129,
        }),
    });
    let Some(Dialog::Receipt(r)) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert_eq!(r.override_, Some(("Ann".into(), "lost receipt".into())));
}

#[test]
fn a_label_price_is_sent_as_the_labels_with_who_keyed_the_sale() {
    let mut h = Harness::new();
    h.s = h.s.clone().with_staff("c-104", Some("till-2".into()));
    // Price-embedded EAN-13: item 02112345000008 at 12.34.
    h.scan("2112345012346");
    h.catalog("02112345000008", "Cheese", 1999);
    let req = h.pay_exact_cash();
    assert_eq!(req.lines[0].unit_price_minor, Some(1234));
    assert_eq!(
        req.lines[0].price_source,
        Some(tally_agent_api::PriceSource::Label),
        "the label's price is no override"
    );
    assert_eq!(
        (req.cashier.as_deref(), req.till.as_deref()),
        (Some("c-104"), Some("till-2"))
    );
}

/// A price keyed other than the catalog's is approved by a manager at F5,
/// before any payment: the sale then goes with the approval (no refusal,
/// nothing to hand back). Changing the basket after the approval asks
/// again; a price as the catalog's needs none.
#[test]
fn a_keyed_price_is_approved_before_payment() {
    let mut h = Harness::with_basket();
    h.s.selected = 0;
    h.key(Key::F(4));
    h.typed("1");
    h.key(Key::Enter);
    assert_eq!(h.s.lines[0].manual_price, Some(100));
    assert!(h.key(Key::F(5)).is_empty(), "nothing posted");
    assert!(h.s.tenders.is_empty());
    assert!(
        matches!(&h.s.dialog, Some(Dialog::OverrideApprover { refused, .. })
        if refused.why == Why::Rule(Refusal::ApprovalRequired(
            "Pen, blue keyed at 1.00 (catalog 1.29)".into()
        ))),
        "{:?}",
        h.s.dialog
    );
    let screen = super::screens::text(&h.s);
    assert!(
        screen.contains("Pen, blue keyed at 1.00 (catalog 1.29)"),
        "{screen}"
    );
    // Esc: back, nothing posted, no payment taken.
    h.key(Key::Esc);
    h.key(Key::Esc);
    assert_eq!(h.s.dialog, None);
    assert!(h.s.tenders.is_empty() && h.s.pending.is_none());
    // Approved: the payment is taken next, then the sale goes with it.
    h.key(Key::F(5));
    h.typed("Ann");
    h.key(Key::Enter);
    h.typed("dented box");
    h.key(Key::Enter);
    h.typed("4711");
    assert!(h.key(Key::Enter).is_empty(), "payment first");
    assert_eq!(h.s.dialog, Some(Dialog::Tender));
    // Taken back and the basket changed: the approval no longer holds.
    h.key(Key::Esc);
    h.key(Key::Char('+'));
    assert_eq!(h.s.lines.iter().map(|l| l.qty).sum::<u64>(), 4);
    h.key(Key::F(5));
    assert!(matches!(h.s.dialog, Some(Dialog::OverrideApprover { .. })));
    h.typed("Ann");
    h.key(Key::Enter);
    h.typed("dented box");
    h.key(Key::Enter);
    h.typed("4711");
    h.key(Key::Enter);
    h.key(Key::Char('c'));
    let sale = Harness::post(&h.key(Key::Enter));
    let o = sale.override_.clone().unwrap();
    assert_eq!(
        (o.approver.as_str(), o.reason.as_str(), o.pin.as_deref()),
        ("Ann", "dented box", Some("4711"))
    );
    assert_eq!(sale.lines[0].unit_price_minor, Some(100));
    h.act(Action::SaleDone {
        sale_id: sale.sale_id,
        result: committed(sale.sale_id, 100 * 3 + 50, true),
    });
    let Some(Dialog::Receipt(r)) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert_eq!(r.override_, Some(("Ann".into(), "dented box".into())));

    // The catalog's own price typed: no manager.
    let mut h = Harness::with_basket();
    h.s.selected = 0;
    h.key(Key::F(4));
    h.typed("1.29");
    h.key(Key::Enter);
    let sale = h.pay_exact_cash();
    assert_eq!(sale.override_, None);
}

/// A return of a web order: F7 takes the order's id (not a UUID); the
/// return names it, sends no catalog prices (the hub finds the order's
/// sale and the agent refunds what it charged), and the receipt says it.
#[test]
fn a_return_names_a_web_order_by_its_id() {
    let mut h = Harness::new();
    h.key(Key::F(6));
    h.scan("4006381333931");
    h.catalog(PEN, "Pen, blue", 129);
    h.key(Key::F(7));
    h.typed("web 9");
    h.key(Key::Enter);
    assert!(
        matches!(h.s.dialog, Some(Dialog::OriginalSale { .. })),
        "a space is no order id"
    );
    assert!(h.s.notice.as_ref().unwrap().1.contains("web order id"));
    h.key(Key::Esc);
    h.key(Key::F(7));
    h.typed("web-9");
    assert!(h.key(Key::Enter).is_empty(), "nothing to look up here");
    assert_eq!(h.s.original_order_id.as_deref(), Some("web-9"));
    assert_eq!(h.s.original_sale_id, None);
    let screen = super::screens::text(&h.s);
    assert!(screen.contains("web order web-9"), "{screen}");
    h.key(Key::F(5));
    let e = h.key(Key::Enter);
    let [Effect::PostReturn(req)] = e.as_slice() else {
        panic!("{e:?}")
    };
    assert_eq!(req.order_id.as_deref(), Some("web-9"));
    assert_eq!(req.original_sale_id, None);
    assert_eq!(req.lines[0].unit_price_minor, None, "refunded as charged");
    let req = req.clone();
    h.act(Action::ReturnDone {
        return_id: req.return_id,
        result: Ok(ReturnRecorded {
            return_id: req.return_id.unwrap(),
            status: "committed".into(),
            total_minor: 119,
        }),
    });
    let Some(Dialog::Receipt(r)) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert_eq!(r.original_order_id.as_deref(), Some("web-9"));
    let screen = super::screens::text(&h.s);
    assert!(screen.contains("Web order web-9"), "{screen}");
    // A sale id typed later replaces the order.
    h.key(Key::Enter);
    h.key(Key::F(6));
    h.key(Key::F(6));
    h.scan("4006381333931");
    h.key(Key::F(7));
    h.typed("web-9");
    h.key(Key::Enter);
    h.key(Key::F(7));
    for _ in 0.."web-9".len() {
        h.key(Key::Backspace);
    }
    let id = EventId(Uuid::from_u128(5));
    h.typed(&id.to_string());
    assert_eq!(h.key(Key::Enter), [Effect::LookupSale(id)]);
    assert_eq!(h.s.original_order_id, None);
}

/// A payment split across two cards: Tab moves to the amount, which the
/// first card pays; the second pays the rest. A card never pays more than
/// is due (no change on a card), nor nothing.
#[test]
fn a_payment_is_split_across_two_cards() {
    let mut h = Harness::with_basket();
    h.key(Key::F(5));
    h.key(Key::Char('k'));
    h.typed("GIFT-1");
    h.key(Key::Tab);
    let screen = super::screens::text(&h.s);
    assert!(screen.contains("Amount (empty: all due): _"), "{screen}");
    for (typed, why) in [("4", "more than due"), ("0", "nothing")] {
        h.typed(typed);
        assert!(h.key(Key::Enter).is_empty(), "{why}");
        assert!(
            matches!(
                &h.s.dialog,
                Some(Dialog::Card {
                    on_amount: true,
                    ..
                })
            ),
            "{why}"
        );
        assert!(h
            .s
            .notice
            .as_ref()
            .unwrap()
            .1
            .contains("at most what is due"));
        h.key(Key::Backspace);
    }
    h.typed("1,08");
    assert!(h.key(Key::Enter).is_empty(), "the rest is still due");
    assert_eq!(h.s.dialog, Some(Dialog::Tender));
    assert_eq!(h.s.due(), Some(200));
    h.key(Key::Char('k'));
    h.typed("VISA-2");
    let req = Harness::post(&h.key(Key::Enter));
    assert_eq!(
        req.tenders,
        [
            Tender {
                method: "card".into(),
                amount_minor: 108,
                reference: Some("GIFT-1".into())
            },
            Tender {
                method: "card".into(),
                amount_minor: 200,
                reference: Some("VISA-2".into())
            }
        ]
    );
}

/// In returns mode a receipt's barcode (its sale id, as Code 128 with its
/// AIM prefix, or typed) names the original sale, as F7 does; in sales
/// mode it is no item.
#[test]
fn a_scanned_receipt_names_the_original_sale() {
    let id = EventId(Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0042));
    let mut h = Harness::new();
    assert!(h.scan(&id.to_string()).is_empty());
    assert_eq!(h.s.notice.as_ref().unwrap().0, Level::Error);
    h.key(Key::F(6));
    let e = h.act(Action::Scanned(Err(crate::scan::ScanError::Barcode {
        raw: format!("]C0{id}"),
        error: tally_hardware::barcode::BarcodeError::Empty,
    })));
    assert_eq!(e, [Effect::LookupSale(id)]);
    assert_eq!(h.s.original_sale_id, Some(id));
    assert!(h.s.notice.as_ref().unwrap().1.contains("Receipt scanned"));
    // Typed, the same.
    h.key(Key::F(6));
    h.key(Key::F(6));
    assert_eq!(h.s.original_sale_id, None);
    assert_eq!(h.scan(&id.to_string()), [Effect::LookupSale(id)]);
    assert_eq!(h.s.original_sale_id, Some(id));
    // Items still scan as items.
    h.scan("4006381333931");
    assert_eq!(h.s.lines.len(), 1);
}

/// Units beyond the store's rights that HQ will not be asked for (the
/// hub out of reach) are approved by a manager before payment; with the
/// hub reachable and the units on the shelf the sale asks HQ instead, and
/// payment comes first.
#[test]
fn a_shortage_hq_cannot_fill_is_approved_before_payment() {
    let mut h = Harness::with_basket();
    h.stock(PEN, 5, 1);
    h.stock(GUM, 5, 5);
    // Hub reachable: HQ is asked when the sale is posted.
    h.key(Key::F(5));
    assert_eq!(h.s.dialog, Some(Dialog::Tender));
    h.key(Key::Esc);
    // Hub out of reach: the manager first.
    h.act(Action::Status(Ok(status(false, 0))));
    assert!(h.key(Key::F(5)).is_empty());
    let Some(Dialog::OverrideApprover { refused, .. }) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert!(
        matches!(
            refused.why,
            Why::Rule(Refusal::InsufficientStock {
                requested: 2,
                available: 1,
                on_hand: 5,
                ..
            })
        ),
        "{refused:?}"
    );
    h.typed("Ann");
    h.key(Key::Enter);
    h.typed("on the shelf");
    h.key(Key::Enter);
    h.typed("4711");
    assert!(h.key(Key::Enter).is_empty(), "payment first");
    h.key(Key::Char('c'));
    let sale = Harness::post(&h.key(Key::Enter));
    assert_eq!(sale.override_.unwrap().reason, "on the shelf");
}

/// An approval given before payment whose PIN the agent refuses is not
/// used again: backing out and paying anew asks the manager again.
#[test]
fn a_refused_approval_given_before_payment_is_asked_again() {
    let mut h = Harness::with_basket();
    h.s.selected = 0;
    h.key(Key::F(4));
    h.typed("1");
    h.key(Key::Enter);
    h.key(Key::F(5));
    h.typed("Ann");
    h.key(Key::Enter);
    h.typed("dented");
    h.key(Key::Enter);
    h.typed("0000");
    h.key(Key::Enter);
    h.key(Key::Char('c'));
    let sale = Harness::post(&h.key(Key::Enter));
    h.act(Action::SaleDone {
        sale_id: sale.sale_id,
        result: Err(ApiError::Denied(Box::new(
            tally_sync::error_body::ErrorBody::new(
                "approval_refused",
                "manager or PIN not accepted",
            ),
        ))),
    });
    assert!(matches!(h.s.dialog, Some(Dialog::OverridePin { .. })));
    assert_eq!(h.s.approved_ahead, None);
    // Backed out: the payment handed back, the basket as it was.
    for _ in 0..4 {
        h.key(Key::Esc);
    }
    assert_eq!(h.s.dialog, None, "{:?}", h.s.dialog);
    assert!(h.s.tenders.is_empty());
    h.key(Key::F(5));
    assert!(
        matches!(h.s.dialog, Some(Dialog::OverrideApprover { .. })),
        "the manager again, not the payment: {:?}",
        h.s.dialog
    );
}

/// HQ changes a price while a basket is open: the status's catalog
/// version moves, the basket's items are looked up again, the line goes
/// at the new price (no manager: it is the catalog's), and the cashier is
/// told. Not while a payment is under way.
#[test]
fn a_price_changed_at_hq_reprices_the_open_basket() {
    let mut h = Harness::with_basket();
    // The version the terminal saw (0) again: nothing to do.
    let mut st = status(true, 0);
    assert!(h.act(Action::Status(Ok(st.clone()))).is_empty());
    st.catalog_version = 8;
    let e = h.act(Action::Status(Ok(st.clone())));
    assert_eq!(
        e,
        [
            Effect::LookupCatalog(GUM.into()),
            Effect::LookupCatalog(PEN.into())
        ]
    );
    h.catalog(PEN, "Pen, blue", 149);
    assert!(h
        .s
        .notice
        .as_ref()
        .unwrap()
        .1
        .contains("Pen, blue is now 1.49 (was 1.29)"));
    h.catalog(GUM, "Gum", 50);
    assert_eq!(h.s.total(), Ok(149 * 2 + 50));
    let sale = h.pay_exact_cash();
    assert_eq!(sale.override_, None, "the catalog's price: no manager");
    assert_eq!(sale.lines[0].unit_price_minor, Some(149));
    // While paid (in flight), a change is not applied under it.
    st.catalog_version = 9;
    assert!(h.act(Action::Status(Ok(st))).is_empty());
}

/// A catalog change seen while a payment is being taken waits until it is
/// over (the payment dialog closed, nothing paid), then reprices.
#[test]
fn a_price_change_during_payment_waits_until_it_is_over() {
    let mut h = Harness::with_basket();
    let mut st = status(true, 0);
    h.key(Key::F(5));
    assert_eq!(h.s.dialog, Some(Dialog::Tender));
    st.catalog_version = 3;
    assert!(
        h.act(Action::Status(Ok(st.clone()))).is_empty(),
        "not under the payment"
    );
    h.key(Key::Esc);
    let e = h.act(Action::Status(Ok(st)));
    assert_eq!(
        e,
        [
            Effect::LookupCatalog(GUM.into()),
            Effect::LookupCatalog(PEN.into())
        ]
    );
    // An answer landing while paying again is held back, and asked again.
    h.key(Key::F(5));
    h.catalog(PEN, "Pen, blue", 149);
    assert_eq!(h.s.total(), Ok(308), "the amounts being paid stand");
    h.key(Key::Esc);
    let e = h.act(Action::Status(Ok(status(true, 0))));
    assert!(e.contains(&Effect::LookupCatalog(PEN.into())), "{e:?}");
}

/// A lookup that fails (timeout) never erases a price the basket knows,
/// and an item gone from the catalog while a payment is taken keeps the
/// amounts being paid: the payment never goes out short.
#[test]
fn a_failed_or_missing_lookup_during_payment_keeps_the_prices() {
    let mut h = Harness::with_basket();
    h.key(Key::F(5));
    assert_eq!(h.s.dialog, Some(Dialog::Tender));
    h.act(Action::Catalog {
        gtin: PEN.into(),
        result: Err(ApiError::Unreachable("operation timed out".into())),
    });
    assert_eq!(h.s.total(), Ok(308), "a failed lookup says nothing new");
    h.act(Action::Catalog {
        gtin: PEN.into(),
        result: Err(ApiError::NotFound),
    });
    assert_eq!(h.s.total(), Ok(308), "the amounts being paid stand");
    // Outside a payment a failure still changes nothing; an item gone
    // from the catalog loses its price.
    h.key(Key::Esc);
    h.act(Action::Catalog {
        gtin: PEN.into(),
        result: Err(ApiError::Unreachable("operation timed out".into())),
    });
    assert_eq!(h.s.total(), Ok(308));
    h.act(Action::Catalog {
        gtin: PEN.into(),
        result: Err(ApiError::NotFound),
    });
    assert!(h.s.total().is_err(), "no price for an item gone");
}

/// A repricing lookup that fails keeps the price known and is asked
/// again at the next status, not left stale until the next catalog
/// change.
#[test]
fn a_failed_repricing_lookup_is_asked_again() {
    let mut h = Harness::with_basket();
    let mut st = status(true, 0);
    h.act(Action::Status(Ok(st.clone())));
    st.catalog_version = 3;
    let e = h.act(Action::Status(Ok(st.clone())));
    assert!(e.contains(&Effect::LookupCatalog(PEN.into())), "{e:?}");
    h.act(Action::Catalog {
        gtin: PEN.into(),
        result: Err(ApiError::Unreachable("operation timed out".into())),
    });
    assert_eq!(h.s.total(), Ok(308));
    let e = h.act(Action::Status(Ok(st)));
    assert!(e.contains(&Effect::LookupCatalog(PEN.into())), "{e:?}");
}
