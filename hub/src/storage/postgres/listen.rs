//! A connection that LISTENs: what every hub process over one database
//! uses to hear from the others (revocations, live-link messages). The
//! driver's connection task forwards each notification on a channel;
//! the channel closes when the connection ends, so a follower knows to
//! reconnect (and reload what it may have missed).

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls};

use super::conn::{db_err, DatabaseUrl};
use crate::storage::StorageError;

/// One notification: its channel and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    /// The channel it was sent on.
    pub channel: String,
    /// What it carries.
    pub payload: String,
}

/// A connection to `url` listening on `channels`: its client (for
/// queries and NOTIFY on the same connection) and what it hears, until
/// the connection ends (then the receiver yields `None`).
pub(crate) async fn listening(
    url: &DatabaseUrl,
    channels: &[&str],
) -> Result<(Client, mpsc::UnboundedReceiver<Heard>), StorageError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = match url.tls() {
        Some(tls) => {
            let (client, connection) = url.config().connect(tls.clone()).await.map_err(db_err)?;
            tokio::spawn(forward(connection, tx));
            client
        }
        None => {
            let (client, connection) = url.config().connect(NoTls).await.map_err(db_err)?;
            tokio::spawn(forward(connection, tx));
            client
        }
    };
    for channel in channels {
        // Channel names are the hub's own constants, never input.
        client
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .map_err(db_err)?;
    }
    Ok((client, rx))
}

/// Drives `connection`, sending each notification on `tx`, until the
/// connection ends or no one listens.
async fn forward<S, T>(mut connection: Connection<S, T>, tx: mpsc::UnboundedSender<Heard>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
        match message {
            Ok(AsyncMessage::Notification(n)) => {
                let heard = Heard {
                    channel: n.channel().to_string(),
                    payload: n.payload().to_string(),
                };
                if tx.send(heard).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "listening connection failed");
                break;
            }
        }
    }
}
