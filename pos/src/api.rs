//! The cashier terminal's client of the agent's local API (issue 4's
//! contract, `docs/pos.md`): the JSON bodies, the answers mapped to typed
//! errors, and [`AgentApi`], the small trait the event loop calls so its
//! effects can run against a fake in tests. [`HttpAgent`] is the real one
//! (reqwest, JSON, loopback HTTP).
//!
//! # Design constraints
//! - Every error says what the terminal can do about it: a refusal or an
//!   invalid request is definite (the agent changed nothing), while an
//!   unreachable or unavailable agent, a 5xx or an unreadable 2xx leaves
//!   the outcome of a POST unknown: [`ApiError::outcome_unknown`], retry
//!   with the same id.
//! - Nothing from the network can panic: bodies are parsed leniently
//!   (unknown fields ignored) and every failure is a value.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One line of a sale or a return, as posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineBody {
    /// GTIN, 14 digits.
    pub gtin: String,
    /// Units, > 0.
    pub qty: u64,
    /// Price per unit in minor units (the price the cashier showed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price_minor: Option<i64>,
    /// The tag's EPC (hex) for a serialized item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epc: Option<String>,
}

/// A tender, as posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenderBody {
    /// `cash` or `card`.
    pub method: String,
    /// Amount applied to the sale, minor units.
    pub amount_minor: i64,
    /// Card reference (authorisation code, slip number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// A manager's approval of a sale beyond the store's rights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverrideBody {
    /// Who approved.
    pub approver: String,
    /// Why.
    pub reason: String,
}

/// `POST /v1/sales`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaleRequest {
    /// Chosen by the terminal before the first POST, kept across retries.
    pub sale_id: Uuid,
    /// The basket.
    pub lines: Vec<LineBody>,
    /// How it was paid.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tenders: Vec<TenderBody>,
    /// Manager override, on a re-post after a refusal.
    #[serde(rename = "override", skip_serializing_if = "Option::is_none")]
    pub override_: Option<OverrideBody>,
}

/// `POST /v1/returns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReturnRequest {
    /// Chosen by the terminal before the first POST, kept across retries.
    pub return_id: Uuid,
    /// Returned items.
    pub lines: Vec<LineBody>,
    /// The sale the items came from, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_sale_id: Option<Uuid>,
}

/// `201`/`200` answer to a sale.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SaleReply {
    /// The sale's id.
    pub sale_id: Uuid,
    /// `committed`.
    pub status: String,
    /// The total the agent recorded.
    pub total_minor: i64,
    /// Whether it was a manager override.
    #[serde(default)]
    pub overridden: bool,
}

/// `GET /v1/sales/{id}`: what a return against the sale needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SaleRecord {
    /// The sale's id.
    pub sale_id: Uuid,
    /// What it sold.
    pub lines: Vec<SoldLine>,
    /// Units returns naming it took back, per item.
    #[serde(default)]
    pub returned: Vec<ReturnedUnits>,
}

/// A line of a recorded sale.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SoldLine {
    /// The item (14 digits).
    pub gtin: String,
    /// Units.
    pub qty: u64,
}

/// Units of an item returned against a sale.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReturnedUnits {
    /// The item (14 digits).
    pub gtin: String,
    /// Units.
    pub units: u64,
}

impl SaleRecord {
    /// Units sold and units still returnable, over all items.
    pub fn sold_and_left(&self) -> (u64, u64) {
        let sold: u64 = self.lines.iter().map(|l| l.qty).sum();
        let returned: u64 = self.returned.iter().map(|r| r.units).sum();
        (sold, sold.saturating_sub(returned))
    }
}

/// `201`/`200` answer to a return.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReturnReply {
    /// The return's id.
    pub return_id: Uuid,
    /// `committed`.
    pub status: String,
    /// The refund the agent recorded.
    pub total_minor: i64,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgentStatus {
    /// The store.
    #[serde(default)]
    pub store_id: Option<String>,
    /// Whether the agent reaches the hub.
    pub online: bool,
    /// Last successful sync (as the agent reports it: ms or text).
    #[serde(default)]
    pub last_sync_at: Option<serde_json::Value>,
    /// Events waiting in the outbox.
    #[serde(default)]
    pub outbox_events: u64,
    /// The agent's version.
    #[serde(default)]
    pub version: Option<String>,
}

