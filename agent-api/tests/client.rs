//! [`AgentClient`] against a canned HTTP server on loopback: the request
//! lines and bodies its typed calls send, the agent's answers (with
//! fields a client ignores) read back, every refusal read back typed over
//! the wire, and the answers no agent should give (a 500, an unreadable
//! 201, a closed port) mapped to "outcome unknown". The mapping of single
//! answers is unit-tested in `src/client.rs`; the client against a real
//! agent in `agent/tests/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use tally_agent_api::{AgentClient, ApiError, LineBody, OverrideRequest, SaleRequest};
use tally_sync::{Epc, EventId, Gtin, Refusal, Tender};
use uuid::Uuid;

/// A one-connection-at-a-time HTTP/1.1 server on loopback answering each
/// request with the next canned (status, body) and reporting what it
/// received (request line and body).
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

fn client(base: &str) -> AgentClient {
    AgentClient::new(base, Duration::from_secs(5)).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const PEN: &str = "04006381333931";

fn gtin(text: &str) -> Gtin {
    text.parse().unwrap()
}

/// A sale as the cashier terminal posts it: its own id, a card tender and
/// a manager's override.
fn sale() -> SaleRequest {
    SaleRequest {
        sale_id: Some(EventId(Uuid::from_u128(7))),
        lines: vec![LineBody {
            gtin: PEN.into(),
            qty: 2,
            unit_price_minor: Some(129),
            epc: None,
            price_source: None,
        }],
        tenders: vec![Tender {
            method: "card".into(),
            amount_minor: 258,
            reference: Some("AUTH1".into()),
        }],
        override_: Some(OverrideRequest::new("Ann", "on shelf", "4711")),
        cashier: None,
        till: None,
    }
}

#[test]
fn a_sale_lookup_reads_what_is_left_to_return() {
    let id = EventId(Uuid::from_u128(0x0190_a5e0_0000_7000_8000_0000_0000_00d1));
    // The agent's GET /v1/sales/{id} body, with a field no client knows.
    let body = json!({"sale_id": id, "status": "committed", "store_id": "s1", "at_ms": 1,
        "lines": [{"gtin": PEN, "qty": 2, "unit_price_minor": 199, "epc": null},
                  {"gtin": "00000096385074", "qty": 1, "unit_price_minor": 50, "epc": null}],
        "tenders": [], "override": null, "total_minor": 448, "overridden": false,
        "returned": [{"gtin": PEN, "units": 1}], "added_later": true});
    let (base, rx) = canned(vec![(200, body.to_string())]);
    let got = rt().block_on(client(&base).sale(id)).unwrap();
    assert_eq!(got.sale_id, id);
    assert_eq!(got.sold_and_left(), (3, 2));
    assert_eq!(rx.recv().unwrap().0, format!("GET /v1/sales/{id} HTTP/1.1"));
}

#[test]
fn posts_a_sale_in_the_contract_shape_and_reads_the_reply() {
    let (base, seen) = canned(vec![(
        201,
        json!({"sale_id": "00000000-0000-0000-0000-000000000007", "status": "committed",
               "total_minor": 258, "overridden": true})
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
            "lines": [{"gtin": PEN, "qty": 2, "unit_price_minor": 129}],
            "tenders": [{"method": "card", "amount_minor": 258, "reference": "AUTH1"}],
            "override": {"approver": "Ann", "reason": "on shelf", "pin": "4711"}
        })
    );
}

#[test]
fn maps_refusals_invalid_and_unavailable() {
    let original = "0190a5e0-0000-7000-8000-0000000000c1";
    let (base, _seen) = canned(vec![
        (
            409,
            json!({"error":"insufficient_stock","message":"m","gtin":PEN,"requested":3,"available":1})
                .to_string(),
        ),
        (
            409,
            json!({"error":"already_sold","message":"m","epc":"3074257BF7194E4000001A85"})
                .to_string(),
        ),
        (
            409,
            json!({"error":"exceeds_sale","message":"m","original_sale_id":original,
                   "gtin":PEN,"requested":2,"returnable":1})
            .to_string(),
        ),
        (
            422,
            json!({"error":"invalid","message":"qty must be > 0"}).to_string(),
        ),
        (
            503,
            json!({"error":"unavailable","message":"shutting down"}).to_string(),
        ),
        (500, "boom".to_string()),
        (201, "not json".to_string()),
        (409, json!({"error":"frozen","message":"m"}).to_string()),
    ]);
    let c = client(&base);
    let rt = rt();
    let post = || rt.block_on(c.post_sale(&sale())).unwrap_err();
    let e = post();
    assert_eq!(
        e,
        ApiError::Refused(Refusal::InsufficientStock {
            gtin: gtin(PEN),
            requested: 3,
            available: 1,
            // The canned answer names no on_hand (an older agent's).
            on_hand: 1,
        })
    );
    assert!(!e.outcome_unknown());
    assert_eq!(
        post(),
        ApiError::Refused(Refusal::AlreadySold {
            epc: Epc::from_hex("3074257BF7194E4000001A85").unwrap()
        })
    );
    assert_eq!(
        post(),
        ApiError::Refused(Refusal::ExceedsSale {
            sale: original.parse().unwrap(),
            gtin: gtin(PEN),
            requested: 2,
            returnable: 1
        })
    );
    let e = post();
    assert_eq!(
        e,
        ApiError::Invalid {
            status: 422,
            message: "qty must be > 0".into()
        }
    );
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
    let e = post();
    assert!(
        matches!(&e, ApiError::Conflict(body) if body.error == "frozen"),
        "{e:?}"
    );
    assert!(!e.outcome_unknown());
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
            json!({"gtin":PEN,"on_hand":5,"rights":2,"others_rights":3}).to_string(),
        ),
        (
            200,
            json!({"gtin":PEN,"name":"Pen","price_minor":129}).to_string(),
        ),
        (
            404,
            json!({"error":"not_found","message":"not in the catalog"}).to_string(),
        ),
    ]);
    let c = client(&format!("{base}/"));
    let rt = rt();
    let s = rt.block_on(c.status()).unwrap();
    assert!(!s.online);
    assert_eq!(s.outbox_events, 12);
    assert_eq!(s.store_id.as_str(), "s1");
    let st = rt.block_on(c.stock(PEN)).unwrap();
    assert_eq!((st.on_hand, st.rights, st.others_rights), (5, 2, 3));
    let item = rt.block_on(c.catalog_item(PEN)).unwrap();
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
