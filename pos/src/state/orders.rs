//! The store's orders (issue 22) as the terminal keeps them: switching to
//! the order screens (F9 the pick list, F12 pickup, Esc back to the
//! basket), the pick list (the open orders, fetched page by page and
//! refreshed on a key or every few seconds), and the moves of an order's
//! allocation (`picked`, `collected`, `shipped`). A move is posted under a
//! fulfilment id made before its first POST and kept until the agent
//! answers, so a retry is idempotent; a refusal (404: not allocated here,
//! 409 `order_status`: cancelled by HQ, …) is shown with what to do, and
//! nothing was recorded.

use std::collections::BTreeMap;

use tally_agent_api::{ApiError, FulfilRequest, FulfilmentRecorded, OrderList, OrderView};
use tally_sync::fulfilment::Status;
use tally_sync::{EventId, Refusal};

use super::{Dialog, Effect, Env, Key, Level, Pick, Pickup, PosState, Screen};

/// Most open orders the pick list holds (pages are fetched until then).
pub const MAX_LISTED: usize = 1_000;

/// Where fetching the pick list stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Listing {
    /// Never asked.
    #[default]
    NotAsked,
    /// A page is awaited.
    Loading {
        /// The `after` it was asked from.
        after: String,
    },
    /// The list is the agent's last answer.
    Loaded,
    /// The last attempt failed (the list shown is the one before).
    Failed(String),
}

/// A move of an order's allocation, as posted (and re-posted unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The order.
    pub order_id: String,
    /// Where it moves to.
    pub to: Status,
    /// The body: the fulfilment id, who, the till.
    pub body: FulfilRequest,
}

/// Why the agent did not record a move, or does not know an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderWhy {
    /// 404: HQ has not allocated the order to this store, or its
    /// allocation has not reached the store yet.
    NotHere {
        /// The code also reads as an item's barcode.
        item_code: bool,
    },
    /// 409 `order_status`: the allocation's status does not allow the
    /// move (cancelled by HQ, already handed over, …).
    Status {
        /// Where the allocation stands, when the agent said.
        status: Option<Status>,
        /// The agent's message.
        message: String,
    },
    /// Another definite failure (422, an unknown 409), as the agent said.
    Other(String),
}

/// The dialog of a refused move or an unknown order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRefused {
    /// The order.
    pub order_id: String,
    /// The move refused (none for a look-up).
    pub to: Option<Status>,
    /// Why.
    pub why: OrderWhy,
}

/// The store's orders as the terminal knows them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Orders {
    /// The pick list: open orders (allocated or picked), in the agent's
    /// order (by id).
    pub list: Vec<OrderView>,
    /// Whether the list is being fetched.
    pub listing: Listing,
    /// The agent has more open orders than [`MAX_LISTED`].
    pub truncated: bool,
    /// Pages of a listing in progress.
    incoming: Vec<OrderView>,
    /// The selected order on the pick list.
    pub selected: Option<String>,
    /// Units counted so far, per order being picked.
    pub picks: BTreeMap<String, Pick>,
    /// The pickup screen's order.
    pub pickup: Pickup,
    /// The move posted and not yet answered, or in doubt.
    pub moving: Option<Move>,
    /// Whether the move's outcome is unknown (retry it or drop it).
    pub in_doubt: bool,
}

impl Orders {
    /// The selected order of the pick list.
    pub fn selected_order(&self) -> Option<&OrderView> {
        let id = self.selected.as_deref()?;
        self.list.iter().find(|o| o.order_id == id)
    }

    /// The index of the selected order in the pick list.
    pub fn selected_index(&self) -> Option<usize> {
        let id = self.selected.as_deref()?;
        self.list.iter().position(|o| o.order_id == id)
    }
}

impl PosState {
    /// F9 / F12 from the basket: the pick list or pickup, with no basket
    /// open (it would wait unseen).
    pub(super) fn open_screen(&mut self, screen: Screen) -> Vec<Effect> {
        if self.basket_open() {
            self.notify(
                Level::Error,
                "Finish or discard (F8) the open basket first.",
            );
            return Vec::new();
        }
        self.switch_screen(screen)
    }

