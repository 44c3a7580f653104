//! Effects run by the event loop's `perform` against a fake agent: the
//! state machine and the API glue together, and the fake sees exactly
//! what a real agent would be sent (sales; the pick list's pages, the
//! moves of an order).

use std::collections::VecDeque;
use std::sync::Mutex;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tally_agent_api::{
    AgentStatus, ApiError, CountAccepted, CountReportView, CountSessionRequest, CountSessionView,
    FulfilRequest, FulfilmentRecorded, OrderList, OrderView, ReturnRecorded, ReturnRequest,
    SaleRecorded, SaleRequest, SaleView, Stock, TransferList, TransferReceivedRequest,
    TransferRecorded, TransferView,
};
use tally_sync::fulfilment::Status;
use tally_sync::message::CatalogItem;
use tally_sync::{EventId, Refusal};

use super::{bopis_7, committed, gtin_of, status, web_1, Harness, GUM, PEN};
use crate::api::AgentApi;
use crate::app::{map_key, perform};
use crate::state::{Action, Dialog, Effect, Key};

/// A fake agent: scripted answers to sales and moves, fixed catalog and
/// stock, open orders in pages of two, and a log of every sale and move
/// it was sent.
#[derive(Default)]
struct Fake {
    sales: Mutex<VecDeque<Result<SaleRecorded, ApiError>>>,
    seen: Mutex<Vec<SaleRequest>>,
    orders: Mutex<Vec<OrderView>>,
    moves: Mutex<VecDeque<Result<FulfilmentRecorded, ApiError>>>,
    seen_moves: Mutex<Vec<(String, Status, FulfilRequest)>>,
}

