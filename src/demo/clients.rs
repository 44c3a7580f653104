//! HTTP clients of the demo: the hub's admin API (HTTPS, trusting only the
//! hub's own CA, bearer token) and the agents' local APIs (plain HTTP on
//! loopback), plus reading Prometheus counters from `/metrics`.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context};
use serde_json::Value;

/// A JSON API at one base URL.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    /// E.g. `https://127.0.0.1:8443`.
    pub base: String,
    token: Option<String>,
}

/// Installs ring as rustls' process-wide provider (reqwest is built
/// without one); a no-op the second time.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Api {
    /// The hub's admin API: trusts `ca_pem` only, sends `token`.
    pub fn hub(base: &str, ca_pem: &Path, token: &str) -> anyhow::Result<Api> {
        install_crypto();
        let pem = std::fs::read(ca_pem).with_context(|| format!("reading {}", ca_pem.display()))?;
        let ca = reqwest::Certificate::from_pem(&pem).context("the hub CA certificate")?;
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(10))
            // Below the servers' idle timeout (60 s): never a connection
            // the other end is closing (reqwest keeps them 90 s).
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .context("building the hub client")?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: Some(token.to_string()),
        })
    }

    /// A store agent's local API.
    pub fn agent(base: &str) -> anyhow::Result<Api> {
        install_crypto();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .context("building the agent client")?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: None,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        req.send().await.context(format!("calling {}", self.base))
    }

    /// GET → (status, JSON body or Null).
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// GET → (status, content type), the body read and dropped (pages).
    pub async fn get_page(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let r = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await?;
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let _ = r.bytes().await;
        Ok((status, ctype))
    }

    /// GET that must answer 200.
    pub async fn get_ok(&self, path: &str) -> anyhow::Result<Value> {
        match self.get(path).await? {
            (200, v) => Ok(v),
            (s, v) => Err(anyhow!("GET {}{path} answered {s}: {v}", self.base)),
        }
    }

    /// POST JSON → (status, JSON body or Null).
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let r = self
            .send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// The Prometheus text at `/metrics`.
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        let r = self
            .send(self.http.get(format!("{}/metrics", self.base)))
            .await?;
        if !r.status().is_success() {
            return Err(anyhow!("GET {}/metrics answered {}", self.base, r.status()));
        }
        Ok(Metrics(r.text().await.context("reading /metrics")?))
    }
}

/// A Prometheus text exposition.
#[derive(Debug, Clone, Default)]
pub struct Metrics(pub String);

impl Metrics {
    /// The value of one series, written exactly as exposed
    /// (`name{label="v"}`); 0 when absent.
    pub fn get(&self, series: &str) -> u64 {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v.max(0.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_read_exactly() {
        let m = Metrics(
            "# TYPE x counter\ntally_agent_device_scans_total{outcome=\"sold\"} 12\n\
             tally_agent_device_scans_total{outcome=\"sold_out\"} 3\ntally_agent_outbox_events 4\n"
                .into(),
        );
        assert_eq!(
            m.get("tally_agent_device_scans_total{outcome=\"sold\"}"),
            12
        );
        assert_eq!(m.get("tally_agent_outbox_events"), 4);
        assert_eq!(m.get("tally_agent_missing"), 0);
    }
}