/// `GET /v1/stock/{gtin}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Stock {
    /// Units on hand at the store.
    pub on_hand: u64,
    /// Units this store may still sell.
    pub rights: u64,
    /// Units whose rights others hold (the hub's online reserve).
    #[serde(default)]
    pub others_rights: u64,
}

/// `GET /v1/catalog/{gtin}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CatalogItem {
    /// Display name.
    pub name: String,
    /// Price per unit (per kilogram for weighed goods), minor units.
    pub price_minor: i64,
}

/// A `409` refusal: the rules refused the command; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The store's rights for an item are short.
    InsufficientStock {
        /// The item.
        gtin: String,
        /// Units asked for.
        requested: u64,
        /// Units the store may sell.
        available: u64,
    },
    /// The EPC was sold already.
    AlreadySold {
        /// The tag.
        epc: String,
    },
    /// A returned EPC was never sold.
    NotSold {
        /// The tag.
        epc: String,
    },
    /// A return takes back more of an item than the named sale sold.
    ExceedsSale {
        /// The item.
        gtin: String,
        /// Units returned.
        requested: u64,
        /// Units that sale still has to give back.
        returnable: u64,
    },
    /// Another refusal this terminal does not know.
    Other {
        /// The `error` field.
        error: String,
        /// The body.
        body: String,
    },
}

/// Why a call did not give the answer asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No answer (connection refused, timeout, broken connection).
    #[error("cannot reach the agent: {0}")]
    Unreachable(String),
    /// `503`: the agent is stopping or its storage failed.
    #[error("the agent is unavailable: {0}")]
    Unavailable(String),
    /// `409`.
    #[error("refused: {0:?}")]
    Refused(Refusal),
    /// `422` (or `413`): the request is malformed; `detail` says why.
    #[error("invalid: {0}")]
    Invalid(String),
    /// `404`.
    #[error("not found")]
    NotFound,
    /// Any other answer, or a body that does not parse.
    #[error("unexpected answer {status}: {body}")]
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
            ApiError::Unexpected { status, .. } => !(400..500).contains(status),
            ApiError::Refused(_) | ApiError::Invalid(_) | ApiError::NotFound => false,
        }
    }
}

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
    ) -> impl Future<Output = Result<SaleReply, ApiError>> + Send;
    /// `POST /v1/returns`.
    fn post_return(
        &self,
        ret: &ReturnRequest,
    ) -> impl Future<Output = Result<ReturnReply, ApiError>> + Send;
    /// `GET /v1/sales/{id}`.
    fn sale(&self, id: Uuid) -> impl Future<Output = Result<SaleRecord, ApiError>> + Send;
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The agent URL is not `http://…` or `https://…`.
    #[error("agent URL {0:?} must start with http:// or https://")]
    Url(String),
    /// reqwest refused the configuration.
    #[error("building the HTTP client: {0}")]
    Build(String),
}

/// The agent's API over HTTP.
#[derive(Debug, Clone)]
pub struct HttpAgent {
    base: String,
    http: reqwest::Client,
}

/// Longest body kept in an [`ApiError::Unexpected`].
const BODY_CUT: usize = 300;

impl HttpAgent {
    /// A client of the agent at `base` (e.g. `http://127.0.0.1:7420`);
    /// every call gives up after `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, ClientError> {
        let base = base.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Url(base.to_string()));
        }
        // reqwest is built without a bundled crypto provider (the workspace
        // uses ring); an Err only means a provider is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .no_proxy()
            .build()
            .map_err(|e| ClientError::Build(chain(&e)))?;
        Ok(Self {
            base: base.to_string(),
            http,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, ApiError> {
        let resp = req
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(describe(&e)))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ApiError::Unreachable(format!("reading the answer: {}", chain(&e))))?;
        answer(status, &bytes)
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
    chain(e)
}

