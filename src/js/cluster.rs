use super::invalid;
use crate::cluster::{Cluster, ClusterConfig, State};
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
    /// Channel names start with this.
    pub prefix: Option<String>,
}

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
    /// `onState(connected, reason)` hears of each change of the link to Redis
    /// (a Redis that stays down is reported once).
    #[napi(constructor, catch_unwind)]
    pub fn new(options: ClusterOptions, on_state: Function<'_, FnArgs<(bool, String)>, ()>) -> Result<Self> {
        let mut url = options.url;
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(invalid(format!("a cluster URL starts with redis:// or rediss://, not {url:?}")));
        }
        // The crate's own switch for an unverified TLS link.
        if url.starts_with("rediss://") && options.verify == Some(false) && !url.contains('#') {
            url.push_str("#insecure");
        }
        let tsfn =
            on_state.build_threadsafe_function::<State>().weak::<true>().callee_handled::<false>().build_callback(
                |ctx| {
                    Ok(FnArgs::from(match ctx.value {
                        State::Connected => (true, String::new()),
                        State::Disconnected(why) => (false, why),
                    }))
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
        };
        let on_state = Box::new(move |s| {
            tsfn.call(s, ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(JsCluster { inner: Cluster::start(cfg, on_state)? })
    }

    #[napi(getter)]
    pub fn connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Publishes dropped so far (Redis unreachable or too slow).
    #[napi(getter)]
    pub fn dropped(&self) -> f64 {
        self.inner.dropped() as f64
    }

    /// Stops and lets go of the link; listeners attached are detached.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        self.inner.close();
    }
}
