use super::*;
use crate::cluster::tests::{next, session};
use crate::cluster::{text, ClusterConfig, Mode, Wire, MAX_PENDING_BYTES};
use crate::inbox::Inbox;
use crate::listener::{Listener, ListenerConfig};
use parking_lot::Mutex;
use std::sync::Arc;

fn id(s: &str) -> Id {
    Id::parse(s).unwrap()
}

#[test]
fn stream_ids_read_back_and_order_as_redis_orders_them() {
    assert_eq!(id("1700000000000-12").to_string(), "1700000000000-12");
    assert!(id("1-10") > id("1-9"));
    assert!(id("2-0") > id("1-99"));
    assert_eq!(Id::default(), id("0-0"));
    for bad in ["", "1", "1-", "-1", "a-1", "1-1-1", "$"] {
        assert_eq!(Id::parse(bad), None, "{bad}");
    }
}

#[test]
fn a_reconnection_reads_on_restarts_a_lost_stream_and_notices_trimmed_entries() {
    let some = |s| Some(id(s));
    // Never read anything: nothing to lose, whatever the stream holds.
    assert_eq!(resume(Id::default(), None, None), Resume::Continue);
    // Read up to 5-0, which is still there: read on.
    assert_eq!(resume(id("5-0"), some("1-0"), some("9-0")), Resume::Continue);
    assert_eq!(resume(id("5-0"), some("5-0"), some("5-0")), Resume::Continue);
    // Gone (a restart without persistence), or restarted below what we read.
    assert_eq!(resume(id("5-0"), None, None), Resume::Lost);
    assert_eq!(resume(id("5-0"), some("1-0"), some("4-9")), Resume::Lost);
    // Its oldest entry is newer than ours: what lay between was trimmed.
    assert_eq!(resume(id("5-0"), some("6-0"), some("9-0")), Resume::Trimmed);
}

fn streams_cluster(events: Arc<Mutex<Vec<Event>>>) -> Arc<Cluster> {
    // Nothing listens on port 1: the link stays down.
    let cfg = ClusterConfig {
        url: "redis://127.0.0.1:1".into(),
        prefix: "t:".into(),
        mode: Mode::Streams { retention: 100 },
        ..Default::default()
    };
    Cluster::start(cfg, Arc::new(move |e| events.lock().push(e))).unwrap()
}

#[tokio::test(start_paused = true)]
async fn entries_reach_the_listener_once_and_in_order_and_ours_and_copies_are_not_delivered() {
    let cluster = streams_cluster(Default::default());
    let listener = Listener::new(ListenerConfig::default(), Inbox::new(Box::new(|_| {})));
    cluster.attach("/ws", listener.clone());
    let (_, mut ws) = session(&listener).await;
    let mut f = Follow::default();
    f.last.insert("t:/ws".into(), id("1-0"));
    let (me, a, b) = (cluster.instance, cluster.instance ^ 1, cluster.instance ^ 2);
    let mut n = 1;
    let mut entry = |origin: u64, seq: Option<u64>, t: &str| {
        n += 1;
        let data = Wire::Broadcast { frame: text(t) }.encode(origin);
        f.entry(&cluster, "t:/ws", Id(n, 0), seq, Some(&data));
    };
    entry(a, Some(1), "a1");
    entry(a, Some(2), "a2");
    // The same publishes again (a batch sent twice): not delivered again.
    entry(a, Some(1), "a1 again");
    entry(a, Some(2), "a2 again");
    entry(me, Some(3), "ours");
    entry(a, None, "no sequence");
    // Another instance counts on its own.
    entry(b, Some(1), "b1");
    entry(a, Some(3), "a3");
    for t in ["a1", "a2", "b1", "a3"] {
        assert_eq!(next(&mut ws).await, t);
    }
    assert_eq!(f.last["t:/ws"], Id(n, 0), "read up to the last entry");
    // Nothing else came before this marker.
    listener.send_frames(vec![(0, text("end"))]);
    assert_eq!(next(&mut ws).await, "end");
    cluster.close();
    listener.close(1001).await;
}

#[tokio::test(start_paused = true)]
async fn publishes_wait_for_redis_and_past_the_bound_are_dropped_with_one_warning() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let cluster = streams_cluster(events.clone());
    // Under the size limit, 15 fit in the bound and a 16th does not.
    let big = text(&"x".repeat(MAX_PENDING_BYTES / 15 - 1024));
    // Redis is down: these wait (Pub/Sub would drop them).
    for _ in 0..14 {
        cluster.send("/ws", Wire::Broadcast { frame: big.clone() });
    }
    assert_eq!(cluster.dropped(), 0);
    // Past the bound: dropped, counted, and warned of once.
    for _ in 0..3 {
        cluster.send("/ws", Wire::Broadcast { frame: big.clone() });
    }
    assert_eq!(cluster.dropped(), 2, "the 15th fits, the 16th and 17th do not");
    assert_eq!(cluster.too_large(), 0);
    let dropped: Vec<_> = events.lock().iter().filter(|e| matches!(e, Event::Dropped(_))).cloned().collect();
    assert_eq!(dropped, [Event::Dropped("more than 64 MiB waiting for Redis".into())]);
    cluster.close();
}