impl AgentApi for Fake {
    async fn status(&self) -> Result<AgentStatus, ApiError> {
        Ok(status(true, 0))
    }
    async fn catalog_item(&self, gtin: &str) -> Result<CatalogItem, ApiError> {
        match gtin {
            PEN => Ok(CatalogItem {
                gtin: gtin_of(PEN),
                name: "Pen, blue".into(),
                price_minor: 129,
            }),
            _ => Err(ApiError::NotFound),
        }
    }
    async fn stock(&self, gtin: &str) -> Result<Stock, ApiError> {
        Ok(Stock {
            gtin: gtin_of(gtin),
            on_hand: 3,
            rights: 1,
            others_rights: 2,
        })
    }
    async fn post_sale(&self, sale: &SaleRequest) -> Result<SaleRecorded, ApiError> {
        self.seen.lock().unwrap().push(sale.clone());
        self.sales
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Err(ApiError::Unreachable("script ended".into())))
    }
    async fn post_return(&self, _ret: &ReturnRequest) -> Result<ReturnRecorded, ApiError> {
        Err(ApiError::NotFound)
    }
    async fn sale(&self, _id: EventId) -> Result<SaleView, ApiError> {
        Err(ApiError::NotFound)
    }
    async fn open_orders(&self, after: &str) -> Result<OrderList, ApiError> {
        let orders: Vec<OrderView> = self
            .orders
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.status.open() && o.order_id.as_str() > after)
            .take(2)
            .cloned()
            .collect();
        let next = (orders.len() == 2).then(|| orders[1].order_id.clone());
        Ok(OrderList { next, orders })
    }
    async fn order(&self, order_id: &str) -> Result<OrderView, ApiError> {
        let orders = self.orders.lock().unwrap();
        let found = orders.iter().find(|o| o.order_id == order_id).cloned();
        found.ok_or(ApiError::NotFound)
    }
    async fn fulfil(
        &self,
        order_id: &str,
        to: Status,
        body: &FulfilRequest,
    ) -> Result<FulfilmentRecorded, ApiError> {
        self.seen_moves
            .lock()
            .unwrap()
            .push((order_id.into(), to, body.clone()));
        let scripted = self.moves.lock().unwrap().pop_front();
        let answer = scripted.unwrap_or_else(|| {
            Ok(FulfilmentRecorded {
                fulfilment_id: body.fulfilment_id,
                order_id: order_id.into(),
                order_status: to,
                status: "committed".into(),
            })
        });
        if let Ok(recorded) = &answer {
            for o in self.orders.lock().unwrap().iter_mut() {
                if o.order_id == order_id {
                    o.status = recorded.order_status;
                }
            }
        }
        answer
    }
    async fn transfers_in_transit(&self, _after: &str) -> Result<TransferList, ApiError> {
        Ok(TransferList {
            next: None,
            transfers: Vec::new(),
        })
    }
    async fn transfer(&self, _transfer_id: &str) -> Result<TransferView, ApiError> {
        Err(ApiError::NotFound)
    }
    async fn receive_transfer(
        &self,
        _transfer_id: &str,
        _body: &TransferReceivedRequest,
    ) -> Result<TransferRecorded, ApiError> {
        Err(ApiError::NotFound)
    }
    async fn start_count(&self, _body: &CountSessionRequest) -> Result<CountSessionView, ApiError> {
        Err(ApiError::Unreachable("no counts here".into()))
    }
    async fn count_session(&self, _session_id: &str) -> Result<CountSessionView, ApiError> {
        Err(ApiError::NotFound)
    }
    async fn count_report(&self, _session_id: &str) -> Result<CountReportView, ApiError> {
        Err(ApiError::NotFound)
    }
    async fn finish_count(&self, _session_id: &str) -> Result<CountReportView, ApiError> {
        Err(ApiError::NotFound)
    }
    async fn accept_count(&self, _session_id: &str) -> Result<CountAccepted, ApiError> {
        Err(ApiError::NotFound)
    }
    async fn sign_in(
        &self,
        req: &tally_agent_api::SignInRequest,
    ) -> Result<tally_agent_api::SignedIn, ApiError> {
        Ok(tally_agent_api::SignedIn {
            session: "s".into(),
            cashier: req.cashier.clone(),
            idle_timeout_s: 60,
        })
    }
    async fn sign_out(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Runs every effect of `effects` (and those they lead to) to completion.
fn settle(h: &mut Harness, api: &Fake, effects: Vec<Effect>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut queue: VecDeque<Effect> = effects.into();
    while let Some(e) = queue.pop_front() {
        if let Some(a) = rt.block_on(perform(api, e)) {
            queue.extend(h.act(a));
        }
    }
}

#[test]
fn timeout_then_refusal_then_override_all_under_one_sale_id() {
    let api = Fake::default();
    *api.sales.lock().unwrap() = VecDeque::from([
        Err(ApiError::Unreachable("operation timed out".into())),
        Err(ApiError::Refused(Refusal::InsufficientStock {
            gtin: gtin_of(PEN),
            requested: 2,
            available: 1,
            on_hand: 3,
        })),
    ]);
    let mut h = Harness::new();
    for _ in 0..2 {
        let e = h.scan("4006381333931");
        settle(&mut h, &api, e);
    }
    assert_eq!(h.s.total(), Ok(258));
    assert_eq!(
        h.s.short_of(&h.s.lines[0]),
        Some(1),
        "flagged before paying"
    );
    h.key(Key::F(5));
    h.key(Key::Char('k'));
    h.typed("AUTH1");
    let e = h.key(Key::Enter);
    settle(&mut h, &api, e);
    assert!(matches!(h.s.dialog, Some(Dialog::InDoubt { .. })));
    let e = h.key(Key::Char('r'));
    settle(&mut h, &api, e);
    let Some(Dialog::Refused(r)) = &h.s.dialog else {
        panic!("{:?}", h.s.dialog)
    };
    assert_eq!(
        r.stock.map(|s| s.on_hand),
        Some(3),
        "stock fetched for the dialog"
    );
    let id = h.s.event_id.unwrap();
    api.sales
        .lock()
        .unwrap()
        .push_back(committed(id, 258, true));
    h.key(Key::Char('o'));
    h.typed("Ann");
    h.key(Key::Enter);
    h.typed("on shelf");
    h.key(Key::Enter);
    h.typed("4711");
    let e = h.key(Key::Enter);
    settle(&mut h, &api, e);
    assert!(matches!(h.s.dialog, Some(Dialog::Receipt(_))));
    let seen = api.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.sale_id == Some(id)));
    assert_eq!(seen[0], seen[1], "the retry is byte-for-byte the same sale");
    assert_eq!(seen[2].lines, seen[0].lines);
    assert!(seen[2].override_.is_some());
}

