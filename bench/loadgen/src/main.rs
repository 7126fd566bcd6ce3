//! Load generator for bench/: `echo` keeps K messages in flight on each of C
//! connections for D seconds and reports round trips per second and latency.
//! Loopback only; every run is bounded by its duration.

use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

struct Args {
    url: String,
    conns: usize,
    inflight: usize,
    size: usize,
    seconds: f64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args { url: String::new(), conns: 16, inflight: 16, size: 64, seconds: 5.0 };
    let mut it = std::env::args().skip(1);
    let scenario = it.next().ok_or(
        "usage: loadgen echo --url ws://127.0.0.1:PORT/path [--conns C] [--inflight K] [--size B] [--seconds D]",
    )?;
    if scenario != "echo" {
        return Err(format!("unknown scenario {scenario}"));
    }
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => a.url = v,
            "--conns" => a.conns = v.parse().map_err(|e| format!("--conns: {e}"))?,
            "--inflight" => a.inflight = v.parse().map_err(|e| format!("--inflight: {e}"))?,
            "--size" => a.size = v.parse().map_err(|e| format!("--size: {e}"))?,
            "--seconds" => a.seconds = v.parse().map_err(|e| format!("--seconds: {e}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let host = a.url.split("://").nth(1).unwrap_or("").split(['/', ':']).next().unwrap_or("");
    if !(host == "localhost" || host.starts_with("127.") || host == "[::1]") {
        return Err(format!("refusing a non-loopback target: {}", a.url));
    }
    Ok(a)
}

/// One connection: send K messages, then one more per reply, until the deadline.
/// Each payload starts with the send time (µs since `start`) for latency.
async fn echo_conn(a: &Args, start: Instant, deadline: Instant) -> Result<(u64, Vec<u32>), String> {
    let (ws, _) = tokio_tungstenite::connect_async(a.url.as_str()).await.map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = ws.split();
    let mut payload = vec![b'x'; a.size.max(8)];
    let stamp = |buf: &mut Vec<u8>| {
        let us = start.elapsed().as_micros() as u64;
        buf[..8].copy_from_slice(&us.to_le_bytes());
        Message::Binary(buf.clone().into())
    };
    for _ in 0..a.inflight {
        tx.feed(stamp(&mut payload)).await.map_err(|e| e.to_string())?;
    }
    tx.flush().await.map_err(|e| e.to_string())?;
    let (mut done, mut lat) = (0u64, Vec::with_capacity(1 << 16));
    let mut outstanding = a.inflight;
    while outstanding > 0 {
        let msg = match tokio::time::timeout_at(deadline.into(), rx.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("server closed the connection".into()),
            Err(_) => break,
        };
        let data = msg.into_data();
        if data.len() >= 8 {
            let sent = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
            lat.push((start.elapsed().as_micros() as u64).saturating_sub(sent) as u32);
        }
        done += 1;
        outstanding -= 1;
        if Instant::now() < deadline {
            tx.send(stamp(&mut payload)).await.map_err(|e| e.to_string())?;
            outstanding += 1;
        }
    }
    let _ = tx.close().await;
    Ok((done, lat))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let a: &'static Args = Box::leak(Box::new(a));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.seconds);
    let tasks: Vec<_> = (0..a.conns).map(|_| tokio::spawn(echo_conn(a, start, deadline))).collect();
    let (mut total, mut lat, mut errors) = (0u64, Vec::new(), 0);
    for t in tasks {
        match t.await {
            Ok(Ok((n, l))) => {
                total += n;
                lat.extend(l);
            }
            Ok(Err(e)) => {
                errors += 1;
                eprintln!("connection error: {e}");
            }
            Err(e) => eprintln!("task failed: {e}"),
        }
    }
    let secs = start.elapsed().as_secs_f64().min(a.seconds.max(0.001) + 5.0);
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "{{\"scenario\":\"echo\",\"msgs\":{total},\"seconds\":{secs:.3},\"rate\":{:.0},\"p50_us\":{},\"p99_us\":{},\"errors\":{errors}}}",
        total as f64 / a.seconds,
        pct(0.50),
        pct(0.99)
    );
}
