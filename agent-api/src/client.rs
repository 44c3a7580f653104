//! [`AgentClient`]: the typed HTTP client of an agent's local API, used by
//! the CLI's `stock`, `status` and `catalog import`, by the cashier
//! terminal, and by tests and the benchmark (which also use its raw JSON
//! calls, [`AgentClient::get`] and [`AgentClient::post`], to look at the
//! wire itself). reqwest (HTTP/1.1 with
//! keep-alive), JSON bodies, a timeout on every call.
//!
//! # Design constraints
//! - Every error says what the caller can do about it ([`ApiError`]): a
//!   refusal or an invalid request is definite (the agent changed
//!   nothing), while an unreachable or unavailable agent, a 5xx or an
//!   unreadable 2xx leaves the outcome of a POST unknown
//!   ([`ApiError::outcome_unknown`]): retry with the same id.
//! - Nothing from the network can panic: answers are parsed leniently
//!   (unknown fields ignored) and every failure is a value.

use std::time::Duration;

pub use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tally_sync::error_body::ErrorBody;
use tally_sync::message::{CatalogItem, CatalogRequest};
use tally_sync::{EventId, Refusal};

use crate::answers::{
    AgentStatus, CatalogImported, CountRecorded, FulfilmentRecorded, OrderList, OrderView,
    ReceiptRecorded, ReturnRecorded, ReturnView, SaleRecorded, SaleView, SignedIn, Stock,
    TransferList, TransferRecorded, TransferView,
};
use crate::requests::{
    CountRequest, FulfilRequest, ReceiptRequest, ReturnRequest, SaleRequest, SignInRequest,
    TransferReceivedRequest,
};

/// Why a call did not give the answer asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No answer (connection refused, timeout, broken connection).
    #[error("cannot reach the agent: {0}")]
    Unreachable(String),
    /// `503`: the agent is stopping or its storage failed; nothing was
    /// recorded by the failed attempt, but retry with the same id.
    #[error("the agent is unavailable: {0}")]
    Unavailable(String),
    /// `409`: the rules refused it; nothing changed.
    #[error("the agent refused it: {0}")]
    Refused(Refusal),
    /// `409` with a code this client does not know; nothing changed.
    #[error("the agent refused it ({}): {}", .0.error, .0.message)]
    Conflict(Box<ErrorBody>),
    /// `422` or `413`: the request is malformed; nothing changed.
    #[error("the agent refused it ({status} invalid): {message}")]
    Invalid {
        /// 422 or 413.
        status: u16,
        /// Why.
        message: String,
    },
    /// `401`, `403`, `421` or `429`: not allowed (a manager's approval
    /// not accepted, a till's token missing, a manager locked out for a
    /// while); nothing changed.
    #[error("the agent did not allow it ({}): {}", .0.error, .0.message)]
    Denied(Box<ErrorBody>),
    /// `404`.
    #[error("not found")]
    NotFound,
    /// Any other answer, or a body that does not parse.
    #[error("the agent answered {status}: {body}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// The body (cut).
        body: String,
    },
}

impl ApiError {
    /// Whether a POST that failed this way may nevertheless have been
    /// recorded: then the only safe move is a retry with the same id.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            ApiError::Unreachable(_) | ApiError::Unavailable(_) => true,
            // 408: the agent gave up waiting, but a command it had queued
            // still commits (its id answers a retry).
            ApiError::Unexpected { status: 408, .. } => true,
            ApiError::Unexpected { status, .. } => !(400..500).contains(status),
            ApiError::Refused(_)
            | ApiError::Conflict(_)
            | ApiError::Invalid { .. }
            | ApiError::Denied(_)
            | ApiError::NotFound => false,
        }
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The agent URL is not `http://…` or `https://…`.
    #[error("agent URL {0:?} must start with http:// or https://")]
    Url(String),
    /// Plain `http://` to an agent on another machine: an agent on the
    /// store network serves HTTPS only, and the request would carry the
    /// till's token and PINs in clear.
    #[error("agent URL {0:?} is plain HTTP to another machine: an agent on the store network serves HTTPS only (use https://… with --agent-ca)")]
    PlainBeyondLoopback(String),
    /// A CA given for a plain `http://` agent.
    #[error("agent URL {0:?} is plain HTTP: --agent-ca is for an https:// agent")]
    CaWithoutHttps(String),
    /// An `https://` agent and no CA to check it against.
    #[error("agent URL {0:?} is HTTPS: give the agent's CA certificate (--agent-ca FILE, from `tally-agent api-ca` on the agent's machine)")]
    NoTrust(String),
    /// The CA file given is not a PEM certificate.
    #[error("the agent's CA certificate: {0}")]
    BadCa(String),
    /// reqwest refused the configuration.
    #[error("building the HTTP client: {0}")]
    Build(String),
}

