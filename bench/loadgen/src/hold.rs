//! `hold`: N idle connections to an echo service, each having sent one message
//! and had its echo, spread over source addresses; held until stdin closes (or
//! `--max-seconds`), so the caller can measure the server meanwhile.

use crate::common::{connect, event, until_released, Opts, Ws};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

async fn open_and_echo(o: &'static Opts, i: usize) -> Result<Ws, String> {
    // A small read buffer: tungstenite allocates it up front, for every connection.
    let mut ws = connect(o, i, 4096).await?;
    ws.send(Message::text("x".repeat(o.size))).await.map_err(|e| e.to_string())?;
    loop {
        match timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(m))) if m.is_text() || m.is_binary() => return Ok(ws),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("closed before the echo".into()),
            Err(_) => return Err("no echo within 30 s".into()),
        }
    }
}

pub async fn run(o: &'static Opts) -> Result<(), String> {
    let mut held = Vec::with_capacity(o.conns);
    let mut errors = 0usize;
    let mut first_error = String::new();
    let mut opening = futures_util::stream::iter(0..o.conns).map(|i| open_and_echo(o, i)).buffer_unordered(100);
    while let Some(r) = opening.next().await {
        match r {
            Ok(ws) => held.push(ws),
            Err(e) => {
                errors += 1;
                if first_error.is_empty() {
                    first_error = e;
                }
            }
        }
    }
    drop(opening);
    let quoted = first_error.replace('\\', "\\\\").replace('"', "'");
    event(&format!("{{\"event\":\"ready\",\"held\":{},\"errors\":{errors},\"first_error\":\"{quoted}\"}}", held.len()));
    until_released(o).await;
    Ok(())
}
