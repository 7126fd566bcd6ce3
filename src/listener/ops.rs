//! A flow's requests (`crate::commands`), run by the listener's dispatcher in the
//! order the flow made them, after whatever it sent before.

use super::{Fanout, Shared, SENDS_PER_YIELD};
use crate::commands::Op;
use crate::inbox::{Event, Kind};

pub(super) async fn run(shared: &Shared, fanout: &mut Fanout, op: Op) {
    match op {
        Op::Send(batch) => fanout.send(shared, &batch).await,
        Op::Publish { rooms, frame } => {
            // Every member queues the same bytes: the frame was encoded once.
            let reached = shared.rooms.lock().for_members(&rooms, |_, h| {
                h.send_frame(frame.clone());
            });
            if reached >= SENDS_PER_YIELD {
                tokio::task::yield_now().await;
            }
        }
        Op::Join { ids, rooms } => {
            let mut all = shared.rooms.lock();
            for id in ids {
                // Looked up under the rooms' lock, which a departing session takes
                // only once out of the table: one that has left is never added back.
                let Some(h) = shared.sessions.read().get(&id).map(|e| e.handle.clone()) else { continue };
                for room in &rooms {
                    all.join(id, &h, room);
                }
            }
        }
        Op::Leave { ids, rooms } => {
            let mut all = shared.rooms.lock();
            for id in ids {
                for room in &rooms {
                    all.leave(id, room);
                }
            }
        }
        Op::Rooms { ids } => {
            // Under the rooms' lock, which a departing session takes before it reports
            // its close: a session found in the table has its rooms reported first.
            let all = shared.rooms.lock();
            for id in ids {
                if !shared.sessions.read().contains_key(&id) {
                    continue;
                }
                let rooms = all.rooms_of(id);
                let mut listing = Vec::with_capacity(rooms.iter().map(|r| 4 + r.len()).sum());
                for room in rooms {
                    listing.extend_from_slice(&(room.len() as u32).to_le_bytes());
                    listing.extend_from_slice(room.as_bytes());
                }
                shared.inbox.push(Event::new(Kind::Rooms, id, listing, rooms.len() as u32));
            }
        }
        Op::Close { ids, code, reason } => {
            for id in ids {
                let h = shared.sessions.read().get(&id).map(|e| e.handle.clone());
                if let Some(h) = h {
                    h.close_with(code, &reason);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Listener, ListenerConfig};
    use crate::commands::{self, CLOSE, JOIN, LEAVE, NONE, PUBLISH, ROOMS, SEND};
    use crate::handshake;
    use crate::inbox::{Inbox, Kind};
    use bytes::Bytes;
    use futures_util::StreamExt;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, DuplexStream};
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    /// A session adopted over a pipe: its id, and the client's side past the 101.
    async fn open(listener: &Listener, req: &handshake::UpgradeRequest) -> (u32, WebSocketStream<DuplexStream>) {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let id = listener.adopt_stream(ours, Vec::new(), req).unwrap().unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(theirs.read_u8().await.unwrap());
        }
        (id, WebSocketStream::from_raw_socket(theirs, Role::Client, None).await)
    }

    fn run(listener: &Listener, words: &[u32], payloads: &[&str], names: &[&str]) {
        let frames: Vec<Bytes> = payloads.iter().map(|p| crate::codec::data_frame(true, p.as_bytes(), false)).collect();
        let names: Vec<Arc<str>> = names.iter().map(|&n| n.into()).collect();
        listener.run(commands::decode(words, &frames, &names).unwrap());
    }

    async fn next_text(ws: &mut WebSocketStream<DuplexStream>) -> String {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a message in time");
        m.unwrap().unwrap().into_text().unwrap().to_string()
    }

    /// The inbox's events as (kind, session, payload, extra).
    fn events(inbox: &Arc<Inbox>) -> Vec<(u32, u32, Vec<u8>, u32)> {
        let b = inbox.drain();
        let word = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let count = word(0) as usize;
        let mut offset = 4 + 16 * count;
        (0..count)
            .map(|i| {
                let h = 4 + 16 * i;
                let len = word(h + 8) as usize;
                offset += len;
                (word(h), word(h + 4), b[offset - len..offset].to_vec(), word(h + 12))
            })
            .collect()
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what}: not within 10 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_room_publish_reaches_exactly_its_live_members_and_rooms_empty_as_sessions_close() {
        let listener = Listener::new(ListenerConfig::default(), Inbox::new(Box::new(|_| {})));
        let req = handshake::sample_request();
        let mut peers = Vec::new();
        for _ in 0..100 {
            peers.push(open(&listener, &req).await);
        }
        let rooms: Vec<String> = (0..10).map(|r| format!("room{r}")).collect();
        let names: Vec<&str> = rooms.iter().map(String::as_str).collect();
        // Session i joins room i % 10, and sessions 0-9 join room 0 as well.
        let mut words = Vec::new();
        for (i, (id, _)) in peers.iter().enumerate() {
            words.extend([JOIN, 1, *id, 1, (i % 10) as u32]);
            if i < 10 && i % 10 != 0 {
                words.extend([JOIN, 1, *id, 1, 0]);
            }
        }
        // One publish per room (room 0 twice), then a broadcast that ends each
        // session's stream: whatever a session got of the publishes came before it.
        for r in 0..10u32 {
            words.extend([PUBLISH, r, 1, r]);
        }
        words.extend([PUBLISH, 0, 2, 0, 1, SEND, 0, 10]);
        let mut payloads: Vec<&str> = names.clone();
        payloads.push("end");
        run(&listener, &words, &payloads, &names);
        for (i, (_, ws)) in peers.iter_mut().enumerate() {
            let mut got = Vec::new();
            loop {
                match next_text(ws).await {
                    end if end == "end" => break,
                    other => got.push(other),
                }
            }
            let mut expected = vec![format!("room{}", i % 10)];
            if i < 10 && i % 10 != 0 {
                expected.insert(0, "room0".into());
            }
            // The publish to rooms 0 and 1 reaches each of their members once.
            if i < 10 || i % 10 <= 1 {
                expected.push("room0".into());
            }
            assert_eq!(got, expected, "session {i}");
        }
        assert_eq!(listener.shared.rooms.lock().count("room0"), 19);
        // Sessions 0-49 close: their memberships go with them.
        for (_, ws) in peers.iter_mut().take(50) {
            ws.close(None).await.unwrap();
            while ws.next().await.is_some() {}
        }
        until("half left their rooms", || listener.shared.rooms.lock().count("room3") == 5).await;
        assert_eq!(listener.shared.rooms.lock().count("room0"), 5);
        // A leave takes one session out of one room only.
        let id51 = peers[51].0;
        run(&listener, &[LEAVE, 1, id51, 1, 1], &[], &names);
        until("the leave", || listener.shared.rooms.lock().count("room1") == 4).await;
        for (_, ws) in peers.iter_mut().skip(50) {
            ws.close(None).await.unwrap();
            while ws.next().await.is_some() {}
        }
        until("every room emptied", || listener.shared.rooms.lock().is_empty()).await;
        listener.close(1001).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_flow_is_told_the_rooms_of_each_live_session_it_asks_about() {
        let inbox = Inbox::new(Box::new(|_| {}));
        let listener = Listener::new(ListenerConfig::default(), inbox.clone());
        let (id, _ws) = open(&listener, &handshake::sample_request()).await;
        run(&listener, &[JOIN, 1, id, 2, 0, 1, ROOMS, 1, id, LEAVE, 1, id, 1, 0, ROOMS, 2, id, 999], &[], &["é", "b"]);
        // The dispatcher runs while this test waits (the clock is paused: no real wait).
        tokio::time::sleep(Duration::from_millis(10)).await;
        let ev: Vec<_> = events(&inbox).into_iter().filter(|e| e.0 == Kind::Rooms as u32).collect();
        // A session that is not there (999) gets no listing.
        let two = [&2u32.to_le_bytes()[..], "é".as_bytes(), &1u32.to_le_bytes()[..], b"b"].concat();
        let one = [&1u32.to_le_bytes()[..], b"b"].concat();
        assert_eq!(ev, [(Kind::Rooms as u32, id, two, 2), (Kind::Rooms as u32, id, one, 1)]);
        listener.close(1001).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_that_has_left_is_not_added_to_a_room() {
        let listener = Listener::new(ListenerConfig::default(), Inbox::new(Box::new(|_| {})));
        let (gone, mut ws) = open(&listener, &handshake::sample_request()).await;
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
        until("the session left", || listener.shared.sessions.read().is_empty()).await;
        let (live, _ws2) = open(&listener, &handshake::sample_request()).await;
        run(&listener, &[JOIN, 2, gone, live, 1, 0], &[], &["r"]);
        // Positive control: the live session named in the same op did join.
        until("the live session joined", || listener.shared.rooms.lock().count("r") == 1).await;
        assert_eq!(listener.shared.rooms.lock().rooms_of(gone).len(), 0);
        listener.close(1001).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_flow_close_sends_the_payload_first_then_its_code_and_reason() {
        let inbox = Inbox::new(Box::new(|_| {}));
        let cfg = ListenerConfig { protocols: vec!["chat".into()], ..Default::default() };
        let listener = Listener::new(cfg, inbox.clone());
        let req = handshake::UpgradeRequest {
            protocol: "chat".into(),
            announce: b"{\"url\":\"/ws\"}".to_vec(),
            ..handshake::sample_request()
        };
        let (id, mut ws) = open(&listener, &req).await;
        let (other, mut ws2) = open(&listener, &handshake::sample_request()).await;
        run(&listener, &[SEND, id, 0, CLOSE, 1, id, 4001, 0, SEND, other, 1], &["last words", "still here"], &["bye"]);
        assert_eq!(next_text(&mut ws).await, "last words");
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(f)))) => assert_eq!((u16::from(f.code), f.reason.as_str()), (4001, "bye")),
            other => panic!("expected a close frame, got {other:?}"),
        }
        while ws.next().await.is_some() {}
        // The other session is untouched; a close without a reason has none.
        assert_eq!(next_text(&mut ws2).await, "still here");
        run(&listener, &[CLOSE, 1, other, 1000, NONE], &[], &[]);
        match tokio::time::timeout(Duration::from_secs(10), ws2.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(f)))) => assert_eq!((u16::from(f.code), f.reason.as_str()), (1000, "")),
            other => panic!("expected a close frame, got {other:?}"),
        }
        while ws2.next().await.is_some() {}
        until("both ended", || listener.shared.sessions.read().is_empty()).await;
        let ev = events(&inbox);
        let of = |s: u32| ev.iter().filter(|e| e.1 == s).map(|e| (e.0, e.2.clone(), e.3)).collect::<Vec<_>>();
        // Open: the subprotocol ("chat", extra 4), then the announcement; the
        // close: the code and the reason the client echoed.
        assert_eq!(
            of(id),
            [(Kind::Open as u32, b"chat{\"url\":\"/ws\"}".to_vec(), 4), (Kind::Close as u32, b"bye".to_vec(), 4001)]
        );
        // Nothing announced for a session JS asked nothing of.
        assert_eq!(of(other), [(Kind::Open as u32, vec![], 0), (Kind::Close as u32, vec![], 1000)]);
        listener.close(1001).await;
    }
}
