//! Small server frames of one call from JS, written side by side into shared
//! blocks: one allocation per block instead of one per frame. Only frames for
//! the same session share a block (JS says where each run of them ends): they
//! wait in the same queue and are written together, so a block is freed when
//! that session has written them, and a slow peer keeps nothing of another's.
//!
//! Measured on the echo flow (16 x 64 B): the JS thread made and glibc
//! consolidated one chunk per reply, which the writing worker then freed.

use super::{server_frame_filled, Data, FrameHeader, OpCode};
use bytes::{Bytes, BytesMut};

/// Frames larger than this get an allocation of their own: beside their copy, one
/// allocation is little.
const SHARED_UP_TO: usize = 1024;
/// A block is sized for the frames left in its run, up to this.
const BLOCK_MAX: usize = 16 * 1024;
/// A frame's header and N-API's terminating NUL at most, beside its payload.
const OVERHEAD: usize = 10 + 1;

#[derive(Default)]
pub struct Blocks {
    block: BytesMut,
}

impl Blocks {
    /// A server frame as `server_frame_filled` makes it; `left` frames (this one
    /// included) remain in its run. The first frame of a block sizes it for the
    /// run's frames if they are about as large as this one.
    pub fn filled(
        &mut self,
        text: bool,
        len: usize,
        room: usize,
        left: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Bytes {
        let need = len.max(room) + OVERHEAD;
        if self.alone(need, left) {
            return server_frame_filled(text, len, room, fill);
        }
        if self.block.capacity() < need {
            self.block = BytesMut::with_capacity(need.saturating_mul(left).clamp(need, BLOCK_MAX.max(need)));
        }
        let opcode = OpCode::Data(if text { Data::Text } else { Data::Binary });
        let header = FrameHeader { is_final: true, rsv1: false, rsv2: false, rsv3: false, opcode, mask: None };
        let mut head = [0u8; 14];
        let mut w = &mut head[..];
        // Writing at most 14 bytes to a 14-byte slice cannot fail.
        let _ = header.format(len as u64, &mut w);
        let head_len = 14 - w.len();
        self.block.extend_from_slice(&head[..head_len]);
        self.block.resize(head_len + room.max(len), 0);
        let wrote = fill(&mut self.block[head_len..]).min(room.max(len));
        if wrote != len {
            // The header promised `len`: frame what was written instead (rare).
            let frame = super::encode(opcode, &self.block[head_len..head_len + wrote], None);
            self.block.clear();
            return frame;
        }
        self.block.truncate(head_len + len);
        self.block.split().freeze()
    }

    /// A binary frame of `payload`, as `filled` makes one.
    pub fn binary(&mut self, payload: &[u8], left: usize) -> Bytes {
        if self.alone(payload.len() + OVERHEAD, left) {
            return super::data_frame(false, payload, false);
        }
        self.filled(false, payload.len(), payload.len(), left, |room| {
            room[..payload.len()].copy_from_slice(payload);
            payload.len()
        })
    }

    /// Whether a frame needing `need` bytes gets an allocation of its own: exactly
    /// its size, without a block's shared header (a large frame, or the last of its
    /// run without room left in the block).
    fn alone(&self, need: usize, left: usize) -> bool {
        need > SHARED_UP_TO || (left <= 1 && self.block.capacity() < need)
    }

    /// The run ends: the next frame (another session's) starts a block of its own.
    pub fn end_run(&mut self) {
        self.block = BytesMut::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::data_frame;

    fn fill_with(payload: &[u8]) -> impl FnOnce(&mut [u8]) -> usize + '_ {
        move |room| {
            room[..payload.len()].copy_from_slice(payload);
            if room.len() > payload.len() {
                room[payload.len()] = 0; // as N-API writes its terminating NUL
            }
            payload.len()
        }
    }

    #[test]
    fn frames_in_blocks_are_the_frames_encoded_alone() {
        let mut blocks = Blocks::default();
        for len in [0, 1, 125, 126, 127, 500, 1000, 1013, 1014, 5000, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for (text, left) in [(false, 1), (false, 5), (true, 3), (true, 1)] {
                let frame = if text {
                    blocks.filled(true, len, len + 1, left, fill_with(&payload))
                } else {
                    blocks.binary(&payload, left)
                };
                assert_eq!(frame, data_frame(text, &payload, false), "{len} bytes, text {text}, {left} left");
            }
        }
    }

    #[test]
    fn a_run_shares_one_block_and_the_next_run_starts_another() {
        let mut blocks = Blocks::default();
        let run: Vec<Bytes> = (0..4).map(|i| blocks.filled(false, 64, 64, 4 - i, fill_with(&[7; 64]))).collect();
        for pair in run.windows(2) {
            // Side by side in memory: one allocation.
            assert_eq!(pair[0].as_ptr() as usize + pair[0].len(), pair[1].as_ptr() as usize);
        }
        blocks.end_run();
        let next = blocks.filled(false, 64, 64, 2, fill_with(&[8; 64]));
        let last = run.last().unwrap();
        assert_ne!(last.as_ptr() as usize + last.len(), next.as_ptr() as usize, "a new run, a new block");
        assert_eq!(next, data_frame(false, &[8; 64], false));
    }

    #[test]
    fn a_block_is_sized_for_its_run_not_beyond() {
        let mut blocks = Blocks::default();
        let _ = blocks.filled(false, 64, 64, 3, fill_with(&[1; 64]));
        // Room for three such frames (each counted with the largest header and a NUL), less the first.
        assert_eq!(blocks.block.capacity(), 3 * (64 + OVERHEAD) - (64 + 2));
        let mut blocks = Blocks::default();
        let _ = blocks.filled(false, 64, 64, 10_000, fill_with(&[1; 64]));
        assert!(blocks.block.capacity() <= BLOCK_MAX, "{}", blocks.block.capacity());
    }

    #[test]
    fn a_frame_filled_short_in_a_block_is_framed_by_what_was_written() {
        let mut blocks = Blocks::default();
        let short = blocks.filled(true, 200, 201, 3, |room| {
            room[..3].copy_from_slice(b"abc");
            3
        });
        assert_eq!(short, data_frame(true, b"abc", false));
        let after = blocks.filled(true, 2, 3, 2, fill_with(b"ok"));
        assert_eq!(after, data_frame(true, b"ok", false));
    }
}
