//! Round trip of inbound batches across the language boundary: arbitrary pushes and
//! drop tallies into a real `Inbox`, drained as the JS thread drains it (one drain per
//! wake-up), every batch decoded by the shipped decoder (nodes/lib/batch.js, run by
//! node through tests/batch-decoder.js) and compared with what was pushed.

use super::*;
use base64::Engine;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A payload as generated; runs of one char or byte keep large ones short in a
/// failure report.
#[derive(Clone, Debug)]
enum Payload {
    Text(String),
    TextRun(char, usize),
    Bytes(Vec<u8>),
    ByteRun(u8, usize),
}

impl Payload {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Payload::Text(s) => s.as_bytes().to_vec(),
            Payload::TextRun(c, n) => c.to_string().repeat(*n).into_bytes(),
            Payload::Bytes(b) => b.clone(),
            Payload::ByteRun(b, n) => vec![*b; *n],
        }
    }
}

#[derive(Clone, Debug)]
struct Ev {
    kind: Kind,
    session: u32,
    extra: u32,
    payload: Payload,
}

#[derive(Clone, Debug)]
enum Op {
    Push(Ev),
    /// `count` small text messages "0", "1", ... from one session: fills batches to their cap.
    Burst {
        session: u32,
        count: usize,
    },
    /// `count` messages dropped for `session` (the drop policy's tally).
    Drop {
        session: u32,
        count: u32,
    },
    /// One drop for each of many sessions: more Dropped events than fit a batch.
    Drops(Vec<u32>),
    /// The JS thread runs the pending wake-up, if there is one: one drain.
    Deliver,
}

fn text() -> impl Strategy<Value = Payload> {
    prop_oneof![
        20 => prop::collection::vec(any::<char>(), 0..24).prop_map(|c| Payload::Text(c.into_iter().collect())),
        1 => (any::<char>(), 0..100_000usize).prop_map(|(c, n)| Payload::TextRun(c, n)),
    ]
}

fn binary() -> impl Strategy<Value = Payload> {
    prop_oneof![
        20 => prop::collection::vec(any::<u8>(), 0..48).prop_map(Payload::Bytes),
        1 => (any::<u8>(), 0..300_000usize).prop_map(|(b, n)| Payload::ByteRun(b, n)),
    ]
}

fn session() -> impl Strategy<Value = u32> {
    prop_oneof![0..4u32, Just(u32::MAX), any::<u32>()]
}

/// Close codes, and any u32: the layout carries `extra` as unsigned.
fn extra() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), 1000..1016u32, 3000..5000u32, Just(u32::MAX), any::<u32>()]
}

fn event() -> impl Strategy<Value = Ev> {
    let empty = || Just(Payload::Bytes(Vec::new()));
    let kind_payload = prop_oneof![
        5 => text().prop_map(|p| (Kind::Text, p)),
        5 => binary().prop_map(|p| (Kind::Binary, p)),
        1 => empty().prop_map(|p| (Kind::Open, p)),
        1 => empty().prop_map(|p| (Kind::Close, p)),
        1 => text().prop_map(|p| (Kind::Error, p)),
        1 => empty().prop_map(|p| (Kind::Connecting, p)),
    ];
    (kind_payload, session(), extra()).prop_map(|((kind, payload), session, extra)| Ev {
        kind,
        session,
        extra,
        payload,
    })
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        30 => event().prop_map(Op::Push),
        1 => (session(), 0..600usize).prop_map(|(session, count)| Op::Burst { session, count }),
        // Few sessions, so that drops for one session add up and meet its close.
        4 => (0..4u32, prop_oneof![Just(1u32), 1..1000u32]).prop_map(|(session, count)| Op::Drop { session, count }),
        1 => prop::collection::vec(0..300u32, 0..300).prop_map(Op::Drops),
        3 => Just(Op::Deliver),
    ];
    prop::collection::vec(op, 0..120)
}

/// One event as the JS decoder reported it (numbers as JS gave them, even negative).
#[derive(Debug, PartialEq)]
struct Decoded {
    kind: i64,
    session: i64,
    extra: i64,
    payload: Vec<u8>,
    text: Option<String>,
}

/// node running tests/batch-decoder.js, one JSON line back per batch sent.
struct JsDecoder {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<std::io::Result<String>>,
}

/// How long one batch may take to come back before the test gives up (a hang guard).
const REPLY_WAIT: Duration = Duration::from_secs(60);

