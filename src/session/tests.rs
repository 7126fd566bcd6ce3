//! The session's behaviour on in-memory pipes, on tokio's paused clock.

use super::*;
use crate::inbox::{Kind, HIGH_WATER_BYTES};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::WebSocketStream;

fn inbox() -> Arc<Inbox> {
    Inbox::new(Box::new(|_| {}))
}

/// An inbox whose wake-ups arrive on the returned channel.
fn watched_inbox() -> (Arc<Inbox>, mpsc::UnboundedReceiver<Arc<Inbox>>) {
    let (tx, wakes) = mpsc::unbounded_channel();
    (
        Inbox::new(Box::new(move |i| {
            let _ = tx.send(i);
        })),
        wakes,
    )
}

/// A session over a pipe of `capacity` bytes; `client` for the client end.
fn spawn_on(
    cfg: &SessionConfig,
    capacity: usize,
    client: bool,
    inbox: Arc<Inbox>,
) -> (SessionHandle, Arc<Shared>, JoinHandle<Ended>, DuplexStream) {
    let (ours, peer) = tokio::io::duplex(capacity);
    let (handle, shared) = SessionHandle::new(cfg, client);
    let session = Session::new(ours, Vec::new(), 1, shared.clone(), inbox, cfg);
    (handle, shared, tokio::spawn(session), peer)
}

/// A server session whose peer never reads (a 1 KiB pipe it leaves full).
fn stalled(cfg: SessionConfig) -> (SessionHandle, JoinHandle<Ended>, DuplexStream) {
    let (handle, _, task, peer) = spawn_on(&cfg, 1024, false, inbox());
    (handle, task, peer)
}

/// A server session, its peer as a tungstenite client, and the inbox's wake-ups.
async fn pair(
    cfg: &SessionConfig,
) -> (SessionHandle, JoinHandle<Ended>, WebSocketStream<DuplexStream>, mpsc::UnboundedReceiver<Arc<Inbox>>) {
    let (inbox, wakes) = watched_inbox();
    let (handle, _, task, peer) = spawn_on(cfg, 64 * 1024, false, inbox);
    (handle, task, WebSocketStream::from_raw_socket(peer, Role::Client, None).await, wakes)
}

async fn ended(task: JoinHandle<Ended>) -> Ended {
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("ended in time").unwrap()
}

