//! websocket-rs for Node-RED: the WebSocket transport behind the `websocket in`,
//! `websocket out`, `websocket-listener` and `websocket-client` nodes.
#![deny(clippy::all)]

pub mod auth;
pub mod bridge;
pub mod client;
pub mod cluster;
pub mod codec;
pub mod commands;
pub mod error;
pub mod handshake;
pub mod inbox;
pub mod listener;
pub mod memory;
pub mod proxy;
pub mod rooms;
pub mod session;
pub mod stats;
pub mod stream;
pub mod tls;

mod js;
#[cfg(test)]
mod props;
#[cfg(test)]
pub(crate) mod test_alloc;

/// One process-wide runtime; napi shuts it down with the last environment that
/// loaded the module. This runs as Node loads the addon, where a panic would abort
/// Node: if the runtime cannot be built, napi's default one is used instead.
#[napi_derive::module_init]
fn init() {
    js::testing::latch();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let setting = std::env::var("WSRS_WORKERS").ok();
    let (workers, taken) = worker_threads(setting.as_deref(), cores);
    if !taken {
        // Once, as the addon loads: a setting that is silently ignored misleads.
        // Not eprintln!, which panics (aborting Node here) if stderr is closed.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "websocket-rs: WSRS_WORKERS={:?} is not a whole number from 1 to 64; running {workers} worker thread(s)",
            setting.unwrap_or_default()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("websocket-rs")
        .enable_all()
        .build();
    if let Ok(rt) = rt {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}

/// Worker threads for `cores` CPUs, and whether `setting` (WSRS_WORKERS) was taken:
/// unset or empty it is not needed, anything but 1 to 64 is refused. On 2 cores or
/// fewer, one: Node's JS thread, which every message also crosses, then keeps a
/// core. On 2 cores two workers help echo at 16 connections and 64 B (+20%) and
/// not the rest (bench/workers.js; bench/RESULTS.md, notes). With more cores, two
/// as before: more has not been measured.
fn worker_threads(setting: Option<&str>, cores: usize) -> (usize, bool) {
    let chosen = if cores <= 2 { 1 } else { 2 };
    match setting.map(str::trim) {
        None | Some("") => (chosen, true),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=64).contains(&n) => (n, true),
            _ => (chosen, false),
        },
    }
}

#[cfg(test)]
mod worker_tests {
    use super::worker_threads;

    #[test]
    fn one_worker_on_two_cores_or_fewer_else_two() {
        assert_eq!(worker_threads(None, 1), (1, true));
        assert_eq!(worker_threads(None, 2), (1, true));
        assert_eq!(worker_threads(None, 3), (2, true));
        assert_eq!(worker_threads(Some(""), 16), (2, true));
    }

    #[test]
    fn takes_a_setting_from_1_to_64_and_refuses_any_other() {
        assert_eq!(worker_threads(Some("1"), 4), (1, true));
        assert_eq!(worker_threads(Some("64"), 2), (64, true));
        assert_eq!(worker_threads(Some(" 8 "), 2), (8, true));
        for bad in ["0", "65", "-1", "two", "1.5"] {
            assert_eq!(worker_threads(Some(bad), 4), (2, false), "{bad:?}");
            assert_eq!(worker_threads(Some(bad), 2), (1, false), "{bad:?}");
        }
    }
}