impl JsDecoder {
    fn start() -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/batch-decoder.js");
        let mut child = Command::new("node")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("this test runs the JS decoder: `node` must be on PATH");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        JsDecoder { stdin: child.stdin.take(), child, lines }
    }

    fn decode(&mut self, batch: &[u8]) -> Result<Vec<Decoded>, TestCaseError> {
        let stdin = self.stdin.as_mut().expect("stdin open until drop");
        let sent = stdin
            .write_all(&(batch.len() as u32).to_le_bytes())
            .and_then(|_| stdin.write_all(batch))
            .and_then(|_| stdin.flush());
        sent.map_err(|e| TestCaseError::fail(format!("writing to the JS decoder: {e}")))?;
        let line = match self.lines.recv_timeout(REPLY_WAIT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("reading from the JS decoder: {e}"),
            Err(e) => panic!("no answer from the JS decoder ({e})"),
        };
        let reply: serde_json::Value = serde_json::from_str(&line).expect("the JS decoder answers JSON");
        if let Some(err) = reply.get("error") {
            return Err(TestCaseError::fail(format!("the JS decoder threw: {}", err.as_str().unwrap_or_default())));
        }
        let events = reply["events"].as_array().expect("events array");
        events
            .iter()
            .map(decoded)
            .collect::<Option<_>>()
            .ok_or_else(|| TestCaseError::fail(format!("odd reply: {line}")))
    }
}

fn decoded(v: &serde_json::Value) -> Option<Decoded> {
    let b64 = v[3].as_str()?;
    Some(Decoded {
        kind: v[0].as_i64()?,
        session: v[1].as_i64()?,
        extra: v[2].as_i64()?,
        payload: base64::engine::general_purpose::STANDARD.decode(b64).ok()?,
        text: v[4].as_str().map(str::to_owned),
    })
}

