'use strict';
// The Node-RED side of the bench: one flow holding every scenario's nodes,
// deployed unchanged to core Node-RED ('core') and to Node-RED with this package
// ('ours'), and the few HTTP endpoints of that flow the bench reads.

const { startNodeRed } = require('../../tests/nodered');
const { trimmer } = require('./trim');

// Counts in node context, and every 256th message notes the count, the time and
// the process's CPU seconds, so that the rate over any window can be read back
// afterwards however late a request is answered (under a flood, core Node-RED
// answers HTTP only between backlogs). GET /bench/count returns the count and
// the notes since the previous request.
const COUNTER = `if (msg.req) {
    msg.payload = { n: context.get('n') || 0, notes: context.get('notes') || [] };
    context.set('notes', []);
    return msg;
}
const n = (context.get('n') || 0) + 1;
context.set('n', n);
if ((n & 255) === 0) {
    const notes = context.get('notes') || [];
    if (notes.length < 1e6) notes.push([n, Date.now(), global.get('cpuSeconds')()]);
    context.set('notes', notes);
}
return null;`;

// Node-RED's own limit: msgs shaped as 'websocket in' makes them, sent (one
// output, not cloned) to the same counter with no transport, in bursts of 256 per
// event-loop turn for a bounded time. Each msg gets its own _msgid (the function
// node's send would give every msg the request's), made as this package makes them
// (msgId below: cut from a pool of random bytes, cheaper than RED.util.generateId),
// so that the limit does no more per msg than ours. GET /bench/limit starts it.
const LIMIT = `const later = global.get('setImmediate');
const msgId = global.get('msgId');
const size = Math.min(Number(msg.req.query.size) || 64, 1 << 20);
const end = Date.now() + Math.min(Number(msg.req.query.seconds) || 1, 120) * 1000;
const payload = 'x'.repeat(size);
const burst = () => {
    for (let i = 0; i < 256; i++) {
        node.send({ payload, _session: { type: 'websocket', id: 'limit' }, _msgid: msgId() }, false);
    }
    if (Date.now() < end) later(burst);
};
later(burst);
return null;`;

// The fan-out publisher: 'go <size> <seconds> <window>' from a subscriber starts
// broadcasts (no _session, so 'websocket out' sends to every client), 'a <k>'
// acknowledges k of them; at most <window> are ahead of the acknowledgements.
// Bursts of 64 per event-loop turn; stops at 'stop' or after <seconds>.
// `publish` is the code of one publish (st.sent is its number), `perAck` how many
// publishes one acknowledged broadcast stands for (a room publish reaches 1/10).
const publisher = (publish, perAck) => `const later = global.get('setImmediate');
const words = String(msg.payload).split(' ');
let st = context.get('st');
if (words[0] === 'go') {
    if (st) st.stop = true;
    st = {
        sent: 0, acked: 0, busy: false, stop: false,
        payload: 'x'.repeat(Math.min(Number(words[1]) || 64, 1 << 20)),
        end: Date.now() + Math.min(Number(words[2]) || 1, 120) * 1000,
        window: Math.max(1, Number(words[3]) || 64)
    };
    st.pump = () => {
        st.busy = false;
        let n = 0;
        while (!st.stop && n < 64 && st.sent - st.acked < st.window) {
            ${publish}
            st.sent++;
            n++;
        }
        if (Date.now() >= st.end) st.stop = true;
        if (!st.stop && n === 64) {
            st.busy = true;
            later(st.pump);
        }
    };
    context.set('st', st);
} else if (!st) {
    return null;
} else if (words[0] === 'stop') {
    st.stop = true;
} else if (words[0] === 'a') {
    st.acked = Math.max(st.acked, (Number(words[1]) || 0) * ${perAck});
}
if (!st.busy && !st.stop) st.pump();
return null;`;
const PUBLISHER = publisher('node.send({ payload: st.payload }, false);', 1);