/// The error and its sources on one line (reqwest's own message alone
/// hides the cause, e.g. "connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn cut(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(BODY_CUT) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.into_owned(),
    }
}

/// Maps a status and body to the typed answer.
fn answer<T: DeserializeOwned>(status: u16, bytes: &[u8]) -> Result<T, ApiError> {
    let unexpected = || ApiError::Unexpected {
        status,
        body: cut(bytes),
    };
    let json = || serde_json::from_slice::<serde_json::Value>(bytes).ok();
    let field =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
    match status {
        200..=299 => serde_json::from_slice(bytes).map_err(|_| unexpected()),
        404 => Err(ApiError::NotFound),
        409 => {
            let v = json().ok_or_else(unexpected)?;
            let error = field(&v, "error").unwrap_or_default();
            let num = |k: &str| v.get(k).and_then(|x| x.as_u64());
            Err(ApiError::Refused(match error.as_str() {
                "insufficient_stock" => Refusal::InsufficientStock {
                    gtin: field(&v, "gtin").unwrap_or_default(),
                    requested: num("requested").unwrap_or(0),
                    available: num("available").unwrap_or(0),
                },
                "already_sold" => Refusal::AlreadySold {
                    epc: field(&v, "epc").unwrap_or_default(),
                },
                "not_sold" => Refusal::NotSold {
                    epc: field(&v, "epc").unwrap_or_default(),
                },
                "exceeds_sale" => Refusal::ExceedsSale {
                    gtin: field(&v, "gtin").unwrap_or_default(),
                    requested: num("requested").unwrap_or(0),
                    returnable: num("returnable").unwrap_or(0),
                },
                _ => Refusal::Other {
                    error,
                    body: cut(bytes),
                },
            }))
        }
        413 | 422 => Err(ApiError::Invalid(
            json()
                .and_then(|v| field(&v, "detail"))
                .unwrap_or_else(|| cut(bytes)),
        )),
        503 => Err(ApiError::Unavailable(
            json()
                .and_then(|v| field(&v, "detail"))
                .unwrap_or_else(|| cut(bytes)),
        )),
        _ => Err(unexpected()),
    }
}

impl AgentApi for HttpAgent {
    async fn status(&self) -> Result<AgentStatus, ApiError> {
        self.call(self.http.get(self.url("/v1/status"))).await
    }

    async fn catalog_item(&self, gtin: &str) -> Result<CatalogItem, ApiError> {
        self.call(self.http.get(self.url(&format!("/v1/catalog/{gtin}"))))
            .await
    }

    async fn stock(&self, gtin: &str) -> Result<Stock, ApiError> {
        self.call(self.http.get(self.url(&format!("/v1/stock/{gtin}"))))
            .await
    }

    async fn sale(&self, id: Uuid) -> Result<SaleRecord, ApiError> {
        self.call(self.http.get(self.url(&format!("/v1/sales/{id}"))))
            .await
    }

    async fn post_sale(&self, sale: &SaleRequest) -> Result<SaleReply, ApiError> {
        self.call(self.http.post(self.url("/v1/sales")).json(sale))
            .await
    }

