use super::invalid;
use crate::cluster::{Cluster, ClusterConfig, Event, Mode};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use std::sync::Arc;

#[napi(object)]
pub struct ClusterOptions {
    /// redis://host:port/db or rediss://… (TLS).
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM: the roots to trust (absent: the system's), a client certificate and key.
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    /// Verify the server's certificate (default true).
    pub verify: Option<bool>,
    /// Channel (or stream) names start with this.
    pub prefix: Option<String>,
    /// "pubsub" (default: at most once) or "streams" (replays what an outage missed).
    pub mode: Option<String>,
    /// Streams mode: entries kept per stream, about (default 10 000).
    pub retention: Option<u32>,
}

/// Entries a stream keeps (MAXLEN ~) when the node does not say.
const RETENTION: u32 = 10_000;

/// This process's id in the cluster (12 hex digits): the prefix of its session ids.
#[cfg_attr(test, allow(dead_code))]
#[napi(catch_unwind)]
pub fn instance_id() -> String {
    format!("{:012x}", crate::cluster::instance_id())
}

#[napi(js_name = "Cluster")]
pub struct JsCluster {
    pub(super) inner: Arc<Cluster>,
}

#[napi]
impl JsCluster {
    /// `onEvent(kind, detail)` hears of each change of the link to Redis
    /// ("connected", "disconnected" with the reason; a Redis that stays down is
    /// reported once) and of losses: "lost" and "trimmed" (Streams mode, with the
    /// path), "dropped" (with the reason) and "toolarge" ("<size> <limit>" in
    /// bytes: a message kept local, at most once a minute) and "roomstoolong" (a
    /// room publish's rooms over 64 KiB left out for other instances, likewise).
    #[napi(constructor, catch_unwind)]
    pub fn new(options: ClusterOptions, on_event: Function<'_, FnArgs<(String, String)>, ()>) -> Result<Self> {
        let mut url = options.url;
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            // Not echoed: it may hold a password.
            return Err(invalid("a cluster URL starts with redis:// or rediss://"));
        }
        // The crate's own switch for an unverified TLS link.
        if url.starts_with("rediss://") && options.verify == Some(false) && !url.contains('#') {
            url.push_str("#insecure");
        }
        let mode = match options.mode.as_deref() {
            None | Some("" | "pubsub") => Mode::PubSub,
            Some("streams") => {
                Mode::Streams { retention: options.retention.filter(|&n| n > 0).unwrap_or(RETENTION) as usize }
            }
            Some(other) => return Err(invalid(format!("a cluster mode is \"pubsub\" or \"streams\", not {other:?}"))),
        };
        let tsfn =
            on_event.build_threadsafe_function::<Event>().weak::<true>().callee_handled::<false>().build_callback(
                |ctx| {
                    let (kind, detail) = match ctx.value {
                        Event::Connected => ("connected", String::new()),
                        Event::Disconnected(why) => ("disconnected", why),
                        Event::Lost(path) => ("lost", path),
                        Event::Trimmed(path) => ("trimmed", path),
                        Event::Dropped(why) => ("dropped", why),
                        Event::TooLarge { size, limit } => ("toolarge", format!("{size} {limit}")),
                        Event::RoomsTooLong => ("roomstoolong", String::new()),
                    };
                    Ok(FnArgs::from((kind.to_owned(), detail)))
                },
            )?;
        let cfg = ClusterConfig {
            url,
            username: options.username,
            password: options.password,
            ca: options.ca,
            cert: options.cert,
            key: options.key,
            prefix: options.prefix.unwrap_or_default(),
            mode,
            max_message: 0,
        };
        let on_event = Arc::new(move |e| {
            tsfn.call(e, ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(JsCluster { inner: Cluster::start(cfg, on_event)? })
    }

    #[napi(getter)]
    pub fn connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Messages other instances did not get so far (Redis unreachable or too
    /// slow, refused, or over the size limit).
    #[napi(getter)]
    pub fn dropped(&self) -> f64 {
        self.inner.dropped() as f64
    }

    /// Of those, messages over the size limit (kept local).
    #[napi(getter)]
    pub fn too_large(&self) -> f64 {
        self.inner.too_large() as f64
    }

    /// Stops and lets go of the link; listeners attached are detached.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        self.inner.close();
    }
}