    /// Shows `screen` (the input line cleared); the pick list is fetched
    /// again.
    pub(super) fn switch_screen(&mut self, screen: Screen) -> Vec<Effect> {
        self.screen = screen;
        self.input.clear();
        match screen {
            Screen::Basket => {
                self.notify(Level::Info, "Back to the basket.");
                Vec::new()
            }
            Screen::PickList => {
                self.notify(
                    Level::Info,
                    "Pick list: select an order, then scan its items.",
                );
                self.list_orders()
            }
            Screen::Pickup => {
                self.notify(
                    Level::Info,
                    "Pickup: scan the order's barcode or type its id, then Enter.",
                );
                Vec::new()
            }
            Screen::Transfers => self.open_transfers(),
            Screen::Count => self.open_count(),
        }
    }

    /// Esc on an order screen: back to the basket, unless a move awaits
    /// its answer or is in doubt (it must be settled here).
    pub(super) fn leave_orders(&mut self) -> Vec<Effect> {
        if self.move_blocks() {
            return Vec::new();
        }
        self.switch_screen(Screen::Basket)
    }

    /// Whether a move in flight or in doubt stops another one (says so).
    pub(super) fn move_blocks(&mut self) -> bool {
        let Some(m) = &self.orders.moving else {
            return false;
        };
        let text = if self.orders.in_doubt {
            format!(
                "Order {} may have been recorded as {}: F5 retries it (same id), F8 drops it.",
                m.order_id,
                m.to.name()
            )
        } else {
            format!(
                "Waiting for the agent to record order {} as {}.",
                m.order_id,
                m.to.name()
            )
        };
        self.notify(Level::Error, text);
        true
    }

    /// Fetches the pick list from its first page (unless a fetch is on).
    pub(super) fn list_orders(&mut self) -> Vec<Effect> {
        if matches!(self.orders.listing, Listing::Loading { .. }) {
            return Vec::new();
        }
        self.orders.incoming.clear();
        self.orders.listing = Listing::Loading {
            after: String::new(),
        };
        vec![Effect::ListOrders {
            after: String::new(),
        }]
    }

    /// The periodic refresh: the pick list, or the order shown at pickup
    /// (HQ may cancel it meanwhile).
    pub(super) fn refresh_orders(&mut self) -> Vec<Effect> {
        match (self.screen, &self.orders.pickup) {
            (Screen::PickList, _) => self.list_orders(),
            (Screen::Pickup, Pickup::Shown(o)) if self.orders.moving.is_none() => {
                vec![Effect::LookupOrder(o.order_id.clone())]
            }
            (Screen::Transfers, _) => self.list_transfers(),
            _ => Vec::new(),
        }
    }

    /// The pick list again once the agent answers, if it failed.
    pub(super) fn orders_to_retry(&mut self) -> Vec<Effect> {
        if self.screen == Screen::PickList && matches!(self.orders.listing, Listing::Failed(_)) {
            return self.list_orders();
        }
        Vec::new()
    }