    async fn post_return(&self, ret: &ReturnRequest) -> Result<ReturnReply, ApiError> {
        self.call(self.http.post(self.url("/v1/returns")).json(ret))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    use serde_json::json;

    use super::*;

    /// A one-connection-at-a-time HTTP/1.1 server on loopback answering
    /// each request with the next canned (status, body) and reporting
    /// what it received (request line and body).
    fn canned(answers: Vec<(u16, String)>) -> (String, mpsc::Receiver<(String, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut answers = answers.into_iter();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        break;
                    }
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        if h == "\r\n" || h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    tx.send((
                        request_line.trim().to_string(),
                        String::from_utf8(body).unwrap(),
                    ))
                    .unwrap();
                    let Some((status, body)) = answers.next() else {
                        return;
                    };
                    write!(
                        stream,
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .unwrap();
                }
            }
        });
        (base, rx)
    }

    fn client(base: &str) -> HttpAgent {
        HttpAgent::new(base, Duration::from_secs(5)).unwrap()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn sale() -> SaleRequest {
        SaleRequest {
            sale_id: Uuid::from_u128(7),
            lines: vec![LineBody {
                gtin: "04006381333931".into(),
                qty: 2,
                unit_price_minor: Some(129),
                epc: None,
            }],
            tenders: vec![TenderBody {
                method: "card".into(),
                amount_minor: 258,
                reference: Some("AUTH1".into()),
            }],
            override_: Some(OverrideBody {
                approver: "Ann".into(),
                reason: "on shelf".into(),
            }),
        }
    }

    #[test]
    fn a_sale_lookup_reads_what_is_left_to_return() {
        let id = Uuid::from_u128(0x0190_a5e0_0000_7000_8000_0000_0000_00d1);
        // The agent's GET /v1/sales/{id} body, fields the terminal ignores
        // included.
        let body = json!({"sale_id": id, "status": "committed", "store_id": "s1", "at_ms": 1,
            "lines": [{"gtin": "04006381333931", "qty": 2, "unit_price_minor": 199, "epc": null},
                      {"gtin": "00000096385074", "qty": 1, "unit_price_minor": 50, "epc": null}],
            "tenders": [], "override": null, "total_minor": 448, "overridden": false,
            "returned": [{"gtin": "04006381333931", "units": 1}]});
        let (base, rx) = canned(vec![(200, body.to_string())]);
        let got = rt().block_on(client(&base).sale(id)).unwrap();
        assert_eq!(got.sale_id, id);
        assert_eq!(got.sold_and_left(), (3, 2));
        assert_eq!(rx.recv().unwrap().0, format!("GET /v1/sales/{id} HTTP/1.1"));
    }

    #[test]
    fn posts_a_sale_in_the_contract_shape_and_reads_the_reply() {
        let id = Uuid::from_u128(7);
        let (base, seen) = canned(vec![(
            201,
            json!({"sale_id": id, "status": "committed", "total_minor": 258, "overridden": true})
                .to_string(),
        )]);
        let reply = rt().block_on(client(&base).post_sale(&sale())).unwrap();
        assert_eq!(reply.total_minor, 258);
        assert!(reply.overridden);
        let (line, body) = seen.recv().unwrap();
        assert_eq!(line, "POST /v1/sales HTTP/1.1");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            json!({
                "sale_id": "00000000-0000-0000-0000-000000000007",
                "lines": [{"gtin": "04006381333931", "qty": 2, "unit_price_minor": 129}],
                "tenders": [{"method": "card", "amount_minor": 258, "reference": "AUTH1"}],
                "override": {"approver": "Ann", "reason": "on shelf"}
            })
        );
    }

    #[test]
    fn maps_refusals_invalid_and_unavailable() {
        let (base, _seen) = canned(vec![
            (
                409,
                json!({"error":"insufficient_stock","gtin":"04006381333931","requested":3,"available":1})
                    .to_string(),
            ),
            (409, json!({"error":"already_sold","epc":"3074257BF7194E4000001A85"}).to_string()),
            (
                409,
                json!({"error":"exceeds_sale","original_sale_id":"0190a5e0-0000-7000-8000-0000000000c1",
                       "gtin":"04006381333931","requested":2,"returnable":1})
                    .to_string(),
            ),
            (422, json!({"error":"invalid","detail":"qty must be > 0"}).to_string()),
            (503, json!({"error":"unavailable","detail":"shutting down"}).to_string()),
            (500, "boom".to_string()),
            (201, "not json".to_string()),
            (409, json!({"error":"frozen"}).to_string()),
        ]);
        let c = client(&base);
        let rt = rt();
        let post = || rt.block_on(c.post_sale(&sale())).unwrap_err();
        let e = post();
        assert_eq!(
            e,
            ApiError::Refused(Refusal::InsufficientStock {
                gtin: "04006381333931".into(),
                requested: 3,
                available: 1
            })
        );
        assert!(!e.outcome_unknown());
        assert_eq!(
            post(),
            ApiError::Refused(Refusal::AlreadySold {
                epc: "3074257BF7194E4000001A85".into()
            })
        );
        assert_eq!(
            post(),
            ApiError::Refused(Refusal::ExceedsSale {
                gtin: "04006381333931".into(),
                requested: 2,
                returnable: 1
            })
        );
        let e = post();
        assert_eq!(e, ApiError::Invalid("qty must be > 0".into()));
        assert!(!e.outcome_unknown());
        let e = post();
        assert_eq!(e, ApiError::Unavailable("shutting down".into()));
        assert!(e.outcome_unknown());
        let e = post();
        assert!(
            matches!(e, ApiError::Unexpected { status: 500, .. }),
            "{e:?}"
        );
        assert!(e.outcome_unknown());
        let e = post();
        assert!(
            matches!(e, ApiError::Unexpected { status: 201, .. }),
            "{e:?}"
        );
        assert!(e.outcome_unknown(), "a 201 we cannot read may be recorded");
        assert!(matches!(
            post(),
            ApiError::Refused(Refusal::Other { error, .. }) if error == "frozen"
        ));
    }

    #[test]
    fn reads_status_stock_catalog_and_not_found() {
        let (base, seen) = canned(vec![
            (
                200,
                json!({"store_id":"s1","replica_id":"s1","online":false,"last_sync_at":null,
                       "outbox_events":12,"version":"0.1.0"})
                .to_string(),
            ),
            (
                200,
                json!({"gtin":"04006381333931","on_hand":5,"rights":2,"others_rights":3})
                    .to_string(),
            ),
            (
                200,
                json!({"gtin":"04006381333931","name":"Pen","price_minor":129}).to_string(),
            ),
            (404, json!({"error":"not_found"}).to_string()),
        ]);
        let c = client(&format!("{base}/"));
        let rt = rt();
        let s = rt.block_on(c.status()).unwrap();
        assert!(!s.online);
        assert_eq!(s.outbox_events, 12);
        assert_eq!(s.store_id.as_deref(), Some("s1"));
        let st = rt.block_on(c.stock("04006381333931")).unwrap();
        assert_eq!((st.on_hand, st.rights, st.others_rights), (5, 2, 3));
        let item = rt.block_on(c.catalog_item("04006381333931")).unwrap();
        assert_eq!(item.name, "Pen");
        assert_eq!(
            rt.block_on(c.catalog_item("00000096385074")).unwrap_err(),
            ApiError::NotFound
        );
        let paths: Vec<String> = seen.try_iter().map(|(l, _)| l).collect();
        assert_eq!(
            paths,
            [
                "GET /v1/status HTTP/1.1",
                "GET /v1/stock/04006381333931 HTTP/1.1",
                "GET /v1/catalog/04006381333931 HTTP/1.1",
                "GET /v1/catalog/00000096385074 HTTP/1.1"
            ]
        );
    }

    #[test]
    fn a_closed_port_is_unreachable_and_its_outcome_unknown() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = client(&format!("http://127.0.0.1:{port}"));
        let e = rt().block_on(c.post_sale(&sale())).unwrap_err();
        assert!(matches!(e, ApiError::Unreachable(_)), "{e:?}");
        assert!(e.outcome_unknown());
        let e = rt().block_on(c.status()).unwrap_err();
        assert!(e.to_string().contains("cannot reach the agent"), "{e}");
    }

    #[test]
    fn refuses_urls_without_scheme() {
        assert!(matches!(
            HttpAgent::new("127.0.0.1:7420", Duration::from_secs(1)),
            Err(ClientError::Url(_))
        ));
        assert_eq!(
            client("http://127.0.0.1:7420/").base(),
            "http://127.0.0.1:7420"
        );
    }
}
