//! `tally-agent-api`: the agent's local HTTP API as types. Every request
//! and answer body is declared once here (serde, both directions) and used
//! by the agent's handlers, the CLI and the cashier terminal alike; errors
//! are `tally_sync::error_body::ErrorBody`, the shape the hub answers too.
//! The contract is `docs/api.md`.
//!
//! Map:
//! - [`requests`]: what is posted (sales, returns, receipts, counts,
//!   catalog items: `tally_sync::message::CatalogRequest`, which the hub
//!   takes too), as sent: the agent parses and validates them into
//!   `tally_sync::command::Command`s.
//! - [`answers`]: what the agent answers (recorded events, the views of a
//!   sale or a return, stock, status, catalog), each built from the
//!   model's values by one function.
//! - [`counts`]: RFID cycle-count sessions: the request that starts one,
//!   the views of a session, its variance report and its acceptance.
//! - [`client`]: [`AgentClient`], the typed HTTP client, and
//!   [`ApiError`], which says what a caller can do about a failure.

pub mod answers;
pub mod client;
pub mod counts;
pub mod requests;

pub use answers::{
    AgentStatus, CatalogImported, CountRecorded, FulfilmentRecorded, OrderLineView, OrderList,
    OrderView, ReceiptRecorded, Recorded, ReturnRecorded, ReturnView, ReturnedUnits, SaleRecorded,
    SaleView, SignedIn, Stock, TransferLineView, TransferList, TransferRecorded, TransferView,
};
pub use client::{AgentClient, ApiError, ClientError};
pub use counts::{
    CountAccepted, CountAdjustment, CountFindings, CountReportView, CountSessionRequest,
    CountSessionView, CountedItem, VarianceItem,
};
pub use requests::{
    CountRequest, FulfilRequest, LineBody, OverrideRequest, PriceSource, ReceiptLineBody,
    ReceiptRequest, ReturnRequest, SaleRequest, SignInRequest, TransferLineBody,
    TransferReceivedRequest, TransferRequest,
};
pub use tally_sync::error_body::ErrorBody;
pub use tally_sync::message::{CatalogItemBody, CatalogRequest};
