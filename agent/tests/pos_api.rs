//! The parts of the agent's API the cashier terminal relies on, over real
//! HTTP (agent in-process on 127.0.0.1:0): the catalog lookup it shows
//! names and prices with, and the sale sequence it runs — one id from the
//! first POST on, a refusal, then the same id re-posted with a manager
//! override.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestAgent, GUM, PEN};
use serde_json::json;

#[tokio::test]
async fn catalog_lookup_by_any_gtin_form() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start(dir.path(), "s1").await;
    let (s, v) = a
        .post(
            "/v1/catalog",
            json!({"items": [{"gtin": "4006381333931", "name": "Pen, blue", "price_minor": 129}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let want = json!({"gtin": "04006381333931", "name": "Pen, blue", "price_minor": 129});
    for form in ["4006381333931", "04006381333931"] {
        let (s, v) = a.get(&format!("/v1/catalog/{form}")).await;
        assert_eq!((s, &v), (200, &want), "{form}");
    }
    let (s, v) = a.get("/v1/catalog/96385074").await;
    assert_eq!(
        (s, v),
        (
            404,
            json!({"error": "not_found", "message": "item 00000096385074 is not in the catalog"})
        )
    );
    let (s, v) = a.get("/v1/catalog/4006381333932").await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"], "invalid");
    a.stop().await.unwrap();
}

#[tokio::test]
async fn refused_sale_then_override_under_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start_with_managers(dir.path(), "s1", &[("Ann", "4711")]).await;
    a.receive(GUM, 1).await;
    a.receive(PEN, 5).await;
    let id = "0190a5e0-0000-7000-8000-0000000000aa";
    let sale = json!({
        "sale_id": id,
        "lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 129},
                  {"gtin": GUM, "qty": 2, "unit_price_minor": 50}],
        "tenders": [{"method": "card", "amount_minor": 229, "reference": "AUTH-1"}],
    });
    let (s, v) = a.post("/v1/sales", sale.clone()).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"], "insufficient_stock");
    assert_eq!(
        (v["requested"].as_u64(), v["available"].as_u64()),
        (Some(2), Some(1))
    );
    // Nothing was recorded: the id is free and the stock untouched.
    assert_eq!(a.get(&format!("/v1/sales/{id}")).await.0, 404);
    assert_eq!(a.on_hand(PEN).await, 5);

    let mut with_override = sale.clone();
    with_override["override"] =
        json!({"approver": "Ann", "reason": "two on the shelf", "pin": "4711"});
    let (s, first) = a.post("/v1/sales", with_override.clone()).await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["sale_id"], id);
    assert_eq!(first["overridden"], true);
    assert_eq!(first["total_minor"], 229);
    // The terminal's retry after a timeout: the same answer, applied once.
    let (s, again) = a.post("/v1/sales", with_override).await;
    assert_eq!((s, &again), (200, &first));
    assert_eq!(a.on_hand(PEN).await, 4);
    let (s, got) = a.get(&format!("/v1/sales/{id}")).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["tenders"][0]["reference"], "AUTH-1");
    a.stop().await.unwrap();
}
