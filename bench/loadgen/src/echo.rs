//! `echo`: C connections to an echo service. Closed loop (`--inflight` K messages
//! in flight per connection, one more per reply) for throughput, or open loop
//! (`--rate` R messages/s over all connections, on a fixed schedule) for latency
//! at a given offered load. Payloads carry their send time; latency is counted
//! from the scheduled time, so a stalled server cannot hide its queueing.

use crate::common::{connect_all, event, percentile, Opts, Window, Ws};
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::time::{sleep_until, timeout_at};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Replies arrive up to this long after the window; later ones count as lost.
const GRACE: Duration = Duration::from_secs(2);
/// Open loop: a connection with this many unanswered messages skips its turns.
const MAX_OUTSTANDING: u64 = 100_000;
/// Closed loop: messages fed before one write.
const BATCH: usize = 256;

struct Shared {
    w: Window,
    replies: AtomicU64,
    answered: AtomicU64,
    sent: AtomicU64,
    skipped: AtomicU64,
}

fn stamped(payload: &mut [u8], micros: u64) -> Message {
    payload[..8].copy_from_slice(&micros.to_le_bytes());
    Message::Binary(payload.to_vec().into())
}

/// A message the server sent, or why the connection ended.
fn received(item: Option<Result<Message, WsError>>) -> Result<Message, String> {
    match item {
        Some(Ok(m)) => Ok(m),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("server closed the connection".into()),
    }
}

/// Records a reply: counted if it arrives in the window, its latency kept if it was sent in it.
fn record(s: &Shared, msg: Message, lat: &mut Vec<u32>) -> bool {
    let Message::Binary(data) = msg else { return false };
    let now = Instant::now();
    s.answered.fetch_add(1, Ordering::Relaxed);
    if s.w.contains(now) {
        s.replies.fetch_add(1, Ordering::Relaxed);
    }
    if data.len() >= 8 {
        let sent = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        let from = s.w.micros(s.w.from);
        if sent >= from && sent < s.w.micros(s.w.to) {
            lat.push(s.w.micros(now).saturating_sub(sent) as u32);
        }
    }
    true
}

async fn closed_loop(o: &'static Opts, s: Arc<Shared>, ws: Ws) -> Result<Vec<u32>, String> {
    let (mut tx, mut rx) = ws.split();
    let mut payload = vec![b'x'; o.size.max(8)];
    for _ in 0..o.inflight {
        tx.feed(stamped(&mut payload, s.w.micros(Instant::now()))).await.map_err(|e| e.to_string())?;
    }
    tx.flush().await.map_err(|e| e.to_string())?;
    let mut lat = Vec::with_capacity(1 << 16);
    let mut outstanding = o.inflight;
    // One message per reply, and one write for the replies that can be read without
    // waiting (as the ceiling server answers), so that the generator's own CPU per
    // message does not take the cores the server under test needs; `--writes
    // per-message`: a write for each, as a client sending each message on its own.
    let batch = if o.write_each { 1 } else { BATCH };
    while outstanding > 0 {
        let mut next = match timeout_at(s.w.to.into(), rx.next()).await {
            Ok(item) => Some(received(item)?),
            Err(_) => break,
        };
        let mut fed = 0;
        while let Some(msg) = next.take() {
            if record(&s, msg, &mut lat) {
                outstanding -= 1;
                if Instant::now() < s.w.to {
                    tx.feed(stamped(&mut payload, s.w.micros(Instant::now()))).await.map_err(|e| e.to_string())?;
                    outstanding += 1;
                    fed += 1;
                }
            }
            if fed < batch {
                next = rx.next().now_or_never().map(received).transpose()?;
            }
        }
        if fed > 0 {
            tx.flush().await.map_err(|e| e.to_string())?;
        }
    }
    let _ = tx.close().await;
    Ok(lat)
}

async fn open_loop(o: &'static Opts, s: Arc<Shared>, ws: Ws) -> Result<Vec<u32>, String> {
    let (mut tx, mut rx) = ws.split();
    let period = Duration::from_secs_f64(o.conns as f64 / o.rate);
    let (sent, got, done, wake) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(Notify::new()),
    );
    let writer = {
        let (s, sent, got, done, wake) = (s.clone(), sent.clone(), got.clone(), done.clone(), wake.clone());
        tokio::spawn(async move {
            let mut payload = vec![b'x'; o.size.max(8)];
            let mut next = s.w.start;
            while next < s.w.to {
                sleep_until(next.into()).await;
                let now = Instant::now();
                while next <= now && next < s.w.to {
                    if sent.load(Ordering::Relaxed) - got.load(Ordering::Relaxed) < MAX_OUTSTANDING {
                        tx.feed(stamped(&mut payload, s.w.micros(next))).await.map_err(|e| e.to_string())?;
                        sent.fetch_add(1, Ordering::Relaxed);
                        s.sent.fetch_add(1, Ordering::Relaxed);
                    } else {
                        s.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    next += period;
                }
                tx.flush().await.map_err(|e| e.to_string())?;
            }
            done.store(true, Ordering::Release);
            wake.notify_one();
            Ok::<_, String>(tx)
        })
    };
    let mut lat = Vec::with_capacity(1 << 16);
    let deadline = s.w.to + GRACE;
    loop {
        if done.load(Ordering::Acquire) && got.load(Ordering::Relaxed) >= sent.load(Ordering::Relaxed) {
            break;
        }
        tokio::select! {
            m = timeout_at(deadline.into(), rx.next()) => match m {
                Ok(item) => {
                    if record(&s, received(item)?, &mut lat) {
                        got.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(_) => break,
            },
            _ = wake.notified() => {}
        }
    }
    let mut tx = writer.await.map_err(|e| e.to_string())??;
    let _ = tx.close().await;
    Ok(lat)
}

pub async fn run(o: &'static Opts) -> Result<(), String> {
    let conns = connect_all(o, o.conns, 64 * 1024).await?;
    event(&format!("{{\"event\":\"ready\",\"conns\":{}}}", conns.len()));
    let s = Arc::new(Shared {
        w: Window::new(o),
        replies: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
    });
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|ws| {
            if o.rate > 0.0 {
                tokio::spawn(open_loop(o, s.clone(), ws))
            } else {
                tokio::spawn(closed_loop(o, s.clone(), ws))
            }
        })
        .collect();
    let (msgs, secs) = s.w.watch(&s.replies).await;
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        match t.await {
            Ok(Ok(l)) => lat.extend(l),
            Ok(Err(e)) => {
                errors += 1;
                eprintln!("connection error: {e}");
            }
            Err(e) => {
                errors += 1;
                eprintln!("task failed: {e}");
            }
        }
    }
    lat.sort_unstable();
    println!(
        "{{\"event\":\"result\",\"mode\":\"echo\",\"msgs\":{msgs},\"seconds\":{secs:.4},\"rate\":{:.1},\"p50_us\":{},\"p99_us\":{},\"samples\":{},\"offered\":{},\"sent\":{},\"answered\":{},\"skipped\":{},\"errors\":{errors}}}",
        msgs as f64 / secs,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat.len(),
        o.rate,
        s.sent.load(Ordering::Relaxed),
        s.answered.load(Ordering::Relaxed),
        s.skipped.load(Ordering::Relaxed)
    );
    Ok(())
}
