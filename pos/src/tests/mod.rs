//! Tests of the cashier terminal without a terminal or an agent: the state
//! machine's flows ([`flows`]; the order screens' in [`orders`], with
//! property tests of picking; the Transfers screen's in [`transfers`];
//! the Count screen's in [`counting`]),
//! screens rendered into ratatui's `TestBackend` ([`screens`]), and
//! effects run against a fake API ([`effects`]). Shared helpers live
//! here.

mod counting;
mod effects;
mod flows;
mod orders;
mod resume;
mod screens;
mod signin;
mod transfers;

use tally_agent_api::{
    AgentStatus, ApiError, FulfilmentRecorded, OrderLineView, OrderList, OrderView, SaleRecorded,
    SaleRequest, Stock,
};
use tally_hardware::rcn::RcnLayout;
use tally_sync::fulfilment::{Fulfilment, Status};
use tally_sync::message::CatalogItem;
use tally_sync::{Epc, EventId, Gtin, LocationId, ReplicaId};
use uuid::Uuid;

use crate::state::{Action, Effect, Env, Key, Move, PosState};

pub const PEN: &str = "04006381333931";
pub const GUM: &str = "00000096385074";
pub const URL: &str = "http://127.0.0.1:7420";

/// A state machine with a counter for fresh ids (1, 2, 3, …) and a log of
/// every effect it asked for.
pub struct Harness {
    pub s: PosState,
    next: u128,
    pub effects: Vec<Effect>,
}

impl Harness {
    /// An online agent, empty basket.
    pub fn new() -> Self {
        let mut h = Harness {
            s: PosState::new(URL, RcnLayout::default_layouts()),
            next: 0,
            effects: Vec::new(),
        };
        h.act(Action::Status(Ok(status(true, 0))));
        h
    }

    pub fn act(&mut self, a: Action) -> Vec<Effect> {
        self.next += 1;
        let env = Env {
            fresh_id: EventId(Uuid::from_u128(self.next)),
        };
        let e = self.s.update(a, &env);
        self.effects.extend(e.clone());
        e
    }

    pub fn key(&mut self, k: Key) -> Vec<Effect> {
        self.act(Action::Key(k))
    }

    /// Types text, one key per character.
    pub fn typed(&mut self, text: &str) -> Vec<Effect> {
        let mut out = Vec::new();
        for c in text.chars() {
            out.extend(self.key(Key::Char(c)));
        }
        out
    }

    /// Types a code and presses Enter; answers the catalog lookup.
    pub fn scan(&mut self, code: &str) -> Vec<Effect> {
        self.typed(code);
        self.key(Key::Enter)
    }

    pub fn catalog(&mut self, gtin: &str, name: &str, price: i64) -> Vec<Effect> {
        self.act(Action::Catalog {
            gtin: gtin.into(),
            result: Ok(CatalogItem {
                gtin: gtin_of(gtin),
                name: name.into(),
                price_minor: price,
            }),
        })
    }

    pub fn stock(&mut self, gtin: &str, on_hand: u64, rights: u64) -> Vec<Effect> {
        self.act(Action::Stock {
            gtin: gtin.into(),
            result: Ok(Stock {
                gtin: gtin_of(gtin),
                on_hand,
                rights,
                others_rights: on_hand - rights,
            }),
        })
    }

    /// Two pens (1.29) and a gum (0.50), catalog answered: total 3.08.
    pub fn with_basket() -> Self {
        let mut h = Harness::new();
        h.scan("4006381333931");
        h.catalog(PEN, "Pen, blue", 129);
        h.scan("4006381333931");
        h.scan("96385074");
        h.catalog(GUM, "Gum", 50);
        h
    }

    /// Pays the basket in cash, exactly (F5, `c`, Enter on the proposed
    /// amount), and returns the sale it posts.
    pub fn pay_exact_cash(&mut self) -> SaleRequest {
        self.key(Key::F(5));
        self.key(Key::Char('c'));
        Harness::post(&self.key(Key::Enter))
    }

