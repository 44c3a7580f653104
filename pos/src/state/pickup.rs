//! Pickup: the counter where an order leaves the store. The cashier scans
//! the order's barcode or types its id (whatever is scanned or typed here
//! names an order: a code that is no GTIN, and also one that reads as a
//! GTIN, since an order id may be all digits); the agent's allocation is
//! shown (`GET /v1/orders/{id}`), and F5 confirms the handover: `collected`
//! for a pickup order, `shipped` for a ship order. An order HQ cancelled
//! is not handed over (the goods go back on the shelf), and neither is
//! one handed over already.

use tally_agent_api::{ApiError, OrderView};
use tally_sync::fulfilment::{Fulfilment, Status};

use super::orders::refusal_of;
use super::{Dialog, Effect, Env, Key, Level, PosState, Screen};
use crate::scan::{self, ScanError, Scanned};

/// The pickup screen's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Pickup {
    /// None yet: scan or type one.
    #[default]
    Empty,
    /// Asked the agent for it.
    Looking {
        /// The order.
        order_id: String,
        /// Its code also reads as an item's barcode.
        item_code: bool,
    },
    /// The agent's allocation.
    Shown(OrderView),
}

/// The move that hands `order` over.
pub fn hand_over_to(fulfilment: Fulfilment) -> Status {
    match fulfilment {
        Fulfilment::Pickup => Status::Collected,
        Fulfilment::Ship => Status::Shipped,
    }
}

impl PosState {
    /// A key on the pickup screen with no dialog open.
    pub(super) fn pickup_key(&mut self, key: Key, env: &Env) -> Vec<Effect> {
        if self.typed(key) {
            return Vec::new();
        }
        match key {
            Key::Esc if self.orders.pickup != Pickup::Empty && self.orders.moving.is_none() => {
                self.orders.pickup = Pickup::Empty;
                self.notice = None;
                Vec::new()
            }
            Key::Esc => self.leave_orders(),
            Key::Enter if !self.input.trim().is_empty() => {
                let text = std::mem::take(&mut self.input);
                let scan = scan::from_typed(&text, &self.rcn_layouts);
                self.pickup_scan(scan)
            }
            Key::Enter => {
                let text = match &self.orders.pickup {
                    Pickup::Shown(_) => "F5 confirms the handover.",
                    _ => "Scan the order's barcode or type its id, then Enter.",
                };
                self.notify(Level::Info, text);
                Vec::new()
            }
            Key::F(5) | Key::Ctrl('p') if self.orders.in_doubt => self.resend_move(),
            Key::F(5) | Key::Ctrl('p') => self.hand_over(env),
            Key::F(8) | Key::Ctrl('n') if self.orders.in_doubt => self.drop_move(),
            Key::F(9) | Key::Ctrl('o') => {
                if self.move_blocks() {
                    return Vec::new();
                }
                self.switch_screen(Screen::PickList)
            }
            _ => Vec::new(),
        }
    }

    /// A scan (or a typed code) on the pickup screen: the order it names.
    pub(super) fn pickup_scan(&mut self, scan: Result<Scanned, ScanError>) -> Vec<Effect> {
        match &self.dialog {
            Some(Dialog::HandedOver { .. }) => self.dialog = None,
            Some(_) => {
                self.notify(Level::Error, "Scan ignored: close the dialog first (Esc).");
                return Vec::new();
            }
            None => {}
        }
        let (raw, item_code) = match &scan {
            Ok(s) => (s.raw.as_str(), true),
            Err(e) => (e.raw(), false),
        };
        let Some(order_id) = scan::order_id(raw) else {
            self.notify(
                Level::Error,
                format!("{raw:?} is not an order id (1 to 128 characters, no spaces)."),
            );
            return Vec::new();
        };
        if self.move_blocks() {
            return Vec::new();
        }
        self.orders.pickup = Pickup::Looking {
            order_id: order_id.clone(),
            item_code,
        };
        self.notify(Level::Info, format!("Looking up order {order_id}…"));
        vec![Effect::LookupOrder(order_id)]
    }

