use super::frame::{Payload, U32s};
use super::{close_code, inbox_for, invalid, pull, send_each, session_config, CopiedBuffer, SessionOptions};
use crate::client::{Client, ClientConfig};
use crate::inbox::Inbox;
use crate::proxy::ProxyOptions;
use crate::tls::{DefaultTrust, TlsOptions};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::Arc;
use std::time::Duration;

#[napi(object)]
pub struct ClientTls {
    /// PEM CA certificates; they replace the default trust (`ClientOptions.trust`).
    pub ca: Option<String>,
    pub cert: Option<String>,
    /// PEM private key, unencrypted.
    pub key: Option<String>,
    /// PEM certificates trusted besides `ca` or the default trust (a PKCS#12 bundle's others).
    pub extra_ca: Option<String>,
    /// Verify the server certificate. Default true.
    pub verify: Option<bool>,
    pub servername: Option<String>,
    pub alpn: Option<String>,
}

/// What Node.js trusts by default, used where no `tls-config` CA replaces it.
#[napi(object)]
pub struct ClientTrust {
    /// PEM certificates. Absent: Mozilla's list as built into the addon.
    pub ca: Option<Buffer>,
    /// Also trust OpenSSL's certificate files (Node's `--use-openssl-ca`; Linux).
    pub openssl_store: Option<bool>,
}

#[napi(object)]
pub struct ClientProxy {
    /// `proxyOptions.mode === "legacy"` (or NR_PROXY_MODE=legacy).
    pub legacy: Option<bool>,
    pub lower_case_only: Option<bool>,
    pub favour_upper_case: Option<bool>,
    pub exclude_npm: Option<bool>,
}

#[napi(object)]
pub struct ClientOptions {
    /// ws:// or wss:// URL.
    pub url: String,
    pub subprotocols: Option<Vec<String>>,
    /// Extra handshake headers as [name, value] pairs.
    pub headers: Option<Vec<Vec<String>>>,
    /// Ping this often, in milliseconds; no answer before the next ping drops the connection.
    pub heartbeat_ms: Option<u32>,
    pub tls: Option<ClientTls>,
    pub trust: Option<ClientTrust>,
    pub proxy: Option<ClientProxy>,
    /// Wait before reconnecting, in milliseconds. Default 3000 (as core); at least 100.
    pub reconnect_ms: Option<u32>,
    /// Cap of the doubling wait while the server keeps refusing. Default 60000.
    pub reconnect_max_ms: Option<u32>,
    /// Give up one attempt after this many milliseconds. Default 30000.
    pub connect_timeout_ms: Option<u32>,
    pub max_message_bytes: Option<f64>,
    pub max_queue_bytes: Option<f64>,
    /// "close" (default) or "drop", as for `Listener`.
    pub queue_policy: Option<String>,
    /// With no heartbeat, close a connection on which the server is silent this long (1001).
    pub idle_timeout_ms: Option<u32>,
    /// Redial after a connection ends or fails. Default true (as core).
    pub reconnect: Option<bool>,
    /// Dial at once. Default true; false: only when `connect()` is called.
    pub connect_at_start: Option<bool>,
}

fn header_pairs(pairs: Vec<Vec<String>>) -> Result<Vec<(String, String)>> {
    pairs
        .into_iter()
        .map(|pair| match <[String; 2]>::try_from(pair) {
            Ok([name, value]) => Ok((name, value)),
            Err(_) => Err(invalid("each header must be a [name, value] pair")),
        })
        .collect()
}

fn ms(v: Option<u32>, default: u64) -> Duration {
    Duration::from_millis(v.map_or(default, u64::from))
}

#[napi(js_name = "Client")]
pub struct JsClient {
    inner: Client,
    inbox: Arc<Inbox>,
}

