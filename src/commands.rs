//! What a listener's flow asks of its sessions in one event-loop turn, beyond
//! replies and broadcasts: multicast, room publishes, joining and leaving rooms,
//! and closing sessions. JS encodes a turn's requests as one program of u32 words,
//! so that they cross once and run in the order the flow made them:
//!
//! | op | words after it |
//! | --- | --- |
//! | `SEND` 1 | target (0: every session), payload |
//! | `MULTICAST` 2 | payload, n, n session ids |
//! | `PUBLISH` 3 | payload, n, n room names |
//! | `JOIN` 4, `LEAVE` 5 | n, n session ids, m, m room names |
//! | `CLOSE` 6 | n, n session ids, code, reason (a name, or `NONE`) |
//! | `ROOMS` 7 | n, n session ids: each one's rooms, reported as an event |
//!
//! A payload is an index into the payloads (each framed once, however many
//! sessions get it), a name an index into the names.

use bytes::Bytes;
use std::sync::Arc;

pub const SEND: u32 = 1;
pub const MULTICAST: u32 = 2;
pub const PUBLISH: u32 = 3;
pub const JOIN: u32 = 4;
pub const LEAVE: u32 = 5;
pub const CLOSE: u32 = 6;
pub const ROOMS: u32 = 7;
/// No reason given with a close.
pub const NONE: u32 = u32::MAX;
/// The most a close frame's reason may take (125 bytes of payload, 2 of them the code).
pub const MAX_REASON_BYTES: usize = 123;

#[derive(Debug, PartialEq)]
pub enum Op {
    /// Frames to sessions, in order (session 0: every session); a run of sends
    /// and multicasts becomes one of these.
    Send(Vec<(u32, Bytes)>),
    Publish {
        rooms: Vec<Arc<str>>,
        frame: Bytes,
    },
    Join {
        ids: Vec<u32>,
        rooms: Vec<Arc<str>>,
    },
    Leave {
        ids: Vec<u32>,
        rooms: Vec<Arc<str>>,
    },
    Close {
        ids: Vec<u32>,
        code: u16,
        reason: Arc<str>,
    },
    /// Report the rooms of each session (`inbox::Kind::Rooms`).
    Rooms {
        ids: Vec<u32>,
    },
}

/// Reads a program; any fault (an unknown op, an index out of range, a close code
/// that may not be sent, a reason too long) refuses the whole program, so that a
/// bad request never half-runs.
pub fn decode(words: &[u32], frames: &[Bytes], names: &[Arc<str>]) -> Result<Vec<Op>, String> {
    let mut ops = Vec::new();
    let mut sends: Vec<(u32, Bytes)> = Vec::new();
    let mut r = Reader { words, at: 0 };
    let frame = |i: u32| frames.get(i as usize).cloned().ok_or_else(|| format!("no payload {i}"));
    let name = |i: u32| names.get(i as usize).cloned().ok_or_else(|| format!("no name {i}"));
    while let Some(op) = r.next() {
        if !matches!(op, SEND | MULTICAST) && !sends.is_empty() {
            ops.push(Op::Send(std::mem::take(&mut sends)));
        }
        match op {
            SEND => {
                let target = r.word()?;
                sends.push((target, frame(r.word()?)?));
            }
            MULTICAST => {
                let f = frame(r.word()?)?;
                for id in r.list()? {
                    // 0 would be a broadcast: a multicast names sessions only.
                    if *id != 0 {
                        sends.push((*id, f.clone()));
                    }
                }
            }
            PUBLISH => {
                let frame = frame(r.word()?)?;
                let rooms = r.list()?.iter().map(|&i| name(i)).collect::<Result<_, _>>()?;
                ops.push(Op::Publish { rooms, frame });
            }
            JOIN | LEAVE => {
                let ids = r.list()?.to_vec();
                let rooms = r.list()?.iter().map(|&i| name(i)).collect::<Result<_, _>>()?;
                ops.push(if op == JOIN { Op::Join { ids, rooms } } else { Op::Leave { ids, rooms } });
            }
            CLOSE => {
                let ids = r.list()?.to_vec();
                let code = r.word()?;
                if !(code <= u16::MAX as u32 && crate::codec::close_code_allowed(code as u16)) {
                    return Err(format!("close code {code} may not be sent: use 1000-1003, 1007-1014 or 3000-4999"));
                }
                let reason = match r.word()? {
                    NONE => Arc::from(""),
                    i => name(i)?,
                };
                if reason.len() > MAX_REASON_BYTES {
                    return Err(format!("a close reason takes at most {MAX_REASON_BYTES} bytes, not {}", reason.len()));
                }
                ops.push(Op::Close { ids, code: code as u16, reason });
            }
            ROOMS => ops.push(Op::Rooms { ids: r.list()?.to_vec() }),
            other => return Err(format!("unknown op {other}")),
        }
    }
    if !sends.is_empty() {
        ops.push(Op::Send(sends));
    }
    Ok(ops)
}

