//! Cashier sign-in (`state::signin`): asked when the agent wants it,
//! the PIN masked, the signed-in cashier sent with every sale; a sale
//! refused for want of a session kept and sent again, the same, once the
//! cashier signed in; Ctrl-L signs out.

use tally_agent_api::{ApiError, SignInRequest, SignedIn};
use tally_sync::error_body::ErrorBody;

use super::{committed, status, Harness};
use crate::state::{Action, Dialog, Effect, Key};

fn wanting_sign_in() -> Harness {
    let mut h = Harness::new();
    // The agent restarted with [[cashiers]]: down, then up wanting it.
    h.act(Action::Status(Err(ApiError::Unreachable(
        "restarting".into(),
    ))));
    let mut st = status(true, 0);
    st.cashier_sign_in = true;
    h.act(Action::Status(Ok(st)));
    h
}

fn signed(cashier: &str) -> Action {
    Action::SignedIn(Ok(SignedIn {
        session: "tok".into(),
        cashier: cashier.into(),
        idle_timeout_s: 43_200,
    }))
}

#[test]
fn the_cashier_signs_in_where_the_agent_wants_it() {
    let mut h = wanting_sign_in();
    assert!(h.s.sign_in_needed());
    assert!(matches!(
        h.s.dialog,
        Some(Dialog::SignIn { on_pin: true, .. })
    ));
    h.typed("2468");
    let screen = super::screens::text(&h.s);
    assert!(screen.contains("SIGN IN"), "{screen}");
    assert!(screen.contains("PIN: ****"), "{screen}");
    assert!(!screen.contains("2468"), "never shown:\n{screen}");
    let e = h.key(Key::Enter);
    assert_eq!(
        e,
        [Effect::SignIn(SignInRequest {
            cashier: "cashier".into(),
            pin: "2468".into()
        })]
    );
    // Refused: asked again, the PIN cleared.
    h.act(Action::SignedIn(Err(ApiError::Denied(Box::new(
        ErrorBody::new("sign_in_refused", "cashier or PIN not accepted"),
    )))));
    assert!(matches!(&h.s.dialog, Some(Dialog::SignIn { pin, .. }) if pin.is_empty()));
    assert!(h.s.notice.as_ref().unwrap().1.contains("not accepted"));
    h.act(signed("c-104"));
    assert_eq!(h.s.dialog, None);
    assert!(!h.s.sign_in_needed());
    assert_eq!(h.s.cashier, "c-104");
    h.scan("96385074");
    h.catalog(super::GUM, "Gum", 50);
    let sale = h.pay_exact_cash();
    assert_eq!(sale.cashier.as_deref(), Some("c-104"));
    // Ctrl-L (basket empty once recorded): signed out, the next signs in.
    h.act(Action::SaleDone {
        sale_id: sale.sale_id,
        result: committed(sale.sale_id, 50, false),
    });
    h.key(Key::Enter);
    let e = h.key(Key::Ctrl('l'));
    assert_eq!(e, [Effect::SignOut]);
    assert!(matches!(h.s.dialog, Some(Dialog::SignIn { .. })));
    assert!(h.s.sign_in_needed());
}

/// The session gone (signed out elsewhere, idle, the agent restarted):
/// the sale is refused `sign_in_required`, kept with its payments, and
/// sent again, the same request, once the cashier signed in.
#[test]
fn a_sale_refused_for_want_of_a_session_goes_again_after_sign_in() {
    let mut h = wanting_sign_in();
    h.act(signed("c-104"));
    h.scan("96385074");
    h.catalog(super::GUM, "Gum", 50);
    let sale = h.pay_exact_cash();
    h.act(Action::SaleDone {
        sale_id: sale.sale_id,
        result: Err(ApiError::Denied(Box::new(ErrorBody::new(
            "sign_in_required",
            "the session is not open",
        )))),
    });
    assert!(matches!(h.s.dialog, Some(Dialog::SignIn { .. })));
    assert!(h.s.in_doubt, "kept");
    assert_eq!(h.s.tenders.len(), 1);
    assert!(h.s.saved().is_some(), "in the journal");
    // Esc: back to the sale in doubt.
    h.key(Key::Esc);
    assert!(matches!(h.s.dialog, Some(Dialog::InDoubt { .. })));
    h.key(Key::Char('r'));
    h.act(Action::SaleDone {
        sale_id: sale.sale_id,
        result: Err(ApiError::Denied(Box::new(ErrorBody::new(
            "sign_in_required",
            "no session",
        )))),
    });
    h.typed("2468");
    h.key(Key::Enter);
    let e = h.act(signed("c-104"));
    assert_eq!(Harness::post(&e), sale, "the same request");
}

/// Ctrl-L leaves the id empty for the next cashier (their PIN never
/// counts against the last one's id); sign-in dismissed comes back at F5,
/// before payment, or at Ctrl-L; a sale kept for want of a session goes
/// again under whoever signs in, same id.
#[test]
fn the_next_cashier_types_their_own_id_and_signs_in_before_paying() {
    let mut h = wanting_sign_in();
    h.typed("2468");
    h.key(Key::Enter);
    h.act(signed("c-104"));
    assert_eq!(h.key(Key::Ctrl('l')), [Effect::SignOut]);
    assert!(
        matches!(&h.s.dialog, Some(Dialog::SignIn { cashier, on_pin: false, .. }) if cashier.is_empty()),
        "{:?}",
        h.s.dialog
    );
    // Dismissed: the basket fills, but F5 asks for a cashier first.
    h.key(Key::Esc);
    h.scan("96385074");
    h.catalog(super::GUM, "Gum", 50);
    assert!(h.key(Key::F(5)).is_empty());
    assert!(
        matches!(h.s.dialog, Some(Dialog::SignIn { .. })),
        "{:?}",
        h.s.dialog
    );
    assert!(h.s.tenders.is_empty(), "nothing paid");
    h.key(Key::Esc);
    h.key(Key::Ctrl('l'));
    assert!(matches!(h.s.dialog, Some(Dialog::SignIn { .. })));
    h.typed("c-200");
    h.key(Key::Tab);
    h.typed("1357");
    assert_eq!(
        h.key(Key::Enter),
        [Effect::SignIn(SignInRequest {
            cashier: "c-200".into(),
            pin: "1357".into()
        })]
    );
    h.act(signed("c-200"));
    let sale = h.pay_exact_cash();
    assert_eq!(sale.cashier.as_deref(), Some("c-200"));
    // Refused for want of a session; c-300 signs in: the same sale, under
    // c-300.
    h.act(Action::SaleDone {
        sale_id: sale.sale_id,
        result: Err(ApiError::Denied(Box::new(ErrorBody::new(
            "sign_in_required",
            "no session",
        )))),
    });
    let e = h.act(signed("c-300"));
    let again = Harness::post(&e);
    assert_eq!(again.sale_id, sale.sale_id);
    assert_eq!((again.lines, again.tenders), (sale.lines, sale.tenders));
    assert_eq!(again.cashier.as_deref(), Some("c-300"));
}
