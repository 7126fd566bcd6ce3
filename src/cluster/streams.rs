//! The recovery mode: the instances share one Redis Stream per listener path
//! instead of a Pub/Sub channel (README, "Several Node-RED instances").
//!
//! Publishing: every copy is an XADD with `MAXLEN ~ retention`, pipelined; a
//! batch that fails for want of Redis is kept and sent again, in order, once
//! Redis is back (up to MAX_PENDING_BYTES waiting). Each entry carries a
//! sequence number of its process, so that a batch sent twice (its first reply
//! lost with the link) is delivered once.
//!
//! Reading: one connection, one XREAD BLOCK over every stream followed, from the
//! last id read in each. A stream starts being followed at its end (no history
//! replayed) and is followed for the cluster's life, so a redeployed listener
//! misses nothing. After a reconnection each stream is checked: gone or behind
//! us (Redis restarted without persistence) means following it from its new
//! start; entries we had not read already trimmed means a warning.

use super::{Cluster, Event, Reporter, BATCH, HEALTH_CHECK, RETRY_FIRST, RETRY_LAST, TIMEOUT};
use redis::streams::{
    StreamAddOptions, StreamRangeReply, StreamReadOptions, StreamReadReply, StreamTrimStrategy, StreamTrimmingMode,
};
use redis::{AsyncCommands, RetryMethod, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Weak;
use tokio::sync::{mpsc, watch};

/// A stream entry id, `<ms>-<n>`, ordered as Redis orders them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Id(u64, u64);

impl Id {
    pub fn parse(s: &str) -> Option<Id> {
        let (ms, n) = s.split_once('-')?;
        Some(Id(ms.parse().ok()?, n.parse().ok()?))
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// The next sequence number of this process's publishes. Per process, not per
/// cluster node: a redeployed node keeps counting up, or the others would take
/// its first publishes for copies of ones they have delivered.
pub fn next_seq() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// What a reconnection finds in a stream we had read up to `seen`, given its
/// first and newest entries now.
#[derive(Debug, PartialEq)]
pub enum Resume {
    /// Read on after `seen`.
    Continue,
    /// The stream is gone, or restarted below `seen`: read it from its start.
    Lost,
    /// Entries after `seen` may have been trimmed; read on with what is left.
    Trimmed,
}

pub fn resume(seen: Id, first: Option<Id>, newest: Option<Id>) -> Resume {
    if seen == Id::default() {
        return Resume::Continue;
    }
    match (first, newest) {
        (_, None) => Resume::Lost,
        (_, Some(n)) if n < seen => Resume::Lost,
        (Some(f), _) if f > seen => Resume::Trimmed,
        _ => Resume::Continue,
    }
}

/// Where the reader stands, kept across reconnections.
#[derive(Default)]
pub struct Follow {
    /// Per stream key: the last id read.
    last: HashMap<String, Id>,
    /// Per stream key and publishing instance: the highest sequence delivered.
    seen: HashMap<String, HashMap<u64, u64>>,
}

impl Follow {
    /// One entry of stream `key`: to the listener, unless it is ours or a copy
    /// of one delivered already.
    pub fn entry(&mut self, cluster: &Cluster, key: &str, id: Id, seq: Option<u64>, data: Option<&[u8]>) {
        if let Some(last) = self.last.get_mut(key) {
            *last = (*last).max(id);
        }
        let (Some(seq), Some(data)) = (seq, data) else { return };
        let Some((origin, what)) = super::Wire::decode(data) else { return };
        if origin == cluster.instance {
            return;
        }
        let seen = self.seen.entry(key.to_owned()).or_default().entry(origin).or_default();
        if seq <= *seen {
            return;
        }
        *seen = seq;
        if let Some(path) = key.strip_prefix(cluster.prefix.as_str()) {
            cluster.hand(path, what);
        }
    }
}

fn field<'v>(map: &'v HashMap<String, Value>, name: &str) -> Option<&'v [u8]> {
    match map.get(name)? {
        Value::BulkString(b) => Some(b),
        _ => None,
    }
}

/// Sends what `Cluster::send` queued as XADDs, many per round trip; a batch
/// that fails for want of Redis waits and is sent again, before anything after it.
pub async fn publisher(
    cluster: Weak<Cluster>,
    client: redis::Client,
    mut rx: mpsc::UnboundedReceiver<(String, u64, Vec<u8>)>,
    mut stop: watch::Receiver<bool>,
    retention: usize,
) {
    let Ok(mut conn) = super::manager(client) else { return };
    let opts =
        StreamAddOptions::default().trim(StreamTrimStrategy::maxlen(StreamTrimmingMode::Approx, retention.max(1)));
    let mut batch = Vec::with_capacity(BATCH);
    let mut wait = RETRY_FIRST;
    loop {
        if batch.is_empty() {
            tokio::select! {
                _ = stop.changed() => return,
                n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
            }
        }
        let mut pipe = redis::pipe();
        for (key, seq, data) in &batch {
            let seq = seq.to_string();
            pipe.xadd_options(key, "*", &[("q", seq.as_bytes()), ("m", data.as_slice())], &opts).ignore();
        }
        let sent = tokio::time::timeout(TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
        let Some(c) = cluster.upgrade() else { return };
        let refused = match sent {
            Ok(Ok(())) => None,
            Ok(Err(e)) if matches!(e.retry_method(), RetryMethod::NoRetry) => Some(e.to_string()),
            _ => {
                // Redis unreachable or too slow: the same batch again, later.
                drop(c);
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(RETRY_LAST);
                continue;
            }
        };
        wait = RETRY_FIRST;
        let n = batch.len();
        let bytes: usize = batch.drain(..).map(|(k, _, d)| super::cost(&k, &d)).sum();
        c.pending.fetch_sub(bytes, Ordering::AcqRel);
        match refused {
            // Refused for good (a key of another type, an ACL): sending it again would block the rest.
            Some(why) => c.dropping(n, why),
            None => c.got_through(),
        }
    }
}

/// One reading connection, until it fails (why) or a listener is attached
/// (None: come back at once to follow its stream too).
pub async fn follow(
    cluster: &Weak<Cluster>,
    client: &redis::Client,
    f: &mut Follow,
    r: &mut Reporter,
) -> Option<String> {
    let cfg = redis::AsyncConnectionConfig::new().set_connection_timeout(Some(TIMEOUT)).set_response_timeout(None);
    let mut conn = match tokio::time::timeout(TIMEOUT, client.get_multiplexed_async_connection_with_config(&cfg)).await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Some(e.to_string()),
        Err(_) => return Some("no answer from Redis".into()),
    };
    let (attached, mut keys) = {
        let c = cluster.upgrade()?;
        let paths: Vec<String> = c.listeners.lock().keys().map(|p| format!("{}{}", c.prefix, p)).collect();
        (c.attached.clone(), paths)
    };
    keys.extend(f.last.keys().filter(|k| !keys.contains(k)).cloned().collect::<Vec<_>>());
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.xrange_count(k, "-", "+", 1).xrevrange_count(k, "+", "-", 1);
    }
    let ends = match tokio::time::timeout(TIMEOUT, pipe.query_async::<Vec<StreamRangeReply>>(&mut conn)).await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return Some(e.to_string()),
        Err(_) => return Some("no answer from Redis".into()),
    };
    let c = cluster.upgrade()?;
    let id = |r: &StreamRangeReply| r.ids.first().and_then(|e| Id::parse(&e.id));
    for (key, ends) in keys.iter().zip(ends.chunks(2)) {
        let (first, newest) = (id(&ends[0]), ends.get(1).and_then(id));
        let Some(seen) = f.last.get_mut(key) else {
            // Followed from now on: what came before is history, not ours to replay.
            f.last.insert(key.clone(), newest.unwrap_or_default());
            continue;
        };
        let path = key.strip_prefix(c.prefix.as_str()).unwrap_or(key).to_owned();
        match resume(*seen, first, newest) {
            Resume::Continue => {}
            Resume::Lost => {
                *seen = Id::default();
                c.emit(Event::Lost(path));
            }
            Resume::Trimmed => c.emit(Event::Trimmed(path)),
        }
    }
    r.report(Event::Connected, &c);
    drop(c);
    let opts = StreamReadOptions::default().block(HEALTH_CHECK.as_millis() as usize).count(BATCH);
    loop {
        let keys: Vec<&String> = f.last.keys().collect();
        let ids: Vec<String> = f.last.values().map(Id::to_string).collect();
        let read = async {
            if keys.is_empty() {
                // Nothing to follow yet: a ping instead, to notice a dead link.
                tokio::time::sleep(HEALTH_CHECK).await;
                return conn.ping::<Value>().await.map(|_| None);
            }
            conn.xread_options::<_, _, Option<StreamReadReply>>(&keys, &ids, &opts).await
        };
        let reply = tokio::select! {
            _ = attached.notified() => return None,
            r = tokio::time::timeout(HEALTH_CHECK + TIMEOUT, read) => r,
        };
        let reply = match reply {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Some(e.to_string()),
            Err(_) => return Some("no answer from Redis".into()),
        };
        let c = cluster.upgrade()?;
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            for e in stream.ids {
                let Some(id) = Id::parse(&e.id) else { continue };
                let seq = field(&e.map, "q").and_then(|q| std::str::from_utf8(q).ok()?.parse().ok());
                f.entry(&c, &stream.key, id, seq, field(&e.map, "m"));
            }
        }
    }
}

#[cfg(test)]
mod tests;