#[test]
fn the_pick_list_is_paged_and_a_pick_in_doubt_is_retried_under_one_id() {
    let api = Fake::default();
    let a = super::order(
        "a-0",
        tally_sync::fulfilment::Fulfilment::Pickup,
        Status::Allocated,
        &[(GUM, None, 1)],
    );
    *api.orders.lock().unwrap() = vec![a, bopis_7(), web_1()];
    *api.moves.lock().unwrap() =
        VecDeque::from([Err(ApiError::Unreachable("operation timed out".into()))]);
    let mut h = Harness::new();
    let e = h.key(Key::F(9));
    settle(&mut h, &api, e);
    let ids: Vec<_> =
        h.s.orders
            .list
            .iter()
            .map(|o| o.order_id.as_str())
            .collect();
    assert_eq!(ids, ["a-0", "bopis-7", "web-1"], "two pages, joined");
    let e = h.scan("web-1");
    settle(&mut h, &api, e);
    for code in ["4006381333931", "4006381333931", "96385074"] {
        let e = h.scan(code);
        settle(&mut h, &api, e);
    }
    assert!(matches!(h.s.dialog, Some(Dialog::MoveInDoubt { .. })));
    let e = h.key(Key::Char('r'));
    settle(&mut h, &api, e);
    assert_eq!(h.s.dialog, None);
    let seen = api.seen_moves.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], seen[1], "the retry is the same move");
    assert_eq!((seen[0].0.as_str(), seen[0].1), ("web-1", Status::Picked));
    // The list was fetched again after the move: web-1 is picked now.
    let web = h.s.orders.list.iter().find(|o| o.order_id == "web-1");
    assert_eq!(web.map(|o| o.status), Some(Status::Picked));
    // Pickup: web-1 is a ship order, so it is shipped.
    let e = h.key(Key::F(12));
    settle(&mut h, &api, e);
    let e = h.scan("web-1");
    settle(&mut h, &api, e);
    let e = h.key(Key::F(5));
    settle(&mut h, &api, e);
    assert!(matches!(h.s.dialog, Some(Dialog::HandedOver { .. })));
    let seen = api.seen_moves.lock().unwrap().clone();
    assert_eq!((seen[2].0.as_str(), seen[2].1), ("web-1", Status::Shipped));
    assert_ne!(seen[2].2.fulfilment_id, seen[0].2.fulfilment_id);
}

#[test]
fn perform_maps_each_effect_to_its_answer() {
    let api = Fake::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(perform(&api, Effect::Quit)), None);
    assert_eq!(
        rt.block_on(perform(
            &api,
            Effect::LookupCatalog("00000096385074".into())
        )),
        Some(Action::Catalog {
            gtin: "00000096385074".into(),
            result: Err(ApiError::NotFound)
        })
    );
    assert!(matches!(
        rt.block_on(perform(&api, Effect::FetchStock(PEN.into()))),
        Some(Action::Stock { result: Ok(s), .. }) if s.rights == 1
    ));
}

#[test]
fn terminal_keys_map_to_the_machines() {
    let k = |code, mods| map_key(KeyEvent::new(code, mods));
    assert_eq!(
        k(KeyCode::Char('4'), KeyModifiers::NONE),
        Some(Key::Char('4'))
    );
    assert_eq!(
        k(KeyCode::Char('C'), KeyModifiers::SHIFT),
        Some(Key::Char('C'))
    );
    assert_eq!(
        k(KeyCode::Char('q'), KeyModifiers::CONTROL),
        Some(Key::Ctrl('q'))
    );
    assert_eq!(k(KeyCode::F(5), KeyModifiers::NONE), Some(Key::F(5)));
    assert_eq!(k(KeyCode::Enter, KeyModifiers::NONE), Some(Key::Enter));
    assert_eq!(k(KeyCode::Delete, KeyModifiers::NONE), Some(Key::Delete));
    assert_eq!(k(KeyCode::Tab, KeyModifiers::NONE), Some(Key::Tab));
    assert_eq!(k(KeyCode::Home, KeyModifiers::NONE), None);
    let mut release = KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    assert_eq!(map_key(release), None);
}
