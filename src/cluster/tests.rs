use super::*;
use crate::handshake;
use crate::inbox::Inbox;
use crate::listener::ListenerConfig;
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

#[test]
fn each_kind_of_message_reads_back_as_written_and_anything_malformed_is_ignored() {
    let frame = text("hi");
    let big = text(&"x".repeat(70_000));
    let data = Wire::Broadcast { frame: big.clone() }.encode(1);
    assert_eq!(Wire::decode(&data), Some((1, Wire::Broadcast { frame: big })));
    let all = [
        Wire::Broadcast { frame: frame.clone() },
        Wire::Publish { rooms: vec!["a", "é"], frame: frame.clone() },
        Wire::Direct { instance: 42, ids: vec![7, 9], frame: frame.clone() },
    ];
    for w in all {
        let data = w.encode(5);
        assert_eq!(Wire::decode(&data), Some((5, w)));
        // Cut short anywhere, or of another version: ignored, never a panic.
        for cut in 0..data.len() {
            assert_eq!(Wire::decode(&data[..cut]), None, "cut at {cut}");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert_eq!(Wire::decode(&longer), None);
        let mut later = data.clone();
        later[0] = 2;
        assert_eq!(Wire::decode(&later), None);
    }
}

#[test]
fn a_frame_codec_would_not_make_is_ignored_and_a_session_named_twice_is_named_once() {
    let ok = text("hi");
    assert!(Wire::decode(&Wire::Broadcast { frame: ok.clone() }.encode(1)).is_some(), "the control");
    let bad: [&[u8]; 9] = [
        &[0x88, 0x02, 0x0f, 0xa0],                // close
        &[0x89, 0x00],                            // ping
        &[0x01, 0x04, b'f', b'r', b'a', b'g'],    // a fragment (not final)
        &[0x80, 0x00],                            // a continuation
        &[0xc1, 0x01, b'x'],                      // RSV1 (compressed)
        &[0x81, 0x7e, 0x00, 0x01, b'x'],          // 1 in the 16-bit form
        &[0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 1, 0], // 1 in the 64-bit form
        &[0x81, 0x02, 0xc3, 0x28],                // text that is not UTF-8
        &[0x81, 0x81, 0, 0, 0, 0, b'x'],          // masked
    ];
    for f in bad {
        let data = Wire::Broadcast { frame: Bytes::copy_from_slice(f) }.encode(1);
        assert_eq!(Wire::decode(&data), None, "{f:02x?}");
    }
    let binary = Bytes::from_static(&[0x82, 0x02, 0xff, 0xfe]);
    assert!(Wire::decode(&Wire::Broadcast { frame: binary }.encode(1)).is_some(), "binary is not UTF-8-checked");
    let twice = Wire::Direct { instance: 3, ids: vec![9, 7, 9], frame: ok.clone() }.encode(1);
    assert_eq!(Wire::decode(&twice), Some((1, Wire::Direct { instance: 3, ids: vec![7, 9], frame: ok })));
}

#[test]
fn a_prefix_is_matched_literally_in_the_subscription_pattern_up_to_the_paths_slash() {
    assert_eq!(glob_escape("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:");
    // nr-ws:* would match another cluster's nr-ws:2/ws; this does not.
    assert_eq!(pattern("nr-ws:"), "nr-ws:/*");
    assert_eq!(pattern("a*"), "a\\*/*");
}

#[test]
fn an_empty_prefix_or_one_with_a_slash_is_refused() {
    let start = |prefix: &str| {
        let cfg = ClusterConfig { prefix: prefix.into(), ..unreachable(Mode::PubSub) };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async { Cluster::start(cfg, Arc::new(|_| {})).map(|c| c.close()).map_err(|e| e.to_string()) })
    };
    // "nr-ws:/a" + "/ws" and "nr-ws:" + "/a/ws" would share a channel; "" would subscribe to everything.
    for bad in ["", "nr-ws:/a", "/"] {
        assert!(start(bad).unwrap_err().contains("prefix"), "{bad:?}");
    }
    assert!(start("nr-ws:").is_ok(), "the control");
}

/// A cluster whose Redis never answers (nothing listens on port 1): what it
/// queues, counts and reports can be seen without one.
fn unreachable(mode: Mode) -> ClusterConfig {
    ClusterConfig { url: "redis://127.0.0.1:1".into(), prefix: "t:".into(), mode, ..Default::default() }
}

/// `cfg` started, with every event it reports kept in the returned list.
fn started_heard(cfg: ClusterConfig) -> (Arc<Cluster>, Arc<Mutex<Vec<Event>>>) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = heard.clone();
    (Cluster::start(cfg, Arc::new(move |e| log.lock().push(e))).unwrap(), heard)
}

pub(super) async fn session(listener: &Listener) -> (u32, WebSocketStream<tokio::io::DuplexStream>) {
    let (ours, mut theirs) = tokio::io::duplex(1 << 16);
    let id = listener.adopt_stream(ours, Vec::new(), &handshake::sample_request()).unwrap().unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(theirs.read_u8().await.unwrap());
    }
    (id, WebSocketStream::from_raw_socket(theirs, Role::Client, None).await)
}