struct Reader<'a> {
    words: &'a [u32],
    at: usize,
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Option<u32> {
        let w = self.words.get(self.at).copied();
        self.at += 1;
        w
    }

    fn word(&mut self) -> Result<u32, String> {
        self.next().ok_or_else(|| "the program ends inside an op".to_string())
    }

    /// A count, then that many words.
    fn list(&mut self) -> Result<&'a [u32], String> {
        let n = self.word()? as usize;
        let list = self.words.get(self.at..).and_then(|rest| rest.get(..n)).ok_or("a list runs past the program")?;
        self.at += n;
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<Arc<str>> {
        list.iter().map(|&r| Arc::from(r)).collect()
    }

    #[test]
    fn sends_and_multicasts_in_a_row_make_one_batch_and_other_ops_keep_their_place() {
        let frames = [Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        let names = names(&["lobby", "bye"]);
        let words = [
            SEND, 7, 0, MULTICAST, 1, 3, 7, 0, 9, JOIN, 1, 9, 1, 0, PUBLISH, 0, 1, 0, ROOMS, 1, 9, CLOSE, 2, 7, 9,
            4000, 1,
        ];
        let ops = decode(&words, &frames, &names).unwrap();
        assert_eq!(
            ops,
            [
                Op::Send(vec![(7, frames[0].clone()), (7, frames[1].clone()), (9, frames[1].clone())]),
                Op::Join { ids: vec![9], rooms: vec![names[0].clone()] },
                Op::Publish { rooms: vec![names[0].clone()], frame: frames[0].clone() },
                Op::Rooms { ids: vec![9] },
                Op::Close { ids: vec![7, 9], code: 4000, reason: names[1].clone() },
            ]
        );
        // The multicast's frames are the payload's bytes, not copies.
        let Op::Send(batch) = &ops[0] else { unreachable!() };
        assert_eq!(batch[2].1.as_ptr(), frames[1].as_ptr());
    }

    #[test]
    fn a_faulty_program_is_refused_whole() {
        let frames = [Bytes::from_static(b"a")];
        let long = "x".repeat(124);
        let names = names(&["ok", &long]);
        for (words, why) in [
            (vec![SEND, 1, 1], "no payload"),
            (vec![PUBLISH, 0, 1, 5], "no name"),
            (vec![CLOSE, 1, 5, 1005, NONE], "close code 1005"),
            (vec![CLOSE, 1, 5, 2999, NONE], "close code 2999"),
            (vec![CLOSE, 1, 5, 70_000, NONE], "close code 70000"),
            (vec![CLOSE, 1, 5, 1000, 1], "at most 123 bytes"),
            (vec![JOIN, 4, 1], "runs past"),
            (vec![SEND, 1], "ends inside"),
            (vec![9], "unknown op"),
        ] {
            let e = decode(&words, &frames, &names).expect_err(why);
            assert!(e.contains(why), "{words:?}: {e}");
        }
        assert!(decode(&[CLOSE, 1, 5, 1000, 0], &frames, &names).is_ok());
        assert!(decode(&[CLOSE, 1, 5, 4999, NONE], &frames, &names).is_ok());
    }
}
