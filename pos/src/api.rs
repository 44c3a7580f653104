//! What the terminal asks of the agent: [`AgentApi`], the calls the event
//! loop makes (sales and returns; the store's orders: the pick list, one
//! order, a move of its allocation; and transfers from other stores: the
//! ones in transit, one transfer, its receipt; and RFID count sessions:
//! started, looked at, finished, accepted), so its effects run against a
//! fake in tests. The real
//! one is `tally_agent_api`'s [`AgentClient`] (the wire types, the HTTP
//! client and its typed errors all live there, declared once for every
//! client of the local API).

use std::future::Future;

use tally_agent_api::{
    AgentClient, AgentStatus, ApiError, CountAccepted, CountReportView, CountSessionRequest,
    CountSessionView, FulfilRequest, FulfilmentRecorded, OrderList, OrderView, ReturnRecorded,
    ReturnRequest, SaleRecorded, SaleRequest, SaleView, SignInRequest, SignedIn, Stock,
    TransferList, TransferReceivedRequest, TransferRecorded, TransferView,
};
use tally_sync::fulfilment::Status;
use tally_sync::message::CatalogItem;
use tally_sync::EventId;

/// What the terminal asks of the agent.
pub trait AgentApi: Send + Sync + 'static {
    /// `GET /v1/status`.
    fn status(&self) -> impl Future<Output = Result<AgentStatus, ApiError>> + Send;
    /// `GET /v1/catalog/{gtin}`.
    fn catalog_item(
        &self,
        gtin: &str,
    ) -> impl Future<Output = Result<CatalogItem, ApiError>> + Send;
    /// `GET /v1/stock/{gtin}`.
    fn stock(&self, gtin: &str) -> impl Future<Output = Result<Stock, ApiError>> + Send;
    /// `POST /v1/sales`.
    fn post_sale(
        &self,
        sale: &SaleRequest,
    ) -> impl Future<Output = Result<SaleRecorded, ApiError>> + Send;
    /// `POST /v1/returns`.
    fn post_return(
        &self,
        ret: &ReturnRequest,
    ) -> impl Future<Output = Result<ReturnRecorded, ApiError>> + Send;
    /// `GET /v1/sales/{id}`.
    fn sale(&self, id: EventId) -> impl Future<Output = Result<SaleView, ApiError>> + Send;
    /// `GET /v1/orders?status=open&after=AFTER`: a page of the pick list.
    fn open_orders(&self, after: &str) -> impl Future<Output = Result<OrderList, ApiError>> + Send;
    /// `GET /v1/orders/{id}`.
    fn order(&self, order_id: &str) -> impl Future<Output = Result<OrderView, ApiError>> + Send;
    /// `POST /v1/orders/{id}/picked|collected|shipped`.
    fn fulfil(
        &self,
        order_id: &str,
        to: Status,
        body: &FulfilRequest,
    ) -> impl Future<Output = Result<FulfilmentRecorded, ApiError>> + Send;
    /// `GET /v1/transfers?status=in_transit&after=AFTER`: a page of the
    /// transfers to and from this store still in transit.
    fn transfers_in_transit(
        &self,
        after: &str,
    ) -> impl Future<Output = Result<TransferList, ApiError>> + Send;
    /// `GET /v1/transfers/{id}`.
    fn transfer(
        &self,
        transfer_id: &str,
    ) -> impl Future<Output = Result<TransferView, ApiError>> + Send;
    /// `POST /v1/transfers/{id}/received`.
    fn receive_transfer(
        &self,
        transfer_id: &str,
        body: &TransferReceivedRequest,
    ) -> impl Future<Output = Result<TransferRecorded, ApiError>> + Send;
    /// `POST /v1/counts/sessions`.
    fn start_count(
        &self,
        body: &CountSessionRequest,
    ) -> impl Future<Output = Result<CountSessionView, ApiError>> + Send;
    /// `GET /v1/counts/sessions/{id}`.
    fn count_session(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<CountSessionView, ApiError>> + Send;
    /// `GET /v1/counts/sessions/{id}/report`.
    fn count_report(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<CountReportView, ApiError>> + Send;
    /// `POST /v1/counts/sessions/{id}/finish`.
    fn finish_count(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<CountReportView, ApiError>> + Send;
    /// `POST /v1/counts/sessions/{id}/accept`.
    fn accept_count(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<CountAccepted, ApiError>> + Send;
    /// `POST /v1/cashiers/sign-in`; later calls carry the session.
    fn sign_in(
        &self,
        req: &SignInRequest,
    ) -> impl Future<Output = Result<SignedIn, ApiError>> + Send;
    /// `POST /v1/cashiers/sign-out`; later calls carry no session.
    fn sign_out(&self) -> impl Future<Output = Result<(), ApiError>> + Send;
}

impl AgentApi for AgentClient {
    async fn status(&self) -> Result<AgentStatus, ApiError> {
        AgentClient::status(self).await
    }

    async fn catalog_item(&self, gtin: &str) -> Result<CatalogItem, ApiError> {
        AgentClient::catalog_item(self, gtin).await
    }

    async fn stock(&self, gtin: &str) -> Result<Stock, ApiError> {
        AgentClient::stock(self, gtin).await
    }

    async fn post_sale(&self, sale: &SaleRequest) -> Result<SaleRecorded, ApiError> {
        AgentClient::post_sale(self, sale).await
    }

    async fn post_return(&self, ret: &ReturnRequest) -> Result<ReturnRecorded, ApiError> {
        AgentClient::post_return(self, ret).await
    }

    async fn sale(&self, id: EventId) -> Result<SaleView, ApiError> {
        AgentClient::sale(self, id).await
    }

    async fn open_orders(&self, after: &str) -> Result<OrderList, ApiError> {
        AgentClient::orders(self, "open", after).await
    }

    async fn order(&self, order_id: &str) -> Result<OrderView, ApiError> {
        AgentClient::order(self, order_id).await
    }

    async fn fulfil(
        &self,
        order_id: &str,
        to: Status,
        body: &FulfilRequest,
    ) -> Result<FulfilmentRecorded, ApiError> {
        AgentClient::fulfil(self, order_id, to, body).await
    }

    async fn transfers_in_transit(&self, after: &str) -> Result<TransferList, ApiError> {
        AgentClient::transfers(self, "in_transit", after).await
    }

    async fn transfer(&self, transfer_id: &str) -> Result<TransferView, ApiError> {
        AgentClient::transfer(self, transfer_id).await
    }

    async fn receive_transfer(
        &self,
        transfer_id: &str,
        body: &TransferReceivedRequest,
    ) -> Result<TransferRecorded, ApiError> {
        AgentClient::receive_transfer(self, transfer_id, body).await
    }

    async fn start_count(&self, body: &CountSessionRequest) -> Result<CountSessionView, ApiError> {
        AgentClient::start_count(self, body).await
    }

    async fn count_session(&self, session_id: &str) -> Result<CountSessionView, ApiError> {
        AgentClient::count_session(self, session_id).await
    }

    async fn count_report(&self, session_id: &str) -> Result<CountReportView, ApiError> {
        AgentClient::count_report(self, session_id).await
    }

    async fn finish_count(&self, session_id: &str) -> Result<CountReportView, ApiError> {
        AgentClient::finish_count(self, session_id).await
    }

    async fn accept_count(&self, session_id: &str) -> Result<CountAccepted, ApiError> {
        AgentClient::accept_count(self, session_id).await
    }

    async fn sign_in(&self, req: &SignInRequest) -> Result<SignedIn, ApiError> {
        AgentClient::sign_in(self, req).await
    }

    async fn sign_out(&self) -> Result<(), ApiError> {
        AgentClient::sign_out(self).await
    }
}
