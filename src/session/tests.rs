use super::*;
use tokio_tungstenite::tungstenite::protocol::Role;

fn inbox() -> Arc<Inbox> {
    Inbox::new(Box::new(|_| {}))
}

/// A server session whose peer never reads (a 1 KiB pipe it leaves full).
async fn stalled(cfg: SessionConfig) -> (SessionHandle, tokio::task::JoinHandle<Ended>, tokio::io::DuplexStream) {
    let (ours, peer) = tokio::io::duplex(1024);
    let ws = WebSocketStream::from_raw_socket(ours, Role::Server, Some(cfg.websocket_config())).await;
    let (handle, rx, shared) = SessionHandle::new(&cfg);
    let task = tokio::spawn(run(ws, 1, rx, shared, inbox(), cfg));
    (handle, task, peer)
}

#[tokio::test(start_paused = true)]
async fn sending_while_the_peer_closes_ends_with_its_code_and_no_error() {
    // A client session: the server closes (1000); after the client's reply the
    // flow sends one more message, then the server drops TCP.
    let cfg = SessionConfig::default();
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let ws = WebSocketStream::from_raw_socket(ours, Role::Client, Some(cfg.websocket_config())).await;
    let (handle, rx, shared) = SessionHandle::new(&cfg);
    let task = tokio::spawn(run(ws, 1, rx, shared, inbox(), cfg));
    let mut server = WebSocketStream::from_raw_socket(theirs, Role::Server, None).await;
    let bye = CloseFrame { code: CloseCode::Normal, reason: Utf8Bytes::from_static("bye") };
    server.send(Message::Close(Some(bye))).await.unwrap();
    // The client has replied to the close: its sending side is closed now.
    while let Some(Ok(m)) = server.next().await {
        if m.is_close() {
            break;
        }
    }
    handle.send(Message::Text("one more".into()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(server); // the server closes TCP first, as RFC 6455 says
    let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("ended in time").unwrap();
    assert_eq!(ended.code, 1000, "{ended:?}");
    assert!(ended.error.is_none(), "{ended:?}");
}

#[tokio::test(start_paused = true)]
async fn an_oversized_message_is_refused_with_1009() {
    let cfg = SessionConfig { max_message_bytes: 1024, ..Default::default() };
    let (ours, peer) = tokio::io::duplex(64 * 1024);
    let ws = WebSocketStream::from_raw_socket(ours, Role::Server, Some(cfg.websocket_config())).await;
    let (_handle, rx, shared) = SessionHandle::new(&cfg);
    let task = tokio::spawn(run(ws, 1, rx, shared, inbox(), cfg));
    let mut client = WebSocketStream::from_raw_socket(peer, Role::Client, None).await;
    client.send(Message::Binary(vec![7u8; 4096].into())).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("ended in time").unwrap();
    assert!(ended.error.unwrap_or_default().contains("too big"));
    let close = loop {
        match client.next().await {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close, Some(1009));
}

#[tokio::test(start_paused = true)]
async fn heartbeat_drops_a_peer_that_stopped_reading_even_mid_write() {
    let cfg = SessionConfig { heartbeat: Some(Duration::from_millis(50)), ..Default::default() };
    let (handle, task, _peer) = stalled(cfg).await;
    assert!(handle.send(Message::Binary(vec![0u8; 64 * 1024].into())));
    let ended = tokio::time::timeout(Duration::from_secs(3), task).await.expect("dropped in time").unwrap();
    assert!(ended.error.unwrap_or_default().contains("heartbeat"));
}

#[tokio::test(start_paused = true)]
async fn a_long_frame_still_arriving_counts_as_a_live_peer() {
    use tokio::io::AsyncWriteExt;
    // Heartbeat 50 ms: two silent intervals would drop the peer. It uploads one
    // 60 000-byte frame in pieces over 400 ms and never answers a ping.
    let cfg = SessionConfig { heartbeat: Some(Duration::from_millis(50)), ..Default::default() };
    let (ours, mut peer) = tokio::io::duplex(256 * 1024);
    let (handle, rx, shared) = SessionHandle::new(&cfg);
    let wire = crate::stream::Prefixed::new(Bytes::new(), ours, shared.heard.clone());
    let ws = WebSocketStream::from_raw_socket(wire, Role::Server, Some(cfg.websocket_config())).await;
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let inbox = Inbox::new(Box::new(move |i| {
        let _ = tx.send(i);
    }));
    let task = tokio::spawn(run(ws, 1, rx, shared, inbox, cfg));
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
    let batch = inbox.drain();
    assert_eq!(u32::from_le_bytes(batch[4..8].try_into().unwrap()), Kind::Binary as u32);
    assert_eq!(u32::from_le_bytes(batch[12..16].try_into().unwrap()) as usize, len);
    // The control: the same peer, silent from now on, is dropped.
    let ended = tokio::time::timeout(Duration::from_secs(2), task).await.expect("dropped in time").unwrap();
    assert!(ended.error.unwrap_or_default().contains("heartbeat"));
    drop(handle);
}

/// A server session on a `Prefixed` stream, and the inbox's wake-ups.
async fn served(
    cfg: SessionConfig,
) -> (SessionHandle, tokio::task::JoinHandle<Ended>, tokio::io::DuplexStream, mpsc::UnboundedReceiver<Arc<Inbox>>) {
    let (ours, peer) = tokio::io::duplex(64 * 1024);
    let (handle, rx, shared) = SessionHandle::new(&cfg);
    let wire = crate::stream::Prefixed::new(Bytes::new(), ours, shared.heard.clone());
    let ws = WebSocketStream::from_raw_socket(wire, Role::Server, Some(cfg.websocket_config())).await;
    let (tx, wakes) = mpsc::unbounded_channel();
    let inbox = Inbox::new(Box::new(move |i| {
        let _ = tx.send(i);
    }));
    (handle, tokio::spawn(run(ws, 1, rx, shared, inbox, cfg)), peer, wakes)
}

/// A masked text frame with mask key 0, so the payload goes as it is.
fn text_frame_header(len: usize) -> Vec<u8> {
    assert!(len < 126);
    vec![0x81, 0x80 | len as u8, 0, 0, 0, 0]
}

/// Reads the next frame the server sent, as (opcode, payload), within 5 s.
async fn next_frame(peer: &mut tokio::io::DuplexStream) -> (u8, Vec<u8>) {
    use tokio::io::AsyncReadExt;
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

#[tokio::test(start_paused = true)]
async fn the_flows_reply_goes_out_before_the_close_that_reports_a_protocol_error() {
    use tokio::io::AsyncWriteExt;
    let (handle, task, mut peer, mut wakes) = served(SessionConfig::default()).await;
    // As Autobahn 3.2: a good message, then a frame with a reserved bit set.
    let mut bytes = text_frame_header(5);
    bytes.extend_from_slice(b"hello");
    bytes.extend_from_slice(&[0xa1, 0x80, 0, 0, 0, 0]);
    peer.write_all(&bytes).await.unwrap();
    // The flow answers 10 ms after the message reaches it, and again after the grace.
    let inbox = wakes.recv().await.unwrap();
    assert_eq!(u32::from_le_bytes(inbox.drain()[4..8].try_into().unwrap()), Kind::Text as u32);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(handle.send(Message::text("echo")));
    let (opcode, payload) = next_frame(&mut peer).await;
    assert_eq!((opcode, payload.as_slice()), (1, &b"echo"[..]), "the reply comes first");
    tokio::time::sleep(ERROR_GRACE).await;
    handle.send(Message::text("too late"));
    let (opcode, payload) = next_frame(&mut peer).await;
    assert_eq!(opcode, 8, "then the close frame, not the late reply");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1002);
    let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("ended").unwrap();
    assert!(ended.error.unwrap_or_default().contains("protocol error"));
}

#[tokio::test(start_paused = true)]
async fn invalid_utf8_fails_while_its_frame_is_still_arriving() {
    use tokio::io::AsyncWriteExt;
    let (_handle, task, mut peer, _wakes) = served(SessionConfig::default()).await;
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
    let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("ended").unwrap();
    assert!(ended.error.unwrap_or_default().contains("UTF-8"));
}

#[tokio::test(start_paused = true)]
async fn a_message_read_with_the_start_of_bad_text_is_still_delivered() {
    use tokio::io::AsyncWriteExt;
    let (_handle, task, mut peer, mut wakes) = served(SessionConfig::default()).await;
    let mut bytes = text_frame_header(2);
    bytes.extend_from_slice(b"ok");
    bytes.extend_from_slice(&text_frame_header(10));
    bytes.extend_from_slice(b"ab\xff");
    peer.write_all(&bytes).await.unwrap();
    let batch = wakes.recv().await.unwrap().drain();
    assert_eq!(u32::from_le_bytes(batch[0..4].try_into().unwrap()), 1);
    assert_eq!(u32::from_le_bytes(batch[4..8].try_into().unwrap()), Kind::Text as u32);
    assert_eq!(&batch[batch.len() - 2..], b"ok");
    let (opcode, payload) = next_frame(&mut peer).await;
    assert_eq!((opcode, u16::from_be_bytes([payload[0], payload[1]])), (8, 1007));
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("ended").unwrap();
}

#[tokio::test(start_paused = true)]
async fn queue_cap_closes_a_peer_that_stopped_reading() {
    let cfg = SessionConfig { max_queue_bytes: 100 * 1024, ..Default::default() };
    let (handle, task, _peer) = stalled(cfg).await;
    let refused = (0..20).filter(|_| !handle.send(Message::Binary(vec![0u8; 16 * 1024].into()))).count();
    assert!(refused > 0, "sends past the cap are refused");
    let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("closed in time").unwrap();
    assert!(ended.error.unwrap_or_default().contains("send queue full"));
}

/// A server session over a pipe, with its peer's side as a client stream.
async fn pair(cfg: SessionConfig) -> (tokio::task::JoinHandle<Ended>, WebSocketStream<tokio::io::DuplexStream>) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (handle, rx, shared) = SessionHandle::new(&cfg);
    let wire = crate::stream::Prefixed::new(Bytes::new(), ours, shared.heard.clone());
    let ws = WebSocketStream::from_raw_socket(wire, Role::Server, Some(cfg.websocket_config())).await;
    let task = tokio::spawn(async move {
        let _keep = handle;
        run(ws, 1, rx, shared, inbox(), cfg).await
    });
    (task, WebSocketStream::from_raw_socket(theirs, Role::Client, None).await)
}

async fn close_frame(peer: &mut WebSocketStream<tokio::io::DuplexStream>) -> Option<(u16, String)> {
    loop {
        match peer.next().await {
            Some(Ok(Message::Close(f))) => return f.map(|f| (u16::from(f.code), f.reason.to_string())),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_closes_a_silent_peer_with_1001_and_spares_a_talking_one() {
    let cfg = SessionConfig { idle: Some(Duration::from_millis(100)), ..Default::default() };
    let (silent_task, mut silent) = pair(cfg.clone()).await;
    let (talking_task, mut talking) = pair(cfg).await;
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
    let (answering_task, mut answering) = pair(cfg.clone()).await;
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = answering.next().await {} });
    let (_handle, mute_task, _mute) = stalled(cfg).await;
    let ended = tokio::time::timeout(Duration::from_secs(2), mute_task).await.expect("dropped in time").unwrap();
    assert!(
        ended.error.unwrap_or_default().contains("heartbeat"),
        "the heartbeat, not the idle timeout, drops the mute peer"
    );
    assert!(!answering_task.is_finished(), "a peer answering pings was closed as idle");
    reader.abort();
}

#[tokio::test(start_paused = true)]
async fn the_drop_policy_keeps_a_peer_that_stopped_reading_and_counts_the_drops() {
    let cap = 100 * 1024;
    let (tx, mut wakes) = tokio::sync::mpsc::unbounded_channel();
    let inbox = Inbox::new(Box::new(move |i| {
        let _ = tx.send(i);
    }));
    let dropping = SessionConfig { max_queue_bytes: cap, drop_when_full: true, ..Default::default() };
    let (ours, _peer) = tokio::io::duplex(1024);
    let ws = WebSocketStream::from_raw_socket(ours, Role::Server, Some(dropping.websocket_config())).await;
    let (handle, rx, shared) = SessionHandle::new(&dropping);
    handle.report_drops(&inbox, 7);
    let task = tokio::spawn(run(ws, 7, rx, shared.clone(), inbox, dropping));
    // The control: the same stalled peer under the close policy is closed.
    let (closing, closing_task, _closing_peer) =
        stalled(SessionConfig { max_queue_bytes: cap, ..Default::default() }).await;
    let chunk = Message::Binary(vec![0u8; 16 * 1024].into());
    let refused = (0..20).filter(|_| !handle.send(chunk.clone())).count();
    assert!(refused > 0, "sends past the cap are dropped");
    for _ in 0..20 {
        let _ = closing.send(chunk.clone());
    }
    let closed = tokio::time::timeout(Duration::from_secs(5), closing_task).await.expect("closed in time").unwrap();
    assert!(closed.error.unwrap_or_default().contains("send queue full"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!task.is_finished(), "the drop policy closed the session");
    assert_eq!(shared.dropped.load(Ordering::Relaxed), refused as u64);
    let batch = wakes.recv().await.unwrap().drain();
    let word = |i: usize| u32::from_le_bytes(batch[i..i + 4].try_into().unwrap());
    assert_eq!((word(0), word(4), word(8), word(16)), (1, Kind::Dropped as u32, 7, refused as u32));
    // What was queued before the cap still fits in: room again once the peer reads.
    assert!(shared.queued.load(Ordering::Relaxed) <= cap);
}

/// Reads the next frame the server sent, any length, as (opcode, payload), or None
/// once the stream has ended; within 5 s.
async fn read_frame(peer: &mut tokio::io::DuplexStream) -> Option<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
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
async fn close_code(peer: &mut tokio::io::DuplexStream) -> Option<u16> {
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
    use tokio::io::AsyncWriteExt;
    let (handle, task, mut peer, _wakes) = served(SessionConfig::default()).await;
    peer.write_all(&RESERVED_BIT_FRAME).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    // The peer resets; the flow's reply, within the grace, meets a broken pipe.
    drop(peer);
    assert!(handle.send(Message::text("reply")));
    let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("ended").unwrap();
    assert!(ended.error.as_deref().unwrap_or_default().contains("protocol error"), "{ended:?}");
}

#[tokio::test(start_paused = true)]
async fn a_protocol_error_is_reported_even_if_the_heartbeat_ends_the_session_first() {
    use tokio::io::AsyncWriteExt;
    // Two silent 50 ms intervals pass before the 200 ms grace is over.
    let cfg = SessionConfig { heartbeat: Some(Duration::from_millis(50)), ..Default::default() };
    let (_handle, task, mut peer, _wakes) = served(cfg).await;
    peer.write_all(&RESERVED_BIT_FRAME).await.unwrap();
    assert_eq!(close_code(&mut peer).await, Some(1002));
    let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("ended").unwrap();
    assert!(ended.error.as_deref().unwrap_or_default().contains("protocol error"), "{ended:?}");
}

#[tokio::test(start_paused = true)]
async fn a_queue_cap_below_one_message_still_lets_messages_through_one_at_a_time() {
    let big = |i: u8| Message::Binary(vec![i; 4096].into());
    for drop_when_full in [false, true] {
        let cfg = SessionConfig { max_queue_bytes: 1024, drop_when_full, ..Default::default() };
        // A peer that reads gets every message, sent one at a time, under both policies.
        let (handle, task, mut peer, _wakes) = served(cfg.clone()).await;
        for i in 0..3 {
            assert!(handle.send(big(i)), "message {i} refused (drop {drop_when_full})");
            let (opcode, payload) = read_frame(&mut peer).await.expect("a frame");
            assert_eq!((opcode, payload.len(), payload[0]), (2, 4096, i));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(!task.is_finished(), "a peer that reads was closed (drop {drop_when_full})");
        assert_eq!(handle.shared.dropped.load(Ordering::Relaxed), 0);
        // The control: a peer that does not read takes one, then the policy applies.
        let (slow, slow_task, _pipe) = stalled(cfg).await;
        assert!(slow.send(big(0)), "the first message is taken when nothing waits");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!slow.send(big(1)), "a second does not fit behind it");
        if drop_when_full {
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(!slow_task.is_finished(), "the drop policy closed the session");
            assert_eq!(slow.shared.dropped.load(Ordering::Relaxed), 1);
        } else {
            let ended = tokio::time::timeout(Duration::from_secs(5), slow_task).await.expect("closed").unwrap();
            assert!(ended.error.unwrap_or_default().contains("send queue full"));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn drops_reach_the_flow_only_between_the_sessions_open_and_its_end() {
    let cfg = SessionConfig { max_queue_bytes: 1024, drop_when_full: true, ..Default::default() };
    let (handle, rx, _shared) = SessionHandle::new(&cfg);
    let (tx, mut wakes) = mpsc::unbounded_channel();
    let inbox = Inbox::new(Box::new(move |i| {
        let _ = tx.send(i);
    }));
    let big = || Message::Binary(vec![0u8; 4096].into());
    // Sent before the session opened (the 101 still on its way): held back.
    assert!(handle.send(big()));
    assert!(!handle.send(big()) && !handle.send(big()));
    assert!(wakes.try_recv().is_err(), "the flow heard of drops before the session's open");
    inbox.push(Event::new(Kind::Open, 5, Bytes::new(), 0));
    handle.report_drops(&inbox, 5);
    let batch = wakes.recv().await.unwrap().drain();
    let word = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    assert_eq!(word(&batch, 0), 2);
    assert_eq!((word(&batch, 4), word(&batch, 20), word(&batch, 24), word(&batch, 32)), (1, 7, 5, 2));
    assert!(!handle.send(big()));
    let batch = wakes.recv().await.unwrap().drain();
    assert_eq!((word(&batch, 0), word(&batch, 4), word(&batch, 16)), (1, 7, 1), "reported once open");
    // After the session's end nothing is queued, and nothing counts as dropped.
    drop(rx);
    assert!(!handle.send(big()));
    assert_eq!(handle.shared.dropped.load(Ordering::Relaxed), 3);
    assert!(wakes.try_recv().is_err(), "a drop was reported after the session's end");
}
