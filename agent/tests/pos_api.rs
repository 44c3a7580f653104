//! The parts of the agent's API the cashier terminal relies on, over real
//! HTTP (agent in-process on 127.0.0.1:0): the catalog lookup it shows
//! names and prices with, the sale sequence it runs — one id from the
//! first POST on, a refusal, then the same id re-posted with a manager
//! override — and the order screens (issue 22), driven by the terminal's
//! own state machine against a store HQ allocated orders to: the pick
//! list, picking by scans, pickup, a retried move recorded once, an
//! unknown order, an order HQ cancelled while it was at the counter. And
//! the Transfers screen against a store other stores sent transfers to:
//! the list, a receipt recorded once, refusals with nothing recorded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::VecDeque;

use common::{TestAgent, GUM, MUG, PEN};
use serde_json::json;
use tally_agent_api::AgentClient;
use tally_hardware::rcn::RcnLayout;
use tally_pos::state::{
    Action, Dialog, Effect, Env, Key, Move, OrderWhy, Pickup, PosState, Receive, Screen,
    TransferWhy,
};
use tally_sync::fulfilment::{Fulfilment, OrderAllocation, Status};
use tally_sync::routing::AllocatedLine;
use tally_sync::transfer::{Transfer, TransferLine, TransferStatus};
use tally_sync::EventId;

#[tokio::test]
async fn catalog_lookup_by_any_gtin_form() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start(dir.path(), "s1").await;
    let (s, v) = a
        .post(
            "/v1/catalog",
            json!({"items": [{"gtin": "4006381333931", "name": "Pen, blue", "price_minor": 129}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let want = json!({"gtin": "04006381333931", "name": "Pen, blue", "price_minor": 129});
    for form in ["4006381333931", "04006381333931"] {
        let (s, v) = a.get(&format!("/v1/catalog/{form}")).await;
        assert_eq!((s, &v), (200, &want), "{form}");
    }
    let (s, v) = a.get("/v1/catalog/96385074").await;
    assert_eq!(
        (s, v),
        (
            404,
            json!({"error": "not_found", "message": "item 00000096385074 is not in the catalog"})
        )
    );
    let (s, v) = a.get("/v1/catalog/4006381333932").await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"], "invalid");
    a.stop().await.unwrap();
}

#[tokio::test]
async fn refused_sale_then_override_under_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start_with_managers(dir.path(), "s1", &[("Ann", "4711")]).await;
    a.receive(GUM, 1).await;
    a.receive(PEN, 5).await;
    let id = "0190a5e0-0000-7000-8000-0000000000aa";
    let sale = json!({
        "sale_id": id,
        "lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 129},
                  {"gtin": GUM, "qty": 2, "unit_price_minor": 50}],
        "tenders": [{"method": "card", "amount_minor": 229, "reference": "AUTH-1"}],
    });
    let (s, v) = a.post("/v1/sales", sale.clone()).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"], "insufficient_stock");
    assert_eq!(
        (v["requested"].as_u64(), v["available"].as_u64()),
        (Some(2), Some(1))
    );
    // Nothing was recorded: the id is free and the stock untouched.
    assert_eq!(a.get(&format!("/v1/sales/{id}")).await.0, 404);
    assert_eq!(a.on_hand(PEN).await, 5);

    let mut with_override = sale.clone();
    with_override["override"] =
        json!({"approver": "Ann", "reason": "two on the shelf", "pin": "4711"});
    let (s, first) = a.post("/v1/sales", with_override.clone()).await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["sale_id"], id);
    assert_eq!(first["overridden"], true);
    assert_eq!(first["total_minor"], 229);
    // The terminal's retry after a timeout: the same answer, applied once.
    let (s, again) = a.post("/v1/sales", with_override).await;
    assert_eq!((s, &again), (200, &first));
    assert_eq!(a.on_hand(PEN).await, 4);
    let (s, got) = a.get(&format!("/v1/sales/{id}")).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["tenders"][0]["reference"], "AUTH-1");
    a.stop().await.unwrap();
}

