//! Who may use the local API: the checks every request passes before a
//! handler sees it.
//!
//! - **Host**: the request must name the agent by a loopback name
//!   (`localhost`, `*.localhost`, `127.0.0.1`, `[::1]`), its own listen
//!   address, or a name configured in `[api] allowed_hosts`. A web page
//!   the store's browser opened cannot reach the API by pointing its own
//!   domain at 127.0.0.1 (DNS rebinding): its requests carry its domain.
//! - **Origin**: a browser's request from a page must come from such a
//!   host too (any scheme and port): a page elsewhere cannot post sales
//!   or prices. Requests without `Origin` (the terminal, the CLI, curl)
//!   pass this check.
//! - **Tills**: with tokens configured (`[[api.tills]]`), every request
//!   needs `Authorization: Bearer TOKEN` of one of them; the till it
//!   names is the request's [`Till`]. Tokens are stored as SHA-256
//!   digests (they are random, so a digest is enough; compared in
//!   constant time).
//!
//! [`Guard::check`] is the pure decision; [`enforce`] the middleware.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};
use tally_service::secret::secrets_equal;
use tally_sync::error_body::ErrorBody;

use crate::config::TillConfig;

/// The till a request came from, when tills have tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Till(pub String);

/// Why a request was refused before its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No `Host`, or one the agent does not answer to.
    Host(String),
    /// A page from elsewhere.
    Origin(String),
    /// No token, or not one of the tills'.
    Token,
}

impl Denied {
    fn answer(&self) -> Response {
        let (status, body) = match self {
            Denied::Host(host) => (
                StatusCode::MISDIRECTED_REQUEST,
                ErrorBody::new(
                    "host_not_allowed",
                    format!("this agent does not answer to host {host:?} (loopback names, its listen address and [api] allowed_hosts only)"),
                ),
            ),
            Denied::Origin(origin) => (
                StatusCode::FORBIDDEN,
                ErrorBody::new(
                    "origin_not_allowed",
                    format!("requests from pages at {origin:?} are not allowed"),
                ),
            ),
            Denied::Token => (
                StatusCode::UNAUTHORIZED,
                ErrorBody::new(
                    "till_token_required",
                    "this agent needs a till's token: Authorization: Bearer TOKEN",
                ),
            ),
        };
        (status, Json(body)).into_response()
    }
}

/// The API's admission rules, from the configuration.
#[derive(Debug, Clone)]
pub struct Guard {
    listen: SocketAddr,
    allowed_hosts: Vec<String>,
    tills: Vec<(String, [u8; 32])>,
}

impl Guard {
    /// Rules for an API listening on `listen`, answering also to
    /// `allowed_hosts`, with `tills` (their digests already checked by
    /// the configuration).
    pub fn new(listen: SocketAddr, allowed_hosts: &[String], tills: &[TillConfig]) -> Self {
        Self {
            listen,
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            tills: tills
                .iter()
                .filter_map(|t| Some((t.id.clone(), t.digest()?)))
                .collect(),
        }
    }

    /// Whether tills need tokens.
    pub fn tokens_required(&self) -> bool {
        !self.tills.is_empty()
    }

    /// The decision for a request with these headers: the till it came
    /// from (with tokens configured), or why it is refused.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<Till>, Denied> {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !self.host_allowed(host) {
            return Err(Denied::Host(host.to_string()));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let authority = origin
                .split_once("://")
                .map(|(_, rest)| rest)
                .filter(|rest| !rest.contains('/'));
            if !authority.is_some_and(|a| self.host_allowed(a)) {
                return Err(Denied::Origin(origin.to_string()));
            }
        }
        if self.tills.is_empty() {
            return Ok(None);
        }
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(Denied::Token)?;
        let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        // Every till is compared, each in constant time.
        let mut found = None;
        for (id, expected) in &self.tills {
            if secrets_equal(&digest, expected) {
                found = Some(id.clone());
            }
        }
        found.map(|id| Some(Till(id))).ok_or(Denied::Token)
    }

    /// Whether `authority` (`host[:port]`) names this agent.
    fn host_allowed(&self, authority: &str) -> bool {
        let host = host_of(authority).to_ascii_lowercase();
        if host.is_empty() {
            return false;
        }
        if host == "localhost" || host.ends_with(".localhost") {
            return true;
        }
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return ip.is_loopback() || ip == self.listen.ip();
        }
        self.allowed_hosts.contains(&host)
    }
}

