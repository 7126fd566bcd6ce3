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

/// One process-wide runtime with two named workers; napi shuts it down with the
/// last environment that loaded the module. This runs as Node loads the addon, where
/// a panic would abort Node: if the runtime cannot be built, napi's default one is
/// used instead.
#[napi_derive::module_init]
fn init() {
    js::testing::latch();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("websocket-rs").enable_all().build();
    if let Ok(rt) = rt {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}
