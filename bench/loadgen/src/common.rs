//! Options, loopback connections and the measuring window shared by the modes.

use futures_util::StreamExt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{client_async_with_config, WebSocketStream};

pub type Ws = WebSocketStream<TcpStream>;

pub struct Opts {
    pub url: String,
    pub target: SocketAddr,
    pub conns: usize,
    pub inflight: usize,
    pub size: usize,
    pub warmup: f64,
    pub seconds: f64,
    pub rate: f64,
    pub window: u64,
    pub max_msgs: u64,
    pub src_base: Ipv4Addr,
    pub src_count: u32,
    pub threads: usize,
    pub max_seconds: f64,
    /// Echo's closed loop: a write per message instead of one per read's echoes.
    pub write_each: bool,
}

impl Opts {
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<(String, Opts), String> {
        let mode = args.next().ok_or("no mode given")?;
        let mut o = Opts {
            url: String::new(),
            target: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            conns: 16,
            inflight: 16,
            size: 64,
            warmup: 1.0,
            seconds: 5.0,
            rate: 0.0,
            window: 64,
            max_msgs: 0,
            src_base: Ipv4Addr::LOCALHOST,
            src_count: 1,
            threads: 1,
            max_seconds: 600.0,
            write_each: false,
        };
        while let Some(flag) = args.next() {
            let v = args.next().ok_or(format!("{flag} needs a value"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{flag} {v}: {e}");
            match flag.as_str() {
                "--url" => o.url = v.clone(),
                "--conns" => o.conns = v.parse().map_err(|e| bad(&e))?,
                "--inflight" => o.inflight = v.parse().map_err(|e| bad(&e))?,
                "--size" => o.size = v.parse().map_err(|e| bad(&e))?,
                "--warmup" => o.warmup = v.parse().map_err(|e| bad(&e))?,
                "--seconds" => o.seconds = v.parse().map_err(|e| bad(&e))?,
                "--rate" => o.rate = v.parse().map_err(|e| bad(&e))?,
                "--window" => o.window = v.parse().map_err(|e| bad(&e))?,
                "--max-msgs" => o.max_msgs = v.parse().map_err(|e| bad(&e))?,
                "--src-base" => o.src_base = v.parse().map_err(|e| bad(&e))?,
                "--src-count" => o.src_count = v.parse().map_err(|e| bad(&e))?,
                "--threads" => o.threads = v.parse().map_err(|e| bad(&e))?,
                "--max-seconds" => o.max_seconds = v.parse().map_err(|e| bad(&e))?,
                "--writes" => {
                    o.write_each = match v.as_str() {
                        "per-message" => true,
                        "per-read" => false,
                        _ => return Err(bad(&"per-message or per-read")),
                    }
                }
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        if !o.src_base.is_loopback() || o.src_base.octets()[3] as u32 + o.src_count.max(1) - 1 > 255 {
            return Err(format!(
                "--src-base {} with --src-count {}: not 127.x.y.z within one /24",
                o.src_base, o.src_count
            ));
        }
        o.src_count = o.src_count.max(1);
        o.threads = o.threads.max(1);
        o.conns = o.conns.max(1);
        if mode != "serve" {
            o.target = loopback_target(&o.url)?;
        }
        Ok((mode, o))
    }
}

/// `ws://127.x.y.z:PORT/...` or `ws://localhost:PORT/...`; anything else is refused.
fn loopback_target(url: &str) -> Result<SocketAddr, String> {
    let rest = url.strip_prefix("ws://").ok_or(format!("not a ws:// URL: {url}"))?;
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = authority.rsplit_once(':').ok_or(format!("no port in {url}"))?;
    let ip: Ipv4Addr = if host == "localhost" {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse().map_err(|_| format!("not an IPv4 address: {host}"))?
    };
    if !ip.is_loopback() {
        return Err(format!("refusing a non-loopback target: {url}"));
    }
    Ok(SocketAddr::new(ip.into(), port.parse().map_err(|_| format!("bad port in {url}"))?))
}

/// Connection `i`, bound to source address `src_base + i % src_count` (one source
/// address runs out of ephemeral ports near 28 000 connections).
pub async fn connect(o: &Opts, i: usize, read_buffer: usize) -> Result<Ws, String> {
    let attempt = async {
        let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
        if o.src_count > 1 || o.src_base != Ipv4Addr::LOCALHOST {
            let ip = Ipv4Addr::from(u32::from(o.src_base) + (i as u32 % o.src_count));
            sock.bind(SocketAddr::new(ip.into(), 0)).map_err(|e| format!("bind {ip}: {e}"))?;
        }
        let stream = sock.connect(o.target).await.map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let config = WebSocketConfig::default().read_buffer_size(read_buffer);
        let (ws, _) = client_async_with_config(o.url.as_str(), stream, Some(config))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        Ok(ws)
    };
    timeout(Duration::from_secs(30), attempt).await.map_err(|_| "connection not open within 30 s".to_string())?
}

/// `n` connections, at most 64 being opened at a time; fails on the first error.
pub async fn connect_all(o: &'static Opts, n: usize, read_buffer: usize) -> Result<Vec<Ws>, String> {
    futures_util::stream::iter(0..n)
        .map(|i| connect(o, i, read_buffer))
        .buffered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

pub fn event(line: &str) {
    println!("{line}");
}

/// The measuring window: `from` after the warm-up, `to` after `seconds` more.
pub struct Window {
    pub start: Instant,
    pub from: Instant,
    pub to: Instant,
}

impl Window {
    pub fn new(o: &Opts) -> Window {
        let start = Instant::now();
        let from = start + Duration::from_secs_f64(o.warmup.max(0.0));
        Window { start, from, to: from + Duration::from_secs_f64(o.seconds.max(0.01)) }
    }

    pub fn contains(&self, t: Instant) -> bool {
        t >= self.from && t < self.to
    }

    pub fn micros(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_micros() as u64
    }

    /// Announces the window's edges as they pass; returns what `counter` gained
    /// between them and the exact seconds between the two samples.
    pub async fn watch(&self, counter: &AtomicU64) -> (u64, f64) {
        sleep_until(self.from.into()).await;
        let (a, t0) = (counter.load(Ordering::Relaxed), Instant::now());
        event("{\"event\":\"start\"}");
        sleep_until(self.to.into()).await;
        let (b, t1) = (counter.load(Ordering::Relaxed), Instant::now());
        event("{\"event\":\"end\"}");
        (b - a, (t1 - t0).as_secs_f64())
    }
}

/// p-th percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Resolves when stdin closes (the caller is done) or after `max_seconds`.
pub async fn until_released(o: &Opts) {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    let eof = async { while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {} };
    let _ = timeout(Duration::from_secs_f64(o.max_seconds), eof).await;
}
