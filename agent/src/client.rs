//! A small client of the agent's own API, for the CLI's `stock`, `status`
//! and `catalog import` subcommands (and for tests and the benchmark).
//! HTTP/1.1 over hyper with keep-alive; JSON bodies.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL or path is not a valid URI.
    #[error("bad URL {url:?}: {detail}")]
    Url {
        /// What was given.
        url: String,
        /// Why it is bad.
        detail: String,
    },
    /// The agent could not be reached.
    #[error("cannot reach the agent at {url}: {detail} (is `tally-agent run` running there?)")]
    Connect {
        /// Where.
        url: String,
        /// Why.
        detail: String,
    },
    /// The answer was not JSON.
    #[error("the agent answered {status} with a body that is not JSON: {detail}")]
    Body {
        /// The status.
        status: StatusCode,
        /// Why.
        detail: String,
    },
}

/// A client of one agent.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl ApiClient {
    /// A client for the agent at `base` (e.g. `http://127.0.0.1:7420`).
    pub fn new(base: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            base: base.trim_end_matches('/').to_string(),
            http: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(256)
                .build(connector),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; returns the status and the raw body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let url = format!("{}{}", self.base, path);
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| ClientError::Url {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let mut req = Request::builder().method(method).uri(uri);
        let bytes = match body {
            Some((content_type, b)) => {
                req = req.header(hyper::header::CONTENT_TYPE, content_type);
                b
            }
            None => Vec::new(),
        };
        let req = req
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| ClientError::Url {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        // hyper's own message is only "client error (Connect)"; the
        // cause ("Connection refused") is further down its chain.
        let connect = |e: &(dyn std::error::Error + 'static)| ClientError::Connect {
            url: url.clone(),
            detail: tally_sync::report::one_line(e),
        };
        let resp = self.http.request(req).await.map_err(|e| connect(&e))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| connect(&e))?
            .to_bytes();
        Ok((status, body))
    }

    fn json(status: StatusCode, body: &[u8]) -> Result<(StatusCode, Value), ClientError> {
        let v = serde_json::from_slice(body).map_err(|e| ClientError::Body {
            status,
            detail: e.to_string(),
        })?;
        Ok((status, v))
    }

    /// `GET path`, JSON answer.
    pub async fn get(&self, path: &str) -> Result<(StatusCode, Value), ClientError> {
        let (status, body) = self.raw(Method::GET, path, None).await?;
        Self::json(status, &body)
    }

    /// `GET path`, text answer.
    pub async fn get_text(&self, path: &str) -> Result<(StatusCode, String), ClientError> {
        let (status, body) = self.raw(Method::GET, path, None).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// `POST path` with a JSON body, JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(StatusCode, Value), ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Url {
            url: path.to_string(),
            detail: e.to_string(),
        })?;
        let (status, body) = self
            .raw(Method::POST, path, Some(("application/json", bytes)))
            .await?;
        Self::json(status, &body)
    }
}