pub(super) async fn next(ws: &mut WebSocketStream<tokio::io::DuplexStream>) -> String {
    let m = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a message in time");
    m.unwrap().unwrap().into_text().unwrap().to_string()
}

#[tokio::test(start_paused = true)]
async fn messages_of_other_instances_reach_the_listener_of_their_path_and_our_own_are_dropped() {
    // Nothing listens on port 1: the link stays down, which delivery does not need.
    let cluster = Cluster::start(unreachable(Mode::PubSub), Arc::new(|_| {})).unwrap();
    let listener = Listener::new(ListenerConfig::default(), Inbox::new(Box::new(|_| {})));
    let token = cluster.attach("/ws", listener.clone());
    // A token of an earlier listener on the path detaches nothing.
    cluster.detach("/ws", token + 1000);
    let (a, mut wa) = session(&listener).await;
    let (b, mut wb) = session(&listener).await;
    listener.run(vec![Op::Join { ids: vec![b], rooms: vec!["r".into()] }]);
    let me = instance_id();
    let other = me ^ 1;
    let deliver = |origin: u64, w: Wire| cluster.deliver(b"t:/ws", &w.encode(origin));
    deliver(me, Wire::Broadcast { frame: text("mine") });
    cluster.deliver(b"t:/other", &Wire::Broadcast { frame: text("other path") }.encode(other));
    cluster.deliver(b"u:/ws", &Wire::Broadcast { frame: text("other prefix") }.encode(other));
    deliver(other, Wire::Direct { instance: other, ids: vec![a], frame: text("not for us") });
    deliver(other, Wire::Publish { rooms: vec!["r"], frame: text("room") });
    deliver(other, Wire::Direct { instance: me, ids: vec![a], frame: text("direct") });
    deliver(other, Wire::Broadcast { frame: text("all") });
    // Positive controls: each session gets what was for it, in order, and nothing else.
    assert_eq!(next(&mut wa).await, "direct");
    assert_eq!(next(&mut wa).await, "all");
    assert_eq!(next(&mut wb).await, "room");
    assert_eq!(next(&mut wb).await, "all");
    cluster.detach("/ws", token);
    deliver(other, Wire::Broadcast { frame: text("detached") });
    listener.send_frames(vec![(0, text("end"))]);
    assert_eq!(next(&mut wa).await, "end");
    assert!(!cluster.is_connected());
    cluster.close();
    listener.close(1001).await;
}

#[test]
fn a_redis_that_stays_down_is_reported_once_per_outage_and_nothing_after_close() {
    let cfg = unreachable(Mode::PubSub);
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = heard.clone();
    let mut reporter = Reporter::new(Arc::new(move |s| log.lock().push(s)));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(async { Cluster::start(cfg, Arc::new(|_| {})).unwrap() });
    let down = |why: &str| Event::Disconnected(why.into());
    let mut connected = Vec::new();
    for s in [
        down("refused"),
        down("refused"),
        down("timeout"),
        Event::Connected,
        Event::Connected,
        down("lost"),
        down("refused"),
    ] {
        reporter.report(s, &cluster);
        connected.push(cluster.is_connected());
    }
    // Positive control: each change was heard, with its first reason, and the state followed.
    assert_eq!(*heard.lock(), [down("refused"), Event::Connected, down("lost")]);
    assert_eq!(connected, [false, false, false, true, true, false, false]);
    // A connection that completes after close() reports nothing.
    cluster.close();
    reporter.report(Event::Connected, &cluster);
    assert!(!cluster.is_connected());
    assert_eq!(heard.lock().len(), 3);
}

#[test]
fn the_backoff_starts_again_only_after_the_link_stayed_up() {
    let mut b = Backoff(RETRY_FIRST);
    let waits: Vec<_> = [None, None, Some(Duration::from_millis(50)), Some(Duration::from_secs(1)), None, None]
        .into_iter()
        .map(|up| b.next(up).as_millis())
        .collect();
    // A link that drops at once keeps doubling (to 2 s).
    assert_eq!(waits, [100, 200, 400, 800, 1600, 2000]);
    // Up for STABLE: from the first wait again.
    assert_eq!(b.next(Some(STABLE)), RETRY_FIRST);
    assert_eq!(b.next(None), RETRY_FIRST * 2);
}