impl Drop for JsDecoder {
    fn drop(&mut self) {
        // End of input makes the script exit; kill it only if it does not.
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the decoder must report for `ev`.
fn expected(ev: &Ev) -> Decoded {
    let payload = ev.payload.bytes();
    let text =
        matches!(ev.kind, Kind::Text | Kind::Error).then(|| String::from_utf8(payload.clone()).expect("text is UTF-8"));
    Decoded { kind: ev.kind as i64, session: ev.session.into(), extra: ev.extra.into(), payload, text }
}

/// Short enough for a failure message, whatever the payload size.
fn brief(d: &Decoded) -> String {
    let head = &d.payload[..d.payload.len().min(16)];
    format!("kind {} session {} extra {} payload {} bytes {:02x?}…", d.kind, d.session, d.extra, d.payload.len(), head)
}

/// Runs `ops` against a fresh inbox; checks each batch as it is drained.
fn run(ops: &[Op], js: &mut JsDecoder) -> Result<(), TestCaseError> {
    let pending = Arc::new(AtomicUsize::new(0));
    let wakes = pending.clone();
    let inbox = Inbox::new(Box::new(move |_| {
        wakes.fetch_add(1, Ordering::SeqCst);
    }));
    let mut model = Model { queued: VecDeque::new(), bytes: 0, batches: 0, drops: HashMap::new() };
    for op in ops {
        match op {
            Op::Push(ev) => model.push(&inbox, ev.clone()),
            Op::Burst { session, count } => {
                for i in 0..*count {
                    let payload = Payload::Text(i.to_string());
                    model.push(&inbox, Ev { kind: Kind::Text, session: *session, extra: 0, payload });
                }
            }
            Op::Drop { session, count } => model.drop(&inbox, *session, *count),
            Op::Drops(sessions) => {
                for &session in sessions {
                    model.drop(&inbox, session, 1);
                }
            }
            Op::Deliver => {
                if pending.load(Ordering::SeqCst) > 0 {
                    pending.fetch_sub(1, Ordering::SeqCst);
                    model.deliver(&inbox, js)?;
                }
            }
        }
        let waiting = !model.queued.is_empty() || !model.drops.is_empty();
        prop_assert_eq!(
            pending.load(Ordering::SeqCst),
            waiting as usize,
            "a wake-up is pending exactly while events wait"
        );
        prop_assert_eq!(inbox.backed_up(), model.bytes >= HIGH_WATER_BYTES, "queued bytes are counted");
    }
    // The JS thread runs wake-ups until none is left; each drains at least one event.
    let mut left = model.queued.len() + model.drops.len() + 1;
    while pending.load(Ordering::SeqCst) > 0 && left > 0 {
        pending.fetch_sub(1, Ordering::SeqCst);
        model.deliver(&inbox, js)?;
        left -= 1;
    }
    prop_assert!(model.queued.is_empty(), "{} events never delivered", model.queued.len());
    prop_assert!(model.drops.is_empty(), "the drops of {} sessions never delivered", model.drops.len());
    Ok(())
}

/// What was pushed and not yet delivered.
struct Model {
    queued: VecDeque<Ev>,
    bytes: usize,
    batches: usize,
    /// Drops tallied per session and not yet delivered.
    drops: HashMap<u32, u32>,
}

impl Model {
    fn push(&mut self, inbox: &Arc<Inbox>, ev: Ev) {
        if ev.kind == Kind::Close {
            // A session's drops reach JS before its close.
            if let Some(extra) = self.drops.remove(&ev.session) {
                let payload = Payload::Bytes(Vec::new());
                self.queued.push_back(Ev { kind: Kind::Dropped, session: ev.session, extra, payload });
            }
        }
        let data = ev.payload.bytes();
        self.bytes += data.len();
        inbox.push(Event::new(ev.kind, ev.session, data, ev.extra));
        self.queued.push_back(ev);
    }

    fn drop(&mut self, inbox: &Arc<Inbox>, session: u32, count: u32) {
        inbox.count_drops(session, count);
        let tally = self.drops.entry(session).or_insert(0);
        *tally = tally.saturating_add(count);
    }

    fn deliver(&mut self, inbox: &Arc<Inbox>, js: &mut JsDecoder) -> Result<(), TestCaseError> {
        let batch = inbox.drain();
        let got = js.decode(&batch)?;
        let n = self.batches;
        self.batches += 1;
        prop_assert!(!got.is_empty(), "batch {n}: a wake-up found nothing to drain");
        // The queued events first, as many as the caps let in, then the drops tallied
        // since, one event per session, as many as there is room for.
        let mut taken = 0;
        let mut bytes = 0;
        for ev in &self.queued {
            let len = ev.payload.bytes().len();
            if taken > 0 && (taken == BATCH_MAX_EVENTS || bytes + len > BATCH_MAX_BYTES) {
                break;
            }
            (taken, bytes) = (taken + 1, bytes + len);
        }
        let tallies = (BATCH_MAX_EVENTS - taken).min(self.drops.len());
        prop_assert_eq!(got.len(), taken + tallies, "batch {}: events decoded", n);
        for (i, d) in got[..taken].iter().enumerate() {
            let want = expected(&self.queued.pop_front().expect("counted above"));
            prop_assert!(*d == want, "batch {n} event {i}: JS decoded {}, pushed {}", brief(d), brief(&want));
            self.bytes -= want.payload.len();
        }
        for d in &got[taken..] {
            let tally = self.drops.remove(&(d.session as u32));
            prop_assert!(tally.is_some(), "batch {n}: drops for session {} that has none (or twice)", d.session);
            let want = Decoded {
                kind: Kind::Dropped as i64,
                session: d.session,
                extra: tally.unwrap_or(0).into(),
                payload: Vec::new(),
                text: None,
            };
            prop_assert!(*d == want, "batch {n}: JS decoded {}, tallied {}", brief(d), brief(&want));
        }
        let bytes: usize = got.iter().map(|d| d.payload.len()).sum();
        let size = 4 + 16 * got.len() + bytes;
        prop_assert_eq!(batch.len(), size, "batch {}: not the size of its header and payloads", n);
        prop_assert!(got.len() <= BATCH_MAX_EVENTS, "batch {n}: {} events", got.len());
        prop_assert!(taken == 1 || bytes <= BATCH_MAX_BYTES, "batch {n}: {bytes} payload bytes in {taken} events");
        if let Some(next) = self.queued.front() {
            let next = next.payload.bytes().len();
            prop_assert!(
                taken == BATCH_MAX_EVENTS || bytes + next > BATCH_MAX_BYTES,
                "batch {n} stopped at {taken} events, {bytes} bytes, though the next ({next} bytes) fits"
            );
        }
        Ok(())
    }
}

#[test]
fn batches_round_trip_through_the_js_decoder() {
    let js = RefCell::new(JsDecoder::start());
    let mut runner = TestRunner::new(crate::props::config(48, file!()));
    if let Err(e) = runner.run(&ops(), |ops| run(&ops, &mut js.borrow_mut())) {
        panic!("{e}");
    }
}
