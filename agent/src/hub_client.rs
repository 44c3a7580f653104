//! The agent's one mutual-TLS connection to the hub (reqwest over HTTP/2:
//! the sync exchanges, the tills' requests for rights, the live link's
//! stream and its reports, the pages of the store's order allocations all
//! share it).
//!
//! # Design constraints
//! - The store presents the certificate of its identity bundle and trusts
//!   only the hub CA in it.
//! - Every call is bounded in time, except the live link's stream, which
//!   the link task watches for heartbeats instead.
//! - Answers are classified by [`crate::sync::classify`], one rule for
//!   every call.
//! - The identity renews itself: before a sync exchange, if less than
//!   `renew_percent_left` % of the certificate's lifetime is left, the
//!   client asks the hub for a new certificate for a new key
//!   (`POST /v1/renew`, over the current identity), writes the new bundle
//!   atomically and builds a new HTTPS client from it for every later
//!   request; requests (and a live link) already under way finish on the
//!   old connection, whose certificate stays valid. A failed renewal is
//!   logged and tried again [`RENEW_RETRY`] later; syncing goes on.
//! - Every certificate after the first in the bundle is a trusted hub CA
//!   (more than one while the hub's CA is rotated).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tally_sync::codec::{self, Encoding};
use tally_sync::error_body::ErrorBody;
use tally_sync::message::AllocationsPage;
use tally_sync::returns::{ReturnCheck, ReturnCheckRequest};
use tally_sync::rights::{RightsGrant, RightsReleased, RightsRequest};
use tally_sync::{SyncRequest, SyncResponse};

use tally_service::identity::RENEW_PATH;
use tally_sync::clock::Clock;

use crate::enroll::{self, CertInfo, EnrollError, Renewal};
use crate::sync::{classify, Failure, SetupError, SyncConfig};

/// Longest a live link's response may last before it is opened anew.
const LINK_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long after a renewal attempt (failed or not) the next may start.
pub const RENEW_RETRY: Duration = Duration::from_secs(600);

/// One mTLS connection to the hub.
#[derive(Debug)]
pub struct HubClient {
    /// Replaced when the identity is renewed.
    http: RwLock<reqwest::Client>,
    /// The certificate `http` presents.
    cert: Mutex<CertInfo>,
    /// When renewal was last tried; locked while one runs.
    renewing: tokio::sync::Mutex<Option<Instant>>,
    identity: PathBuf,
    connect_timeout: Duration,
    request_timeout: Duration,
    renew_percent_left: u8,
    /// Whose time decides when renewal is due.
    clock: Arc<dyn Clock>,
    /// The hub's clock less this agent's, from the last answer's `Date`
    /// ([`Self::clock_offset_ms`]).
    clock_offset: Mutex<Option<i64>>,
    url: String,
    rights_url: String,
    link_url: String,
    released_url: String,
    renew_url: String,
    allocations_url: String,
    returns_url: String,
}

/// Why the hub did not check a return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnCheckError {
    /// The hub holds no original for it (not synced yet, or none).
    Unknown(String),
    /// The hub refused it by the rules (beyond the bound, a tag not sold).
    Refused(Box<ErrorBody>),
    /// No answer (the hub unreachable, or an unexpected one).
    Unreachable(String),
}

/// An HTTPS client presenting the bundle `pem` and trusting only the CA
/// certificates in it (every certificate after the first).
fn build_http(
    pem: &[u8],
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, String> {
    let roots = enroll::ca_certs(pem, true).map_err(|e| e.to_string())?;
    let identity = reqwest::Identity::from_pem(pem).map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .identity(identity)
        .tls_certs_only(roots)
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .pool_max_idle_per_host(1)
        // Drop an idle connection before the hub does (it closes one
        // idle for 60 s by default), so a request never races the
        // hub's close.
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())
}

