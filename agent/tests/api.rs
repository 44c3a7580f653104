//! The local API's contract over real HTTP (agent started in-process on
//! 127.0.0.1:0): every endpoint, every documented error, idempotency,
//! concurrency within group commits, restart and shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestAgent, GUM, MUG, PEN};

/// A restricted-circulation number for a variable-measure item (GS1
/// prefix 21): its price may come from its label.
const CHEESE: &str = "2112345000008";
use serde_json::{json, Value};
use tally_agent::config::{parse_store_id, Config};
use tally_agent::store::OpenError;
use tally_agent::AgentError;

const SALE_ID: &str = "0190a5e0-0000-7000-8000-000000000001";

fn sale(gtin: &str, qty: i64, price: i64) -> Value {
    json!({"lines": [{"gtin": gtin, "qty": qty, "unit_price_minor": price}]})
}

async fn outbox(a: &TestAgent) -> u64 {
    a.get("/v1/status").await.1["outbox_events"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn sale_is_committed_once_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start(dir.path(), "s1").await;
    a.receive(PEN, 5).await;
    let body = json!({
        "sale_id": SALE_ID,
        "lines": [{"gtin": PEN, "qty": 2, "unit_price_minor": 150}],
        "tenders": [{"method": "cash", "amount_minor": 300}],
    });
    let (s, first) = a.post("/v1/sales", body.clone()).await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(
        first,
        json!({"sale_id": SALE_ID, "status": "committed", "total_minor": 300, "overridden": false})
    );
    let (s, again) = a.post("/v1/sales", body.clone()).await;
    assert_eq!((s, &again), (200, &first));
    assert_eq!(a.on_hand(PEN).await, 3);
    assert_eq!(outbox(&a).await, 2, "receipt + one sale");
    // The same id with another body is not a retry: answering it with the
    // recorded sale would confirm 3 units that were never sold.
    let mut changed = body;
    changed["lines"][0]["qty"] = json!(3);
    let (s, v) = a.post("/v1/sales", changed).await;
    assert_eq!((s, v["error"].as_str()), (422, Some("invalid")), "{v}");
    let detail = v["message"].as_str().unwrap();
    assert!(
        detail.contains("already recorded as a different sale") && detail.contains("qty 2, not 3"),
        "{detail}"
    );
    assert_eq!(a.on_hand(PEN).await, 3);
    assert_eq!(outbox(&a).await, 2);

    let (s, got) = a.get(&format!("/v1/sales/{SALE_ID}")).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["sale_id"], SALE_ID);
    assert_eq!(got["total_minor"], 300);
    assert_eq!(got["lines"][0]["gtin"], "04006381333931");
    assert_eq!(got["lines"][0]["qty"], 2);
    assert_eq!(got["tenders"][0]["method"], "cash");
    assert_eq!(got["overridden"], false);
    assert_eq!(got["returned"], json!([]));

    // A generated id when none is given.
    let (s, v) = a.post("/v1/sales", sale(PEN, 1, 150)).await;
    assert_eq!(s, 201, "{v}");
    let id: uuid::Uuid = v["sale_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id.get_version_num(), 7);
    a.stop().await.unwrap();
}

#[tokio::test]
async fn refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start(dir.path(), "s1").await;
    a.receive(PEN, 2).await;
    let (s, v) = a
        .post(
            "/v1/sales",
            json!({"sale_id": SALE_ID, "lines": [
                {"gtin": PEN, "qty": 1, "unit_price_minor": 1},
                {"gtin": PEN, "qty": 2, "unit_price_minor": 1}]}),
        )
        .await;
    assert_eq!(s, 409);
    assert_eq!(
        v,
        json!({"error": "insufficient_stock",
               "message": "insufficient stock of 04006381333931: 2 requested, 1 available",
               "gtin": "04006381333931", "requested": 2, "available": 1,
               // The first line took one of the two units: one is left,
               // and nobody holds rights to more.
               "on_hand": 1, "reason": "no_stock"})
    );
    assert_eq!(a.on_hand(PEN).await, 2);
    assert_eq!(outbox(&a).await, 1);
    // The refused id was not taken: after more stock arrives it sells.
    a.receive(PEN, 1).await;
    let (s, v) = a
        .post(
            "/v1/sales",
            json!({"sale_id": SALE_ID, "lines": [{"gtin": PEN, "qty": 3, "unit_price_minor": 1}]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(a.on_hand(PEN).await, 0);
    // Never-received item: no rights at all.
    let (s, v) = a.post("/v1/sales", sale(MUG, 1, 5)).await;
    assert_eq!((s, v["available"].as_u64()), (409, Some(0)));
    let (_, metrics) = a.client.get_text("/metrics").await.unwrap();
    assert!(
        metrics.contains("tally_agent_refusals_total{reason=\"insufficient_stock\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tally_agent_shortages_total{reason=\"no_stock\"} 2"),
        "{metrics}"
    );
    a.stop().await.unwrap();
}

#[tokio::test]
async fn epc_is_sold_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start_with_managers(dir.path(), "s1", &[("mgr-7", "4711")]).await;
    a.receive(PEN, 5).await;
    let epc = "3074257bf7194e4000001a85";
    let tagged = json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 9, "epc": epc}]});
    assert_eq!(a.post("/v1/sales", tagged.clone()).await.0, 201);
    let (s, v) = a.post("/v1/sales", tagged.clone()).await;
    assert_eq!(s, 409);
    assert_eq!(
        v,
        json!({"error": "already_sold", "message": "EPC 3074257BF7194E4000001A85 was already sold",
               "epc": "3074257BF7194E4000001A85"})
    );
    // Returned, it can be sold again; returned twice, it is refused.
    // Without its receipt: a manager approves the refund.
    let ret = json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 9, "epc": epc}],
                     "approval": {"approver": "mgr-7", "reason": "no receipt", "pin": "4711"}});
    let (s, v) = a.post("/v1/returns", ret.clone()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["total_minor"], 9);
    let (s, v) = a.post("/v1/returns", ret).await;
    assert_eq!((s, v["error"].as_str()), (409, Some("not_sold")));
    assert_eq!(a.post("/v1/sales", tagged).await.0, 201);
    assert_eq!(a.on_hand(PEN).await, 4);
    a.stop().await.unwrap();
}

