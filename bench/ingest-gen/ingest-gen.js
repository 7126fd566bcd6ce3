'use strict';
// Benchmark-only node (bench/ingest.js): messages made inside Node-RED, shaped as
// `websocket in` makes them (a fresh msg and `_session` each; one payload string
// for all, so no decoding; or with `fresh`, each its own payload decoded from
// bytes, as a transport must), sent in batches of 256 per event-loop turn — the
// counting flow fed with no transport at all, Node-RED's own limit. GET
// /bench/go?ms=N starts it for N ms (bounded, self-stopping).

module.exports = function (RED) {
    function IngestGen(n) {
        RED.nodes.createNode(this, n);
        const node = this;
        const size = Number(n.size) || 64;
        const payload = 'x'.repeat(size);
        const bytes = Buffer.from(payload);
        const make = n.fresh ? () => bytes.toString('utf8', 0, size) : () => payload;
        let until = 0;
        function burst() {
            for (let i = 0; i < 256; i++) {
                node.send({ payload: make(), _session: { type: 'websocket', id: 'bench' } });
            }
            if (Date.now() < until) setImmediate(burst);
        }
        node.start = (ms) => {
            const idle = until <= Date.now();
            until = Date.now() + Math.min(ms, 60000);
            if (idle) setImmediate(burst);
        };
        gens.add(node);
        node.on('close', () => { until = 0; gens.delete(node); });
    }
    const gens = new Set();
    RED.nodes.registerType('bench-ingest-gen', IngestGen);
    RED.httpNode.get('/bench/go', (req, res) => {
        for (const g of gens) g.start(Number(req.query.ms) || 1000);
        res.json({ started: gens.size });
    });
};