    /// A page of the pick list: the next one is asked for, or the list
    /// is complete and replaces the one shown.
    pub(super) fn orders_answer(
        &mut self,
        after: &str,
        result: Result<OrderList, ApiError>,
    ) -> Vec<Effect> {
        if !matches!(&self.orders.listing, Listing::Loading { after: a } if a == after) {
            return Vec::new();
        }
        let page = match result {
            Ok(page) => page,
            Err(e) => {
                self.note_failure(&e);
                self.orders.incoming.clear();
                self.orders.listing = Listing::Failed(e.to_string());
                return Vec::new();
            }
        };
        // Each page must bring orders for another to be asked: a list
        // never takes more than MAX_LISTED orders' worth of pages,
        // whatever `next` an agent answers.
        let more = !page.orders.is_empty();
        self.orders.incoming.extend(page.orders);
        let next = page.next.filter(|n| more && !n.is_empty() && n != after);
        if let Some(next) = next.clone() {
            if self.orders.incoming.len() < MAX_LISTED {
                self.orders.listing = Listing::Loading {
                    after: next.clone(),
                };
                return vec![Effect::ListOrders { after: next }];
            }
        }
        let mut list = std::mem::take(&mut self.orders.incoming);
        self.orders.truncated = next.is_some() || list.len() > MAX_LISTED;
        list.truncate(MAX_LISTED);
        self.orders.list = list;
        self.orders.listing = Listing::Loaded;
        // Picks of orders no longer open are moot (picked at another
        // till, cancelled by HQ), but the one being moved.
        let moving = self.orders.moving.as_ref().map(|m| m.order_id.clone());
        let list = &self.orders.list;
        self.orders.picks.retain(|id, _| {
            moving.as_ref() == Some(id)
                || list
                    .iter()
                    .any(|o| &o.order_id == id && o.status == Status::Allocated)
        });
        if self.orders.selected_index().is_none() {
            self.orders.selected = self.orders.list.first().map(|o| o.order_id.clone());
        }
        Vec::new()
    }

    /// Posts `to` for `order`, under a fresh fulfilment id, with the
    /// cashier and till (one move at a time).
    pub(super) fn post_move(&mut self, order_id: &str, to: Status, env: &Env) -> Vec<Effect> {
        if self.move_blocks() {
            return Vec::new();
        }
        let mv = Move {
            order_id: order_id.to_string(),
            to,
            body: FulfilRequest {
                fulfilment_id: Some(env.fresh_id),
                cashier: Some(self.cashier.clone()),
                till: self.till.clone(),
            },
        };
        self.send_move(mv)
    }

    /// Posts `mv` (again: the same id and body) and waits for its answer.
    fn send_move(&mut self, mv: Move) -> Vec<Effect> {
        self.orders.moving = Some(mv.clone());
        self.orders.in_doubt = false;
        self.dialog = Some(Dialog::Sending);
        vec![Effect::Fulfil(mv)]
    }

    /// F5 with a move in doubt: the very same request again.
    pub(super) fn resend_move(&mut self) -> Vec<Effect> {
        match self.orders.moving.clone() {
            Some(mv) => self.send_move(mv),
            None => {
                self.orders.in_doubt = false;
                Vec::new()
            }
        }
    }

    /// F8 with a move in doubt: forget it (it may have been recorded; the
    /// pick list shows where the order stands).
    pub(super) fn drop_move(&mut self) -> Vec<Effect> {
        let Some(mv) = self.orders.moving.take() else {
            return Vec::new();
        };
        self.orders.in_doubt = false;
        self.notify(
            Level::Error,
            format!(
                "Dropped: order {} may or may not be recorded as {}; the pick list (F9) shows where it stands.",
                mv.order_id,
                mv.to.name()
            ),
        );
        self.list_orders()
    }