#[tokio::test]
async fn invalid_requests_are_422_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start(dir.path(), "s1").await;
    a.receive(PEN, 5).await;
    let cases = [
        sale("4006381333932", 1, 1),                 // bad check digit
        sale("40063813339", 1, 1),                   // bad length
        sale(PEN, 0, 1),                             // qty 0
        sale(PEN, -1, 1),                            // qty < 0
        sale(PEN, 1, -1),                            // negative price
        json!({"lines": [{"gtin": PEN, "qty": 1}]}), // unknown item, no price
        json!({"lines": []}),                        // no lines
        json!({"lines": [{"gtin": PEN, "qty": 1.5, "unit_price_minor": 1}]}),
        json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 1, "epc": "xyz"}]}),
        json!({"sale_id": "not-a-uuid", "lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 1}]}),
        json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 1}], "surprise": 1}),
        json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 1}],
               "override": {"approver": "", "reason": "x"}}),
        json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 1, "epc": "3074257BF7194E4000001A85"},
                         {"gtin": PEN, "qty": 1, "unit_price_minor": 1, "epc": "3074257BF7194E4000001A85"}]}),
        json!([1, 2]),
    ];
    for body in cases {
        let (s, v) = a.post("/v1/sales", body.clone()).await;
        assert_eq!(s, 422, "{body} → {v}");
        assert_eq!(v["error"], "invalid", "{body} → {v}");
        assert!(v["message"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    }
    // A wrong type is named by its path in the body.
    let (_, v) = a
        .post(
            "/v1/sales",
            json!({"lines": [{"gtin": PEN, "qty": 1.5, "unit_price_minor": 1}]}),
        )
        .await;
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|d| d.contains("lines[0].qty")),
        "{v}"
    );
    // Malformed JSON and a missing content type.
    for (ct, bytes) in [
        ("application/json", &b"{\"lines\": [{\"gtin\""[..]),
        ("application/json", &b""[..]),
        ("text/plain", &b"{\"lines\": []}"[..]),
    ] {
        let (s, body) = a
            .client
            .raw(
                tally_agent_api::client::Method::POST,
                "/v1/sales",
                Some((ct, bytes.to_vec())),
            )
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (s.as_u16(), v["error"].as_str()),
            (422, Some("invalid")),
            "{v}"
        );
    }
    for (path, body) in [
        ("/v1/receipts", json!({"lines": [{"gtin": PEN, "qty": 0}]})),
        ("/v1/receipts", json!({"lines": []})),
        (
            "/v1/receipts",
            json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 1}]}),
        ),
        ("/v1/counts", json!({"gtin": PEN, "counted": -1})),
        ("/v1/counts", json!({"gtin": "123", "counted": 1})),
        ("/v1/returns", json!({"lines": [{"gtin": MUG, "qty": 1}]})),
        // A total that does not fit in an i64 is a keying error, not an
        // amount to record (it used to be recorded as i64::MAX).
        (
            "/v1/sales",
            json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": i64::MAX},
                             {"gtin": PEN, "qty": 1, "unit_price_minor": 1}]}),
        ),
        (
            "/v1/returns",
            json!({"lines": [{"gtin": PEN, "qty": 2, "unit_price_minor": i64::MAX}]}),
        ),
        (
            "/v1/sales",
            json!({"lines": [{"gtin": PEN, "qty": 1}],
                   "tenders": [{"method": "", "amount_minor": 129}]}),
        ),
        (
            "/v1/sales",
            json!({"lines": [{"gtin": PEN, "qty": 1}],
                   "tenders": [{"method": "cash", "amount_minor": -5}]}),
        ),
        (
            "/v1/catalog",
            json!({"items": [{"gtin": PEN, "name": "Pen", "price_minor": -5}]}),
        ),
        (
            "/v1/catalog",
            json!({"items": [{"gtin": PEN, "name": "Pen\u{1b}[2J", "price_minor": 5}]}),
        ),
        (
            "/v1/catalog",
            json!({"items": [{"gtin": PEN, "name": " ", "price_minor": 5}]}),
        ),
        (
            // One request, two prices for one item: which was meant?
            "/v1/catalog",
            json!({"items": [{"gtin": PEN, "name": "Pen", "price_minor": 5},
                             {"gtin": MUG, "name": "Mug", "price_minor": 800},
                             {"gtin": PEN, "name": "Pen", "price_minor": 6}]}),
        ),
    ] {
        let (s, v) = a.post(path, body.clone()).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (422, Some("invalid")),
            "{path} {body} → {v}"
        );
    }
    assert_eq!(a.on_hand(PEN).await, 5);
    assert_eq!(outbox(&a).await, 1);
    a.stop().await.unwrap();
}

