//! A hostile web page against the agent's local API (agent in-process on
//! 127.0.0.1:0, real HTTP): requests as a browser would send them after a
//! DNS-rebinding attack (its own domain in `Host`) or from a page
//! elsewhere (`Origin`), and requests without or with a wrong till token
//! when tills have tokens. Each is refused before any handler runs, and
//! nothing changes; the till with its token is served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestAgent, PEN};
use reqwest::header::{AUTHORIZATION, HOST, ORIGIN};
use serde_json::{json, Value};
use tally_agent::config::{parse_store_id, Config, TillConfig};

fn sale() -> Value {
    json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 150}]})
}

async fn post(
    a: &TestAgent,
    path: &str,
    body: &Value,
    headers: &[(reqwest::header::HeaderName, &str)],
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{}{path}", a.addr))
        .json(body);
    for (k, v) in headers {
        req = req.header(k.clone(), *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_rebound_host_or_a_foreign_page_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start(dir.path(), "s1").await;
    a.receive(PEN, 5).await;

    // DNS rebinding: the page's domain resolves to 127.0.0.1, so the
    // browser connects here but names its own domain.
    let port = a.addr.port().to_string();
    for host in [
        format!("evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
    ] {
        let (s, v) = post(&a, "/v1/sales", &sale(), &[(HOST, host.as_str())]).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (421, Some("host_not_allowed")),
            "{host}: {v}"
        );
    }
    // A page elsewhere posting to http://127.0.0.1:PORT.
    for origin in ["https://evil.example", "null"] {
        let (s, v) = post(&a, "/v1/sales", &sale(), &[(ORIGIN, origin)]).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (403, Some("origin_not_allowed")),
            "{origin}: {v}"
        );
        let price = json!({"items": [{"gtin": PEN, "name": "Pen", "price_minor": 1}]});
        let (s, _) = post(&a, "/v1/catalog", &price, &[(ORIGIN, origin)]).await;
        assert_eq!(s, 403, "prices cannot be changed from a page elsewhere");
    }
    assert_eq!(a.on_hand(PEN).await, 5, "nothing was sold");
    let (_, status) = a.get("/v1/status").await;
    assert_eq!(
        status["outbox_events"], 1,
        "only the receipt was recorded: {status}"
    );

    // The terminal, the CLI and a page served from the agent's own names
    // are served.
    let (s, v) = post(
        &a,
        "/v1/sales",
        &sale(),
        &[(ORIGIN, "http://localhost:8080")],
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = a.post("/v1/sales", sale()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(a.on_hand(PEN).await, 3);
    a.stop().await.unwrap();
}

#[tokio::test]
async fn with_till_tokens_every_request_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path(), Some(parse_store_id("s1").unwrap()));
    config.api.tills = vec![
        TillConfig::with_token("till-1", "token-of-till-1"),
        TillConfig::with_token("till-2", "token-of-till-2"),
    ];
    let a = TestAgent::try_start(config).await.unwrap();
    let till = a.client.clone().with_token(Some("token-of-till-2".into()));
    let (s, v) = till
        .post("/v1/receipts", &json!({"lines": [{"gtin": PEN, "qty": 4}]}))
        .await
        .unwrap();
    assert_eq!(s, 201, "{v}");

    for auth in [
        None,
        Some("Bearer wrong"),
        Some("token-of-till-1"),
        Some("Basic dGlsbDp4"),
    ] {
        let headers: Vec<_> = auth.iter().map(|v| (AUTHORIZATION, *v)).collect();
        let (s, v) = post(&a, "/v1/sales", &sale(), &headers).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (401, Some("till_token_required")),
            "{auth:?}: {v}"
        );
    }
    let (s, _) = a.get("/v1/stock/04006381333931").await;
    assert_eq!(s, 401, "reads need a token too");
    let (s, v) = till.get("/v1/stock/04006381333931").await.unwrap();
    assert_eq!(
        (s.as_u16(), v["on_hand"].as_u64()),
        (200, Some(4)),
        "nothing sold: {v}"
    );
    let (s, v) = till.post("/v1/sales", &sale()).await.unwrap();
    assert_eq!(s, 201, "{v}");
    // The sale is recorded at the token's till; naming another is refused.
    let (_, got) = till
        .get(&format!("/v1/sales/{}", v["sale_id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(got["staff"]["till"], "till-2", "{got}");
    let mut elsewhere = sale();
    elsewhere["till"] = json!("till-1");
    let (s, v) = till.post("/v1/sales", &elsewhere).await.unwrap();
    assert_eq!(
        (s.as_u16(), v["error"].as_str()),
        (422, Some("invalid")),
        "{v}"
    );
    a.stop().await.unwrap();
}