// Rooms (issue 13): each subscriber joins room r0-r9 in turn as it connects, and
// the publisher sends to the rooms in turn. Ours: the listener keeps the rooms
// (connection events, msg.websocket.join and .room). Core: a Status node sees the
// connects and disconnects, a function node keeps the members of each room in flow
// context, and the publisher sends one msg per member, with its _session.
const ROOMS = 10;
const ROOM_JOIN = `if (msg.payload !== 'connect') return null;
const n = context.get('n') || 0;
context.set('n', n + 1);
return { _session: msg._session, websocket: { join: 'r' + (n % ${ROOMS}) } };`;
const ROOM_PUBLISH = publisher(`node.send({ payload: st.payload, websocket: { room: 'r' + (st.sent % ${ROOMS}) } }, false);`, ROOMS);
const ROOM_TRACK = `const s = msg.status || {};
if (!s._session || (s.event !== 'connect' && s.event !== 'disconnect')) return null;
let rooms = flow.get('benchRooms');
if (!rooms) {
    rooms = { n: 0, of: {}, members: Array.from({ length: ${ROOMS} }, () => []) };
    flow.set('benchRooms', rooms);
}
const id = s._session.id;
if (s.event === 'connect') {
    const r = rooms.n++ % ${ROOMS};
    rooms.of[id] = r;
    rooms.members[r].push(id);
} else if (rooms.of[id] !== undefined) {
    const m = rooms.members[rooms.of[id]];
    delete rooms.of[id];
    const i = m.indexOf(id);
    if (i >= 0) m.splice(i, 1);
}
return null;`;
const ROOM_PUBLISH_EACH = publisher(`for (const id of (flow.get('benchRooms') || { members: [] }).members[st.sent % ${ROOMS}] || []) {
                node.send({ payload: st.payload, _session: { type: 'websocket', id } }, false);
            }`, ROOMS);

const GC = `const gc = global.get('gc');
if (gc) gc();
msg.payload = gc ? 'collected' : 'no gc';
return msg;`;

// What the idle profile reads: the process's memory as Node and V8 count it.
const MEMORY = `msg.payload = global.get('memory')();
return msg;`;

const fn = (id, func, wires, outputs = 1) => ({ id, type: 'function', z: 'b-tab', name: id.slice(2) + ' (bench)', func, outputs, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], wires });
const get = (id, url, wires) => ({ id, type: 'http in', z: 'b-tab', url, method: 'get', upload: false, swaggerDoc: '', wires });
const respond = (id) => ({ id, type: 'http response', z: 'b-tab', statusCode: '', headers: {}, wires: [] });
const listener = (id, path) => ({ id, type: 'websocket-listener', path, wholemsg: 'false' });
const wsIn = (id, server, wires) => ({ id, type: 'websocket in', z: 'b-tab', server, client: '', wires });
const wsOut = (id, server) => ({ id, type: 'websocket out', z: 'b-tab', server, client: '', wires: [] });

const FLOW = [
    { id: 'b-tab', type: 'tab', label: 'bench' },
    listener('b-echo-l', '/bench/echo'),
    wsIn('b-echo-in', 'b-echo-l', [['b-echo-out']]),
    wsOut('b-echo-out', 'b-echo-l'),
    listener('b-ingest-l', '/bench/ingest'),
    wsIn('b-ingest-in', 'b-ingest-l', [['b-count']]),
    fn('b-count', COUNTER, [['b-count-res']]),
    get('b-count-get', '/bench/count', [['b-count']]),
    respond('b-count-res'),
    get('b-limit-get', '/bench/limit', [['b-limit', 'b-limit-ok']]),
    fn('b-limit', LIMIT, [['b-count']]),
    fn('b-limit-ok', 'msg.payload = \'started\';\nreturn msg;', [['b-limit-res']]),
    respond('b-limit-res'),
    listener('b-fan-l', '/bench/fanout'),
    wsIn('b-fan-in', 'b-fan-l', [['b-pub']]),
    fn('b-pub', PUBLISHER, [['b-fan-out']]),
    wsOut('b-fan-out', 'b-fan-l'),
    listener('b-rooms-l', '/bench/rooms'),
    { ...wsIn('b-rooms-in', 'b-rooms-l', [['b-rooms-pub'], ['b-rooms-join']]), events: true, outputs: 2 },
    fn('b-rooms-join', ROOM_JOIN, [['b-rooms-out']]),
    fn('b-rooms-pub', ROOM_PUBLISH, [['b-rooms-out']]),
    wsOut('b-rooms-out', 'b-rooms-l'),
    listener('b-roomsf-l', '/bench/rooms-fn'),
    wsIn('b-roomsf-in', 'b-roomsf-l', [['b-roomsf-pub']]),
    { id: 'b-roomsf-status', type: 'status', z: 'b-tab', scope: ['b-roomsf-in'], wires: [['b-roomsf-track']] },
    fn('b-roomsf-track', ROOM_TRACK, []),
    fn('b-roomsf-pub', ROOM_PUBLISH_EACH, [['b-roomsf-out']]),
    wsOut('b-roomsf-out', 'b-roomsf-l'),
    get('b-gc-get', '/bench/gc', [['b-gc']]),
    fn('b-gc', GC, [['b-gc-res']]),
    respond('b-gc-res'),
    get('b-mem-get', '/bench/memory', [['b-mem']]),
    fn('b-mem', MEMORY, [['b-mem-res']]),
    respond('b-mem-res')
];