impl HubClient {
    /// Builds the client from the identity bundle: its certificate and key
    /// are presented, its CA certificates (every certificate after the
    /// first) are the only roots. `clock` decides when the certificate is
    /// due for renewal.
    pub fn new(config: &SyncConfig, clock: Arc<dyn Clock>) -> Result<Self, SetupError> {
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
        let text = String::from_utf8_lossy(&pem);
        let cert = enroll::cert_info(&text).map_err(|e| bad(e.to_string()))?;
        let connect_timeout = Duration::from_secs(10).min(config.request_timeout);
        let http = build_http(&pem, connect_timeout, config.request_timeout).map_err(bad)?;
        let base = config.hub.trim_end_matches('/');
        Ok(Self {
            http: RwLock::new(http),
            cert: Mutex::new(cert),
            renewing: tokio::sync::Mutex::new(None),
            identity: path.clone(),
            connect_timeout,
            request_timeout: config.request_timeout,
            renew_percent_left: config.renew_percent_left,
            clock,
            clock_offset: Mutex::new(None),
            url: format!("{base}/v1/sync"),
            rights_url: format!("{base}/v1/rights"),
            link_url: format!("{base}/v1/link"),
            released_url: format!("{base}/v1/rights/released"),
            renew_url: format!("{base}{RENEW_PATH}"),
            allocations_url: format!("{base}/v1/allocations"),
            returns_url: format!("{base}/v1/returns/check"),
        })
    }

    /// The HTTPS client of the current identity.
    fn http(&self) -> reqwest::Client {
        self.http
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The certificate presented now.
    pub fn certificate(&self) -> CertInfo {
        self.cert
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Renews the identity now: a new key, `POST /v1/renew` over the
    /// current one, the new bundle written over the old (atomically), and
    /// a new HTTPS client for every later request. The new certificate.
    pub async fn renew(&self) -> Result<CertInfo, EnrollError> {
        let current = self.certificate();
        let renewal = Renewal::new(&current)?;
        let resp = self
            .http()
            .post(&self.renew_url)
            .json(&renewal.request)
            .send()
            .await
            .map_err(|e| EnrollError::Unreachable(error_chain(&e)))?;
        let issued = enroll::issued_from(resp).await?;
        let bundle = renewal.finish(&issued, &self.identity)?;
        let cert = enroll::cert_info(&bundle)?;
        let http = build_http(
            bundle.as_bytes(),
            self.connect_timeout,
            self.request_timeout,
        )
        .map_err(EnrollError::Bad)?;
        *self.http.write().unwrap_or_else(PoisonError::into_inner) = http;
        *self.cert.lock().unwrap_or_else(PoisonError::into_inner) = cert.clone();
        Ok(cert)
    }

    /// Renews the identity if its certificate is in the last
    /// `renew_percent_left` % of its lifetime and no attempt was made in
    /// the last [`RENEW_RETRY`]; a failure is logged, not returned.
    pub async fn renew_if_due(&self) {
        let cert = self.certificate();
        let now = self.clock.now_ms();
        if !enroll::renewal_due(
            cert.not_before_ms,
            cert.not_after_ms,
            now,
            self.renew_percent_left,
        ) {
            return;
        }
        let Ok(mut last) = self.renewing.try_lock() else {
            return; // another renewal is under way
        };
        if last.is_some_and(|t| t.elapsed() < RENEW_RETRY) {
            return;
        }
        *last = Some(Instant::now());
        match self.renew().await {
            Ok(new) => tracing::info!(
                store = %new.store,
                old_serial = %cert.serial,
                serial = %new.serial,
                not_after = %tally_sync::timestamp::rfc3339(new.not_after_ms),
                "Identity renewed."
            ),
            Err(e) => tracing::warn!(
                error = %e,
                not_after = %tally_sync::timestamp::rfc3339(cert.not_after_ms),
                "Renewing the identity failed; retrying later."
            ),
        }
    }

    /// Asks the hub for its rights at this store (`POST /v1/rights`),
    /// giving up after `wait`.
    pub async fn rights(
        &self,
        req: &RightsRequest,
        wait: Duration,
    ) -> Result<RightsGrant, Failure> {
        let resp = self
            .send(self.http().post(&self.rights_url).timeout(wait).json(req))
            .await?;
        let bytes = body(resp, None).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| transient(format!("unreadable grant: {e}"), None))
    }

    /// Opens the live link (`GET /v1/link`): the response whose body
    /// streams the hub's notices. The caller reads it while it lasts.
    pub async fn link(&self) -> Result<reqwest::Response, Failure> {
        // The stream lasts until either side ends it; the link task
        // watches its heartbeats. A day bounds it all the same.
        self.send(self.http().get(&self.link_url).timeout(LINK_LIFETIME))
            .await
    }

    /// Reports rights released for an online order
    /// (`POST /v1/rights/released`), giving up after `wait`.
    pub async fn released(&self, report: &RightsReleased, wait: Duration) -> Result<(), Failure> {
        let resp = self
            .send(
                self.http()
                    .post(&self.released_url)
                    .timeout(wait)
                    .json(report),
            )
            .await?;
        body(resp, None).await.map(drop)
    }

    /// This store's allocations of orders that changed at the hub after
    /// `after` (`GET /v1/allocations`), one page.
    pub async fn allocations(&self, after: u64) -> Result<AllocationsPage, Failure> {
        let resp = self
            .send(
                self.http()
                    .get(format!("{}?after={after}", self.allocations_url)),
            )
            .await?;
        let bytes = body(resp, None).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| transient(format!("unreadable allocations: {e}"), None))
    }