/// The cashier terminal's state machine, its effects run against an agent
/// by the terminal's own `perform` (through `AgentClient`), every move it
/// posts kept.
struct Till {
    s: PosState,
    moves: Vec<Move>,
    receipts: Vec<Receive>,
}

impl Till {
    fn new() -> Self {
        let s = PosState::new("http://agent", RcnLayout::default_layouts())
            .with_staff("Bea", Some("till-2".into()));
        Till {
            s,
            moves: Vec::new(),
            receipts: Vec::new(),
        }
    }

    /// Applies `action` and runs what it asks of `api` to the end.
    async fn act(&mut self, api: &AgentClient, action: Action) {
        let mut queue = VecDeque::from([action]);
        while let Some(a) = queue.pop_front() {
            let env = Env {
                fresh_id: EventId(uuid::Uuid::now_v7()),
            };
            for effect in self.s.update(a, &env) {
                match &effect {
                    Effect::Fulfil(mv) => self.moves.push(mv.clone()),
                    Effect::ReceiveTransfer(r) => self.receipts.push(r.clone()),
                    _ => {}
                }
                if let Some(answer) = tally_pos::app::perform(api, effect).await {
                    queue.push_back(answer);
                }
            }
        }
    }

    async fn key(&mut self, api: &AgentClient, key: Key) {
        self.act(api, Action::Key(key)).await;
    }

    /// Types `code` into the input line and presses Enter.
    async fn enter(&mut self, api: &AgentClient, code: &str) {
        for c in code.chars() {
            self.key(api, Key::Char(c)).await;
        }
        self.key(api, Key::Enter).await;
    }

    fn notice(&self) -> String {
        self.s.notice.clone().map(|(_, t)| t).unwrap_or_default()
    }

    fn status_of(&self, order_id: &str) -> Option<Status> {
        let o = self.s.orders.list.iter().find(|o| o.order_id == order_id);
        o.map(|o| o.status)
    }
}

fn allocation(
    order_id: &str,
    fulfilment: Fulfilment,
    lines: &[(&str, u64)],
    status: Status,
) -> OrderAllocation {
    OrderAllocation {
        order_id: order_id.into(),
        fulfilment,
        lines: lines
            .iter()
            .map(|(gtin, qty)| AllocatedLine {
                gtin: gtin.parse().unwrap(),
                qty: *qty,
            })
            .collect(),
        status,
        at_ms: 1_796_000_000_000,
    }
}

/// The agent's view of an order's status.
async fn order_status(a: &TestAgent, order_id: &str) -> String {
    let (s, v) = a.get(&format!("/v1/orders/{order_id}")).await;
    assert_eq!(s, 200, "{v}");
    v["status"].as_str().unwrap().to_string()
}

async fn outbox(a: &TestAgent) -> u64 {
    let (_, v) = a.get("/v1/status").await;
    v["outbox_events"].as_u64().unwrap()
}

