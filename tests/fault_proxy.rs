//! Self-test of the fault-injecting proxy the end-to-end tests rely on:
//! it must forward, black-hole, refuse and mute exactly as it says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use tally::demo::proxy::{FaultProxy, Mode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn round_trip(addr: std::net::SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await?;
    Ok(buf.to_vec())
}

#[tokio::test]
async fn passes_blackholes_and_refuses() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    assert_eq!(round_trip(proxy.addr()).await.unwrap(), b"ping");

    proxy.set(Mode::Blackhole);
    // A black hole never answers: the round trip is still pending when a
    // generous deadline expires (this bounds the test, it does not wait for
    // an event).
    let pending = tokio::time::timeout(Duration::from_millis(300), round_trip(proxy.addr())).await;
    assert!(pending.is_err(), "black-holed traffic must not get through");

    proxy.set(Mode::Refuse);
    assert!(round_trip(proxy.addr()).await.is_err());

    proxy.set(Mode::Pass);
    assert_eq!(round_trip(proxy.addr()).await.unwrap(), b"ping");
    assert!(proxy.connections() >= 4);
    // Two round trips of 4 bytes went through (the black-holed and refused
    // ones did not). The echo is counted just after it is forwarded.
    let counted = support::procs::eventually("bytes counted", Duration::from_secs(5), || async {
        (proxy.bytes() == (8, 8))
            .then_some(())
            .ok_or(format!("{:?}", proxy.bytes()))
    });
    counted.await;
}

/// A server that answers every 4 bytes it reads with `reply`.
async fn answering(reply: &'static [u8; 4]) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn moves_clients_to_another_upstream_and_cuts_the_open_connections() {
    let proxy = FaultProxy::start(answering(b"aaaa").await).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    open.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"aaaa");

    proxy.set_upstream(answering(b"bbbb").await);
    assert_eq!(round_trip(proxy.addr()).await.unwrap(), b"bbbb");
    // The connection open before the move was cut: it reads its end.
    let ended = tokio::time::timeout(Duration::from_secs(5), open.read(&mut buf)).await;
    assert!(matches!(ended, Ok(Ok(0)) | Ok(Err(_))), "{ended:?}");
}

/// Muted, an open connection still carries the client's bytes to the
/// server (counted forwarded) but none of the answer back; a new one is
/// refused; unmuted (and cut), it all passes again.
#[tokio::test]
async fn mute_forwards_requests_and_drops_their_answers() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    open.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    open.read_exact(&mut buf).await.unwrap();
    let before = support::procs::eventually("the echo counted", Duration::from_secs(5), || async {
        (proxy.bytes() == (4, 4))
            .then_some(proxy.bytes())
            .ok_or(format!("{:?}", proxy.bytes()))
    })
    .await;

    proxy.mute();
    assert_eq!(proxy.mode(), Mode::Mute);
    open.write_all(b"pong").await.unwrap();
    // The request reaches the server (its echo is read and dropped).
    support::procs::eventually("the request forwarded", Duration::from_secs(5), || async {
        (proxy.bytes().0 == before.0 + 4)
            .then_some(())
            .ok_or(format!("{:?}", proxy.bytes()))
    })
    .await;
    let answer = tokio::time::timeout(Duration::from_millis(300), open.read(&mut buf)).await;
    assert!(answer.is_err(), "no answer while muted: {answer:?}");
    assert_eq!(proxy.bytes().1, before.1, "nothing came back");
    assert!(
        round_trip(proxy.addr()).await.is_err(),
        "new connections refused"
    );

    proxy.set(Mode::Pass);
    assert_eq!(round_trip(proxy.addr()).await.unwrap(), b"ping");
}