    /// Asks the hub to check a return across stores or channels
    /// (`POST /v1/returns/check`), giving up after `wait`.
    pub async fn check_return(
        &self,
        req: &ReturnCheckRequest,
        wait: Duration,
    ) -> Result<ReturnCheck, ReturnCheckError> {
        let resp = self
            .http()
            .post(&self.returns_url)
            .timeout(wait)
            .json(req)
            .send()
            .await
            .map_err(|e| ReturnCheckError::Unreachable(error_chain(&e)))?;
        let status = resp.status().as_u16();
        let bytes = read_capped(resp)
            .await
            .map_err(ReturnCheckError::Unreachable)?;
        match status {
            200 => serde_json::from_slice(&bytes).map_err(|e| {
                ReturnCheckError::Unreachable(format!("unreadable return check: {e}"))
            }),
            404 | 409 | 422 => match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) if status == 404 => Err(ReturnCheckError::Unknown(body.message)),
                Ok(body) => Err(ReturnCheckError::Refused(Box::new(body))),
                Err(_) => Err(ReturnCheckError::Unreachable(format!(
                    "the hub answered {status}"
                ))),
            },
            other => Err(ReturnCheckError::Unreachable(format!(
                "the hub answered {other}"
            ))),
        }
    }

    /// One exchange in the binary encoding.
    /// Renews the identity first if it is due ([`Self::renew_if_due`]).
    pub async fn exchange(&self, req: &SyncRequest) -> Result<SyncResponse, Failure> {
        self.renew_if_due().await;
        let encoded = codec::encode(req, Encoding::Binary).map_err(|e| Failure::Stuck {
            code: "encode".into(),
            detail: e.to_string(),
        })?;
        let resp = self
            .send(
                self.http()
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

/// The longest `Retry-After` honoured: an hour. A larger one (from the
/// hub or a proxy on the way) is read as an hour, so no answer can stop
/// the sync for longer or overflow its timer.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The hub's `Retry-After`, in seconds, if it sent one (at most
/// [`MAX_RETRY_AFTER`]).
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

/// The time an HTTP answer's `Date` header gives (whole seconds), Unix
/// ms; none if absent or not an HTTP date.
pub fn date_ms(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let text = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    let at = httpdate::parse_http_date(text).ok()?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    u64::try_from(ms).ok()
}

impl HubClient {
    /// The hub's clock less this agent's, in ms, as the last answer with
    /// a `Date` showed it (none before one): a clock far off the hub's
    /// dates events the hub refuses (more than a day ahead).
    pub fn clock_offset_ms(&self) -> Option<i64> {
        *self.clock_offset.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `req`: its response if the hub answered 200, else the answer
    /// classified ([`classify`]); no answer at all is transient. Any
    /// answer's `Date` updates [`Self::clock_offset_ms`].
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, Failure> {
        let resp = req
            .send()
            .await
            .map_err(|e| transient(error_chain(&e), None))?;
        if let Some(hub_ms) = date_ms(resp.headers()) {
            // The `Date` is whole seconds, stamped before the answer
            // travelled: the offset reads up to a second or so low.
            let offset = tally_sync::limits::offset_ms(hub_ms, self.clock.now_ms());
            *self.clock_offset.lock().unwrap_or_else(|p| p.into_inner()) = Some(offset);
        }
        answered(resp).await
    }
}

/// A response: itself if 200, else the answer classified.
async fn answered(resp: reqwest::Response) -> Result<reqwest::Response, Failure> {
    let status = resp.status().as_u16();
    if status == 200 {
        return Ok(resp);
    }
    let retry_after = retry_after(&resp);
    let bytes = read_capped(resp).await.unwrap_or_default();
    Err(classify(status, &bytes, retry_after))
}

/// A 200 response's whole body.
async fn body(
    resp: reqwest::Response,
    retry_after: Option<Duration>,
) -> Result<bytes::Bytes, Failure> {
    read_capped(resp)
        .await
        .map_err(|e| transient(e, retry_after))
}

/// The most of a hub's answer the agent reads: the largest message it
/// decodes. A longer body (a broken hub or a proxy) is an error before
/// it fills the memory, not after.
const MAX_RESPONSE_BYTES: usize = codec::DEFAULT_MAX_MESSAGE_BYTES;

/// `resp`'s body, read chunk by chunk up to [`MAX_RESPONSE_BYTES`].
pub(crate) async fn read_capped(mut resp: reqwest::Response) -> Result<bytes::Bytes, String> {
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if out.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES {
            return Err(format!(
                "the hub's answer is longer than {MAX_RESPONSE_BYTES} bytes"
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// An error with its causes, on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
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
pub(crate) fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_hubs_date_gives_its_clock_against_this_box() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(date_ms(&headers), None);
        headers.insert("date", "Sun, 06 Dec 2026 07:00:00 GMT".parse().unwrap());
        let hub = date_ms(&headers).unwrap();
        assert_eq!(hub, 1_796_540_400_000);
        // This box three days ahead: the hub is three days behind it.
        let ahead = hub + 3 * 86_400_000 + 400;
        let offset = tally_sync::limits::offset_ms;
        assert_eq!(offset(hub, ahead), -3 * 86_400_000 - 400);
        assert_eq!(offset(u64::MAX, 0), i64::MAX);
        assert_eq!(offset(0, u64::MAX), i64::MIN);
        headers.insert("date", "yesterday".parse().unwrap());
        assert_eq!(date_ms(&headers), None, "not an HTTP date");
    }

    fn answer(retry_after: &str, body: Vec<u8>) -> reqwest::Response {
        http::Response::builder()
            .status(503)
            .header("retry-after", retry_after)
            .body(body)
            .unwrap()
            .into()
    }

    #[test]
    fn a_retry_after_is_honoured_up_to_an_hour() {
        let secs = |v: &str| retry_after(&answer(v, Vec::new()));
        assert_eq!(secs("7"), Some(Duration::from_secs(7)));
        assert_eq!(secs(" 3600 "), Some(MAX_RETRY_AFTER));
        // From a proxy gone wrong: an hour, not a timer overflow.
        assert_eq!(secs("18446744073709551615"), Some(MAX_RETRY_AFTER));
        assert_eq!(secs("soon"), None);
    }

    #[tokio::test]
    async fn an_answer_longer_than_the_largest_message_is_an_error() {
        let fits = vec![1u8; MAX_RESPONSE_BYTES];
        assert_eq!(
            read_capped(answer("1", fits)).await.unwrap().len(),
            MAX_RESPONSE_BYTES
        );
        let over = vec![1u8; MAX_RESPONSE_BYTES + 1];
        let err = read_capped(answer("1", over)).await.unwrap_err();
        assert!(err.contains("longer than"), "{err}");
    }
}
