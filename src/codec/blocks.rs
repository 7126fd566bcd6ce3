//! Small server frames of one call from JS, written side by side into shared
//! blocks: one allocation per block instead of one per frame. Only frames for
//! the same session share a block (JS says where each run of them ends): they
//! wait in the same queue and are written together, so a block is freed when
//! that session has written them, and a slow peer keeps nothing of another's.
//!
//! Measured on the echo flow (16 x 64 B): the JS thread made and glibc
//! consolidated one chunk per reply, which the writing worker then freed.

use super::{server_frame_filled, Data, FrameHeader, OpCode};
use bytes::{BufMut, Bytes, BytesMut};

/// Frames larger than this get an allocation of their own: beside their copy, one
/// allocation is little.
pub const SHARED_UP_TO: usize = 1024;
/// A block is sized for the frames left in its run, as large as the first, up to
/// this; a block mostly left unused (later frames smaller) is given up for an exact
/// copy of its frames (`frames_by_run`).
pub const BLOCK_MAX: usize = 4096;

#[derive(Default)]
pub struct Blocks {
    block: BytesMut,
    /// The current block's size when made, and the bytes of the frames cut from it.
    size: usize,
    used: usize,
    /// Whether the last frame made was cut from the current block.
    took: bool,
    /// A block just left behind (`retire`): whether most of it went unused.
    retired: Option<bool>,
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
        self.took = false;
        if self.alone(need, left) {
            return server_frame_filled(text, len, room, fill);
        }
        if self.block.capacity() < need {
            let run = frame_len.saturating_mul(left) + (need - frame_len);
            self.retire();
            self.size = run.clamp(need, BLOCK_MAX);
            self.block = BytesMut::with_capacity(self.size);
        }
        // Writing to a BytesMut cannot fail; the block is empty before each frame.
        let _ = header.format(len as u64, &mut (&mut self.block).writer());
        let head_len = self.block.len();
        self.block.resize(head_len + room.max(len), 0);
        let wrote = fill(&mut self.block[head_len..]).min(room.max(len));
        if wrote != len {
            // The header promised `len`: frame what was written instead (rare).
            let frame = super::encode(opcode, &self.block[head_len..head_len + wrote], None);
            self.block.clear();
            return frame;
        }
        self.block.truncate(head_len + len);
        self.used += head_len + len;
        self.took = true;
        self.block.split().freeze()
    }

    /// A binary frame of `payload`, as `filled` makes one.
    pub fn binary(&mut self, payload: &[u8], left: usize) -> Bytes {
        // Past this (with its header) a frame is alone in any case.
        if payload.len() + 4 > SHARED_UP_TO {
            self.took = false;
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
        self.retire();
        self.block = BytesMut::new();
    }

    /// The current block is done with: note whether most of it went unused (a run
    /// whose later frames were smaller than its first), as its frames would keep
    /// that room allocated, uncounted by the session's queue, while they wait.
    fn retire(&mut self) {
        if self.used > 0 {
            let unused = self.size - self.used;
            self.retired = Some(unused > self.used && unused >= 256);
        }
        (self.size, self.used) = (0, 0);
    }
}

/// After a block was left behind: its frames (`members`) copied out if most of it
/// went unused, and the list cleared for the next block.
fn settle(blocks: &mut Blocks, frames: &mut [Bytes], members: &mut Vec<usize>) {
    if let Some(wasteful) = blocks.retired.take() {
        if wasteful {
            compact(frames, members);
        }
        members.clear();
    }
}

/// Copies the frames at `members` into one allocation of their exact size.
fn compact(frames: &mut [Bytes], members: &[usize]) {
    let mut all = Vec::with_capacity(members.iter().map(|&i| frames[i].len()).sum());
    for &i in members {
        all.extend_from_slice(&frames[i]);
    }
    let all = Bytes::from(all);
    let mut at = 0;
    for &i in members {
        let len = frames[i].len();
        frames[i] = all.slice(at..at + len);
        at += len;
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
    // The frames cut from the current block, by index (a large frame of the same
    // run may come between them).
    let mut members = Vec::new();
    let mut run_end = 0;
    for (i, &target) in targets.iter().enumerate() {
        if i == run_end {
            blocks.end_run();
            settle(&mut blocks, &mut frames, &mut members);
            run_end = i + targets[i..].iter().take_while(|&&t| t == target).count();
        }
        let made = frame(i, &mut blocks, run_end - i)?;
        // A new block for this frame left the last one behind.
        settle(&mut blocks, &mut frames, &mut members);
        if blocks.took {
            members.push(i);
        }
        frames.push(made);
    }
    blocks.end_run();
    settle(&mut blocks, &mut frames, &mut members);
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
        let mut lefts = Vec::new();
        let frames = frames_by_run(&targets, |i, blocks, left| {
            lefts.push(left);
            Ok::<_, ()>(blocks.binary(&payload(sizes[i], i), left))
        })
        .unwrap();
        assert_eq!(lefts, [2, 1, 1, 1, 3, 2, 1, 1], "frames left in each one's run");
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
        assert!(!blocks.took, "not cut from a block made for it");
        assert_eq!(blocks.block.capacity(), 0, "no block was made for it");
    }

    #[tokio::test]
    async fn a_block_mostly_unused_is_given_up_for_an_exact_copy_of_its_frames() {
        // A run of one 64-byte frame, then empty ones: its block is sized for 62 of
        // the first (4 KiB), and 188 bytes of frames are cut from it.
        let mut targets = vec![5; 62];
        targets.push(6);
        let sizes = |i: usize| if i == 0 || i == 62 { 64 } else { 0 };
        let (frames, held) = crate::test_alloc::net_bytes(async {
            frames_by_run(&targets, |i, blocks, left| Ok::<_, ()>(blocks.binary(&payload(sizes(i), i), left))).unwrap()
        })
        .await;
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(frame, &data_frame(false, &payload(sizes(i), i), false), "frame {i}");
        }
        let bytes: usize = frames.iter().map(|f| f.len()).sum();
        let list = frames.capacity() * std::mem::size_of::<Bytes>();
        // The frames, the list of them and a shared header or two; without the copy
        // the 4 KiB block would be held.
        assert!(held > 0 && (held as usize) < bytes + list + 256, "held {held}, frames {bytes}, list {list}");
        assert!(frames.windows(2).take(61).all(|w| adjacent(&w[0], &w[1])), "copied side by side");
    }

    #[test]
    fn a_block_well_used_is_kept() {
        let mut blocks = Blocks::default();
        let _ = blocks.binary(&[1; 64], 3);
        let _ = blocks.binary(&[1; 64], 2);
        blocks.end_run();
        assert_eq!(blocks.retired, Some(false));
        let _ = blocks.binary(&[1; 64], 3);
        let _ = blocks.binary(&[], 2);
        blocks.end_run();
        // The control: 68 of 198 bytes used.
        assert_eq!(blocks.retired, Some(false), "under 256 bytes unused is not worth a copy");
        let _ = blocks.binary(&[1; 600], 3);
        let _ = blocks.binary(&[], 2);
        blocks.end_run();
        assert_eq!(blocks.retired, Some(true));
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