    /// The agent's allocation of an order: shown when it is the one asked
    /// for; the periodic refresh of the one shown updates its status.
    pub(super) fn order_answer(
        &mut self,
        order_id: &str,
        result: Result<OrderView, ApiError>,
    ) -> Vec<Effect> {
        match &self.orders.pickup {
            Pickup::Looking {
                order_id: asked,
                item_code,
            } if asked == order_id => {
                let item_code = *item_code;
                match result {
                    Ok(order) => {
                        self.say_where(&order);
                        self.orders.pickup = Pickup::Shown(order);
                    }
                    Err(e) if e.outcome_unknown() => {
                        self.note_failure(&e);
                        self.orders.pickup = Pickup::Empty;
                        self.notify(
                            Level::Error,
                            format!("Order {order_id} could not be looked up: {e}. Scan it again."),
                        );
                    }
                    Err(e) => {
                        self.orders.pickup = Pickup::Empty;
                        self.notice = None;
                        self.dialog = Some(Dialog::OrderRefused(refusal_of(
                            order_id, None, e, item_code,
                        )));
                    }
                }
            }
            Pickup::Shown(shown) if shown.order_id == order_id => match result {
                Ok(order) => {
                    if order.status != shown.status {
                        self.say_where(&order);
                    }
                    self.orders.pickup = Pickup::Shown(order);
                }
                Err(e) => self.note_failure(&e),
            },
            _ => {}
        }
        Vec::new()
    }

    /// The notice for an order shown at pickup: what to do next.
    fn say_where(&mut self, order: &OrderView) {
        let id = &order.order_id;
        let to = hand_over_to(order.fulfilment).name();
        match order.status {
            Status::Allocated => self.notify(
                Level::Info,
                format!(
                    "Order {id} is not picked yet: take its items from the shelf, then F5 ({to})."
                ),
            ),
            Status::Picked => self.notify(
                Level::Info,
                format!("Order {id}: check the goods, then F5 ({to})."),
            ),
            Status::Cancelled => self.notify(
                Level::Error,
                format!("HQ CANCELLED order {id}: do not hand it over; put the goods back."),
            ),
            Status::Collected | Status::Shipped => self.notify(
                Level::Error,
                format!("Order {id} was {} already.", order.status.name()),
            ),
        }
    }

    /// F5 on the pickup screen: record the handover of the order shown.
    fn hand_over(&mut self, env: &Env) -> Vec<Effect> {
        let Pickup::Shown(order) = &self.orders.pickup else {
            self.notify(
                Level::Error,
                "Scan the order's barcode or type its id first.",
            );
            return Vec::new();
        };
        let (id, status, to) = (
            order.order_id.clone(),
            order.status,
            hand_over_to(order.fulfilment),
        );
        match status {
            Status::Cancelled => {
                self.notify(
                    Level::Error,
                    format!("HQ CANCELLED order {id}: do not hand it over; put the goods back. Nothing recorded."),
                );
                Vec::new()
            }
            Status::Collected | Status::Shipped => {
                self.notify(
                    Level::Error,
                    format!(
                        "Order {id} was {} already: nothing to record.",
                        status.name()
                    ),
                );
                Vec::new()
            }
            Status::Allocated | Status::Picked => self.post_move(&id, to, env),
        }
    }

    /// The handover confirmation: Enter or Esc close it; typing starts the
    /// next order's id.
    pub(super) fn handed_over_key(
        &mut self,
        order: OrderView,
        already: bool,
        key: Key,
    ) -> Vec<Effect> {
        match key {
            Key::Enter | Key::Esc => {
                self.notice = None;
                Vec::new()
            }
            Key::Char(c) if !c.is_control() => {
                self.notice = None;
                self.input.push(c);
                Vec::new()
            }
            _ => self.show(Dialog::HandedOver { order, already }),
        }
    }
}
