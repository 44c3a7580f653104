//! The agent's one mutual-TLS connection to the hub (reqwest over HTTP/2:
//! the sync exchanges, the tills' requests for rights, the live link's
//! stream and its reports all share it).
//!
//! # Design constraints
//! - The store presents the certificate of its identity bundle and trusts
//!   only the hub CA in it.
//! - Every call is bounded in time, except the live link's stream, which
//!   the link task watches for heartbeats instead.
//! - Answers are classified by [`crate::sync::classify`], one rule for
//!   every call.

use std::time::Duration;

use tally_sync::codec::{self, Encoding};
use tally_sync::rights::{RightsGrant, RightsReleased, RightsRequest};
use tally_sync::{SyncRequest, SyncResponse};

use crate::sync::{classify, Failure, SetupError, SyncConfig};

/// Longest a live link's response may last before it is opened anew.
const LINK_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// One mTLS connection to the hub.
#[derive(Debug, Clone)]
pub struct HubClient {
    http: reqwest::Client,
    url: String,
    rights_url: String,
    link_url: String,
    released_url: String,
}

impl HubClient {
    /// Builds the client from the identity bundle: its certificate and key
    /// are presented, its last certificate (the hub CA) is the only root.
    pub fn new(config: &SyncConfig) -> Result<Self, SetupError> {
        install_crypto();
        if !config.hub.starts_with("https://") {
            return Err(SetupError::BadUrl(config.hub.clone()));
        }
        let path = &config.identity;
        let pem = std::fs::read(path).map_err(|source| SetupError::ReadIdentity {
            path: path.clone(),
            source,
        })?;
        let bad = |detail: String| SetupError::BadIdentity {
            path: path.clone(),
            detail,
        };
        let ca = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| bad(e.to_string()))?
            .pop()
            .ok_or_else(|| bad("no certificate in the bundle".into()))?;
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| bad(e.to_string()))?;
        let http = reqwest::Client::builder()
            .identity(identity)
            .tls_certs_only([ca])
            .connect_timeout(Duration::from_secs(10).min(config.request_timeout))
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(1)
            // Drop an idle connection before the hub does (it closes one
            // idle for 60 s by default), so a request never races the
            // hub's close.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| SetupError::Client(e.to_string()))?;
        let base = config.hub.trim_end_matches('/');
        Ok(Self {
            http,
            url: format!("{base}/v1/sync"),
            rights_url: format!("{base}/v1/rights"),
            link_url: format!("{base}/v1/link"),
            released_url: format!("{base}/v1/rights/released"),
        })
    }

    /// Asks the hub for its rights at this store (`POST /v1/rights`),
    /// giving up after `wait`.
    pub async fn rights(
        &self,
        req: &RightsRequest,
        wait: Duration,
    ) -> Result<RightsGrant, Failure> {
        let resp = send(self.http.post(&self.rights_url).timeout(wait).json(req)).await?;
        let bytes = body(resp, None).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| transient(format!("unreadable grant: {e}"), None))
    }

    /// Opens the live link (`GET /v1/link`): the response whose body
    /// streams the hub's notices. The caller reads it while it lasts.
    pub async fn link(&self) -> Result<reqwest::Response, Failure> {
        // The stream lasts until either side ends it; the link task
        // watches its heartbeats. A day bounds it all the same.
        send(self.http.get(&self.link_url).timeout(LINK_LIFETIME)).await
    }

    /// Reports rights released for an online order
    /// (`POST /v1/rights/released`), giving up after `wait`.
    pub async fn released(&self, report: &RightsReleased, wait: Duration) -> Result<(), Failure> {
        let resp = send(
            self.http
                .post(&self.released_url)
                .timeout(wait)
                .json(report),
        )
        .await?;
        body(resp, None).await.map(drop)
    }

    /// One exchange in the binary encoding.
    pub async fn exchange(&self, req: &SyncRequest) -> Result<SyncResponse, Failure> {
        let encoded = codec::encode(req, Encoding::Binary).map_err(|e| Failure::Stuck {
            code: "encode".into(),
            detail: e.to_string(),
        })?;
        let resp = send(
            self.http
                .post(&self.url)
                .header("content-type", Encoding::Binary.content_type())
                .body(encoded),
        )
        .await?;
        let retry_after = retry_after(&resp);
        let bytes = body(resp, retry_after).await?;
        codec::decode(&bytes, Encoding::Binary, codec::DEFAULT_MAX_MESSAGE_BYTES).map_err(|e| {
            match e {
                codec::CodecError::UnsupportedVersion { .. } => Failure::Stuck {
                    code: "unsupported_protocol_version".into(),
                    detail: e.to_string(),
                },
                _ => transient(format!("unreadable response: {e}"), None),
            }
        })
    }
}

fn transient(detail: String, retry_after: Option<Duration>) -> Failure {
    Failure::Transient {
        detail,
        retry_after,
    }
}

/// The hub's `Retry-After`, in seconds, if it sent one.
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Sends `req`: its response if the hub answered 200, else the answer
/// classified ([`classify`]); no answer at all is transient.
async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, Failure> {
    let resp = req
        .send()
        .await
        .map_err(|e| transient(error_chain(&e), None))?;
    let status = resp.status().as_u16();
    if status == 200 {
        return Ok(resp);
    }
    let retry_after = retry_after(&resp);
    let bytes = resp.bytes().await.unwrap_or_default();
    Err(classify(status, &bytes, retry_after))
}

/// A 200 response's whole body.
async fn body(
    resp: reqwest::Response,
    retry_after: Option<Duration>,
) -> Result<bytes::Bytes, Failure> {
    resp.bytes()
        .await
        .map_err(|e| transient(error_chain(&e), retry_after))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Installs ring as rustls' process-wide crypto provider (reqwest is built
/// without one); a no-op if one is installed.
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
