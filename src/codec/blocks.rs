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
pub const SHARED_UP_TO: usize = 1024;
/// A block is sized for the frames left in its run, as large as this one, up to
/// this (which bounds the room a run of frames of mixed sizes leaves unused).
pub const BLOCK_MAX: usize = 4096;

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
        let opcode = OpCode::Data(if text { Data::Text } else { Data::Binary });
        let header = FrameHeader { is_final: true, rsv1: false, rsv2: false, rsv3: false, opcode, mask: None };
        let frame_len = header.len(len as u64) + len;
        // `room` past the payload (N-API's terminating NUL) is needed while filling only.
        let need = frame_len + room.saturating_sub(len);
        if self.alone(need, left) {
            return server_frame_filled(text, len, room, fill);
        }
        if self.block.capacity() < need {
            let run = frame_len.saturating_mul(left) + (need - frame_len);
            self.block = BytesMut::with_capacity(run.clamp(need, BLOCK_MAX));
        }
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
        if payload.len() > SHARED_UP_TO {
            // No zero-filling first, as `filled` would for a frame of its own.
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

/// The frames of payloads `0..targets.len()` (`frame(i, blocks, left)` makes the
/// i-th with `Blocks::filled` or `binary`), each run of the same target sharing blocks.
pub fn frames_by_run<E>(
    targets: &[u32],
    mut frame: impl FnMut(usize, &mut Blocks, usize) -> Result<Bytes, E>,
) -> Result<Vec<Bytes>, E> {
    let mut blocks = Blocks::default();
    let mut frames = Vec::with_capacity(targets.len());
    let mut run_end = 0;
    for (i, &target) in targets.iter().enumerate() {
        if i == run_end {
            blocks.end_run();
            run_end = i + targets[i..].iter().take_while(|&&t| t == target).count();
        }
        frames.push(frame(i, &mut blocks, run_end - i)?);
    }
    Ok(frames)
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

    fn payload(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| ((i + seed) % 251) as u8).collect()
    }

    /// Whether `b` starts where `a` ends: the same block.
    fn adjacent(a: &Bytes, b: &Bytes) -> bool {
        a.as_ptr() as usize + a.len() == b.as_ptr() as usize
    }

    #[test]
    fn frames_in_blocks_are_the_frames_encoded_alone_after_the_whole_run() {
        let lens = [0, 1, 125, 126, 127, 500, 1000, 1013, 1014, 1020, 1025, 5000, 65536, 70000];
        let mut blocks = Blocks::default();
        let mut made = Vec::new();
        for (k, &len) in lens.iter().enumerate() {
            let p = payload(len, k);
            for (text, left) in [(false, 9), (true, 3), (false, 2), (true, 1)] {
                let frame =
                    if text { blocks.filled(true, len, len + 1, left, fill_with(&p)) } else { blocks.binary(&p, left) };
                made.push((frame, data_frame(text, &p, false), len, text));
            }
        }
        // Checked once all are made: no frame was written over by a later one.
        for (frame, expected, len, text) in &made {
            assert_eq!(frame, expected, "{len} bytes, text {text}");
        }
        // The control: small frames did share blocks, large ones did not.
        let shared = made.windows(2).filter(|w| adjacent(&w[0].0, &w[1].0)).count();
        assert!(shared > 10, "{shared} frames followed the previous one in its block");
        assert!(made.windows(2).all(|w| !adjacent(&w[0].0, &w[1].0) || w[1].2 + 4 <= SHARED_UP_TO));
    }

    #[test]
    fn runs_share_blocks_and_never_one_with_another_target() {
        let targets = [1, 1, 2, 1, 0, 0, 0, 3];
        // A run's last frames smaller than its first, so that its block has room
        // left when the next run starts.
        let sizes = [64, 10, 10, 64, 64, 64, 10, 10];
        let frames =
            frames_by_run(&targets, |i, blocks, left| Ok::<_, ()>(blocks.binary(&payload(sizes[i], i), left))).unwrap();
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(frame, &data_frame(false, &payload(sizes[i], i), false), "frame {i}");
        }
        let next_to: Vec<bool> = frames.windows(2).map(|w| adjacent(&w[0], &w[1])).collect();
        // 1 1 | 2 | 1 | 0 0 0 | 3: within a run side by side, across runs never.
        assert_eq!(next_to, [true, false, false, false, true, true, false]);
    }

    #[test]
    fn a_block_is_sized_for_its_run_not_beyond() {
        let mut blocks = Blocks::default();
        let _ = blocks.binary(&[1; 64], 3);
        // Three frames of 2 + 64 bytes, less the first one made.
        assert_eq!(blocks.block.capacity(), 2 * 66);
        let mut blocks = Blocks::default();
        let _ = blocks.filled(true, 64, 65, 3, fill_with(&[b'a'; 64]));
        // Text: one byte more, for N-API's NUL after the last.
        assert_eq!(blocks.block.capacity(), 2 * 66 + 1);
        let mut blocks = Blocks::default();
        let _ = blocks.binary(&[1; 64], 10_000);
        assert_eq!(blocks.block.capacity(), BLOCK_MAX - 66);
    }

    #[test]
    fn the_last_frame_of_a_run_without_room_left_is_allocated_alone() {
        let mut blocks = Blocks::default();
        let first = blocks.binary(&[1; 64], 2);
        let second = blocks.binary(&[2; 64], 1);
        assert!(adjacent(&first, &second), "room was left for it");
        let alone = blocks.binary(&[3; 64], 1);
        assert!(!adjacent(&second, &alone));
        assert_eq!(blocks.block.capacity(), 0, "no block was made for it");
    }

    #[test]
    fn a_frame_filled_short_in_a_block_is_framed_by_what_was_written() {
        let mut blocks = Blocks::default();
        let short = blocks.filled(true, 200, 201, 3, |room| {
            room[..3].copy_from_slice(b"abc");
            3
        });
        let after = blocks.filled(true, 2, 3, 2, fill_with(b"ok"));
        // Checked after the next frame reused the block's room.
        assert_eq!(short, data_frame(true, b"abc", false));
        assert_eq!(after, data_frame(true, b"ok", false));
    }
}