    /// F9 from the basket, and the agent's answer: `orders`, one page.
    pub fn pick_list(orders: Vec<OrderView>) -> Self {
        let mut h = Harness::new();
        let e = h.key(Key::F(9));
        assert_eq!(
            e,
            [Effect::ListOrders {
                after: String::new()
            }]
        );
        h.act(Action::Orders {
            after: String::new(),
            result: Ok(OrderList { next: None, orders }),
        });
        h
    }

    /// An item scanned (as the scanner driver hands it over).
    pub fn scan_item(&mut self, gtin: &str) -> Vec<Effect> {
        self.act(Action::Scanned(Ok(crate::scan::Scanned {
            raw: gtin.into(),
            gtin: gtin.into(),
            epc: None,
            measure: None,
        })))
    }

    /// The single PostSale of `effects`.
    pub fn post(effects: &[Effect]) -> SaleRequest {
        let posts: Vec<_> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::PostSale(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(posts.len(), 1, "expected one PostSale in {effects:?}");
        posts[0].clone()
    }
}

pub fn status(online: bool, outbox: u64) -> AgentStatus {
    AgentStatus {
        last_sync_at: None,
        last_sync_ms: None,
        online,
        live: online,
        live_since: None,
        outbox_events: outbox,
        replica_id: ReplicaId::new("store-1").unwrap(),
        store_id: LocationId::new("store-1").unwrap(),
        sync_error: None,
        hub_clock_offset_ms: None,
        version: "0.1.0".into(),
        cashier_sign_in: false,
        catalog_version: 0,
    }
}

/// The agent's answer to a recorded sale `id` (as a request carries it
/// or as the terminal keeps it).
pub fn committed(
    id: impl Into<Option<EventId>>,
    total: i64,
    overridden: bool,
) -> Result<SaleRecorded, ApiError> {
    Ok(SaleRecorded {
        overridden,
        sale_id: id.into().expect("a posted sale has an id"),
        status: "committed".into(),
        total_minor: total,
    })
}

/// A GTIN of the tests (14 digits).
pub fn gtin_of(text: &str) -> Gtin {
    text.parse().unwrap()
}

/// An EPC of the tests (hex).
pub fn epc_of(hex: &str) -> Epc {
    Epc::from_hex(hex).unwrap()
}

/// An order allocated to the store: `lines` as (GTIN, name, qty).
pub fn order(
    id: &str,
    fulfilment: Fulfilment,
    status: Status,
    lines: &[(&str, Option<&str>, u64)],
) -> OrderView {
    OrderView {
        allocated_at: "2026-12-05T10:00:00.000Z".into(),
        fulfilment,
        lines: lines
            .iter()
            .map(|(gtin, name, qty)| OrderLineView {
                gtin: gtin_of(gtin),
                name: name.map(str::to_string),
                qty: *qty,
            })
            .collect(),
        order_id: id.into(),
        status,
    }
}

/// Ship order web-1: two pens and a gum, allocated.
pub fn web_1() -> OrderView {
    order(
        "web-1",
        Fulfilment::Ship,
        Status::Allocated,
        &[(PEN, Some("Pen, blue"), 2), (GUM, Some("Gum"), 1)],
    )
}

/// Pickup order bopis-7: one pen, picked.
pub fn bopis_7() -> OrderView {
    order(
        "bopis-7",
        Fulfilment::Pickup,
        Status::Picked,
        &[(PEN, Some("Pen, blue"), 1)],
    )
}

/// The single move of `effects`.
pub fn moved(effects: &[Effect]) -> Move {
    let moves: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Fulfil(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(moves.len(), 1, "expected one move in {effects:?}");
    moves[0].clone()
}

/// The agent's answer to `mv`, recorded.
pub fn recorded(mv: &Move) -> Action {
    Action::Fulfilled {
        order_id: mv.order_id.clone(),
        fulfilment_id: mv.body.fulfilment_id,
        result: Ok(FulfilmentRecorded {
            fulfilment_id: mv.body.fulfilment_id,
            order_id: mv.order_id.clone(),
            order_status: mv.to,
            status: "committed".into(),
        }),
    }
}

/// The agent's answer to `mv`: failed with `e`.
pub fn move_failed(mv: &Move, e: ApiError) -> Action {
    Action::Fulfilled {
        order_id: mv.order_id.clone(),
        fulfilment_id: mv.body.fulfilment_id,
        result: Err(e),
    }
}