/// The next close frame the peer reads, skipping other messages.
async fn close_frame(peer: &mut WebSocketStream<DuplexStream>) -> Option<(u16, String)> {
    loop {
        match peer.next().await {
            Some(Ok(Message::Close(f))) => return f.map(|f| (u16::from(f.code), f.reason.to_string())),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

/// A masked text frame with mask key 0, so the payload goes as it is.
fn text_frame_header(len: usize) -> Vec<u8> {
    assert!(len < 126);
    vec![0x81, 0x80 | len as u8, 0, 0, 0, 0]
}

/// Reads the next frame the server sent, as (opcode, payload), within 5 s.
async fn next_frame(peer: &mut DuplexStream) -> (u8, Vec<u8>) {
    let read = async {
        let mut head = [0u8; 2];
        peer.read_exact(&mut head).await.unwrap();
        assert!(head[1] < 126, "short frames only here");
        let mut payload = vec![0u8; head[1] as usize];
        peer.read_exact(&mut payload).await.unwrap();
        (head[0] & 0x0f, payload)
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.expect("a frame within 5 s")
}

fn word(batch: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(batch[i..i + 4].try_into().unwrap())
}

#[tokio::test(start_paused = true)]
async fn sending_while_the_peer_closes_ends_with_its_code_and_no_error() {
    // A client session: the server closes (1000); after the client's reply the
    // flow sends one more message, then the server drops TCP.
    let (handle, _, task, theirs) = spawn_on(&SessionConfig::default(), 64 * 1024, true, inbox());
    let mut server = WebSocketStream::from_raw_socket(theirs, Role::Server, None).await;
    let bye = CloseFrame { code: CloseCode::Normal, reason: Utf8Bytes::from_static("bye") };
    server.send(Message::Close(Some(bye))).await.unwrap();
    assert_eq!(close_frame(&mut server).await, Some((1000, "bye".into())), "the client echoes the close");
    handle.send(Message::Text("one more".into()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(server); // the server closes TCP first, as RFC 6455 says
    let ended = ended(task).await;
    assert_eq!(ended.code, 1000, "{ended:?}");
    assert!(ended.error.is_none(), "{ended:?}");
}

#[tokio::test(start_paused = true)]
async fn a_server_closing_ends_with_the_peers_answer() {
    let (handle, task, mut client, _wakes) = pair(&SessionConfig::default()).await;
    handle.send(Message::text("last words"));
    handle.close(1001);
    assert_eq!(client.next().await.unwrap().unwrap(), Message::text("last words"));
    // tungstenite answers the close; the server then drops the connection.
    assert_eq!(close_frame(&mut client).await, Some((1001, String::new())));
    let _ = client.next().await; // sends tungstenite's answer
    assert_eq!(ended(task).await.code, 1001);
}

#[tokio::test(start_paused = true)]
async fn an_oversized_message_is_refused_with_1009() {
    let cfg = SessionConfig { max_message_bytes: 1024, ..Default::default() };
    let (_handle, task, mut client, _wakes) = pair(&cfg).await;
    client.send(Message::Binary(vec![7u8; 4096].into())).await.unwrap();
    let ended = ended(task).await;
    assert!(ended.error.unwrap_or_default().contains("too big"));
    assert_eq!(close_frame(&mut client).await.map(|c| c.0), Some(1009));
}

#[tokio::test(start_paused = true)]
async fn pings_are_answered_and_messages_delivered_in_order() {
    let (_handle, task, mut client, mut wakes) = pair(&SessionConfig::default()).await;
    client.send(Message::Ping(Bytes::from_static(b"p1"))).await.unwrap();
    client.send(Message::text("a")).await.unwrap();
    client.send(Message::binary(vec![1, 2])).await.unwrap();
    assert_eq!(client.next().await.unwrap().unwrap(), Message::Pong(Bytes::from_static(b"p1")));
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let batch = wakes.recv().await.unwrap().drain_as_js();
        kinds.extend((0..word(&batch, 0) as usize).map(|i| word(&batch, 4 + 16 * i)));
    }
    assert_eq!(kinds, [Kind::Text as u32, Kind::Binary as u32]);
    assert!(!task.is_finished());
}

#[tokio::test(start_paused = true)]
async fn every_ping_of_a_burst_read_at_once_is_answered_in_order() {
    // As Autobahn 2.10: ten pings in one read.
    let (_handle, _, _task, mut peer) = spawn_on(&SessionConfig::default(), 64 * 1024, false, inbox());
    let mut burst = Vec::new();
    for i in 0..10u8 {
        burst.extend_from_slice(&[0x89, 0x81, 0, 0, 0, 0, b'0' + i]);
    }
    peer.write_all(&burst).await.unwrap();
    for i in 0..10u8 {
        assert_eq!(next_frame(&mut peer).await, (0xa, vec![b'0' + i]), "pong {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn heartbeat_drops_a_peer_that_stopped_reading_even_mid_write() {
    let cfg = SessionConfig { heartbeat: Some(Duration::from_millis(50)), ..Default::default() };
    let (handle, task, _peer) = stalled(cfg);
    assert!(handle.send(Message::Binary(vec![0u8; 64 * 1024].into())));
    let ended = tokio::time::timeout(Duration::from_secs(3), task).await.expect("dropped in time").unwrap();
    assert!(ended.error.unwrap_or_default().contains("heartbeat"));
}

#[tokio::test(start_paused = true)]
async fn a_long_frame_still_arriving_counts_as_a_live_peer() {
    // Heartbeat 50 ms: two silent intervals would drop the peer. It uploads one
    // 60 000-byte frame in pieces over 400 ms and never answers a ping.
    let cfg = SessionConfig { heartbeat: Some(Duration::from_millis(50)), ..Default::default() };
    let (inbox, mut events) = watched_inbox();
    let (handle, _, task, mut peer) = spawn_on(&cfg, 256 * 1024, false, inbox);
    let len: usize = 60_000;
    let mut header = vec![0x82, 0x80 | 126];
    header.extend_from_slice(&(len as u16).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]); // mask key 0: payload sent as is
    peer.write_all(&header).await.unwrap();
    for _ in 0..20 {
        peer.write_all(&[b'a'; 3000]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!task.is_finished(), "dropped while the frame was still arriving");
    }
    let inbox = tokio::time::timeout(Duration::from_secs(2), events.recv()).await.unwrap().unwrap();
    let batch = inbox.drain_as_js();
    assert_eq!(word(&batch, 4), Kind::Binary as u32);
    assert_eq!(word(&batch, 12) as usize, len);
    // The control: the same peer, silent from now on, is dropped.
    let ended = tokio::time::timeout(Duration::from_secs(2), task).await.expect("dropped in time").unwrap();
    assert!(ended.error.unwrap_or_default().contains("heartbeat"));
    drop(handle);
}

#[tokio::test(start_paused = true)]
async fn the_flows_reply_goes_out_before_the_close_that_reports_a_protocol_error() {
    let (inbox, mut wakes) = watched_inbox();
    let (handle, _, task, mut peer) = spawn_on(&SessionConfig::default(), 64 * 1024, false, inbox);
    // As Autobahn 3.2: a good message, then a frame with a reserved bit set.
    let mut bytes = text_frame_header(5);
    bytes.extend_from_slice(b"hello");
    bytes.extend_from_slice(&[0xa1, 0x80, 0, 0, 0, 0]);
    peer.write_all(&bytes).await.unwrap();
    // The flow answers 10 ms after the message reaches it, and again after the grace.
    let inbox = wakes.recv().await.unwrap();
    assert_eq!(word(&inbox.drain_as_js(), 4), Kind::Text as u32);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(handle.send(Message::text("echo")));
    let (opcode, payload) = next_frame(&mut peer).await;
    assert_eq!((opcode, payload.as_slice()), (1, &b"echo"[..]), "the reply comes first");
    tokio::time::sleep(ERROR_GRACE).await;
    handle.send(Message::text("too late"));
    let (opcode, payload) = next_frame(&mut peer).await;
    assert_eq!(opcode, 8, "then the close frame, not the late reply");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1002);
    let ended = ended(task).await;
    assert!(ended.error.unwrap_or_default().contains("protocol error"));
}

#[tokio::test(start_paused = true)]
async fn invalid_utf8_fails_while_its_frame_is_still_arriving() {
    let (_handle, _, task, mut peer) = spawn_on(&SessionConfig::default(), 64 * 1024, false, inbox());
    // As Autobahn 6.4.3: one text frame in three chops a second apart, the second
    // making it invalid (f4 90: past U+10FFFF).
    let good = "κόσμε".as_bytes();
    let mut bytes = text_frame_header(good.len() + 4 + 6);
    bytes.extend_from_slice(good);
    peer.write_all(&bytes).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!task.is_finished(), "a valid start is accepted");
    peer.write_all(b"\xf4\x90\x80\x80").await.unwrap();
    let (opcode, payload) = tokio::time::timeout(Duration::from_secs(1), next_frame(&mut peer))
        .await
        .expect("closed before the rest of the frame came");
    assert_eq!(opcode, 8);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1007);
    assert!(ended(task).await.error.unwrap_or_default().contains("UTF-8"));
}

#[tokio::test(start_paused = true)]
async fn a_text_event_says_whether_its_text_is_all_ascii() {
    // JS makes the string of an all-ASCII text (extra 1) as Latin-1.
    let (inbox, mut wakes) = watched_inbox();
    let (_handle, _, _task, mut peer) = spawn_on(&SessionConfig::default(), 64 * 1024, false, inbox);
    let mut bytes = Vec::new();
    for text in ["ok", "κ", "", "\u{7f}"] {
        bytes.extend_from_slice(&text_frame_header(text.len()));
        bytes.extend_from_slice(text.as_bytes());
    }
    // Fragmented: ASCII, then ASCII with one non-ASCII fragment.
    for fragments in [&["ab", "c"][..], &["a", "é", "b"][..]] {
        for (i, f) in fragments.iter().enumerate() {
            let opcode = if i == 0 { 0x01 } else { 0x00 };
            let fin = if i == fragments.len() - 1 { 0x80 } else { 0 };
            bytes.extend_from_slice(&[fin | opcode, 0x80 | f.len() as u8, 0, 0, 0, 0]);
            bytes.extend_from_slice(f.as_bytes());
        }
    }
    peer.write_all(&bytes).await.unwrap();
    let batch = wakes.recv().await.unwrap().drain_as_js();
    assert_eq!(word(&batch, 0), 6, "all six in one batch");
    let extras: Vec<u32> = (0..6).map(|i| word(&batch, 4 + 16 * i + 12)).collect();
    assert_eq!(extras, [1, 0, 1, 1, 1, 0]);
}

#[tokio::test(start_paused = true)]
async fn the_messages_of_one_read_share_one_allocation_that_holds_little_else() {
    let (inbox, mut wakes) = watched_inbox();
    let (_handle, _, _task, mut peer) = spawn_on(&SessionConfig::default(), 64 * 1024, false, inbox);
    // Three whole messages and one in two fragments, read at once.
    let mut bytes = Vec::new();
    for text in ["first", "second", "third"] {
        bytes.extend_from_slice(&text_frame_header(text.len()));
        bytes.extend_from_slice(text.as_bytes());
    }
    bytes.extend_from_slice(&[0x01, 0x82, 0, 0, 0, 0]);
    bytes.extend_from_slice(b"fr");
    bytes.extend_from_slice(&[0x80, 0x83, 0, 0, 0, 0]);
    bytes.extend_from_slice(b"ags");
    peer.write_all(&bytes).await.unwrap();
    let inbox = wakes.recv().await.unwrap();
    let payloads = inbox.queued_payloads();
    assert_eq!(payloads, ["first", "second", "third", "frags"].map(|t| Bytes::from(t.as_bytes())));
    for pair in payloads[..3].windows(2) {
        // Side by side: one allocation for the read (each its own would have
        // the allocator's headers between them).
        assert_eq!(pair[1].as_ptr(), pair[0].as_ptr().wrapping_add(pair[0].len()));
    }
    drop(payloads);
    inbox.drain_as_js();

    // A read that is mostly the start of a longer frame: the whole message in it
    // is copied out on its own, so it does not hold the read's room.
    let mut bytes = text_frame_header(2);
    bytes.extend_from_slice(b"ok");
    bytes.extend_from_slice(&[0x81, 0xfe, 0x03, 0xe8, 0, 0, 0, 0]);
    bytes.extend_from_slice(&[b'x'; 200]);
    peer.write_all(&bytes).await.unwrap();
    let inbox = wakes.recv().await.unwrap();
    let mut payloads = inbox.queued_payloads();
    inbox.drain_as_js();
    assert_eq!(payloads.len(), 1);
    let alone = payloads.pop().unwrap().try_into_mut().expect("nothing else holds it");
    assert_eq!((&alone[..], alone.capacity()), (&b"ok"[..], 2));
}

#[tokio::test(start_paused = true)]
async fn a_message_read_with_the_start_of_bad_text_is_still_delivered() {
    let (inbox, mut wakes) = watched_inbox();
    let (_handle, _, task, mut peer) = spawn_on(&SessionConfig::default(), 64 * 1024, false, inbox);
    let mut bytes = text_frame_header(2);
    bytes.extend_from_slice(b"ok");
    bytes.extend_from_slice(&text_frame_header(10));
    bytes.extend_from_slice(b"ab\xff");
    peer.write_all(&bytes).await.unwrap();
    let batch = wakes.recv().await.unwrap().drain_as_js();
    assert_eq!((word(&batch, 0), word(&batch, 4)), (1, Kind::Text as u32));
    assert_eq!(&batch[batch.len() - 2..], b"ok");
    let (opcode, payload) = next_frame(&mut peer).await;
    assert_eq!((opcode, u16::from_be_bytes([payload[0], payload[1]])), (8, 1007));
    ended(task).await;
}

#[tokio::test(start_paused = true)]
async fn queue_cap_closes_a_peer_that_stopped_reading() {
    let cfg = SessionConfig { max_queue_bytes: 100 * 1024, ..Default::default() };
    let (handle, task, _peer) = stalled(cfg);
    let refused = (0..20).filter(|_| !handle.send(Message::Binary(vec![0u8; 16 * 1024].into()))).count();
    assert!(refused > 0, "sends past the cap are refused");
    assert!(ended(task).await.error.unwrap_or_default().contains("send queue full"));
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_closes_a_silent_peer_with_1001_and_spares_a_talking_one() {
    let cfg = SessionConfig { idle: Some(Duration::from_millis(100)), ..Default::default() };
    let (_h1, silent_task, mut silent, _w1) = pair(&cfg).await;
    let (_h2, talking_task, mut talking, _w2) = pair(&cfg).await;
    let talker = tokio::spawn(async move {
        for i in 0..25 {
            talking.send(Message::text(format!("{i}"))).await.unwrap();
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        talking
    });
    let ended = tokio::time::timeout(Duration::from_secs(1), silent_task).await.expect("closed in time").unwrap();
    assert_eq!(ended.code, IDLE_CLOSE);
    assert!(ended.error.is_none(), "an idle close is not an error: {ended:?}");
    assert_eq!(close_frame(&mut silent).await, Some((1001, "idle timeout".into())));
    // The control: the peer that kept talking for the whole second is still there.
    let _talking = talker.await.unwrap();
    assert!(!talking_task.is_finished(), "a peer that talks was closed");
}

#[tokio::test(start_paused = true)]
async fn with_the_heartbeat_on_the_idle_timeout_gives_way_to_it() {
    let cfg = SessionConfig {
        heartbeat: Some(Duration::from_millis(100)),
        idle: Some(Duration::from_millis(10)),
        ..Default::default()
    };
    // This peer sends nothing of its own, but reads, so it answers pings.
    let (_handle, answering_task, mut answering, _wakes) = pair(&cfg).await;
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = answering.next().await {} });
    let (_mute_handle, mute_task, _mute) = stalled(cfg);
    let ended = tokio::time::timeout(Duration::from_secs(2), mute_task).await.expect("dropped in time").unwrap();
    assert!(ended.error.unwrap_or_default().contains("heartbeat"), "the heartbeat, not the idle timeout, drops it");
    assert!(!answering_task.is_finished(), "a peer answering pings was closed as idle");
    reader.abort();
}

#[tokio::test(start_paused = true)]
async fn the_drop_policy_keeps_a_peer_that_stopped_reading_and_counts_the_drops() {
    let cap = 100 * 1024;
    let (inbox, mut wakes) = watched_inbox();
    let dropping = SessionConfig { max_queue_bytes: cap, drop_when_full: true, ..Default::default() };
    let (handle, shared, task, _peer) = spawn_on(&dropping, 1024, false, inbox.clone());
    handle.report_drops(&inbox, 7);
    // The control: the same stalled peer under the close policy is closed.
    let (closing, closing_task, _closing_peer) = stalled(SessionConfig { max_queue_bytes: cap, ..Default::default() });
    let chunk = Message::Binary(vec![0u8; 16 * 1024].into());
    let refused = (0..20).filter(|_| !handle.send(chunk.clone())).count();
    assert!(refused > 0, "sends past the cap are dropped");
    for _ in 0..20 {
        let _ = closing.send(chunk.clone());
    }
    assert!(ended(closing_task).await.error.unwrap_or_default().contains("send queue full"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!task.is_finished(), "the drop policy closed the session");
    assert_eq!(shared.dropped.load(Ordering::Relaxed), refused as u64);
    let batch = wakes.recv().await.unwrap().drain_as_js();
    assert_eq!(
        (word(&batch, 0), word(&batch, 4), word(&batch, 8), word(&batch, 16)),
        (1, Kind::Dropped as u32, 7, refused as u32)
    );
    // What was queued before the cap still fits in: room again once the peer reads.
    assert!(shared.unsent() <= cap);
}

#[tokio::test(start_paused = true)]
async fn frames_taken_near_the_cap_are_copied_out_of_their_shared_block() {
    use crate::codec::blocks::{frames_by_run, BLOCK_MAX};
    let cap = 3 * BLOCK_MAX;
    let (inbox, _wakes) = watched_inbox();
    let cfg = SessionConfig { max_queue_bytes: cap, drop_when_full: true, ..Default::default() };
    let (handle, shared, _task, _peer) = spawn_on(&cfg, 1024, false, inbox);
    // One run of 62-byte frames in shared blocks, past the cap (the drop policy keeps the session).
    let frames = frames_by_run(&[1; 220], |_, blocks, left| Ok::<_, ()>(blocks.binary(&[7; 60], left))).unwrap();
    let taken = handle.send_frames(frames.iter().cloned());
    assert!(taken < frames.len(), "the control: the cap was reached");
    // Looked at before the session's task runs (paused clock, no await): all still queued.
    let queued = shared.frames.lock();
    assert_eq!(queued.len(), taken);
    let shared_block: Vec<bool> = queued.iter().zip(&frames).map(|(q, f)| q.as_ptr() == f.as_ptr()).collect();
    let first_copy = shared_block.iter().position(|&s| !s).expect("some were copied");
    assert!(first_copy > 0, "far from the cap, frames stay in their block");
    assert!(shared_block[first_copy..].iter().all(|&s| !s), "{shared_block:?}");
    // Those kept in their block were all taken with a whole block's room left below the cap.
    assert!((first_copy - 1) * 62 + BLOCK_MAX <= cap);
    assert!(first_copy * 62 + BLOCK_MAX > cap);
    assert!(queued.iter().zip(&frames).all(|(q, f)| q == f), "copies are the same bytes");
}

#[tokio::test(start_paused = true)]
async fn a_reader_waits_for_the_flow_and_leaves_the_socket_unread() {
    let (inbox, _wakes) = watched_inbox();
    inbox.push(crate::inbox::Event::new(Kind::Binary, 9, vec![0u8; HIGH_WATER_BYTES], 0));
    // A pipe of 1 KiB: what the session does not read stays in it.
    let (_handle, _, task, mut peer) = spawn_on(&SessionConfig::default(), 1024, false, inbox.clone());
    let mut bytes = text_frame_header(2);
    bytes.extend_from_slice(b"hi");
    peer.write_all(&bytes).await.unwrap();
    let more = [0u8; 2048];
    let blocked = tokio::time::timeout(Duration::from_millis(200), peer.write_all(&more)).await;
    assert!(blocked.is_err(), "the socket was read while the inbox was backed up");
    assert!(!task.is_finished());
    // The control: once the flow takes the backlog, the session reads again.
    inbox.drain_as_js();
    let batch = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let b = inbox.drain_as_js();
            if word(&b, 0) > 0 {
                return b;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let batch = batch.await.expect("the message came once there was room");
    assert_eq!(&batch[20..22], b"hi");
}

#[tokio::test(start_paused = true)]
async fn a_reader_waits_until_the_flow_has_taken_the_queue_down_to_half() {
    use crate::inbox::{BATCH_MAX_EVENTS, HIGH_WATER_EVENTS};
    let (inbox, _wakes) = watched_inbox();
    for _ in 0..HIGH_WATER_EVENTS {
        inbox.push(crate::inbox::Event::new(Kind::Text, 9, "m", 0));
    }
    assert!(inbox.backed_up(), "the event count is a high-water mark too");
    let (_handle, _, task, mut peer) = spawn_on(&SessionConfig::default(), 1024, false, inbox.clone());
    let mut bytes = text_frame_header(4);
    bytes.extend_from_slice(b"late");
    peer.write_all(&bytes).await.unwrap();
    inbox.drain_as_js();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(inbox.queued().1, HIGH_WATER_EVENTS - BATCH_MAX_EVENTS, "one batch taken is not enough room");
    let mut drained = 1;
    while inbox.backed_up() && drained < HIGH_WATER_EVENTS {
        inbox.drain_as_js();
        drained += 1;
    }
    assert_eq!(drained, HIGH_WATER_EVENTS / 2 / BATCH_MAX_EVENTS, "readers resume at half");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(inbox.queued().1, HIGH_WATER_EVENTS / 2 + 1, "the late message is queued once");
    assert!(!task.is_finished());
}

/// A pipe end that takes vectored writes whole and counts the write calls.
struct Counting {
    inner: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl tokio::io::AsyncRead for Counting {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counting {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        std::pin::Pin::new(&mut self.inner).poll_write(cx, &all)
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test(start_paused = true)]
async fn a_queued_burst_goes_out_in_one_write_sharing_the_broadcast_bytes() {
    let cfg = SessionConfig::default();
    let (ours, peer) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(AtomicUsize::new(0));
    let (handle, shared) = SessionHandle::new(&cfg, false);
    // Queued before the session runs: 40 frames, as a burst of broadcasts.
    let frame = crate::codec::data_frame(true, b"tick", false);
    for _ in 0..40 {
        assert!(handle.send_frame(frame.clone()));
    }
    let session = Session::new(Counting { inner: ours, writes: writes.clone() }, Vec::new(), 1, shared, inbox(), &cfg);
    let task = tokio::spawn(session);
    let mut client = WebSocketStream::from_raw_socket(peer, Role::Client, None).await;
    for _ in 0..40 {
        assert_eq!(client.next().await.unwrap().unwrap(), Message::text("tick"));
    }
    assert_eq!(writes.load(Ordering::Relaxed), 1, "one write for the whole burst");
    drop(handle);
    assert_eq!(close_frame(&mut client).await.map(|c| c.0), Some(1001), "a dropped handle closes");
    ended(task).await;
}

#[test]
fn an_idle_session_is_small() {
    // The session's state, the bulk of its task's future; beside it an idle
    // session holds its `Shared`, its sending handle and its peer's address (and
    // a boxed clock with heartbeat or idle timeout on). With the task's other state
    // (see `a_sessions_task_is_small` in listener.rs) it must leave tokio's task
    // cell at 256 bytes.
    let size = std::mem::size_of::<Session<tokio::net::TcpStream>>();
    assert!(size <= 120, "a session takes {size} bytes");
}

/// Reads the next frame the server sent, any length, as (opcode, payload), or None
/// once the stream has ended; within 5 s.
async fn read_frame(peer: &mut DuplexStream) -> Option<(u8, Vec<u8>)> {
    let read = async {
        let mut head = [0u8; 2];
        peer.read_exact(&mut head).await.ok()?;
        let len = match head[1] & 0x7f {
            126 => peer.read_u16().await.ok()? as usize,
            127 => peer.read_u64().await.ok()? as usize,
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        peer.read_exact(&mut payload).await.ok()?;
        Some((head[0] & 0x0f, payload))
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.expect("a frame or the end within 5 s")
}

/// The code of the first close frame the server sends, skipping pings; None if the
/// stream ends without one.
async fn close_code(peer: &mut DuplexStream) -> Option<u16> {
    loop {
        match read_frame(peer).await? {
            (8, p) => return Some(u16::from_be_bytes([p[0], p[1]])),
            _ => continue,
        }
    }
}

/// A frame with a reserved bit set, as Autobahn 3.2 sends it.
const RESERVED_BIT_FRAME: [u8; 6] = [0xa1, 0x80, 0, 0, 0, 0];

#[tokio::test(start_paused = true)]
async fn a_protocol_error_is_reported_even_if_a_reply_then_fails_to_go_out() {
    let (handle, _, task, mut peer) = spawn_on(&SessionConfig::default(), 64 * 1024, false, inbox());
    peer.write_all(&RESERVED_BIT_FRAME).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    // The peer resets; the flow's reply, within the grace, meets a broken pipe.
    drop(peer);
    assert!(handle.send(Message::text("reply")));
    let ended = ended(task).await;
    assert!(ended.error.as_deref().unwrap_or_default().contains("protocol error"), "{ended:?}");
}

#[tokio::test(start_paused = true)]
async fn a_protocol_error_is_reported_even_if_the_heartbeat_ends_the_session_first() {
    // Two silent 50 ms intervals pass before the 200 ms grace is over.
    let cfg = SessionConfig { heartbeat: Some(Duration::from_millis(50)), ..Default::default() };
    let (_handle, _, task, mut peer) = spawn_on(&cfg, 64 * 1024, false, inbox());
    peer.write_all(&RESERVED_BIT_FRAME).await.unwrap();
    assert_eq!(close_code(&mut peer).await, Some(1002));
    let ended = ended(task).await;
    assert!(ended.error.as_deref().unwrap_or_default().contains("protocol error"), "{ended:?}");
}

#[tokio::test(start_paused = true)]
async fn a_queue_cap_below_one_message_still_lets_messages_through_one_at_a_time() {
    let big = |i: u8| Message::Binary(vec![i; 4096].into());
    for drop_when_full in [false, true] {
        let cfg = SessionConfig { max_queue_bytes: 1024, drop_when_full, ..Default::default() };
        // A peer that reads gets every message, sent one at a time, under both policies.
        let (handle, shared, task, mut peer) = spawn_on(&cfg, 64 * 1024, false, inbox());
        for i in 0..3 {
            assert!(handle.send(big(i)), "message {i} refused (drop {drop_when_full})");
            let (opcode, payload) = read_frame(&mut peer).await.expect("a frame");
            assert_eq!((opcode, payload.len(), payload[0]), (2, 4096, i));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(!task.is_finished(), "a peer that reads was closed (drop {drop_when_full})");
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 0);
        // The control: a peer that does not read takes one, then the policy applies.
        let (slow, slow_shared, slow_task, _pipe) = spawn_on(&cfg, 1024, false, inbox());
        assert!(slow.send(big(0)), "the first message is taken when nothing waits");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!slow.send(big(1)), "a second does not fit behind it");
        if drop_when_full {
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(!slow_task.is_finished(), "the drop policy closed the session");
            assert_eq!(slow_shared.dropped.load(Ordering::Relaxed), 1);
        } else {
            assert!(ended(slow_task).await.error.unwrap_or_default().contains("send queue full"));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn drops_reach_the_flow_only_between_the_sessions_open_and_its_end() {
    let cfg = SessionConfig { max_queue_bytes: 1024, drop_when_full: true, ..Default::default() };
    let (handle, shared) = SessionHandle::new(&cfg, false);
    let (inbox, mut wakes) = watched_inbox();
    let big = || Message::Binary(vec![0u8; 4096].into());
    // Sent before the session opened (the 101 still on its way): held back.
    assert!(handle.send(big()));
    assert!(!handle.send(big()) && !handle.send(big()));
    assert!(wakes.try_recv().is_err(), "the flow heard of drops before the session's open");
    inbox.push(crate::inbox::Event::new(Kind::Open, 5, Bytes::new(), 0));
    handle.report_drops(&inbox, 5);
    let batch = wakes.recv().await.unwrap().drain_as_js();
    assert_eq!(word(&batch, 0), 2);
    assert_eq!((word(&batch, 4), word(&batch, 20), word(&batch, 24), word(&batch, 32)), (1, 7, 5, 2));
    assert!(!handle.send(big()));
    let batch = wakes.recv().await.unwrap().drain_as_js();
    assert_eq!((word(&batch, 0), word(&batch, 4), word(&batch, 16)), (1, 7, 1), "reported once open");
    // After the session's end nothing is queued, and nothing counts as dropped.
    let (ours, _peer) = tokio::io::duplex(1024);
    let session = Session::new(ours, Vec::new(), 5, shared.clone(), inbox.clone(), &cfg);
    drop(_peer);
    ended(tokio::spawn(session)).await;
    assert!(!handle.send(big()));
    assert_eq!(shared.dropped.load(Ordering::Relaxed), 3);
    assert!(wakes.try_recv().is_err(), "a drop was reported after the session's end");
}

/// A pipe end that takes at most a few bytes per write, and every other write
/// none (it is full, and soon ready again), as a congested socket does.
struct Trickle(DuplexStream, bool);

impl tokio::io::AsyncRead for Trickle {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Trickle {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.1 = !self.1;
        if self.1 {
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        let n = buf.len().min(3);
        std::pin::Pin::new(&mut self.0).poll_write(cx, &buf[..n])
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_written_in_pieces_still_leaves_room_for_pongs_and_the_close() {
    // 200 frames queued, written a few bytes at a time: the batch carried over
    // from one write to the next is full when the peer's pings come.
    let cfg = SessionConfig::default();
    let (ours, peer) = tokio::io::duplex(1 << 20);
    let (handle, shared) = SessionHandle::new(&cfg, false);
    for i in 0..200u8 {
        assert!(handle.send_frame(crate::codec::data_frame(false, &[i], false)));
    }
    let task = tokio::spawn(Session::new(Trickle(ours, false), Vec::new(), 1, shared, inbox(), &cfg));
    let mut client = WebSocketStream::from_raw_socket(peer, Role::Client, None).await;
    for _ in 0..3 {
        client.send(Message::Ping(Bytes::from_static(b"p"))).await.unwrap();
        tokio::task::yield_now().await;
    }
    let (mut data, mut pongs) = (Vec::new(), 0);
    while data.len() < 200 {
        match tokio::time::timeout(Duration::from_secs(5), client.next()).await.expect("in time") {
            Some(Ok(Message::Binary(b))) => data.push(b[0]),
            Some(Ok(Message::Pong(_))) => pongs += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(data, (0..200).collect::<Vec<u8>>(), "every frame, whole and in order");
    handle.close(1000);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), client.next()).await.expect("in time") {
            Some(Ok(Message::Pong(_))) => pongs += 1,
            Some(Ok(Message::Close(f))) => {
                assert_eq!(f.map(|f| u16::from(f.code)), Some(1000));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pongs, 3, "every ping answered");
    assert!(!task.is_finished() || task.await.is_ok(), "the session's task panicked");
}

#[tokio::test(start_paused = true)]
async fn sends_after_the_close_are_discarded_and_never_turn_it_into_a_1008() {
    for drop_when_full in [false, true] {
        let cfg = SessionConfig { max_queue_bytes: 100 * 1024, drop_when_full, ..Default::default() };
        // A peer that reads only once everything is sent: the queue holds it all.
        let (handle, shared, task, mut peer) = spawn_on(&cfg, 1024, false, inbox());
        let chunk = |i: u8| Message::Binary(vec![i; 16 * 1024].into());
        for i in 0..4 {
            assert!(handle.send(chunk(i)), "message {i} refused (drop {drop_when_full})");
        }
        handle.close(1000);
        let late = (0..20).filter(|_| handle.send(chunk(9))).count();
        assert_eq!(late, 0, "sends after the close were taken (drop {drop_when_full})");
        for i in 0..4 {
            let (opcode, payload) = read_frame(&mut peer).await.expect("a frame");
            assert_eq!((opcode, payload.len(), payload[0]), (2, 16 * 1024, i), "drop {drop_when_full}");
        }
        assert_eq!(close_code(&mut peer).await, Some(1000), "our close, not a 1008 (drop {drop_when_full})");
        peer.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]).await.unwrap();
        let ended = ended(task).await;
        assert_eq!((ended.code, ended.error), (1000, None), "drop {drop_when_full}");
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 0, "discarded, not counted as drops");
    }
}

/// `count` masked binary frames of `len` bytes each (mask key 0), back to back.
fn binary_frames(count: usize, len: usize) -> Vec<u8> {
    let mut one = vec![0x82];
    match len {
        0..=125 => one.push(0x80 | len as u8),
        _ => {
            one.push(0x80 | 126);
            one.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
    one.extend_from_slice(&[0, 0, 0, 0]);
    one.resize(one.len() + len, 7);
    one.repeat(count)
}

#[tokio::test(start_paused = true)]
async fn readers_woken_together_refill_the_queue_up_to_its_mark_and_no_further() {
    let (inbox, _wakes) = watched_inbox();
    // The flow has fallen behind: 16 sessions wait, each with 2 MiB from its peer.
    inbox.push(crate::inbox::Event::new(Kind::Binary, 9, vec![0u8; HIGH_WATER_BYTES], 0));
    let mut sessions = Vec::new();
    for _ in 0..16 {
        let (handle, _, task, mut peer) = spawn_on(&SessionConfig::default(), 4 << 20, false, inbox.clone());
        peer.write_all(&binary_frames(1040, 2000)).await.unwrap();
        sessions.push((handle, task, peer));
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(inbox.queued().1, 1, "nothing read while the flow is behind");
    // The flow takes the backlog: every reader wakes at once.
    inbox.drain_as_js();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (bytes, _) = inbox.queued();
    assert!(bytes <= HIGH_WATER_BYTES, "{bytes} bytes queued, past the mark of {HIGH_WATER_BYTES}");
    // The control: the readers did fill it, up to within a read of the mark.
    assert!(bytes > HIGH_WATER_BYTES - 64 * 1024 && inbox.backed_up(), "{bytes} bytes queued");
    for (_, task, _) in &sessions {
        assert!(!task.is_finished());
    }
}