/// How long an idle connection to the agent is kept for the next
/// request: below the agent's own idle timeout (60 s).
const POOL_IDLE: Duration = Duration::from_secs(30);

/// A client of one agent's local API.
#[derive(Debug, Clone)]
pub struct AgentClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    /// The signed-in cashier's session (`X-Tally-Session`), shared by the
    /// client's clones.
    session: std::sync::Arc<std::sync::RwLock<Option<String>>>,
}

/// Whether the URL `base` names this machine: `localhost` (or a name
/// under it), 127.0.0.0/8 or `[::1]`.
fn names_loopback(base: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(base) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => {
            let name = bare.to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

/// Longest body kept in an [`ApiError::Unexpected`].
const BODY_CUT: usize = 300;

impl AgentClient {
    /// A client of the agent at `base` (e.g. `http://127.0.0.1:7420`);
    /// every call gives up after `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, ClientError> {
        Self::trusting(base, timeout, None)
    }

    /// A client of the agent at `base`, which may be `https://…` when
    /// `ca_pem` is the agent's API CA (`tally-agent api-ca`): the only
    /// root it trusts. Every call gives up after `timeout`.
    pub fn trusting(
        base: &str,
        timeout: Duration,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, ClientError> {
        let base = base.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Url(base.to_string()));
        }
        // reqwest is built without a bundled crypto provider (the workspace
        // uses ring); an Err only means a provider is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if base.starts_with("http://") {
            if ca_pem.is_some() {
                return Err(ClientError::CaWithoutHttps(base.to_string()));
            }
            if !names_loopback(base) {
                return Err(ClientError::PlainBeyondLoopback(base.to_string()));
            }
        }
        let mut builder = reqwest::Client::builder();
        match ca_pem {
            Some(pem) => {
                let roots = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| ClientError::BadCa(tally_sync::report::one_line(&e)))?;
                if roots.is_empty() {
                    return Err(ClientError::BadCa("no certificate in the file".into()));
                }
                builder = builder.tls_certs_only(roots);
            }
            None if base.starts_with("https://") => {
                return Err(ClientError::NoTrust(base.to_string()));
            }
            None => {}
        }
        let http = builder
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .tcp_nodelay(true)
            .pool_max_idle_per_host(256)
            // Below the agent's idle timeout (60 s): a connection the
            // agent is closing is never picked for a till's next request
            // (reqwest keeps them 90 s by default), which would fail it
            // with a reset and leave a sale in doubt.
            .pool_idle_timeout(POOL_IDLE)
            .no_proxy()
            .build()
            .map_err(|e| ClientError::Build(tally_sync::report::one_line(&e)))?;
        Ok(Self {
            base: base.to_string(),
            http,
            token: None,
            session: Default::default(),
        })
    }

    /// The same client presenting a till's token (`Authorization: Bearer`)
    /// on every call: needed when the agent has `[[api.tills]]`.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.trim().is_empty());
        self
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` as raw JSON, whatever the status (tests and tools that
    /// look at the wire itself).
    pub async fn get(&self, path: &str) -> Result<(StatusCode, Value), ApiError> {
        let (status, bytes) = self.send(self.http.get(self.url(path))).await?;
        raw_json(status, &bytes)
    }

    /// `POST path` with a raw JSON body, answered as raw JSON whatever the
    /// status.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(StatusCode, Value), ApiError> {
        let (status, bytes) = self.send(self.http.post(self.url(path)).json(body)).await?;
        raw_json(status, &bytes)
    }

    /// Any request with any body (`(content type, bytes)`), answered raw
    /// whatever the status.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let mut req = self.http.request(method, self.url(path));
        if let Some((content_type, bytes)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        self.send(req).await
    }

    /// `GET path` as text, whatever the status.
    pub async fn get_text(&self, path: &str) -> Result<(StatusCode, String), ApiError> {
        let (status, bytes) = self.send(self.http.get(self.url(path))).await?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let session = self
            .session
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        self.send_as(req, session).await
    }

    /// `req` with the till's token and `session`.
    async fn send_as(
        &self,
        req: reqwest::RequestBuilder,
        session: Option<String>,
    ) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let req = match &self.token {
            Some(token) => req.bearer_auth(token.trim()),
            None => req,
        };
        let req = match session {
            Some(s) => req.header("x-tally-session", s),
            None => req,
        };
        let resp = req
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(describe(&e)))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| {
            ApiError::Unreachable(format!(
                "reading the answer: {}",
                tally_sync::report::one_line(&e)
            ))
        })?;
        Ok((status, bytes.to_vec()))
    }

    async fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let (status, bytes) = self.send(self.http.get(self.url(path))).await?;
        answer(status.as_u16(), &bytes)
    }

    async fn post_as<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let (status, bytes) = self.send(self.http.post(self.url(path)).json(body)).await?;
        answer(status.as_u16(), &bytes)
    }

    /// `POST /v1/cashiers/sign-in`: on success every later call (of this
    /// client and its clones) carries the session.
    pub async fn sign_in(&self, req: &SignInRequest) -> Result<SignedIn, ApiError> {
        let signed: SignedIn = self.post_as("/v1/cashiers/sign-in", req).await?;
        *self
            .session
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(signed.session.clone());
        Ok(signed)
    }

    /// `POST /v1/cashiers/sign-out`; the client forgets the session first
    /// (a sign-in answered meanwhile keeps its own), whatever the answer.
    pub async fn sign_out(&self) -> Result<(), ApiError> {
        let Some(session) = self
            .session
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            return Ok(());
        };
        let sent = self
            .send_as(
                self.http.post(self.url("/v1/cashiers/sign-out")),
                Some(session),
            )
            .await;
        match sent {
            Ok((status, _)) if status.is_success() => Ok(()),
            Ok((status, bytes)) => answer::<Value>(status.as_u16(), &bytes).map(|_| ()),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<AgentStatus, ApiError> {
        self.get_as("/v1/status").await
    }

    /// `GET /v1/catalog/{gtin}` (`gtin` as scanned or typed).
    pub async fn catalog_item(&self, gtin: &str) -> Result<CatalogItem, ApiError> {
        self.get_as(&format!("/v1/catalog/{gtin}")).await
    }

    /// `GET /v1/stock/{gtin}` (`gtin` as scanned or typed).
    pub async fn stock(&self, gtin: &str) -> Result<Stock, ApiError> {
        self.get_as(&format!("/v1/stock/{gtin}")).await
    }

    /// `GET /v1/sales/{id}`.
    pub async fn sale(&self, id: EventId) -> Result<SaleView, ApiError> {
        self.get_as(&format!("/v1/sales/{id}")).await
    }

    /// `GET /v1/returns/{id}`.
    pub async fn return_(&self, id: EventId) -> Result<ReturnView, ApiError> {
        self.get_as(&format!("/v1/returns/{id}")).await
    }

    /// `POST /v1/sales`.
    pub async fn post_sale(&self, sale: &SaleRequest) -> Result<SaleRecorded, ApiError> {
        self.post_as("/v1/sales", sale).await
    }

    /// `POST /v1/returns`.
    pub async fn post_return(&self, ret: &ReturnRequest) -> Result<ReturnRecorded, ApiError> {
        self.post_as("/v1/returns", ret).await
    }

    /// `POST /v1/receipts`.
    pub async fn post_receipt(&self, r: &ReceiptRequest) -> Result<ReceiptRecorded, ApiError> {
        self.post_as("/v1/receipts", r).await
    }

    /// `POST /v1/counts`.
    pub async fn post_count(&self, c: &CountRequest) -> Result<CountRecorded, ApiError> {
        self.post_as("/v1/counts", c).await
    }

    /// `POST /v1/catalog`.
    pub async fn post_catalog(&self, c: &CatalogRequest) -> Result<CatalogImported, ApiError> {
        self.post_as("/v1/catalog", c).await
    }

    /// `GET /v1/orders?status=STATUS&after=AFTER`: this store's
    /// allocations (`open`: allocated or picked).
    pub async fn orders(&self, status: &str, after: &str) -> Result<OrderList, ApiError> {
        self.get_as(&format!(
            "/v1/orders?status={}&after={}",
            segment(status),
            segment(after)
        ))
        .await
    }

    /// `GET /v1/orders/{id}`: this store's allocation of an order.
    pub async fn order(&self, order_id: &str) -> Result<OrderView, ApiError> {
        self.get_as(&format!("/v1/orders/{}", segment(order_id)))
            .await
    }

    /// `POST /v1/orders/{id}/{to}` (`picked`, `collected`, `shipped`).
    pub async fn fulfil(
        &self,
        order_id: &str,
        to: tally_sync::fulfilment::Status,
        body: &FulfilRequest,
    ) -> Result<FulfilmentRecorded, ApiError> {
        self.post_as(
            &format!("/v1/orders/{}/{}", segment(order_id), to.name()),
            body,
        )
        .await
    }

    /// `GET /v1/transfers?status=STATUS&after=AFTER`: a page of the
    /// transfers to and from this store (`in_transit`, `received`, `all`).
    pub async fn transfers(&self, status: &str, after: &str) -> Result<TransferList, ApiError> {
        self.get_as(&format!(
            "/v1/transfers?status={}&after={}",
            segment(status),
            segment(after)
        ))
        .await
    }

    /// `GET /v1/transfers/{id}`: one transfer to or from this store.
    pub async fn transfer(&self, transfer_id: &str) -> Result<TransferView, ApiError> {
        self.get_as(&format!("/v1/transfers/{}", segment(transfer_id)))
            .await
    }

    /// `POST /v1/transfers/{id}/received`: receive a transfer sent to
    /// this store (a retry repeats `body.event_id`).
    pub async fn receive_transfer(
        &self,
        transfer_id: &str,
        body: &TransferReceivedRequest,
    ) -> Result<TransferRecorded, ApiError> {
        self.post_as(
            &format!("/v1/transfers/{}/received", segment(transfer_id)),
            body,
        )
        .await
    }

    /// `POST /v1/counts/sessions`: start an RFID count session.
    pub async fn start_count(
        &self,
        body: &crate::counts::CountSessionRequest,
    ) -> Result<crate::counts::CountSessionView, ApiError> {
        self.post_as("/v1/counts/sessions", body).await
    }

    /// `GET /v1/counts/sessions/{id}`: a count session and its tags so far.
    pub async fn count_session(
        &self,
        session_id: &str,
    ) -> Result<crate::counts::CountSessionView, ApiError> {
        self.get_as(&format!("/v1/counts/sessions/{}", segment(session_id)))
            .await
    }

    /// `GET /v1/counts/sessions/{id}/report`: its variance report now.
    pub async fn count_report(
        &self,
        session_id: &str,
    ) -> Result<crate::counts::CountReportView, ApiError> {
        self.get_as(&format!(
            "/v1/counts/sessions/{}/report",
            segment(session_id)
        ))
        .await
    }

    /// `POST /v1/counts/sessions/{id}/finish`: no more reads; the report.
    pub async fn finish_count(
        &self,
        session_id: &str,
    ) -> Result<crate::counts::CountReportView, ApiError> {
        self.post_as(
            &format!("/v1/counts/sessions/{}/finish", segment(session_id)),
            &serde_json::json!({}),
        )
        .await
    }

    /// `POST /v1/counts/sessions/{id}/accept`: record its adjustments.
    pub async fn accept_count(
        &self,
        session_id: &str,
    ) -> Result<crate::counts::CountAccepted, ApiError> {
        self.post_as(
            &format!("/v1/counts/sessions/{}/accept", segment(session_id)),
            &serde_json::json!({}),
        )
        .await
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> Result<String, ApiError> {
        let (status, text) = self.get_text("/metrics").await?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(error_answer(status.as_u16(), text.as_bytes()))
        }
    }
}

/// A short reason for a request that got no answer: "timed out",
/// "cannot connect: Connection refused (os error 111)", or the full chain.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    if e.is_connect() {
        let mut last: &dyn std::error::Error = e;
        while let Some(s) = last.source() {
            last = s;
        }
        return format!("cannot connect: {last}");
    }
    tally_sync::report::one_line(e)
}

fn cut(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(BODY_CUT) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.into_owned(),
    }
}

/// Any answer as JSON (`null` when the body is empty).
fn raw_json(status: StatusCode, bytes: &[u8]) -> Result<(StatusCode, Value), ApiError> {
    if bytes.is_empty() {
        return Ok((status, Value::Null));
    }
    serde_json::from_slice(bytes)
        .map(|v| (status, v))
        .map_err(|_| ApiError::Unexpected {
            status: status.as_u16(),
            body: cut(bytes),
        })
}

/// Maps a status and body to the typed answer.
pub fn answer<T: DeserializeOwned>(status: u16, bytes: &[u8]) -> Result<T, ApiError> {
    if (200..300).contains(&status) {
        serde_json::from_slice(bytes).map_err(|_| ApiError::Unexpected {
            status,
            body: cut(bytes),
        })
    } else {
        Err(error_answer(status, bytes))
    }
}

/// The error an answer with a non-2xx `status` stands for.
pub fn error_answer(status: u16, bytes: &[u8]) -> ApiError {
    let unexpected = || ApiError::Unexpected {
        status,
        body: cut(bytes),
    };
    if status == 404 {
        return ApiError::NotFound;
    }
    let Ok(body) = serde_json::from_slice::<ErrorBody>(bytes) else {
        return unexpected();
    };
    match status {
        409 => match body.refusal() {
            Some(refusal) => ApiError::Refused(refusal),
            None => ApiError::Conflict(Box::new(body)),
        },
        413 | 422 => ApiError::Invalid {
            status,
            message: body.message,
        },
        503 => ApiError::Unavailable(body.message),
        401 | 403 | 421 | 429 => ApiError::Denied(Box::new(body)),
        _ => unexpected(),
    }
}

/// Unit-level checks of the answer mapping (the client against a canned
/// HTTP server is tested in `tests/client.rs`, against a real agent in
/// `agent/tests/`).
/// `text` as one URL path segment or query value: everything but
/// unreserved characters percent-encoded (an order id may hold `/`, `?`,
/// `#` or `%`).
pub fn segment(text: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, RESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_what_the_caller_can_do() {
        let refused = br#"{"error":"insufficient_stock","message":"m","gtin":"04006381333931","requested":3,"available":1}"#;
        match error_answer(409, refused) {
            ApiError::Refused(Refusal::InsufficientStock {
                requested: 3,
                available: 1,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        let other = br#"{"error":"something_new","message":"m"}"#;
        assert!(
            matches!(error_answer(409, other), ApiError::Conflict(b) if b.error == "something_new")
        );
        let invalid = br#"{"error":"invalid","message":"qty must be > 0"}"#;
        let e = error_answer(422, invalid);
        assert_eq!(
            e.to_string(),
            "the agent refused it (422 invalid): qty must be > 0"
        );
        assert!(!e.outcome_unknown());
        assert_eq!(error_answer(404, b""), ApiError::NotFound);
        let e = error_answer(503, br#"{"error":"unavailable","message":"disk"}"#);
        assert!(e.outcome_unknown());
        let e = error_answer(
            408,
            br#"{"error":"timeout","message":"retry with the same id"}"#,
        );
        assert!(e.outcome_unknown(), "a queued command still commits");
        assert!(matches!(
            error_answer(500, b"<html>"),
            ApiError::Unexpected { status: 500, .. }
        ));
        let bad: Result<Stock, _> = answer(200, b"not json");
        assert!(bad.unwrap_err().outcome_unknown());
    }

    #[test]
    fn a_base_url_needs_a_scheme() {
        assert!(matches!(
            AgentClient::new("127.0.0.1:7420", Duration::from_secs(1)),
            Err(ClientError::Url(_))
        ));
        let c = AgentClient::new(" http://127.0.0.1:7420/ ", Duration::from_secs(1)).unwrap();
        assert_eq!(c.base(), "http://127.0.0.1:7420");
    }

    #[test]
    fn plain_http_goes_to_this_machine_only() {
        let second = Duration::from_secs(1);
        for ok in [
            "http://127.0.0.1:7420",
            "http://127.1.2.3:7420",
            "http://[::1]:7420",
            "http://localhost:7420",
            "http://LOCALHOST",
            "http://till.localhost:7420",
        ] {
            assert!(AgentClient::new(ok, second).is_ok(), "{ok}");
        }
        for far in [
            "http://10.0.0.7:7420",
            "http://pos-07.store.lan:7420",
            "http://localhost.example.com",
            "http://[fe80::1]:7420",
            "http://0.0.0.0:7420",
        ] {
            assert!(
                matches!(
                    AgentClient::new(far, second),
                    Err(ClientError::PlainBeyondLoopback(_))
                ),
                "{far}"
            );
        }
        assert!(matches!(
            AgentClient::trusting("http://127.0.0.1:7420", second, Some(b"pem")),
            Err(ClientError::CaWithoutHttps(_))
        ));
    }

    #[test]
    fn an_https_agent_needs_its_ca() {
        let second = Duration::from_secs(1);
        assert!(matches!(
            AgentClient::new("https://pos-07.lan:7420", second),
            Err(ClientError::NoTrust(_))
        ));
        for bad in [&b""[..], b"not a certificate"] {
            assert!(matches!(
                AgentClient::trusting("https://pos-07.lan:7420", second, Some(bad)),
                Err(ClientError::BadCa(_))
            ));
        }
    }
}
