//! `flood`: C connections each sending text messages as fast as the server takes
//! them (TCP back-pressure paces them) until the window ends or, with
//! `--max-msgs`, until that many have been sent over all connections (a server
//! that reads faster than it processes then has a bounded backlog to work off).
//! The server counts what it processes; the sent figures are a cross-check.

use crate::common::{connect_all, event, Opts, Window, Ws};
use futures_util::SinkExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout, timeout_at};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

const BURST: u64 = 64;

async fn send_until(
    w: Arc<Window>,
    sent: Arc<AtomicU64>,
    quota: u64,
    text: Utf8Bytes,
    mut ws: Ws,
) -> Result<(), String> {
    let burst = async {
        let mut mine = 0;
        while mine < quota {
            let n = BURST.min(quota - mine);
            for _ in 0..n {
                ws.feed(Message::Text(text.clone())).await?;
            }
            ws.flush().await?;
            mine += n;
            sent.fetch_add(n, Ordering::Relaxed);
        }
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    };
    // The deadline drops a send blocked on a full socket, which is the expected end.
    if let Ok(Err(e)) = timeout_at(w.to.into(), burst).await {
        return Err(e.to_string());
    }
    let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
    Ok(())
}

pub async fn run(o: &'static Opts) -> Result<(), String> {
    let conns = connect_all(o, o.conns, 4096).await?;
    event(&format!("{{\"event\":\"ready\",\"conns\":{}}}", conns.len()));
    let w = Arc::new(Window::new(o));
    let sent = Arc::new(AtomicU64::new(0));
    let quota = if o.max_msgs > 0 { o.max_msgs.div_ceil(conns.len() as u64) } else { u64::MAX };
    let text = Utf8Bytes::from("x".repeat(o.size));
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|ws| tokio::spawn(send_until(w.clone(), sent.clone(), quota, text.clone(), ws)))
        .collect();
    let (in_window, secs) = w.watch(&sent).await;
    let mut errors = 0;
    for t in tasks {
        if let Err(e) = t.await.map_err(|e| e.to_string()).and_then(|r| r) {
            errors += 1;
            eprintln!("connection error: {e}");
        }
    }
    println!(
        "{{\"event\":\"result\",\"mode\":\"flood\",\"sent\":{},\"sent_in_window\":{in_window},\"seconds\":{secs:.4},\"rate\":{:.1},\"errors\":{errors}}}",
        sent.load(Ordering::Relaxed),
        in_window as f64 / secs
    );
    Ok(())
}
