use super::bridge::JsBridge;
use super::cluster::JsCluster;
use super::frame::{OwnedBytes, PayloadArray, ServerFrame, U32s};
use super::{close_code, inbox_for, invalid, pull, session_config, CopiedBuffer, SessionOptions};
use crate::auth::Auth;
use crate::cluster::{Cluster, Wire};
use crate::handshake::UpgradeRequest;
use crate::inbox::Inbox;
use crate::listener::{Listener, ListenerConfig};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::Arc;

#[napi(object)]
pub struct ListenerOptions {
    /// Ping every session this often, in milliseconds; 0 or absent: no heartbeat.
    pub heartbeat_ms: Option<u32>,
    /// Subprotocols spoken; absent or empty: answer the client's first choice, as core.
    pub subprotocols: Option<Vec<String>>,
    /// Largest message accepted from a client, in bytes. Default 100 MiB (as core's `ws`);
    /// at most `inbox::MAX_EVENT_BYTES` (a larger value counts as that).
    pub max_message_bytes: Option<f64>,
    /// Bytes that may queue for one client before the queue policy applies. Default 256 MiB.
    pub max_queue_bytes: Option<f64>,
    /// "close" (default): close a client whose queue is full with 1008; "drop":
    /// drop what does not fit, reported as `Dropped` events.
    pub queue_policy: Option<String>,
    /// With no heartbeat, close a client silent this long (1001). Absent or 0: never.
    pub idle_timeout_ms: Option<u32>,
    /// Refuse connections past this many (503). Absent or 0: no limit.
    pub max_connections: Option<u32>,
    /// Authentication at the handshake; absent: none (as core).
    pub auth: Option<AuthOptions>,
}

/// A client without a valid credential gets 401 and never reaches the flow.
#[napi(object)]
pub struct AuthOptions {
    /// "token" (a shared secret) or "jwt".
    pub mode: String,
    /// The shared token (mode "token").
    pub token: Option<String>,
    /// "HS256", "RS256" or "ES256" (mode "jwt").
    pub algorithm: Option<String>,
    /// HS256: the secret; RS256/ES256: the PEM public key.
    pub key: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// The query parameter that may carry the credential (default "access_token").
    pub param: Option<String>,
}

fn auth_of(options: Option<AuthOptions>) -> Result<Auth> {
    let Some(a) = options else { return Ok(Auth::None) };
    Ok(match a.mode.as_str() {
        "" | "none" => Auth::None,
        "token" => Auth::token(a.token.as_deref().unwrap_or(""), a.param)?,
        "jwt" => Auth::jwt(
            a.algorithm.as_deref().unwrap_or("HS256"),
            a.key.as_deref().unwrap_or(""),
            a.issuer,
            a.audience,
            a.param,
        )?,
        other => return Err(invalid(format!("unknown authentication mode {other:?}"))),
    })
}

/// The request fields the handshake needs, as Node's HTTP parser saw them.
#[napi(object)]
pub struct UpgradeInfo {
    pub method: String,
    pub upgrade: String,
    pub key: String,
    pub version: String,
    pub protocol: String,
    /// Handed back with the session's open event once it has opened (the connect
    /// info of `websocket in` events); absent when nobody asked for it.
    pub announce: Option<String>,
    /// The `Authorization` header and the request target (`req.url`), needed only
    /// by a listener with authentication.
    pub authorization: Option<String>,
    pub url: Option<String>,
    /// The peer's address as Node saw it, for the session list.
    pub remote: Option<String>,
}

impl From<UpgradeInfo> for UpgradeRequest {
    fn from(u: UpgradeInfo) -> Self {
        UpgradeRequest {
            method: u.method,
            upgrade: u.upgrade,
            key: u.key,
            version: u.version,
            protocol: u.protocol,
            announce: u.announce.map(String::into_bytes).unwrap_or_default(),
            authorization: u.authorization.unwrap_or_default(),
            target: u.url.unwrap_or_default(),
        }
    }
}

