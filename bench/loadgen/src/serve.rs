//! `serve`: the ceiling, a plain tokio-tungstenite server on 127.0.0.1 with the
//! behaviour of the benchmark's flows: `/echo` answers each message with itself;
//! `/fanout` broadcasts to every connection on it, started by `go <size> <seconds>
//! <window>` and paced by `a <k>` acknowledgements as the flow's publisher is.
//! A broadcast is framed once per subscriber (each writer encodes the shared
//! payload). Runs until stdin closes or `--max-seconds`.

use crate::common::{event, until_released, Opts};
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::time::timeout_at;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

/// Most messages written between two flushes.
const BATCH: usize = 256;
/// Most broadcasts published in one turn.
const BURST: u64 = 64;

#[derive(Default)]
struct Fanout {
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Message>>>,
    acked: AtomicU64,
    stop: AtomicBool,
    credit: Notify,
}

async fn echo(mut ws: Ws) -> Result<(), String> {
    while let Some(first) = ws.next().await {
        let mut next = Some(first.map_err(|e| e.to_string())?);
        let mut n = 0;
        while let Some(m) = next.take() {
            if m.is_close() {
                let _ = ws.flush().await;
                return Ok(());
            }
            if m.is_text() || m.is_binary() {
                ws.feed(m).await.map_err(|e| e.to_string())?;
                n += 1;
            }
            if n < BATCH {
                next = ws.next().now_or_never().flatten().and_then(Result::ok);
            }
        }
        ws.flush().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn publish(f: Arc<Fanout>, size: usize, seconds: f64, window: u64) {
    let end = Instant::now() + Duration::from_secs_f64(seconds.clamp(0.0, 600.0));
    let text = Utf8Bytes::from("x".repeat(size));
    let mut sent = 0u64;
    while Instant::now() < end && !f.stop.load(Ordering::Relaxed) {
        while sent.saturating_sub(f.acked.load(Ordering::Relaxed)) >= window {
            if timeout_at(end.into(), f.credit.notified()).await.is_err() || f.stop.load(Ordering::Relaxed) {
                return;
            }
        }
        // Up to 64 broadcasts per turn, as the flow's publisher sends them, so that
        // each writer finds several frames queued and writes them at once.
        {
            let mut subscribers = f.subscribers.lock().expect("subscribers");
            for _ in 0..BURST.min(window - sent.saturating_sub(f.acked.load(Ordering::Relaxed))) {
                subscribers.retain(|s| s.send(Message::Text(text.clone())).is_ok());
                sent += 1;
            }
        }
        tokio::task::yield_now().await;
    }
}

async fn subscriber(f: Arc<Fanout>, ws: Ws) -> Result<(), String> {
    let (mut tx, mut rx) = ws.split();
    let (queue, mut out) = mpsc::unbounded_channel::<Message>();
    f.subscribers.lock().expect("subscribers").push(queue);
    let writer = tokio::spawn(async move {
        while let Some(m) = out.recv().await {
            tx.feed(m).await?;
            for _ in 1..BATCH {
                match out.try_recv() {
                    Ok(m) => tx.feed(m).await?,
                    Err(_) => break,
                }
            }
            tx.flush().await?;
        }
        Ok::<_, tokio_tungstenite::tungstenite::Error>(())
    });
    while let Some(m) = rx.next().await {
        let Ok(Message::Text(t)) = m else { break };
        let mut words = t.as_str().split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("go"), Some(size), Some(secs), Some(win)) => {
                f.stop.store(false, Ordering::Relaxed);
                f.acked.store(0, Ordering::Relaxed);
                let (size, secs, win) =
                    (size.parse().unwrap_or(64), secs.parse().unwrap_or(1.0), win.parse().unwrap_or(64));
                tokio::spawn(publish(f.clone(), size, secs, win));
            }
            (Some("a"), Some(k), None, None) => {
                f.acked.fetch_max(k.parse().unwrap_or(0), Ordering::Relaxed);
                f.credit.notify_one();
            }
            (Some("stop"), None, None, None) => {
                f.stop.store(true, Ordering::Relaxed);
                f.credit.notify_one();
            }
            _ => {}
        }
    }
    writer.abort();
    Ok(())
}

// The callback's error type is tungstenite's (an HTTP response), not ours to shrink.
#[allow(clippy::result_large_err)]
async fn accept(f: Arc<Fanout>, stream: TcpStream) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut path = String::new();
    let ws = tokio_tungstenite::accept_hdr_async(stream, |req: &Request, resp: Response| {
        path = req.uri().path().to_owned();
        Ok(resp)
    })
    .await
    .map_err(|e| e.to_string())?;
    match path.as_str() {
        "/echo" => echo(ws).await,
        "/fanout" => subscriber(f, ws).await,
        other => Err(format!("no service at {other}")),
    }
}

pub async fn run(o: &'static Opts) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    event(&format!("{{\"event\":\"listening\",\"port\":{port}}}"));
    let fanout = Arc::new(Fanout::default());
    let serving = async {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let f = fanout.clone();
                    tokio::spawn(async move { accept(f, stream).await.ok() });
                }
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    };
    tokio::select! {
        _ = serving => {}
        _ = until_released(o) => {}
    }
    Ok(())
}