#[tokio::test]
async fn gtin_forms_are_one_item() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start(dir.path(), "s1").await;
    a.receive("036000291452", 4).await; // GTIN-12 (UPC-A)
    assert_eq!(a.on_hand(GUM).await, 4); // GTIN-13
    assert_eq!(a.on_hand("00036000291452").await, 4); // GTIN-14
    assert_eq!(
        a.post("/v1/sales", sale("00036000291452", 1, 1)).await.0,
        201
    );
    let (s, v) = a.get("/v1/stock/036000291452").await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"gtin": "00036000291452", "on_hand": 3, "rights": 3, "others_rights": 0})
    );
    a.receive("96385074", 1).await; // GTIN-8
    assert_eq!(a.on_hand("00000096385074").await, 1);
    let (s, v) = a.get("/v1/stock/4006381333932").await;
    assert_eq!((s, v["error"].as_str()), (422, Some("invalid")));
    // A valid GTIN never seen has zero stock.
    assert_eq!(a.on_hand(MUG).await, 0);
    a.stop().await.unwrap();
}

/// A keyed price other than the catalog's and a refund without a receipt
/// need a manager's PIN: refused (409 `approval_required`, nothing
/// recorded) without it, recorded with who keyed and who approved them
/// with it. A label's price needs nothing; staff ids are bounded.
#[tokio::test]
async fn prices_and_refunds_need_a_managers_approval_and_record_who() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start_with_managers(dir.path(), "s1", &[("mgr-7", "4711")]).await;
    let (s, v) = a
        .post(
            "/v1/catalog",
            json!({"items": [{"gtin": PEN, "name": "Pen", "price_minor": 129}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    a.receive(PEN, 5).await;
    let keyed = json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 100}],
                       "cashier": "c-104", "till": "till-2"});
    let (s, v) = a.post("/v1/sales", keyed.clone()).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("approval_required")),
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("keyed at 100 (catalog 129)"),
        "{v}"
    );
    assert_eq!(a.on_hand(PEN).await, 5, "nothing recorded");
    let mut approved = keyed.clone();
    approved["override"] = json!({"approver": "mgr-7", "reason": "damaged box", "pin": "4711"});
    let (s, v) = a.post("/v1/sales", approved).await;
    assert_eq!((s, &v["overridden"]), (201, &json!(false)), "{v}");
    let (_, sale) = a
        .get(&format!("/v1/sales/{}", v["sale_id"].as_str().unwrap()))
        .await;
    assert_eq!(
        sale["staff"],
        json!({"cashier": "c-104", "till": "till-2",
               "approval": {"approver": "mgr-7", "reason": "damaged box"}})
    );
    assert_eq!(
        sale["price_overrides"],
        json!([{"gtin": "04006381333931", "catalog_minor": 129, "keyed_minor": 100}])
    );
    // A label's price is the label's, for a variable-measure item; an
    // item whose barcode carries no price has no label price: it is keyed.
    a.receive(CHEESE, 1).await;
    let label = |gtin: &str| {
        json!({"lines": [{"gtin": gtin, "qty": 1, "unit_price_minor": 90,
                          "price_source": "label"}]})
    };
    let (s, v) = a.post("/v1/sales", label(CHEESE)).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = a.post("/v1/sales", label(PEN)).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("approval_required")),
        "{v}"
    );

    // A refund without a receipt: refused, then a wrong PIN, then approved.
    let mut refund = json!({"lines": [{"gtin": PEN, "qty": 1}], "cashier": "c-104"});
    let (s, v) = a.post("/v1/returns", refund.clone()).await;
    assert_eq!(
        (s, v["error"].as_str(), v["message"].as_str()),
        (
            409,
            Some("approval_required"),
            Some("a refund without a receipt")
        )
    );
    refund["approval"] = json!({"approver": "mgr-7", "reason": "no receipt", "pin": "0000"});
    let (s, v) = a.post("/v1/returns", refund.clone()).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("approval_refused")),
        "{v}"
    );
    assert_eq!(a.on_hand(PEN).await, 4, "nothing recorded");
    refund["approval"]["pin"] = json!("4711");
    let (s, v) = a.post("/v1/returns", refund).await;
    assert_eq!((s, v["total_minor"].as_i64()), (201, Some(129)), "{v}");
    let (_, ret) = a
        .get(&format!("/v1/returns/{}", v["return_id"].as_str().unwrap()))
        .await;
    assert_eq!(ret["staff"]["approval"]["approver"], "mgr-7");
    assert_eq!(ret["staff"]["cashier"], "c-104");
    assert_eq!(a.on_hand(PEN).await, 5);

    // Staff ids are bounded and plain.
    for bad in [json!("x".repeat(129)), json!(""), json!("a\u{7}b")] {
        let body = json!({"lines": [{"gtin": PEN, "qty": 1}], "cashier": bad});
        let (s, v) = a.post("/v1/sales", body).await;
        assert_eq!((s, v["error"].as_str()), (422, Some("invalid")), "{v}");
    }
    assert_eq!(a.on_hand(PEN).await, 5);
    a.stop().await.unwrap();
}