#[tokio::test]
async fn pick_list_picking_and_pickup_through_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    common::allocate(
        dir.path(),
        "s1",
        vec![
            allocation(
                "web-1",
                Fulfilment::Ship,
                &[(PEN, 2), (GUM, 1)],
                Status::Allocated,
            ),
            allocation(
                "bopis-7",
                Fulfilment::Pickup,
                &[(MUG, 1)],
                Status::Allocated,
            ),
            allocation(
                "bopis-8",
                Fulfilment::Pickup,
                &[(PEN, 1)],
                Status::Allocated,
            ),
        ],
        1,
    )
    .await;
    let a = TestAgent::start(dir.path(), "s1").await;
    let (s, v) = a
        .post(
            "/v1/catalog",
            json!({"items": [{"gtin": PEN, "name": "Pen, blue", "price_minor": 129},
                             {"gtin": MUG, "name": "Mug", "price_minor": 899}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let api = &a.client;
    let mut t = Till::new();

    // The pick list: the open orders, items named from the catalog.
    t.key(api, Key::F(9)).await;
    let ids: Vec<_> =
        t.s.orders
            .list
            .iter()
            .map(|o| o.order_id.as_str())
            .collect();
    assert_eq!(ids, ["bopis-7", "bopis-8", "web-1"]);
    let web =
        t.s.orders
            .list
            .iter()
            .find(|o| o.order_id == "web-1")
            .unwrap();
    assert_eq!(web.lines[0].name.as_deref(), Some("Pen, blue"));
    assert_eq!(web.lines[1].name, None, "gum is not in the catalog");

    // Picking web-1: selected by its id, its items scanned (typed); a
    // stranger and an extra pen are warned about and not counted; the
    // last unit posts `picked`.
    t.enter(api, "web-1").await;
    assert_eq!(t.s.orders.selected.as_deref(), Some("web-1"));
    t.enter(api, PEN).await;
    t.enter(api, MUG).await;
    assert!(t.notice().contains("NOT in order web-1"), "{}", t.notice());
    t.enter(api, PEN).await;
    t.enter(api, PEN).await;
    assert!(t.notice().contains("needs only 2"), "{}", t.notice());
    assert!(t.moves.is_empty());
    let before = outbox(&a).await;
    t.enter(api, GUM).await;
    assert_eq!(t.moves.len(), 1, "picked once, when complete");
    let picked = t.moves[0].clone();
    assert_eq!(
        (picked.order_id.as_str(), picked.to),
        ("web-1", Status::Picked)
    );
    assert!(
        t.notice().contains("web-1 recorded as picked"),
        "{}",
        t.notice()
    );
    assert_eq!(t.status_of("web-1"), Some(Status::Picked), "list refreshed");
    assert_eq!(order_status(&a, "web-1").await, "picked");
    assert_eq!(outbox(&a).await, before + 1, "one fulfilment event");
    let (_, v) = a.get("/v1/orders?status=picked").await;
    assert_eq!(v["orders"][0]["order_id"], "web-1");
    // The terminal's retry after a timeout: the same answer, recorded once.
    let body =
        json!({"fulfilment_id": picked.body.fulfilment_id, "cashier": "Bea", "till": "till-2"});
    let (s, v) = a.post("/v1/orders/web-1/picked", body).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["fulfilment_id"],
        json!(picked.body.fulfilment_id.unwrap().to_string())
    );
    assert_eq!(outbox(&a).await, before + 1);

    // Pickup: bopis-7 typed, collected straight from allocated.
    t.key(api, Key::F(12)).await;
    t.enter(api, "bopis-7").await;
    let Pickup::Shown(shown) = &t.s.orders.pickup else {
        panic!("{:?}", t.s.orders.pickup)
    };
    assert_eq!(shown.status, Status::Allocated);
    assert_eq!(shown.lines[0].name.as_deref(), Some("Mug"));
    t.key(api, Key::F(5)).await;
    assert!(
        matches!(&t.s.dialog, Some(Dialog::HandedOver { order, already: false }) if order.order_id == "bopis-7"),
        "{:?}",
        t.s.dialog
    );
    assert_eq!(t.moves[1].to, Status::Collected);
    assert_eq!(order_status(&a, "bopis-7").await, "collected");
    // The ship order web-1, scanned as Code 128, goes to the carrier.
    t.act(
        api,
        Action::Scanned(tally_pos::scan::from_typed("]C0web-1", &[])),
    )
    .await;
    assert_eq!(t.s.dialog, None, "the scan closed the confirmation");
    t.key(api, Key::F(5)).await;
    assert_eq!(t.moves[2].to, Status::Shipped);
    assert_eq!(order_status(&a, "web-1").await, "shipped");
    t.key(api, Key::Enter).await;

    // An order not allocated here: said so, nothing recorded.
    let before = outbox(&a).await;
    t.enter(api, "nope-1").await;
    assert!(
        matches!(&t.s.dialog, Some(Dialog::OrderRefused(r)) if r.why == OrderWhy::NotHere { item_code: false }),
        "{:?}",
        t.s.dialog
    );
    t.key(api, Key::Esc).await;

    // bopis-8 on the counter; meanwhile HQ cancels it and the store
    // merges the hub's page: the handover is refused, nothing recorded.
    t.enter(api, "bopis-8").await;
    assert!(matches!(t.s.orders.pickup, Pickup::Shown(_)));
    a.stop().await.unwrap();
    common::allocate(
        dir.path(),
        "s1",
        vec![allocation(
            "bopis-8",
            Fulfilment::Pickup,
            &[(PEN, 1)],
            Status::Cancelled,
        )],
        2,
    )
    .await;
    let a = TestAgent::start(dir.path(), "s1").await;
    let api = &a.client;
    t.key(api, Key::F(5)).await;
    assert_eq!(t.moves.len(), 4, "posted, and refused");
    let Some(Dialog::OrderRefused(r)) = &t.s.dialog else {
        panic!("{:?}", t.s.dialog)
    };
    assert_eq!(r.to, Some(Status::Collected));
    assert!(
        matches!(
            &r.why,
            OrderWhy::Status {
                status: Some(Status::Cancelled),
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(order_status(&a, "bopis-8").await, "cancelled");
    assert_eq!(outbox(&a).await, before);

    // Nothing is open any more.
    t.key(api, Key::Esc).await;
    t.key(api, Key::F(9)).await;
    assert!(t.s.orders.list.is_empty(), "{:?}", t.s.orders.list);
    a.stop().await.unwrap();
}

/// A transfer from `from` to `to`, in transit: `lines` as (GTIN, qty).
fn transfer(id: &str, from: &str, to: &str, lines: &[(&str, u64)]) -> Transfer {
    let at = |id: &str| tally_sync::LocationId::new(id).unwrap();
    Transfer {
        transfer_id: id.into(),
        from: at(from),
        to: at(to),
        lines: lines
            .iter()
            .map(|(gtin, qty)| TransferLine {
                gtin: gtin.parse().unwrap(),
                qty: *qty,
                epc: None,
            })
            .collect(),
        status: TransferStatus::InTransit,
        sent_at_ms: 1_796_000_000_000,
        sent_event: None,
    }
}

async fn on_hand(a: &TestAgent, gtin: &str) -> u64 {
    let (s, v) = a.get(&format!("/v1/stock/{gtin}")).await;
    assert_eq!(s, 200, "{v}");
    v["on_hand"].as_u64().unwrap()
}

#[tokio::test]
async fn transfers_received_through_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // The hub's page: two transfers sent to s1 by other stores.
    common::merge_page(
        dir.path(),
        "s1",
        tally_sync::message::AllocationsPage {
            allocations: Vec::new(),
            transfers: vec![
                transfer("t-1", "s2", "s1", &[(PEN, 3), (MUG, 1)]),
                transfer("t-2", "s3", "s1", &[(GUM, 2)]),
            ],
            cursor: 1,
            more: false,
        },
    )
    .await;
    let a = TestAgent::start(dir.path(), "s1").await;
    let (s, v) = a
        .post(
            "/v1/catalog",
            json!({"items": [{"gtin": PEN, "name": "Pen, blue", "price_minor": 129}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let api = &a.client;
    let mut t = Till::new();

    // F11: the transfers in transit to the store, items named.
    t.key(api, Key::F(11)).await;
    assert_eq!(t.s.screen, Screen::Transfers);
    let ids: Vec<_> =
        t.s.transfers
            .list
            .iter()
            .map(|t| t.transfer_id.as_str())
            .collect();
    assert_eq!(ids, ["t-1", "t-2"]);
    let t1 = &t.s.transfers.list[0];
    assert_eq!(
        (t1.direction.as_str(), t1.from_store.as_str()),
        ("in", "s2")
    );
    assert_eq!(t1.lines[0].name.as_deref(), Some("Pen, blue"));
    assert_eq!(t.s.transfers.selected.as_deref(), Some("t-1"));

    // F5 receives t-1, once; its units are in the store's stock.
    let (pens, before) = (on_hand(&a, PEN).await, outbox(&a).await);
    t.key(api, Key::F(5)).await;
    assert_eq!(t.receipts.len(), 1);
    let r = t.receipts[0].clone();
    assert_eq!(r.transfer_id, "t-1");
    assert_eq!(r.body.cashier.as_deref(), Some("Bea"));
    assert!(
        t.notice().contains("t-1 from s2 received: 4 units"),
        "{}",
        t.notice()
    );
    assert_eq!(t.s.dialog, None);
    assert_eq!(on_hand(&a, PEN).await, pens + 3);
    assert_eq!(outbox(&a).await, before + 1, "one transfer_in event");
    let ids: Vec<_> =
        t.s.transfers
            .list
            .iter()
            .map(|t| t.transfer_id.as_str())
            .collect();
    assert_eq!(ids, ["t-2"], "the list fetched again");
    // The terminal's retry after a timeout: the same answer, recorded once.
    let again = tally_pos::app::perform(api, Effect::ReceiveTransfer(r.clone()))
        .await
        .unwrap();
    let Action::TransferReceived {
        result: Ok(rec), ..
    } = again
    else {
        panic!("{again:?}")
    };
    assert_eq!(rec.event_id, r.body.event_id.unwrap());
    assert_eq!(rec.units, 4);
    assert_eq!(on_hand(&a, PEN).await, pens + 3);
    assert_eq!(outbox(&a).await, before + 1);

    // Typed again: received already (looked up), nothing posted.
    t.enter(api, "t-1").await;
    assert!(
        matches!(&t.s.dialog, Some(Dialog::TransferRefused(x)) if x.why == TransferWhy::Received && !x.posted),
        "{:?}",
        t.s.dialog
    );
    t.key(api, Key::Esc).await;
    // Not known here (the hub's page naming it has not arrived).
    t.enter(api, "t-404").await;
    assert!(
        matches!(&t.s.dialog, Some(Dialog::TransferRefused(x)) if x.why == TransferWhy::NotHere),
        "{:?}",
        t.s.dialog
    );
    t.key(api, Key::Esc).await;

    // t-2 is received at another till while this one still lists it:
    // F5 is refused (409 transfer_received), nothing more recorded.
    let (s, v) = a.post("/v1/transfers/t-2/received", json!({})).await;
    assert_eq!(s, 201, "{v}");
    let before = outbox(&a).await;
    assert_eq!(t.s.transfers.selected.as_deref(), Some("t-2"));
    t.key(api, Key::F(5)).await;
    assert_eq!(t.receipts.len(), 2);
    assert!(
        matches!(&t.s.dialog, Some(Dialog::TransferRefused(x)) if x.why == TransferWhy::Received && x.posted),
        "{:?}",
        t.s.dialog
    );
    assert_eq!(outbox(&a).await, before);
    assert!(t.s.transfers.list.is_empty(), "{:?}", t.s.transfers.list);
    t.key(api, Key::Esc).await;

    // Sent by this store: listed read-only; a receipt of it here is 422.
    let (s, v) = a
        .post(
            "/v1/transfers",
            json!({"transfer_id": "t-out", "to_store": "s4", "lines": [{"gtin": PEN, "qty": 1}]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    t.key(api, Key::F(11)).await;
    let out = &t.s.transfers.list[0];
    assert_eq!(
        (out.transfer_id.as_str(), out.direction.as_str()),
        ("t-out", "out")
    );
    assert_eq!(t.s.transfers.selected, None, "nothing to receive");
    t.enter(api, "t-out").await;
    assert!(t.notice().contains("sent BY this store"), "{}", t.notice());
    let receipt = Receive {
        transfer_id: "t-out".into(),
        body: tally_agent_api::TransferReceivedRequest {
            event_id: Some(EventId(uuid::Uuid::now_v7())),
            cashier: None,
            till: None,
        },
    };
    let refused = tally_pos::app::perform(api, Effect::ReceiveTransfer(receipt)).await;
    assert!(
        matches!(
            &refused,
            Some(Action::TransferReceived {
                result: Err(tally_agent_api::ApiError::Invalid { status: 422, .. }),
                ..
            })
        ),
        "{refused:?}"
    );
    t.key(api, Key::Esc).await;
    assert_eq!(t.s.screen, Screen::Basket);
    a.stop().await.unwrap();
}