    /// The agent's answer to a move.
    pub(super) fn fulfilled(
        &mut self,
        order_id: &str,
        fulfilment_id: Option<EventId>,
        result: Result<FulfilmentRecorded, ApiError>,
    ) -> Vec<Effect> {
        let Some(mv) = self.orders.moving.clone() else {
            return Vec::new();
        };
        if mv.order_id != order_id || mv.body.fulfilment_id != fulfilment_id {
            return Vec::new();
        }
        if matches!(self.dialog, Some(Dialog::Sending)) {
            self.dialog = None;
        }
        match result {
            Ok(recorded) => {
                self.orders.moving = None;
                self.orders.in_doubt = false;
                self.orders.picks.remove(order_id);
                self.set_status(order_id, recorded.order_status);
                let already = recorded.fulfilment_id.is_none();
                if mv.to == Status::Picked {
                    let what = match self.orders.list.iter().find(|o| o.order_id == order_id) {
                        Some(o) if o.fulfilment == tally_sync::fulfilment::Fulfilment::Ship => {
                            "keep it for the carrier"
                        }
                        _ => "keep it for the customer",
                    };
                    self.notify(
                        Level::Info,
                        if already {
                            format!("Order {order_id} was already picked: {what}.")
                        } else {
                            format!("Order {order_id} recorded as picked: {what}.")
                        },
                    );
                    return self.list_orders();
                }
                match &self.orders.pickup {
                    Pickup::Shown(order) if order.order_id == order_id => {
                        let order = order.clone();
                        self.orders.pickup = Pickup::Empty;
                        self.notice = None;
                        self.dialog = Some(Dialog::HandedOver { order, already });
                    }
                    _ => self.notify(
                        Level::Info,
                        format!(
                            "Order {order_id} recorded as {}.",
                            recorded.order_status.name()
                        ),
                    ),
                }
                Vec::new()
            }
            Err(e) => {
                self.note_failure(&e);
                if e.outcome_unknown() {
                    self.orders.in_doubt = true;
                    self.dialog = Some(Dialog::MoveInDoubt {
                        error: e.to_string(),
                    });
                    return Vec::new();
                }
                self.orders.moving = None;
                self.orders.in_doubt = false;
                self.orders.picks.remove(order_id);
                let refused = refusal_of(order_id, Some(mv.to), e, false);
                if let OrderWhy::Status {
                    status: Some(s), ..
                } = &refused.why
                {
                    self.set_status(order_id, *s);
                }
                self.dialog = Some(Dialog::OrderRefused(refused));
                if self.screen == Screen::PickList {
                    return self.list_orders();
                }
                Vec::new()
            }
        }
    }

    /// Records where an order stands now, wherever it is shown.
    fn set_status(&mut self, order_id: &str, status: Status) {
        for o in &mut self.orders.list {
            if o.order_id == order_id {
                o.status = status;
            }
        }
        if let Pickup::Shown(o) = &mut self.orders.pickup {
            if o.order_id == order_id {
                o.status = status;
            }
        }
    }

    /// The not-confirmed dialog of a move: retry (same id and body),
    /// back, or drop it.
    pub(super) fn move_in_doubt_key(&mut self, error: String, key: Key) -> Vec<Effect> {
        match key {
            Key::Char('r' | 'R') | Key::Enter | Key::F(5) => self.resend_move(),
            Key::Esc => {
                self.move_blocks();
                Vec::new()
            }
            Key::F(8) => self.drop_move(),
            _ => self.show(Dialog::MoveInDoubt { error }),
        }
    }

    /// A refused move or an unknown order: Esc or Enter close it.
    pub(super) fn order_refused_key(&mut self, refused: OrderRefused, key: Key) -> Vec<Effect> {
        match key {
            Key::Esc | Key::Enter => Vec::new(),
            _ => self.show(Dialog::OrderRefused(refused)),
        }
    }
}

/// What a definite failure about `order_id` tells the cashier.
pub(super) fn refusal_of(
    order_id: &str,
    to: Option<Status>,
    e: ApiError,
    item_code: bool,
) -> OrderRefused {
    let why = match e {
        ApiError::NotFound | ApiError::Refused(Refusal::UnknownOrder(_)) => {
            OrderWhy::NotHere { item_code }
        }
        ApiError::Refused(Refusal::Move { error, .. }) => OrderWhy::Status {
            status: Some(error.status()),
            message: error.to_string(),
        },
        ApiError::Conflict(body) if body.error == "order_status" => OrderWhy::Status {
            status: body.status,
            message: body.message,
        },
        ApiError::Refused(Refusal::Invalid(message)) | ApiError::Invalid { message, .. } => {
            OrderWhy::Other(message)
        }
        other => OrderWhy::Other(other.to_string()),
    };
    OrderRefused {
        order_id: order_id.to_string(),
        to,
        why,
    }
}