#[tokio::test]
async fn override_sells_beyond_rights_and_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start_with_managers(dir.path(), "s1", &[("mgr-7", "4711")]).await;
    a.receive(PEN, 1).await;
    let id = "0190a5e0-0000-7000-8000-0000000000aa";
    let (s, v) = a
        .post(
            "/v1/sales",
            json!({"sale_id": id, "lines": [{"gtin": PEN, "qty": 3, "unit_price_minor": 100}],
                   "override": {"approver": "mgr-7", "reason": "on the shelf", "pin": "4711"}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        v,
        json!({"sale_id": id, "status": "committed", "total_minor": 300, "overridden": true})
    );
    let (_, got) = a.get(&format!("/v1/sales/{id}")).await;
    assert_eq!(got["override"]["approver"], "mgr-7");
    assert_eq!(
        got["override"]["shortfall"],
        json!([{"gtin": "04006381333931", "units": 2}])
    );
    assert_eq!(a.on_hand(PEN).await, 0);
    // A till that lost the PIN (it never stores one) retries the sale in
    // doubt: the recorded sale is answered, no PIN asked, nothing new.
    let retry = |approval: Value| {
        json!({"sale_id": id, "lines": [{"gtin": PEN, "qty": 3, "unit_price_minor": 100}],
               "override": approval})
    };
    let (s, v) = a
        .post(
            "/v1/sales",
            retry(json!({"approver": "mgr-7", "reason": "on the shelf"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["overridden"], true, "{v}");
    // Another approval under the recorded id is a different sale.
    let (s, v) = a
        .post(
            "/v1/sales",
            retry(json!({"approver": "mgr-7", "reason": "other"})),
        )
        .await;
    assert_eq!((s, v["error"].as_str()), (422, Some("invalid")), "{v}");
    // A new sale still needs the PIN.
    let mut fresh = retry(json!({"approver": "mgr-7", "reason": "on the shelf"}));
    fresh["sale_id"] = json!("0190a5e0-0000-7000-8000-0000000000ab");
    let (s, v) = a.post("/v1/sales", fresh).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("approval_refused")),
        "{v}"
    );
    assert_eq!(a.on_hand(PEN).await, 0);
    a.stop().await.unwrap();
}

/// An override needs a configured manager's PIN: without managers, without
/// a PIN, with a wrong one or an unknown manager it is refused (403
/// `approval_refused`) and nothing is recorded; wrong PINs in a row lock
/// that manager out (429 `approval_locked` with `Retry-After`), even with
/// the right PIN and after a restart, while another manager still
/// approves.
#[tokio::test]
async fn an_override_needs_a_managers_pin() {
    let sale = |approval: Value| json!({"lines": [{"gtin": PEN, "qty": 3, "unit_price_minor": 100}], "override": approval});
    let dir = tempfile::tempdir().unwrap();
    let none = TestAgent::start(dir.path(), "s1").await;
    none.receive(PEN, 1).await;
    let (s, v) = none
        .post(
            "/v1/sales",
            sale(json!({"approver": "Ann", "reason": "r", "pin": "4711"})),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("approval_refused")),
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("no manager is configured"),
        "{v}"
    );
    none.stop().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let a =
        TestAgent::start_with_managers(dir.path(), "s1", &[("ann", "4711"), ("bo", "0042")]).await;
    a.receive(PEN, 1).await;
    for approval in [
        json!({"approver": "ann", "reason": "r"}),
        json!({"approver": "ann", "reason": "r", "pin": "1234"}),
        json!({"approver": "eve", "reason": "r", "pin": "4711"}),
    ] {
        let (s, v) = a.post("/v1/sales", sale(approval.clone())).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (403, Some("approval_refused")),
            "{approval}: {v}"
        );
    }
    assert_eq!(a.on_hand(PEN).await, 1, "nothing was sold");
    let (_, status) = a.get("/v1/status").await;
    assert_eq!(status["outbox_events"], 1, "only the receipt: {status}");
    // Ann has one wrong PIN so far (a missing PIN is not a guess); four
    // more lock her out.
    for _ in 0..4 {
        let (s, _) = a
            .post(
                "/v1/sales",
                sale(json!({"approver": "ann", "reason": "r", "pin": "0000"})),
            )
            .await;
        assert_eq!(s, 403);
    }
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/sales", a.addr))
        .json(&sale(
            json!({"approver": "ann", "reason": "r", "pin": "4711"}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "approval_locked", "{v}");
    let (s, v) = a
        .post(
            "/v1/sales",
            sale(json!({"approver": "bo", "reason": "on the shelf", "pin": "0042"})),
        )
        .await;
    assert_eq!(s, 201, "another manager approves: {v}");
    assert_eq!(a.on_hand(PEN).await, 0);
    let (_, metrics) = a.client.get_text("/metrics").await.unwrap();
    assert!(
        metrics.contains("tally_agent_approvals_total{outcome=\"refused\"} 8"),
        "{metrics}"
    );
    a.stop().await.unwrap();
    // A restart does not end the lockout (nor give fresh guesses).
    let a =
        TestAgent::start_with_managers(dir.path(), "s1", &[("ann", "4711"), ("bo", "0042")]).await;
    let (s, v) = a
        .post(
            "/v1/sales",
            sale(json!({"approver": "ann", "reason": "r", "pin": "4711"})),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (429, Some("approval_locked")),
        "{v}"
    );
    a.stop().await.unwrap();
}

#[tokio::test]
async fn returns_receipts_counts_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start(dir.path(), "s1").await;
    let rid = "0190a5e0-0000-7000-8000-0000000000b1";
    let body =
        json!({"receipt_id": rid, "lines": [{"gtin": PEN, "qty": 10}, {"gtin": MUG, "qty": 2}]});
    let (s, v) = a.post("/v1/receipts", body.clone()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        v,
        json!({"receipt_id": rid, "status": "committed", "units": 12})
    );
    assert_eq!(a.post("/v1/receipts", body).await, (200, v));
    assert_eq!(a.on_hand(PEN).await, 10);

    let sid = "0190a5e0-0000-7000-8000-0000000000b2";
    a.post(
        "/v1/sales",
        json!({"sale_id": sid, "lines": [{"gtin": PEN, "qty": 4, "unit_price_minor": 50}]}),
    )
    .await;
    let ret_id = "0190a5e0-0000-7000-8000-0000000000b3";
    let ret = json!({"return_id": ret_id, "original_sale_id": sid,
                     "lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 50}]});
    let (s, v) = a.post("/v1/returns", ret.clone()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        v,
        json!({"return_id": ret_id, "status": "committed", "total_minor": 50})
    );
    assert_eq!(a.post("/v1/returns", ret).await, (200, v));
    assert_eq!(a.on_hand(PEN).await, 7);

    let cid = "0190a5e0-0000-7000-8000-0000000000b4";
    let count = json!({"count_id": cid, "gtin": PEN, "counted": 5});
    let (s, v) = a.post("/v1/counts", count.clone()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        v,
        json!({"count_id": cid, "status": "committed", "gtin": "04006381333931",
               "counted": 5, "direction": "down", "adjusted": 2, "unresolved": 0})
    );
    assert_eq!(a.post("/v1/counts", count).await, (200, v));
    assert_eq!(a.on_hand(PEN).await, 5);
    let (s, v) = a
        .post("/v1/counts", json!({"gtin": PEN, "counted": 9}))
        .await;
    assert_eq!(
        (s, v["direction"].as_str(), v["adjusted"].as_u64()),
        (201, Some("up"), Some(4))
    );
    assert_eq!(a.on_hand(PEN).await, 9);

    // An id of one kind cannot be reused for another.
    let (s, v) = a
        .post(
            "/v1/sales",
            json!({"sale_id": rid, "lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 1}]}),
        )
        .await;
    assert_eq!((s, v["error"].as_str()), (422, Some("invalid")), "{v}");
    // GET /v1/sales/{id}: only sales; unknown → 404; not a UUID → 422.
    assert_eq!(a.get(&format!("/v1/sales/{rid}")).await.0, 404);
    assert_eq!(
        a.get("/v1/sales/0190a5e0-0000-7000-8000-0000000000ff")
            .await,
        (
            404,
            json!({"error": "not_found",
                   "message": "no sale 0190a5e0-0000-7000-8000-0000000000ff is recorded here"})
        )
    );
    assert_eq!(a.get("/v1/sales/xyz").await.0, 422);
    a.stop().await.unwrap();
}

#[tokio::test]
async fn catalog_prices_fill_missing_prices() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start(dir.path(), "s1").await;
    let (_, status) = a.get("/v1/status").await;
    let before = status["catalog_version"].as_u64().unwrap();
    let (s, v) = a
        .post(
            "/v1/catalog",
            json!({"items": [{"gtin": PEN, "name": "Pen", "price_minor": 129},
                             {"gtin": MUG, "name": "Mug", "price_minor": 800}]}),
        )
        .await;
    assert_eq!((s, v), (200, json!({"items": 2, "changed": 2})));
    // The status's catalog version moves with it (terminals reprice).
    let (_, status) = a.get("/v1/status").await;
    assert!(
        status["catalog_version"].as_u64().unwrap() > before,
        "{status}"
    );
    // The same item twice, alike, is one item; twice, differently, is
    // refused naming both places, and nothing of that request is stored.
    let (s, v) = a
        .post(
            "/v1/catalog",
            json!({"items": [{"gtin": PEN, "name": "Pen", "price_minor": 129},
                             {"gtin": "04006381333931", "name": " Pen", "price_minor": 129}]}),
        )
        .await;
    assert_eq!((s, v), (200, json!({"items": 1, "changed": 0})));
    let (s, v) = a
        .post(
            "/v1/catalog",
            json!({"items": [{"gtin": MUG, "name": "Mug", "price_minor": 900},
                             {"gtin": PEN, "name": "Pen", "price_minor": 1},
                             {"gtin": MUG, "name": "Mug", "price_minor": 950}]}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(
        v["message"],
        json!(format!(
            "items[2]: gtin {} is already items[0] with another name or price",
            tally_sync::Gtin::parse(MUG).unwrap()
        ))
    );
    let (_, v) = a.get(&format!("/v1/catalog/{MUG}")).await;
    assert_eq!(v["price_minor"], json!(800), "{v}");
    a.receive(PEN, 3).await;
    a.receive(CHEESE, 1).await;
    let (s, v) = a
        .post(
            "/v1/sales",
            json!({"lines": [{"gtin": PEN, "qty": 2},
                             {"gtin": CHEESE, "qty": 1, "unit_price_minor": 100, "price_source": "label"}]}),
        )
        .await;
    assert_eq!((s, v["total_minor"].as_i64()), (201, Some(358)), "{v}");
    a.stop().await.unwrap();
}

#[tokio::test]
async fn status_metrics_limits_and_unknown_routes() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start(dir.path(), "store-9").await;
    let (s, v) = a.get("/v1/status").await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"store_id": "store-9", "replica_id": "store-9", "online": false,
               "live": false, "live_since": null, "last_sync_at": null, "last_sync_ms": null, "sync_error": null, "outbox_events": 0, "hub_clock_offset_ms": null, "version": env!("CARGO_PKG_VERSION"),
               "cashier_sign_in": false, "catalog_version": 0})
    );
    a.receive(PEN, 2).await;
    a.post("/v1/sales", sale(PEN, 1, 1)).await;
    let (s, text) = a.client.get_text("/metrics").await.unwrap();
    assert_eq!(s.as_u16(), 200);
    for needle in [
        "tally_agent_sales_total 1",
        "tally_agent_events_committed_total{kind=\"receipt\"} 1",
        "tally_agent_commit_seconds_count 2",
        "tally_agent_durable_seconds_count 2",
        "tally_agent_batch_seconds_count 2",
        "tally_agent_batch_size_count 2",
        "tally_agent_outbox_events 2",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
    // Body limit (1 MiB by default): 413 with a JSON error.
    let big = json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 1}], "pad": "x".repeat(2 << 20)});
    let (s, v) = a.post("/v1/sales", big).await;
    assert_eq!((s, v["error"].as_str()), (413, Some("too_large")), "{v}");
    assert_eq!(
        a.get("/v1/nope").await,
        (
            404,
            json!({"error": "not_found", "message": "no route /v1/nope"})
        )
    );
    a.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sales_never_oversell_and_ids_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = std::sync::Arc::new(TestAgent::start(dir.path(), "s1").await);
    a.receive(PEN, 20).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            a.post("/v1/sales", sale(PEN, 1, 1)).await.0
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|&&c| c == 201).count(), 20, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 409).count(), 30, "{codes:?}");
    assert_eq!(a.on_hand(PEN).await, 0);

    // One id posted 20 times at once: applied once.
    a.receive(MUG, 5).await;
    let body =
        json!({"sale_id": SALE_ID, "lines": [{"gtin": MUG, "qty": 2, "unit_price_minor": 7}]});
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (a, body) = (a.clone(), body.clone());
        tasks.push(tokio::spawn(async move { a.post("/v1/sales", body).await }));
    }
    let mut created = 0;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert!(s == 201 || s == 200, "{s} {v}");
        assert_eq!(v["total_minor"], 14);
        created += usize::from(s == 201);
    }
    assert_eq!(created, 1);
    assert_eq!(a.on_hand(MUG).await, 3);
    let (_, text) = a.client.get_text("/metrics").await.unwrap();
    assert!(text.contains("tally_agent_duplicates_total 19"), "{text}");
    std::sync::Arc::into_inner(a).unwrap().stop().await.unwrap();
}

