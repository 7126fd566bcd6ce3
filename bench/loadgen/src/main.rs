//! Load generator for bench/: `echo` keeps K messages in flight on each of C
//! connections for D seconds and reports round trips per second and latency;
//! `flood` sends text (or `--binary`) messages on each of C connections as fast as
//! the socket takes them for D seconds and reports how many it sent.
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
    flood: bool,
    binary: bool,
}

fn parse() -> Result<Args, String> {
    let mut a =
        Args { url: String::new(), conns: 16, inflight: 16, size: 64, seconds: 5.0, flood: false, binary: false };
    let mut it = std::env::args().skip(1);
    let scenario = it.next().ok_or(
        "usage: loadgen echo|flood --url ws://127.0.0.1:PORT/path [--conns C] [--inflight K] [--size B] [--seconds D] [--binary]",
    )?;
    match scenario.as_str() {
        "echo" => {}
        "flood" => a.flood = true,
        _ => return Err(format!("unknown scenario {scenario}")),
    }
    while let Some(flag) = it.next() {
        if flag == "--binary" {
            a.binary = true;
            continue;
        }
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

/// One connection: write messages until the deadline, as fast as the socket takes
/// them (tungstenite buffers and flushes in large writes); returns how many.
async fn flood_conn(a: &Args, deadline: Instant) -> Result<(u64, Vec<u32>), String> {
    // A small send buffer (Linux would grow it to 4 MiB): what the server has not
    // read when the run ends is little, so it stops soon after the generator.
    let authority = a.url.split("://").nth(1).and_then(|r| r.split('/').next()).ok_or("bad url")?;
    let addr = tokio::net::lookup_host(authority).await.map_err(|e| e.to_string())?.next().ok_or("no address")?;
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
        .map_err(|e| e.to_string())?;
    socket.set_send_buffer_size(64 * 1024).map_err(|e| e.to_string())?;
    let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
    let (ws, _) = tokio_tungstenite::client_async(a.url.as_str(), stream).await.map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = ws.split();
    // Nothing is expected back but a close; reading keeps control frames moving.
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    let msg =
        if a.binary { Message::Binary(vec![b'x'; a.size].into()) } else { Message::Text("x".repeat(a.size).into()) };
    let mut sent = 0u64;
    loop {
        // Checked every 64 messages: the clock costs more than a feed.
        if sent % 64 == 0 && Instant::now() >= deadline {
            break;
        }
        match tokio::time::timeout_at(deadline.into(), tx.feed(msg.clone())).await {
            Ok(Ok(())) => sent += 1,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), tx.close()).await;
    drain.abort();
    Ok((sent, Vec::new()))
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
    let tasks: Vec<_> =
        (0..a.conns)
            .map(|_| {
                if a.flood {
                    tokio::spawn(flood_conn(a, deadline))
                } else {
                    tokio::spawn(echo_conn(a, start, deadline))
                }
            })
            .collect();
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
        "{{\"scenario\":\"{}\",\"msgs\":{total},\"seconds\":{secs:.3},\"rate\":{:.0},\"p50_us\":{},\"p99_us\":{},\"errors\":{errors}}}",
        if a.flood { "flood" } else { "echo" },
        total as f64 / a.seconds,
        pct(0.50),
        pct(0.99)
    );
}
