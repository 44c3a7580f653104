//! A store's live link as the hub tests and benchmarks hold it: `GET
//! /v1/link` on the store's client (HTTP/2, the same connection as its
//! syncs), read as notices with `tally_sync::link::NoticeReader`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tally_sync::link::{Notice, NoticeReader};
use tally_sync::{BoundedCounter, EventId, Gtin};

use super::HubClient;

/// A store's open link: the streaming response and its reader.
pub struct Link {
    pub resp: reqwest::Response,
    reader: NoticeReader,
    queued: Vec<Notice>,
}

impl Link {
    /// Opens `client`'s link: `200`, over HTTP/2, NDJSON.
    pub async fn open(client: &HubClient) -> Link {
        let resp = client
            .http
            .get(format!("{}/v1/link", client.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(
            resp.headers()["content-type"],
            tally_sync::link::CONTENT_TYPE
        );
        Link {
            resp,
            reader: NoticeReader::new(),
            queued: Vec::new(),
        }
    }

    /// The next notice other than a heartbeat, within 10 s.
    pub async fn next(&mut self) -> Notice {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if !self.queued.is_empty() {
                let n = self.queued.remove(0);
                if n != Notice::Heartbeat {
                    return n;
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.resp.chunk())
                .await
                .expect("a notice within 10 s")
                .unwrap()
                .expect("the link is open");
            for n in self.reader.push(&chunk) {
                self.queued.push(n.unwrap());
            }
        }
    }

    /// The next notice, which must be a `rights_wanted`: its request id,
    /// item, units and the hub's counter entries.
    pub async fn wanted(&mut self) -> (EventId, Gtin, u64, BoundedCounter) {
        match self.next().await {
            Notice::RightsWanted {
                request_id,
                gtin,
                units,
                counter,
                ..
            } => (request_id, gtin, units, *counter),
            other => panic!("expected rights_wanted, got {other:?}"),
        }
    }
}