/// The host part of `host[:port]` or `[v6]:port`.
fn host_of(authority: &str) -> &str {
    let authority = authority.trim();
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or("", |(h, _)| h);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// The middleware: refuses what [`Guard::check`] refuses, else passes the
/// request on with its [`Till`] (if any) as an extension.
pub async fn enforce(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    // HTTP/2 names the host in the request's authority, not a header.
    if !req.headers().contains_key(header::HOST) {
        let authority = req
            .uri()
            .authority()
            .and_then(|a| header::HeaderValue::from_str(a.as_str()).ok());
        if let Some(authority) = authority {
            req.headers_mut().insert(header::HOST, authority);
        }
    }
    match guard.check(req.headers()) {
        Ok(till) => {
            if let Some(till) = till {
                req.extensions_mut().insert(till);
            }
            next.run(req).await
        }
        Err(denied) => {
            tracing::warn!(why = ?denied, path = %req.uri().path(), "API request refused.");
            denied.answer()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn guard(tills: &[TillConfig]) -> Guard {
        Guard::new(
            SocketAddr::from(([192, 168, 1, 20], 7420)),
            &["pos-box.store.example".to_string()],
            tills,
        )
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                k.clone(),
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    #[test]
    fn loopback_names_the_listen_address_and_configured_hosts_pass() {
        let g = guard(&[]);
        for host in [
            "127.0.0.1:7420",
            "localhost:7420",
            "LOCALHOST",
            "till.localhost:80",
            "[::1]:7420",
            "127.0.0.2",
            "192.168.1.20:7420",
            "pos-box.store.example:7420",
        ] {
            assert_eq!(
                g.check(&headers(&[(header::HOST, host)])),
                Ok(None),
                "{host}"
            );
        }
    }

    #[test]
    fn a_rebound_name_or_no_host_is_refused() {
        let g = guard(&[]);
        for host in [
            "evil.example:7420",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "192.168.1.21:7420",
            "",
            "[::1",
        ] {
            assert!(
                matches!(
                    g.check(&headers(&[(header::HOST, host)])),
                    Err(Denied::Host(_))
                ),
                "{host}"
            );
        }
        assert!(matches!(g.check(&HeaderMap::new()), Err(Denied::Host(_))));
    }

    #[test]
    fn pages_from_elsewhere_are_refused() {
        let g = guard(&[]);
        let ok = [
            "http://localhost:3000",
            "http://127.0.0.1:7420",
            "https://pos-box.store.example",
        ];
        for origin in ok {
            let h = headers(&[(header::HOST, "127.0.0.1:7420"), (header::ORIGIN, origin)]);
            assert_eq!(g.check(&h), Ok(None), "{origin}");
        }
        for origin in [
            "https://evil.example",
            "null",
            "file://",
            "http://localhost.evil.example",
        ] {
            let h = headers(&[(header::HOST, "127.0.0.1:7420"), (header::ORIGIN, origin)]);
            assert!(matches!(g.check(&h), Err(Denied::Origin(_))), "{origin}");
        }
    }

    #[test]
    fn with_tills_a_token_names_the_till() {
        let tills = [
            TillConfig::with_token("till-1", "secret-one"),
            TillConfig::with_token("till-2", "secret-two"),
        ];
        let g = guard(&tills);
        assert!(g.tokens_required());
        let host = (header::HOST, "127.0.0.1:7420");
        assert_eq!(
            g.check(&headers(std::slice::from_ref(&host))),
            Err(Denied::Token)
        );
        let bad = (header::AUTHORIZATION, "Bearer secret-three");
        assert_eq!(g.check(&headers(&[host.clone(), bad])), Err(Denied::Token));
        let good = (header::AUTHORIZATION, "Bearer secret-two");
        assert_eq!(
            g.check(&headers(&[host, good])),
            Ok(Some(Till("till-2".into())))
        );
    }

    #[test]
    fn hosts_are_parsed_with_ports_and_brackets() {
        assert_eq!(host_of("a.example:80"), "a.example");
        assert_eq!(host_of("[::1]:80"), "::1");
        assert_eq!(host_of("[::1]"), "::1");
        assert_eq!(host_of("a.example"), "a.example");
        assert_eq!(host_of("a:b"), "a:b");
    }
}