#[napi(js_name = "Listener")]
pub struct JsListener {
    inner: Listener,
    inbox: Arc<Inbox>,
    /// The cluster this listener's broadcasts and room publishes also go to, and
    /// the path that names the listener there.
    cluster: parking_lot::Mutex<Option<(Arc<Cluster>, String, u64)>>,
}

#[napi]
impl JsListener {
    /// `onEvents(batch)` receives inbound events in batches (layout in src/inbox.rs)
    /// when they arrive after none were waiting; JS then takes the rest with `pull`.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        options: ListenerOptions,
        #[napi(ts_arg_type = "(batch: Buffer | Error) => void")] on_events: Function<'_, CopiedBuffer, ()>,
    ) -> Result<Self> {
        let session = session_config(SessionOptions {
            heartbeat_ms: options.heartbeat_ms,
            idle_timeout_ms: options.idle_timeout_ms,
            max_message_bytes: options.max_message_bytes,
            max_queue_bytes: options.max_queue_bytes,
            queue_policy: options.queue_policy,
        })?;
        let cfg = ListenerConfig {
            session,
            protocols: options.subprotocols.unwrap_or_default(),
            max_connections: options.max_connections.filter(|&n| n > 0).map(|n| n as usize),
            auth: auth_of(options.auth)?,
        };
        let inbox = inbox_for(on_events)?;
        Ok(JsListener { inner: Listener::new(cfg, inbox.clone()), inbox, cluster: Default::default() })
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

    /// Adopt an upgraded TCP connection by descriptor. Returns the session id, or
    /// the HTTP response to write when the handshake request is refused.
    #[napi(catch_unwind)]
    pub fn adopt(
        &self,
        fd: i32,
        #[napi(ts_arg_type = "Uint8Array")] head: OwnedBytes,
        request: UpgradeInfo,
    ) -> Result<Either<u32, String>> {
        #[cfg(unix)]
        {
            let remote = request.remote.clone();
            let r = self.inner.adopt_fd(fd, head.0, &request.into())?;
            if let (Ok(id), Some(remote)) = (&r, remote) {
                self.inner.set_remote(*id, &remote);
            }
            Ok(r.map_or_else(|rej| Either::B(rej.http_response()), Either::A))
        }
        #[cfg(not(unix))]
        {
            let _ = (fd, head, request);
            Err(super::invalid("descriptor handover needs a Unix system"))
        }
    }

    /// Run a session over a connection whose bytes JS carries (a TLS socket):
    /// `onOutput(kind, bytes)` gets 1 = write these (and report them with
    /// `written` once the socket took them), 2 = resume reading, 3 = end.
    /// Returns the bridge, or the HTTP response to write when refused.
    #[napi(catch_unwind, ts_return_type = "Bridge | string")]
    pub fn bridge(
        &self,
        #[napi(ts_arg_type = "Uint8Array")] head: OwnedBytes,
        request: UpgradeInfo,
        #[napi(ts_arg_type = "(kind: number, bytes: Buffer | Error) => void")] on_output: Function<
            '_,
            FnArgs<(u32, CopiedBuffer)>,
            (),
        >,
    ) -> Result<Either<JsBridge, String>> {
        let remote = request.remote.clone();
        let bridge = JsBridge::start(&self.inner, head.0, &request.into(), on_output)?;
        if let (Either::A(b), Some(remote)) = (&bridge, remote) {
            self.inner.set_remote(b.id(), &remote);
        }
        Ok(bridge)
    }

    /// The listener's counters (`Stats`), read now: one call, no hot-path cost.
    #[napi(catch_unwind)]
    pub fn stats(&self) -> crate::js::stats::Stats {
        self.inner.stats().into()
    }

    /// The first sessions in `query.sort` order (default: most queued first),
    /// at most `query.limit` (default 100), and how many there are.
    #[napi(catch_unwind)]
    pub fn sessions(&self, query: Option<crate::js::stats::SessionQuery>) -> Result<crate::js::stats::SessionList> {
        let (order, limit) = crate::js::stats::query(query)?;
        Ok(crate::js::stats::list(self.inner.sessions(order, limit)))
    }

    /// Queue many messages in one call, in order: `targets[i]` is a session id,
    /// or 0 for a broadcast of `payloads[i]` (its bytes shared by every session).
    /// Sending happens on the listener's own task; returns how many were taken.
    #[napi(catch_unwind)]
    pub fn send_many(
        &self,
        #[napi(ts_arg_type = "Uint32Array")] targets: U32s,
        #[napi(ts_arg_type = "Array<string | Uint8Array>")] payloads: PayloadArray,
    ) -> Result<u32> {
        let U32s(targets) = targets;
        // Encoded here, once: a broadcast's sessions all write these bytes.
        let frames = payloads.server_frames(&targets)?;
        let batch: Vec<_> = targets.into_iter().zip(frames).collect();
        if let Some((cluster, path, _)) = &*self.cluster.lock() {
            for (_, frame) in batch.iter().filter(|(target, _)| *target == 0) {
                cluster.send(path, Wire::Broadcast { frame: frame.clone() });
            }
        }
        let taken = batch.len() as u32;
        self.inner.send_frames(batch);
        Ok(taken)
    }

    /// Run a turn's requests of the flow, in order: `ops` is a program as described
    /// in src/commands.rs, `payloads` the messages it sends (each framed once) and
    /// `names` its room names and close reasons. A faulty program runs not at all
    /// and throws ERR_WSRS_INVALID_ARGUMENT. Returns the number of ops' words.
    #[napi(catch_unwind)]
    pub fn run(
        &self,
        #[napi(ts_arg_type = "Uint32Array")] ops: U32s,
        #[napi(ts_arg_type = "Array<string | Uint8Array>")] payloads: Vec<ServerFrame>,
        names: Vec<String>,
    ) -> Result<u32> {
        let frames: Vec<_> = payloads.into_iter().map(|frame| frame.0).collect();
        let names: Vec<std::sync::Arc<str>> = names.into_iter().map(Into::into).collect();
        let program = crate::commands::decode(&ops.0, &frames, &names).map_err(invalid)?;
        if let Some((cluster, path, _)) = &*self.cluster.lock() {
            cluster.send_ops(path, &program);
        }
        self.inner.run(program);
        Ok(ops.0.len() as u32)
    }

    /// Every room with its number of members (for tests and diagnostics).
    #[napi(catch_unwind)]
    pub fn rooms(&self) -> std::collections::HashMap<String, u32> {
        self.inner.rooms().into_iter().map(|(name, n)| (name, n as u32)).collect()
    }

    /// From now on, broadcasts and room publishes also go to the other instances
    /// of `cluster`, and theirs for `path` come here.
    #[napi(catch_unwind)]
    pub fn attach_cluster(&self, cluster: &JsCluster, path: String) {
        let token = cluster.inner.attach(&path, self.inner.clone());
        if let Some((old, old_path, old_token)) = self.cluster.lock().replace((cluster.inner.clone(), path, token)) {
            old.detach(&old_path, old_token);
        }
    }

    /// Sends `payload` to sessions `ids` of instance `instance` (12 hex digits)
    /// through the cluster; false if there is no cluster or the id is not one.
    #[napi(catch_unwind)]
    pub fn send_remote(
        &self,
        instance: String,
        ids: Vec<u32>,
        #[napi(ts_arg_type = "string | Uint8Array")] payload: ServerFrame,
    ) -> bool {
        let Some((cluster, path, _)) = &*self.cluster.lock() else { return false };
        let Ok(instance) = u64::from_str_radix(&instance, 16) else { return false };
        cluster.send(path, Wire::Direct { instance, ids, frame: payload.0 });
        true
    }

    /// Close every session with `code` (default 1001) and stop; resolves when done.
    /// A code that must never be sent rejects with ERR_WSRS_INVALID_ARGUMENT.
    #[napi(catch_unwind)]
    pub async fn close(&self, code: Option<u32>) -> Result<()> {
        if let Some((cluster, path, token)) = self.cluster.lock().take() {
            cluster.detach(&path, token);
        }
        self.inner.close(close_code(code)?).await;
        Ok(())
    }
}