#[tokio::test]
async fn returns_against_a_sale_are_bounded_by_it_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start(dir.path(), "s1").await;
    a.receive(PEN, 10).await;
    let sid = "0190a5e0-0000-7000-8000-0000000000c1";
    let (s, v) = a
        .post(
            "/v1/sales",
            json!({"sale_id": sid, "lines": [{"gtin": PEN, "qty": 3, "unit_price_minor": 120}]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    // No price given: refunded at the sale's price.
    let (s, v) = a
        .post(
            "/v1/returns",
            json!({"original_sale_id": sid, "lines": [{"gtin": "4006381333931", "qty": 2}]}),
        )
        .await;
    assert_eq!((s, &v["total_minor"]), (201, &json!(240)), "{v}");
    a.stop().await.unwrap();

    // What was returned is durable: after a restart one unit is left.
    let a = TestAgent::try_start(Config::new(dir.path(), None))
        .await
        .unwrap();
    let over = json!({"original_sale_id": sid, "lines": [{"gtin": PEN, "qty": 2}]});
    assert_eq!(
        a.post("/v1/returns", over).await,
        (
            409,
            json!({"error": "exceeds_sale", "original_sale_id": sid,
                   "message": format!("return of 2 × 04006381333931 exceeds sale {sid}: 1 returnable"),
                   "gtin": "04006381333931", "requested": 2, "returnable": 1})
        )
    );
    let (s, v) = a
        .post(
            "/v1/returns",
            json!({"original_sale_id": sid,
                   "lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 121}]}),
        )
        .await;
    assert_eq!((s, v["error"].as_str()), (422, Some("invalid")), "{v}");
    assert_eq!(a.on_hand(PEN).await, 9);
    assert_eq!(outbox(&a).await, 3);
    let (_, metrics) = a.client.get_text("/metrics").await.unwrap();
    assert!(
        metrics.contains(r#"tally_agent_refusals_total{reason="exceeds_sale"} 1"#),
        "{metrics}"
    );
    let (s, v) = a
        .post(
            "/v1/returns",
            json!({"original_sale_id": sid, "lines": [{"gtin": PEN, "qty": 1}]}),
        )
        .await;
    assert_eq!((s, &v["total_minor"]), (201, &json!(120)), "{v}");
    assert_eq!(a.on_hand(PEN).await, 10);
    // The refund's receipt can be read back (reprinted) by its id; a
    // sale's id is not a return's.
    let rid = v["return_id"].as_str().unwrap().to_owned();
    let (s, got) = a.get(&format!("/v1/returns/{rid}")).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(
        (
            &got["original_sale_id"],
            &got["total_minor"],
            &got["status"]
        ),
        (&json!(sid), &json!(120), &json!("committed"))
    );
    assert_eq!(
        got["lines"],
        json!([{"gtin": "04006381333931", "qty": 1, "unit_price_minor": 120, "epc": null}])
    );
    assert_eq!(got["store_id"], "s1");
    assert_eq!(
        a.get(&format!("/v1/returns/{sid}")).await,
        (
            404,
            json!({"error": "not_found", "message": format!("no return {sid} is recorded here")})
        )
    );
    assert_eq!(
        a.get(&format!("/v1/sales/{rid}")).await,
        (
            404,
            json!({"error": "not_found", "message": format!("no sale {rid} is recorded here")})
        )
    );
    assert_eq!(a.get("/v1/returns/xyz").await.0, 422);
    let (s, v) = a.get(&format!("/v1/sales/{sid}")).await;
    assert_eq!(
        (s, &v["returned"]),
        (200, &json!([{"gtin": "04006381333931", "units": 3}])),
        "{v}"
    );
    a.stop().await.unwrap();
}

#[tokio::test]
async fn state_survives_restart_and_store_id_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start(dir.path(), "s1").await;
    a.receive(PEN, 5).await;
    a.post(
        "/v1/sales",
        json!({"sale_id": SALE_ID, "lines": [{"gtin": PEN, "qty": 2, "unit_price_minor": 3}]}),
    )
    .await;
    // A second agent on the same data dir is refused while the first runs.
    let err = TestAgent::try_start(Config::new(dir.path(), Some(parse_store_id("s1").unwrap())))
        .await
        .err()
        .expect("second agent started");
    assert!(
        matches!(
            err,
            AgentError::Open(OpenError::Store(tally_store::StoreError::AlreadyOpen(_)))
        ),
        "{err}"
    );
    assert!(err.to_string().contains("already open"), "{err}");
    a.stop().await.unwrap();

    // Restart without --store-id: the stored one is used.
    let a = TestAgent::try_start(Config::new(dir.path(), None))
        .await
        .unwrap();
    assert_eq!(a.on_hand(PEN).await, 3);
    assert_eq!(a.get("/v1/status").await.1["outbox_events"], 2);
    let (s, _) = a
        .post(
            "/v1/sales",
            json!({"sale_id": SALE_ID, "lines": [{"gtin": PEN, "qty": 2, "unit_price_minor": 3}]}),
        )
        .await;
    assert_eq!(s, 200, "retry after restart is not re-applied");
    assert_eq!(a.on_hand(PEN).await, 3);
    a.stop().await.unwrap();

    let err = TestAgent::try_start(Config::new(dir.path(), Some(parse_store_id("s2").unwrap())))
        .await
        .err()
        .expect("wrong store id accepted");
    assert!(
        matches!(err, AgentError::Open(OpenError::StoreIdMismatch { .. })),
        "{err}"
    );
    let fresh = tempfile::tempdir().unwrap();
    let err = TestAgent::try_start(Config::new(fresh.path(), None))
        .await
        .err()
        .expect("first run without store id accepted");
    assert!(
        matches!(err, AgentError::Open(OpenError::NoStoreId(_))),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_finishes_in_flight_commits() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let a = TestAgent::start(dir.path(), "s1").await;
    a.receive(PEN, 100_000).await;
    let next = Arc::new(AtomicU32::new(0));
    let acked_count = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, next, acked_count) = (a.client.clone(), next.clone(), acked_count.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let id = format!("0190a5e0-0000-7000-8000-{:012x}", 0x1000 + i);
                let body = json!({"sale_id": id, "lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 1}]});
                match client.post("/v1/sales", &body).await {
                    // Once shutdown began, connections are refused or
                    // closed; an answered request must be a success.
                    Err(_) => return acked,
                    Ok((s, v)) => {
                        assert_eq!(s.as_u16(), 201, "{v}");
                        acked.push(id);
                        acked_count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while acked_count.load(Ordering::Relaxed) < 100 {
        assert!(std::time::Instant::now() < deadline, "sales too slow");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    a.stop().await.unwrap();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(acked.len() >= 100);
    let a = TestAgent::try_start(Config::new(dir.path(), None))
        .await
        .unwrap();
    for id in &acked {
        assert_eq!(
            a.get(&format!("/v1/sales/{id}")).await.0,
            200,
            "acknowledged sale {id} lost"
        );
    }
    // Sales that were sent but got no answer may or may not be recorded;
    // each is recorded at most once.
    let sold = 100_000 - a.on_hand(PEN).await;
    assert!(sold >= acked.len() as u64 && sold <= u64::from(next.load(Ordering::Relaxed)));
    a.stop().await.unwrap();
}

/// Store s1's agent on `dir` where cashier c-104 signs in with PIN 2468
/// (hashed with cheap parameters: a test).
async fn start_with_cashier(dir: &std::path::Path) -> TestAgent {
    let mut config = Config::new(dir, Some(parse_store_id("s1").unwrap()));
    config.cashiers = vec![tally_agent::config::ManagerConfig {
        id: "c-104".into(),
        pin_argon2: tally_agent::managers::hash_pin_cheap("2468").unwrap(),
    }];
    TestAgent::try_start(config).await.unwrap()
}

/// `POST path` with `body` to the agent at `addr`, under `session`
/// (`X-Tally-Session`) if any: the status and the JSON answer.
async fn post_in_session(
    addr: std::net::SocketAddr,
    path: &str,
    session: Option<String>,
    body: Value,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .json(&body);
    if let Some(s) = session {
        req = req.header("x-tally-session", s);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json::<Value>().await.unwrap_or(Value::Null))
}

/// With `[[cashiers]]`, a sale or a return is recorded only under a
/// signed-in cashier's session (401 `sign_in_required` otherwise), and the
/// event records the session's cashier, not a name the request asserts;
/// wrong PINs lock the cashier out as a manager's do; signing out ends
/// the session. The status tells the terminal to ask.
#[tokio::test]
async fn sales_need_a_signed_in_cashier_where_cashiers_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_with_cashier(dir.path()).await;
    a.receive(PEN, 5).await;
    let (_, status) = a.get("/v1/status").await;
    assert_eq!(status["cashier_sign_in"], true, "{status}");

    let post = |path: &'static str, session: Option<String>, body: Value| {
        post_in_session(a.addr, path, session, body)
    };
    let one = |id: &str| {
        json!({"sale_id": id, "lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 100}],
               "cashier": "mallory"})
    };
    let (s, v) = post(
        "/v1/sales",
        None,
        one("0190a5e0-0000-7000-8000-0000000000c1"),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (401, Some("sign_in_required")),
        "{v}"
    );
    let (s, v) = post(
        "/v1/sales",
        Some("not-a-session".into()),
        one("0190a5e0-0000-7000-8000-0000000000c1"),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (401, Some("sign_in_required")),
        "{v}"
    );
    assert_eq!(a.on_hand(PEN).await, 5, "nothing recorded");

    // Wrong PIN: refused; the right one opens a session.
    let (s, v) = post(
        "/v1/cashiers/sign-in",
        None,
        json!({"cashier": "c-104", "pin": "0000"}),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("sign_in_refused")),
        "{v}"
    );
    let (s, v) = post(
        "/v1/cashiers/sign-in",
        None,
        json!({"cashier": "c-104", "pin": "2468"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["cashier"], "c-104");
    let session = v["session"].as_str().unwrap().to_string();

    // The request names another cashier: refused; naming none or the
    // same one, recorded under the signed-in cashier.
    let (s, v) = post(
        "/v1/sales",
        Some(session.clone()),
        one("0190a5e0-0000-7000-8000-0000000000c1"),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (422, Some("invalid")), "{v}");
    let id = "0190a5e0-0000-7000-8000-0000000000c2";
    let mut sale = one(id);
    sale.as_object_mut().unwrap().remove("cashier");
    let (s, v) = post("/v1/sales", Some(session.clone()), sale.clone()).await;
    assert_eq!(s, 201, "{v}");
    let (_, got) = a.get(&format!("/v1/sales/{id}")).await;
    assert_eq!(got["staff"]["cashier"], "c-104", "{got}");
    // Returns too.
    let (s, v) = post(
        "/v1/returns",
        None,
        json!({"original_sale_id": id, "lines": [{"gtin": PEN, "qty": 1}]}),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (401, Some("sign_in_required")),
        "{v}"
    );
    let (s, v) = post(
        "/v1/returns",
        Some(session.clone()),
        json!({"original_sale_id": id, "lines": [{"gtin": PEN, "qty": 1}]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");

    // Signed out: the session is gone.
    let (s, _) = post("/v1/cashiers/sign-out", Some(session.clone()), json!({})).await;
    assert_eq!(s, 204);
    let (s, v) = post("/v1/sales", Some(session), sale).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (401, Some("sign_in_required")),
        "{v}"
    );

    // Wrong PINs in a row lock the cashier out.
    for _ in 0..5 {
        post(
            "/v1/cashiers/sign-in",
            None,
            json!({"cashier": "c-104", "pin": "1111"}),
        )
        .await;
    }
    let (s, v) = post(
        "/v1/cashiers/sign-in",
        None,
        json!({"cashier": "c-104", "pin": "2468"}),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (429, Some("sign_in_locked")),
        "{v}"
    );
    a.stop().await.unwrap();

    // Without [[cashiers]]: no sign-in; the request's cashier is recorded.
    let dir = tempfile::tempdir().unwrap();
    let b = TestAgent::start(dir.path(), "s1").await;
    let (_, status) = b.get("/v1/status").await;
    assert_eq!(status["cashier_sign_in"], false, "{status}");
    let (s, v) = b
        .post(
            "/v1/cashiers/sign-in",
            json!({"cashier": "c-104", "pin": "2468"}),
        )
        .await;
    assert_eq!((s, v["error"].as_str()), (422, Some("invalid")), "{v}");
    b.stop().await.unwrap();
}

/// What a till records besides sales and returns (a receipt here; counts,
/// transfers and order moves go the same way) names the cashier signed in
/// when the request carries an open session, and refuses naming another;
/// without one (the CLI, a script), or with one no longer open, the
/// cashier it names, as before: these never need a sign-in.
#[tokio::test]
async fn a_receipt_keyed_while_signed_in_records_the_signed_in_cashier() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_with_cashier(dir.path()).await;
    let post = |session: Option<&str>, body: Value| {
        post_in_session(a.addr, "/v1/receipts", session.map(str::to_string), body)
    };
    let (s, v) = a
        .post(
            "/v1/cashiers/sign-in",
            json!({"cashier": "c-104", "pin": "2468"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let session = v["session"].as_str().unwrap().to_string();
    let receipt = |cashier: Option<&str>| {
        let mut body = json!({"lines": [{"gtin": PEN, "qty": 2}]});
        if let Some(c) = cashier {
            body["cashier"] = json!(c);
        }
        body
    };

    let (s, signed) = post(Some(&session), receipt(None)).await;
    assert_eq!(s, 201, "{signed}");
    let (s, v) = post(Some(&session), receipt(Some("mallory"))).await;
    assert_eq!((s, v["error"].as_str()), (422, Some("invalid")), "{v}");
    let (s, cli) = post(None, receipt(Some("ann"))).await;
    assert_eq!(s, 201, "{cli}");
    let (s, stale) = post(Some("not-a-session"), receipt(Some("bob"))).await;
    assert_eq!(s, 201, "{stale}");
    assert_eq!(a.on_hand(PEN).await, 6, "three receipts of two");
    a.stop().await.unwrap();

    let db = tally_agent::store::AgentDb::open(dir.path(), None).unwrap();
    let cashier_of = |answer: &Value| {
        let id: tally_sync::EventId = serde_json::from_value(answer["receipt_id"].clone()).unwrap();
        db.event(&id).unwrap().unwrap().staff.cashier
    };
    assert_eq!(cashier_of(&signed).as_deref(), Some("c-104"));
    assert_eq!(cashier_of(&cli).as_deref(), Some("ann"));
    assert_eq!(cashier_of(&stale).as_deref(), Some("bob"));
}
