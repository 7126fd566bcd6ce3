//! `subscribe`: N subscribers of a broadcasting service, counting the frames they
//! receive. Connection 0 starts the publisher with `go <size> <seconds> <window>`
//! and acknowledges progress with `a <k>`, k being the broadcasts every subscriber
//! has had on average: the publisher keeps at most `window` broadcasts beyond
//! that, so queues stay bounded while the link stays saturated.

use crate::common::{connect_all, event, Opts, Window, Ws};
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::{interval, timeout, timeout_at, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

async fn count(w: Arc<Window>, total: Arc<AtomicU64>, mut rx: SplitStream<Ws>) -> Result<(), String> {
    loop {
        match timeout_at(w.to.into(), rx.next()).await {
            Ok(Some(Ok(m))) if m.is_text() || m.is_binary() => {
                total.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("server closed the connection".into()),
            Err(_) => return Ok(()),
        }
    }
}

pub async fn run(o: &'static Opts) -> Result<(), String> {
    let conns = connect_all(o, o.conns, 64 * 1024).await?;
    let n = conns.len() as u64;
    event(&format!("{{\"event\":\"ready\",\"conns\":{n}}}"));
    let w = Arc::new(Window::new(o));
    let total = Arc::new(AtomicU64::new(0));
    let mut control = None;
    let mut tasks = Vec::new();
    for ws in conns {
        let (tx, rx) = ws.split();
        control.get_or_insert(tx);
        tasks.push(tokio::spawn(count(w.clone(), total.clone(), rx)));
    }
    let mut tx = control.expect("at least one connection");
    let run_for = o.warmup + o.seconds + 1.0;
    tx.send(Message::text(format!("go {} {run_for} {}", o.size, o.window.max(1)))).await.map_err(|e| e.to_string())?;
    let acks = {
        let (w, total) = (w.clone(), total.clone());
        tokio::spawn(async move {
            let mut tick = interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let mut acked = 0;
            while Instant::now() < w.to {
                tick.tick().await;
                let k = total.load(Ordering::Relaxed) / n;
                if k > acked {
                    acked = k;
                    // A publisher that stopped reading must not hold this task past the window.
                    match timeout_at(w.to.into(), tx.send(Message::text(format!("a {k}")))).await {
                        Ok(r) => r.map_err(|e| e.to_string())?,
                        Err(_) => break,
                    }
                }
            }
            Ok::<_, String>(tx)
        })
    };
    let (frames, secs) = w.watch(&total).await;
    let mut errors = 0;
    for t in tasks {
        if let Err(e) = t.await.map_err(|e| e.to_string()).and_then(|r| r) {
            errors += 1;
            eprintln!("subscriber error: {e}");
        }
    }
    match acks.await.map_err(|e| e.to_string()).and_then(|r| r) {
        Ok(mut tx) => {
            let _ = timeout(Duration::from_secs(1), tx.send(Message::text("stop"))).await;
        }
        Err(e) => {
            errors += 1;
            eprintln!("control connection error: {e}");
        }
    }
    println!(
        "{{\"event\":\"result\",\"mode\":\"subscribe\",\"subscribers\":{n},\"frames\":{frames},\"seconds\":{secs:.4},\"rate\":{:.1},\"errors\":{errors}}}",
        frames as f64 / secs
    );
    Ok(())
}