// settings.js code: setImmediate and msg ids for the generators, the process's CPU time, and
// the garbage collector (exposed after start: a flag Node takes at runtime, then
// read from a new context).
const SETTINGS_CODE = `require('v8').setFlagsFromString('--expose-gc');
const newSpaceAtStart = require('v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
module.exports.functionGlobalContext = {
    setImmediate,
    msgId: require(${JSON.stringify(require('path').join(__dirname, '..', '..', 'nodes', 'lib', 'messages.js'))}).newMsgId,
    gc: require('vm').runInNewContext('gc'),
    cpuSeconds: () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; },
    memory: () => ({ ...process.memoryUsage(), spaces: require('v8').getHeapSpaceStatistics(), newSpaceAtStart })
};`;

/**
 * Node-RED with the bench flow: 'ours' loads this package, 'core' is plain Node-RED.
 * `env` replaces the child's environment (bench/counters.js points
 * NAPI_RS_NATIVE_LIBRARY_PATH at a build without counters). With `trim`, the
 * handle's `trim()` calls malloc_trim(0) in it and `mallocStats()` reads glibc's
 * totals (bench/lib/trim.js). `nodeArgs` go to node before red.js (e.g. --cpu-prof).
 */
async function start(variant, { env, trim = false, nodeArgs } = {}) {
    const trims = trim ? trimmer(env) : null;
    const nr = await startNodeRed({
        withPackage: variant === 'ours',
        env: trims ? trims.env : env,
        nodeArgs,
        flows: FLOW,
        settings: { logging: { console: { level: 'warn', metrics: false, audit: false } } },
        settingsCode: SETTINGS_CODE,
        prefix: 'wsrs-bench-' + variant + '-'
    }).catch((err) => {
        if (trims) trims.close();
        throw new Error(variant + ': Node-RED did not start: ' + err.message);
    });
    const until = Date.now() + 30000;
    for (;;) { // the flow's http-in nodes answer once the flow has started
        const res = await nr.request('GET', '/bench/count').catch(() => null);
        if (res && res.status === 200) break;
        if (Date.now() > until) {
            await nr.stop();
            if (trims) trims.close();
            throw new Error(variant + ': the bench flow did not start within 30 s:\n' + nr.output());
        }
        await new Promise((r) => setTimeout(r, 100));
    }
    // Bounded, but generous: under a flood core Node-RED answers only between backlogs.
    const call = async (urlPath) => {
        const res = await nr.request('GET', urlPath, { ms: 120000 });
        if (res.status !== 200) throw new Error(variant + ': GET ' + urlPath + ' answered ' + res.status + ': ' + res.text);
        return res;
    };
    return {
        variant,
        pid: nr.child.pid,
        url: (path) => nr.wsUrl + path,
        count: async () => (await call('/bench/count')).json(),
        limit: (seconds, size) => call('/bench/limit?seconds=' + seconds + '&size=' + size),
        gc: () => call('/bench/gc'),
        memory: async () => (await call('/bench/memory')).json(),
        output: () => nr.output(),
        /** True once malloc_trim(0) has run in it (needs `trim`), false if not within 30 s. */
        trim: async () => (trims ? (await trims.trim()) !== null : false),
        /** glibc's { system, inUse } bytes (needs `trim`), null if not read within 30 s. */
        mallocStats: () => (trims ? trims.stats() : Promise.resolve(null)),
        stop: async () => {
            const exited = await nr.stop();
            if (trims) trims.close();
            return exited;
        }
    };
}

module.exports = { start, FLOW, ROOMS };
