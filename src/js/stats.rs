//! The live counters as plain JS objects (`stats()`, `sessions()`), read on demand.

use crate::stats::{Order, SessionRow, Snapshot};
use napi_derive::napi;
use std::collections::HashMap;

/// A config node's counters. Numbers are f64: JS has no u64, and counts stay
/// exact up to 2^53.
#[napi(object)]
pub struct Stats {
    pub connections: u32,
    pub peak: u32,
    pub opens: f64,
    /// Close code → how many sessions ended with it (1006: without a close frame).
    pub closes: HashMap<String, f64>,
    pub msgs_in: f64,
    pub msgs_out: f64,
    /// Wire bytes, frame headers included.
    pub bytes_in: f64,
    pub bytes_out: f64,
    pub queued_bytes: f64,
    pub queued_peak: f64,
    /// Messages dropped by the queue policy "drop".
    pub dropped: f64,
    /// Sessions closed (1008) because their queue passed its cap.
    pub queue_full: f64,
    /// Handshakes refused past the connection limit (503).
    pub refused_too_many: f64,
    /// Handshakes refused as invalid (or with no common subprotocol).
    pub refused_handshake: f64,
    /// Refused for want of a valid credential (401).
    pub refused_auth: f64,
    /// A client's failed connection attempts.
    pub connect_failed: f64,
}

impl From<Snapshot> for Stats {
    fn from(s: Snapshot) -> Self {
        Stats {
            connections: s.connections as u32,
            peak: s.peak as u32,
            opens: s.opens as f64,
            closes: s.closes.into_iter().map(|(c, n)| (c.to_string(), n as f64)).collect(),
            msgs_in: s.traffic.msgs_in as f64,
            msgs_out: s.traffic.msgs_out as f64,
            bytes_in: s.traffic.bytes_in as f64,
            bytes_out: s.traffic.bytes_out as f64,
            queued_bytes: s.queued as f64,
            queued_peak: s.queued_peak as f64,
            dropped: s.dropped as f64,
            queue_full: s.queue_full as f64,
            refused_too_many: s.refused_too_many as f64,
            refused_handshake: s.refused_handshake as f64,
            refused_auth: s.refused_auth as f64,
            connect_failed: s.connect_failed as f64,
        }
    }
}

#[napi(object)]
pub struct SessionInfo {
    /// The addon's number for the session (JS turns it into `_session.id`).
    pub id: u32,
    pub remote: String,
    pub protocol: String,
    /// Milliseconds since the Unix epoch.
    pub since: f64,
    pub msgs_in: f64,
    pub msgs_out: f64,
    pub bytes_in: f64,
    pub bytes_out: f64,
    pub queued_bytes: f64,
    pub queued_peak: f64,
    pub dropped: f64,
    pub rooms: Vec<String>,
}

#[napi(object)]
pub struct SessionList {
    /// All sessions, however many are listed.
    pub total: u32,
    pub sessions: Vec<SessionInfo>,
}

#[napi(object)]
pub struct SessionQuery {
    /// "queued" (default), "in", "out" or "since": largest (oldest) first.
    pub sort: Option<String>,
    /// At most this many (default 100, at most 10 000).
    pub limit: Option<u32>,
}

pub const MAX_LIMIT: u32 = 10_000;

pub fn query(q: Option<SessionQuery>) -> napi::Result<(Order, usize)> {
    let (sort, limit) = q.map_or((None, None), |q| (q.sort, q.limit));
    let order = Order::parse(sort.as_deref())
        .ok_or_else(|| super::invalid(format!("sort must be queued, in, out or since, got {sort:?}")))?;
    Ok((order, limit.unwrap_or(100).min(MAX_LIMIT) as usize))
}

pub fn list((total, rows): (usize, Vec<SessionRow>)) -> SessionList {
    let sessions = rows
        .into_iter()
        .map(|r| SessionInfo {
            id: r.id,
            remote: r.about.remote,
            protocol: r.about.protocol,
            since: r.since_ms as f64,
            msgs_in: r.traffic.msgs_in as f64,
            msgs_out: r.traffic.msgs_out as f64,
            bytes_in: r.traffic.bytes_in as f64,
            bytes_out: r.traffic.bytes_out as f64,
            queued_bytes: r.queued as f64,
            queued_peak: r.queued_peak as f64,
            dropped: r.dropped as f64,
            rooms: r.rooms,
        })
        .collect();
    SessionList { total: total as u32, sessions }
}
