//! What one instance publishes for the others, as bytes:
//!
//! | bytes | |
//! | --- | --- |
//! | 1 | version (1) |
//! | 1 | kind: 1 broadcast, 2 room publish, 3 direct |
//! | 8 | the publishing instance (little-endian) |
//! | kind 2 | u16 n, then n × (u16 length, UTF-8 room name) |
//! | kind 3 | u64 the instance addressed, u16 n, n × u32 session number |
//! | rest | the WebSocket frame, encoded once by the sender and written as is |
//!
//! Carrying the frame, not the message, means no instance frames it again.

use bytes::Bytes;

const VERSION: u8 = 1;

#[derive(Debug, PartialEq)]
pub enum Wire<'a> {
    Broadcast { frame: Bytes },
    Publish { rooms: Vec<&'a str>, frame: Bytes },
    Direct { instance: u64, ids: Vec<u32>, frame: Bytes },
}

impl<'a> Wire<'a> {
    pub fn encode(&self, origin: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.frame().len());
        out.push(VERSION);
        out.push(match self {
            Wire::Broadcast { .. } => 1,
            Wire::Publish { .. } => 2,
            Wire::Direct { .. } => 3,
        });
        out.extend_from_slice(&origin.to_le_bytes());
        match self {
            Wire::Broadcast { .. } => {}
            Wire::Publish { rooms, .. } => {
                // A room name is a flow's string: one longer than 64 KiB is cut
                // off the list rather than corrupting the message.
                let rooms: Vec<_> =
                    rooms.iter().filter(|r| r.len() <= u16::MAX as usize).take(u16::MAX as usize).collect();
                out.extend_from_slice(&(rooms.len() as u16).to_le_bytes());
                for r in rooms {
                    out.extend_from_slice(&(r.len() as u16).to_le_bytes());
                    out.extend_from_slice(r.as_bytes());
                }
            }
            Wire::Direct { instance, ids, .. } => {
                out.extend_from_slice(&instance.to_le_bytes());
                let ids = &ids[..ids.len().min(u16::MAX as usize)];
                out.extend_from_slice(&(ids.len() as u16).to_le_bytes());
                for id in ids {
                    out.extend_from_slice(&id.to_le_bytes());
                }
            }
        }
        out.extend_from_slice(self.frame());
        out
    }

    /// Whether every room name and the number of rooms fit the encoding (a
    /// name of at most 64 KiB, at most 65 535 rooms); `encode` leaves out what does not.
    pub fn rooms_fit(&self) -> bool {
        match self {
            Wire::Publish { rooms, .. } => {
                rooms.len() <= u16::MAX as usize && rooms.iter().all(|r| r.len() <= u16::MAX as usize)
            }
            _ => true,
        }
    }

    /// A direct send to more sessions than one message names (65 535), as
    /// several messages; anything else as it is.
    pub fn split(self) -> Vec<Wire<'a>> {
        match self {
            Wire::Direct { instance, mut ids, frame } if ids.len() > u16::MAX as usize => {
                ids.sort_unstable();
                ids.dedup();
                ids.chunks(u16::MAX as usize)
                    .map(|c| Wire::Direct { instance, ids: c.to_vec(), frame: frame.clone() })
                    .collect()
            }
            w => vec![w],
        }
    }

    /// The length of `encode`'s result, without making it.
    pub fn encoded_len(&self) -> usize {
        10 + self.frame().len()
            + match self {
                Wire::Broadcast { .. } => 0,
                Wire::Publish { rooms, .. } => {
                    2 + rooms
                        .iter()
                        .filter(|r| r.len() <= u16::MAX as usize)
                        .take(u16::MAX as usize)
                        .map(|r| 2 + r.len())
                        .sum::<usize>()
                }
                Wire::Direct { ids, .. } => 8 + 2 + 4 * ids.len().min(u16::MAX as usize),
            }
    }

    fn frame(&self) -> &Bytes {
        match self {
            Wire::Broadcast { frame } | Wire::Publish { frame, .. } | Wire::Direct { frame, .. } => frame,
        }
    }

    /// The publishing instance and the message; None for anything malformed
    /// (or of a later version), which is ignored.
    pub fn decode(data: &'a [u8]) -> Option<(u64, Wire<'a>)> {
        let mut r = Reader(data);
        if r.take(1)? != [VERSION] {
            return None;
        }
        let kind = r.take(1)?[0];
        let origin = r.u64()?;
        let what = match kind {
            1 => Wire::Broadcast { frame: Bytes::new() },
            2 => {
                let n = r.u16()?;
                let mut rooms = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let len = r.u16()? as usize;
                    rooms.push(std::str::from_utf8(r.take(len)?).ok()?);
                }
                Wire::Publish { rooms, frame: Bytes::new() }
            }
            3 => {
                let instance = r.u64()?;
                let n = r.u16()?;
                let mut ids: Vec<u32> = (0..n).map(|_| r.u32()).collect::<Option<_>>()?;
                // A session named twice gets the message once, as locally.
                ids.sort_unstable();
                ids.dedup();
                Wire::Direct { instance, ids, frame: Bytes::new() }
            }
            _ => return None,
        };
        if !one_whole_frame(r.0) {
            return None;
        }
        let frame = Bytes::copy_from_slice(r.0);
        Some((
            origin,
            match what {
                Wire::Broadcast { .. } => Wire::Broadcast { frame },
                Wire::Publish { rooms, .. } => Wire::Publish { rooms, frame },
                Wire::Direct { instance, ids, .. } => Wire::Direct { instance, ids, frame },
            },
        ))
    }
}

/// Whether `f` is exactly one frame as `codec::data_frame` makes them: final,
/// text or binary, no extension bits, unmasked, its length in the shortest
/// form, and text that is UTF-8. Anything else that came over Redis (a close
/// frame, a fragment, a bad length) never reaches a client.
fn one_whole_frame(f: &[u8]) -> bool {
    let text = match f.first() {
        Some(0x81) => true,
        Some(0x82) => false,
        _ => return false,
    };
    let Some(&len) = f.get(1) else { return false };
    let (header, payload) = match len {
        126 => (4, f.get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]]) as u64).filter(|&n| n >= 126)),
        127 => (
            10,
            f.get(2..10)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .filter(|&n| n > u16::MAX as u64 && n >> 63 == 0),
        ),
        // Also refuses the mask bit (len ≥ 128).
        n if n < 126 => (2, Some(n as u64)),
        _ => return false,
    };
    if payload.is_none_or(|p| f.len() as u64 != header + p) {
        return false;
    }
    !text || std::str::from_utf8(&f[header as usize..]).is_ok()
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}