#[napi]
impl JsClient {
    /// Starts connecting at once; `onEvents(batch)` as for `Listener`.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        options: ClientOptions,
        #[napi(ts_arg_type = "(batch: Buffer | Error) => void")] on_events: Function<'_, CopiedBuffer, ()>,
    ) -> Result<Self> {
        let headers = header_pairs(options.headers.unwrap_or_default())?;
        let tls = options.tls.map(|t| TlsOptions {
            ca: t.ca.map(String::into_bytes),
            cert: t.cert.map(String::into_bytes),
            key: t.key.map(String::into_bytes),
            extra_ca: t.extra_ca.map(String::into_bytes),
            verify: t.verify.unwrap_or(true),
            servername: t.servername,
            alpn: t.alpn,
        });
        let proxy = options.proxy.map_or_else(ProxyOptions::default, |p| ProxyOptions {
            legacy: p.legacy.unwrap_or(false),
            lower_case_only: p.lower_case_only.unwrap_or(false),
            favour_upper_case: p.favour_upper_case.unwrap_or(false),
            exclude_npm: p.exclude_npm.unwrap_or(false),
        });
        let cfg = ClientConfig {
            url: options.url,
            protocols: options.subprotocols.unwrap_or_default(),
            headers,
            session: session_config(SessionOptions {
                heartbeat_ms: options.heartbeat_ms,
                idle_timeout_ms: options.idle_timeout_ms,
                max_message_bytes: options.max_message_bytes,
                max_queue_bytes: options.max_queue_bytes,
                queue_policy: options.queue_policy,
            })?,
            tls,
            trust: options.trust.map_or_else(DefaultTrust::default, |t| {
                let openssl_store = t.openssl_store.unwrap_or(false);
                t.ca.map_or(DefaultTrust { listed: None, openssl_store }, |pem| {
                    DefaultTrust::from_pem(&pem, openssl_store)
                })
            }),
            proxy,
            reconnect_delay: ms(options.reconnect_ms, 3000),
            reconnect_max_delay: ms(options.reconnect_max_ms, 60_000),
            connect_timeout: ms(options.connect_timeout_ms.filter(|&v| v > 0), 30_000),
            reconnect: options.reconnect.unwrap_or(true),
            connect_at_start: options.connect_at_start.unwrap_or(true),
        };
        let inbox = inbox_for(on_events)?;
        Ok(JsClient { inner: Client::start(cfg, inbox.clone())?, inbox })
    }

    /// The next batch of events after an `onEvents` call, or null when none is
    /// left; the next event then calls `onEvents` again. Call it once per
    /// event-loop turn (setImmediate) until it returns null. An Error in place of
    /// a batch (here or to `onEvents`): its Buffer could not be made, and its
    /// events wait for the next pull. `spare`: an earlier batch's Buffer that
    /// nothing else views any more, to be filled again if the batch fits (then
    /// it is what is returned).
    #[napi(catch_unwind, ts_return_type = "Buffer | Error | null")]
    pub fn pull(&self, spare: Option<BufferSlice>) -> Option<CopiedBuffer> {
        pull(&self.inbox, spare)
    }

    /// Many sends in one call, in order: `targets[i]` is a session id (sent only
    /// if that connection is still the live one) or 0 (the live connection).
    /// Returns how many were queued.
    #[napi(catch_unwind)]
    pub fn send_many(
        &self,
        #[napi(ts_arg_type = "Uint32Array")] targets: U32s,
        #[napi(ts_arg_type = "Array<string | Uint8Array>")] payloads: Vec<Payload>,
    ) -> Result<u32> {
        send_each(&targets.0, payloads, |target, msg| self.inner.send((target != 0).then_some(target), msg) as u32)
    }

    /// Connect, or reconnect to a new `url` and/or with new `headers` ([name,
    /// value] pairs, replacing the configured ones). Already connected or
    /// connecting with neither given: nothing changes. A bad URL or header
    /// throws ERR_WSRS_INVALID_ARGUMENT and changes nothing.
    #[napi(catch_unwind)]
    pub fn connect(&self, url: Option<String>, headers: Option<Vec<Vec<String>>>) -> Result<()> {
        let headers = headers.map(header_pairs).transpose()?;
        Ok(self.inner.connect(url, headers)?)
    }

    /// Close the connection (1000) and stay disconnected until `connect()`.
    #[napi(catch_unwind)]
    pub fn disconnect(&self) {
        self.inner.disconnect();
    }

    /// The client's counters (`Stats`), read now.
    #[napi(catch_unwind)]
    pub fn stats(&self) -> crate::js::stats::Stats {
        self.inner.stats().into()
    }

    /// The live connection as a list of one, or none.
    #[napi(catch_unwind)]
    pub fn sessions(&self) -> crate::js::stats::SessionList {
        crate::js::stats::list(self.inner.sessions())
    }

    /// Stop reconnecting and close with `code` (default 1001); resolves when done.
    /// A code that must never be sent rejects with ERR_WSRS_INVALID_ARGUMENT.
    #[napi(catch_unwind)]
    pub async fn close(&self, code: Option<u32>) -> Result<()> {
        self.inner.close(close_code(code)?).await;
        Ok(())
    }
}
