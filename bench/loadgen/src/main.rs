//! Load generator for bench/, and the plain tokio-tungstenite server that is the
//! benchmark's ceiling. Every mode is bounded in time and talks to loopback only.
//! Progress goes to stdout as JSON lines (`ready`, `start`, `end`, `result`) so
//! that the caller can sample the server's CPU and counters at the window's edges.

mod common;
mod echo;
mod flood;
mod hold;
mod serve;
mod subscribe;

use common::Opts;

const USAGE: &str = "usage: websocket-rs-loadgen <echo|flood|subscribe|hold|serve> [--url ws://127.0.0.1:PORT/path] \
[--conns N] [--inflight K] [--size B] [--warmup S] [--seconds S] [--rate R] [--window W] [--max-msgs M] \
[--src-base 127.0.0.1] [--src-count K] [--threads T] [--max-seconds S] [--writes per-read|per-message]";

fn main() {
    let (mode, opts) = match Opts::parse(std::env::args().skip(1)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let opts: &'static Opts = Box::leak(Box::new(opts));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = rt.block_on(async move {
        match mode.as_str() {
            "echo" => echo::run(opts).await,
            "flood" => flood::run(opts).await,
            "subscribe" => subscribe::run(opts).await,
            "hold" => hold::run(opts).await,
            "serve" => serve::run(opts).await,
            other => Err(format!("unknown mode {other}")),
        }
    });
    // Held sockets and server tasks end with the process, not one by one.
    rt.shutdown_background();
    if let Err(e) = outcome {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
