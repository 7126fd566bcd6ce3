'use strict';
// The live view's HTTP endpoint, under Node-RED's admin API and its permissions:
//   GET  <httpAdminRoot>/websocket-rs/stats                         websocket.read
//   GET  <httpAdminRoot>/websocket-rs/nodes/:id/sessions?sort=&limit= websocket.read
//   POST <httpAdminRoot>/websocket-rs/nodes/:id/sessions/:sid/close  websocket.write
// With adminAuth set, Node-RED refuses a request without a token (401) before
// these handlers run.

const stats = require('./stats');
const commands = require('./commands');

const SORTS = ['queued', 'in', 'out', 'since'];
const MAX_LIMIT = 10000;

const registered = new WeakSet();

function register(RED) {
    const app = RED.httpAdmin;
    if (!app || registered.has(app)) return;
    registered.add(app);
    const allow = (perm) => (RED.auth && RED.auth.needsPermission ? RED.auth.needsPermission(perm) : (req, res, next) => next());

    app.get('/websocket-rs/stats', allow('websocket.read'), (req, res) => {
        res.json({ time: Date.now(), nodes: stats.all() });
    });

    app.get('/websocket-rs/nodes/:id/sessions', allow('websocket.read'), (req, res) => {
        const node = stats.nodes.get(req.params.id);
        if (!node) return res.status(404).json({ error: 'no such websocket-listener or websocket-client' });
        const sort = req.query.sort || 'queued';
        const limit = req.query.limit === undefined ? 100 : Number(req.query.limit);
        if (!SORTS.includes(sort) || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
            return res.status(400).json({ error: 'sort is one of ' + SORTS.join(', ') + '; limit 1-' + MAX_LIMIT });
        }
        try {
            res.json(Object.assign({ time: Date.now() }, stats.sessionsOf(node, sort, limit)));
        } catch (err) {
            res.status(500).json({ error: err.message });
        }
    });

    app.post('/websocket-rs/nodes/:id/sessions/:sid/close', allow('websocket.write'), (req, res) => {
        // JSON only: a cross-site form or text/plain POST (no preflight) cannot close sessions.
        if (!req.is('application/json')) return res.status(415).json({ error: 'send application/json' });
        const node = stats.nodes.get(req.params.id);
        if (!node || !node.isListener) return res.status(404).json({ error: 'no such websocket-listener' });
        const sid = req.params.sid;
        if (!node.live.has(node.sessionNumber(sid))) return res.status(404).json({ error: 'no such session' });
        const body = req.body || {};
        const code = body.code === undefined ? 1000 : body.code;
        const reason = body.reason === undefined ? 'closed from the Node-RED editor' : body.reason;
        if (!commands.closeCodeAllowed(code) || typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
            return res.status(400).json({ error: 'code 1000-1003, 1007-1014 or 3000-4999; reason up to 123 bytes' });
        }
        const none = { room: null, join: null, leave: null, rooms: false, close: { code, reason } };
        commands.queue(node, { _session: { type: 'websocket', id: sid } }, none, undefined);
        node.log(RED._('websocket.log.closed-from-editor', { session: sid, code }));
        res.json({ closed: sid, code });
    });
}

module.exports = { register };
