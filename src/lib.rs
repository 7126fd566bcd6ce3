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

/// One process-wide runtime; napi shuts it down with the last environment that
/// loaded the module. This runs as Node loads the addon, where a panic would abort
/// Node: if the runtime cannot be built, napi's default one is used instead.
#[napi_derive::module_init]
fn init() {
    js::testing::latch();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = worker_threads(std::env::var("WSRS_WORKERS").ok().as_deref(), cores);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("websocket-rs")
        .enable_all()
        .build();
    if let Ok(rt) = rt {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}

/// Worker threads for `cores` CPUs. On 2 cores or fewer, one: Node's JS thread,
/// which every message also crosses, then keeps a core. On 2 cores one worker
/// instead of two made echo at 16 connections 18% (64 B) and 27% (4 KiB) faster,
/// 5% at 64 connections (bench/RESULTS.md, notes). With more cores, two as before:
/// more has not been measured. `WSRS_WORKERS` (1 to 64) sets the number instead.
fn worker_threads(setting: Option<&str>, cores: usize) -> usize {
    match setting.and_then(|v| v.trim().parse::<usize>().ok()) {
        Some(n) if (1..=64).contains(&n) => n,
        _ if cores <= 2 => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod worker_tests {
    use super::worker_threads;

    #[test]
    fn one_worker_on_two_cores_or_fewer_else_two() {
        assert_eq!(worker_threads(None, 1), 1);
        assert_eq!(worker_threads(None, 2), 1);
        assert_eq!(worker_threads(None, 3), 2);
        assert_eq!(worker_threads(None, 16), 2);
    }

    #[test]
    fn takes_a_setting_from_1_to_64_and_ignores_any_other() {
        assert_eq!(worker_threads(Some("2"), 2), 2);
        assert_eq!(worker_threads(Some(" 8 "), 2), 8);
        for bad in ["0", "65", "-1", "two", ""] {
            assert_eq!(worker_threads(Some(bad), 4), 2, "{bad:?}");
            assert_eq!(worker_threads(Some(bad), 2), 1, "{bad:?}");
        }
    }
}