#[tokio::test(start_paused = true)]
async fn a_message_over_the_limit_stays_local_is_counted_and_warned_of_once_a_minute() {
    // Streams mode queues while Redis is away, so what is not queued was refused for its size.
    let (cluster, heard) =
        started_heard(ClusterConfig { max_message: 100, ..unreachable(Mode::Streams { retention: 10 }) });
    let small = Wire::Broadcast { frame: text("x") };
    assert!(small.encoded_len() <= 100);
    let big = || Wire::Broadcast { frame: text(&"x".repeat(100)) };
    assert_eq!(big().encoded_len(), big().encode(1).len());
    cluster.send("/ws", small);
    cluster.send("/ws", big());
    cluster.send("/ws", big());
    // The control: the small one was queued, the large ones were not.
    assert_eq!((cluster.too_large(), cluster.dropped()), (2, 2));
    assert!(cluster.pending.load(Ordering::Relaxed) > 0);
    let once = Event::TooLarge { size: big().encoded_len(), limit: 100 };
    assert_eq!(*heard.lock(), std::slice::from_ref(&once));
    tokio::time::advance(WARN_EVERY).await;
    cluster.send("/ws", big());
    assert_eq!(*heard.lock(), [once.clone(), once]);
    cluster.close();
}

#[test]
fn encoded_len_is_the_length_encode_makes() {
    let frame = text("hi");
    for w in [
        Wire::Broadcast { frame: frame.clone() },
        Wire::Publish { rooms: vec!["a", "bé"], frame: frame.clone() },
        Wire::Direct { instance: 42, ids: vec![7, 9, 11], frame: frame.clone() },
    ] {
        assert_eq!(w.encoded_len(), w.encode(1).len());
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_publish_batch_is_counted_per_message_and_warned_of_at_most_once_a_minute() {
    // Nothing listens on port 1: every batch fails.
    let (cluster, heard) = started_heard(unreachable(Mode::PubSub));
    let dropped = |h: &[Event]| h.iter().filter(|e| matches!(e, Event::Dropped(_))).count();
    // As if the subscription were up: the publishes are queued, and their batch fails.
    cluster.connected.store(true, Ordering::Release);
    for t in ["a", "b", "c"] {
        cluster.send("/ws", Wire::Broadcast { frame: text(t) });
    }
    for _ in 0..100 {
        if cluster.dropped() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cluster.dropped(), 3, "each message counted");
    assert_eq!(dropped(&heard.lock()), 1, "warned of: {:?}", heard.lock());
    // A link that recovers and fails again within the minute: no second warning,
    cluster.got_through();
    cluster.dropping(2, "again".into());
    assert_eq!((cluster.dropped(), dropped(&heard.lock())), (5, 1));
    // but a minute later, yes.
    cluster.got_through();
    tokio::time::advance(WARN_EVERY).await;
    cluster.dropping(1, "later".into());
    assert_eq!(heard.lock().last(), Some(&Event::Dropped("later".into())));
    cluster.close();
}

#[tokio::test(start_paused = true)]
async fn what_waits_counts_its_channel_and_overhead_and_a_publish_nobody_takes_counts_nothing() {
    let cluster = Cluster::start(unreachable(Mode::Streams { retention: 10 }), Arc::new(|_| {})).unwrap();
    let what = || Wire::Broadcast { frame: text("hello") };
    // Redis is down: it waits, counted with its channel "t:/ws" and the overhead.
    cluster.send("/ws", what());
    let one = what().encode(1).len() + "t:/ws".len() + ENTRY_OVERHEAD;
    assert_eq!(cluster.pending.load(Ordering::Acquire), one);
    // Closed: the publisher stops and nothing is queued any more, nor counted.
    cluster.close();
    for _ in 0..100 {
        if cluster.out.is_closed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(cluster.out.is_closed(), "the publisher stopped");
    let before = cluster.dropped();
    cluster.send("/ws", what());
    assert_eq!(cluster.pending.load(Ordering::Acquire), one, "the failed send undone");
    assert_eq!(cluster.dropped(), before + 1);
}

#[tokio::test(start_paused = true)]
async fn a_direct_send_to_more_sessions_than_a_message_names_goes_as_several_and_a_long_room_name_is_warned_of() {
    let (cluster, heard) = started_heard(unreachable(Mode::Streams { retention: 10 }));
    let ids: Vec<u32> = (1..=70_000).collect();
    let parts = Wire::Direct { instance: 3, ids: ids.clone(), frame: text("x") }.split();
    assert_eq!(parts.len(), 2);
    let mut back = Vec::new();
    for p in &parts {
        let data = p.encode(1);
        let Some((_, Wire::Direct { ids, .. })) = Wire::decode(&data) else { panic!("a direct send") };
        back.extend(ids);
    }
    assert_eq!(back, ids, "every session named once");
    // What send queues (Redis is down) is those two messages, whole.
    cluster.send("/ws", Wire::Direct { instance: 3, ids, frame: text("x") });
    let whole: usize = parts.iter().map(|p| cost("t:/ws", &p.encode(1))).sum();
    assert_eq!(cluster.pending.load(Ordering::Acquire), whole);
    // A room name too long for the copy: warned of, once a minute.
    let long = "r".repeat(70_000);
    assert!(heard.lock().is_empty(), "the control");
    for _ in 0..2 {
        cluster.send("/ws", Wire::Publish { rooms: vec![&long, "short"], frame: text("x") });
    }
    assert_eq!(*heard.lock(), [Event::RoomsTooLong]);
    cluster.close();
}
