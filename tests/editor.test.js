'use strict';
//! The editor definitions (nodes/websocket.html), evaluated with a stub RED: the
//! limit properties, their defaults (blank), their validate functions (which must
//! agree with the runtime's reading, nodes/lib/limits.js), and their messages and
//! help in every locale. The dialogs themselves are left to browser tests.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const limits = require('../nodes/lib/limits');
const nodeRed = require('./node-red-under-test');

const NODES = path.join(__dirname, '..', 'nodes');
const LOCALES = fs.readdirSync(path.join(NODES, 'locales'));
const en = require('../nodes/locales/en-US/websocket.json');

function lookup(catalog, key) {
    return key.split('.').reduce((o, k) => (o && typeof o === 'object' ? o[k] : undefined), catalog);
}

/** The registerType definitions, by type. */
function definitions() {
    const html = fs.readFileSync(path.join(NODES, 'websocket.html'), 'utf8');
    const script = /<script type="text\/javascript">([\s\S]*?)<\/script>/.exec(html)[1];
    const defs = {};
    const RED = {
        _: (key, params) => {
            const text = lookup(en, key.replace(/^.*:/, ''));
            assert.strictEqual(typeof text, 'string', 'no en-US message for ' + key);
            return text.replace(/__(\w+)__/g, (m, name) => String((params || {})[name]));
        },
        validators: { regex: (re) => (v) => re.test(v) },
        nodes: { registerType: (type, def) => { defs[type] = def; }, node: () => null },
        settings: {},
        utils: {}
    };
    const $ = Object.assign(() => { throw new Error('no DOM here'); }, { extend: Object.assign });
    vm.runInNewContext(script, { RED, $, URL });
    return defs;
}

/** Property names in the `defaults` of each registerType call of core's editor file. */
function coreProperties() {
    const file = path.join(nodeRed.dir, '..', '@node-red', 'nodes', 'core', 'network', '22-websocket.html');
    const html = fs.readFileSync(fs.existsSync(file) ? file : require.resolve('@node-red/nodes/core/network/22-websocket.html'), 'utf8');
    const names = new Set();
    for (let at = html.indexOf('defaults:'); at >= 0; at = html.indexOf('defaults:', at + 1)) {
        let depth = 0;
        for (let i = html.indexOf('{', at); i < html.length; i++) {
            if (html[i] === '{') depth++;
            else if (html[i] === '}' && --depth === 0) break;
            else if (depth === 1) {
                const m = /^(\w+)\s*:/.exec(html.slice(i));
                if (m && /[\s,{]/.test(html[i - 1])) names.add(m[1]);
            }
        }
    }
    return names;
}

const LISTENER = ['limMsg', 'limQueue', 'limPolicy', 'limHandshake', 'limIdle', 'limConns', 'limOrigins'];
const CLIENT = ['limMsg', 'limQueue', 'limPolicy', 'limHandshake', 'limIdle'];

const CASES = {
    limMsg: { good: ['100', '0.5', '.5', '64 KiB', '64kib', '1G', '4096 B', ' 2 mib '], bad: ['0', '-1', 'lots', '64 KB', '0.1 B', '1e3', '5 constructor'] },
    limQueue: { good: ['32', '256 MiB'], bad: ['0 MiB', 'x'] },
    limPolicy: { good: ['close', 'drop'], bad: ['sometimes', 'Drop'] },
    limHandshake: { good: ['30', '0.5', '.25', '86400'], bad: ['0', '-1', 'abc', '1e3', '5 s'] },
    limIdle: { good: ['300'], bad: ['0', 'never'] },
    limConns: { good: ['1', '200', '999999999'], bad: ['0', '1.5', '-3', '1000000000', 'ten'] },
    limOrigins: {
        good: ['https://example.com', 'https://Example.com, http://localhost:1880', 'null', 'http://[::1]:1880', 'https://bücher.example', 'chrome-extension://abc/', ' , https://a.example'],
        bad: ['example.com', 'https://example.com/path', 'http://h:99999', '*', 'https://a.example, nope']
    }
};

describe('editor definitions', function () {
    const defs = definitions();

    it('give both config nodes the limit properties, blank by default', function () {
        for (const [type, props] of [['websocket-listener', LISTENER], ['websocket-client', CLIENT]]) {
            const own = Object.keys(defs[type].defaults).filter((p) => p.startsWith('lim'));
            assert.deepStrictEqual(own, props, type);
            for (const p of props) assert.strictEqual(defs[type].defaults[p].value, '', type + '.' + p);
        }
        assert.deepStrictEqual(Object.values(limits.PROPS).sort(), [...LISTENER].sort());
    });

    it('name no property that core ' + nodeRed.version + ' has', function () {
        const core = coreProperties();
        assert.ok(core.has('wholemsg') && core.has('headers') && core.has('path'), [...core].join(', '));
        for (const p of LISTENER) assert.ok(!core.has(p), p);
    });

    for (const [prop, { good, bad }] of Object.entries(CASES)) {
        it('validate ' + prop + ' as the runtime reads it, with a translated message', function () {
            const type = CLIENT.includes(prop) ? 'websocket-client' : 'websocket-listener';
            const validate = defs[type].defaults[prop].validate;
            const runtime = (v) => {
                let bad = false;
                limits.limitsOf({ [prop]: v }, true, () => { bad = true; });
                return !bad;
            };
            for (const v of ['', '  ', undefined, ...good]) {
                assert.strictEqual(validate.call({}, v, {}), true, prop + ' ' + JSON.stringify(v));
                assert.strictEqual(runtime(v), true, 'runtime ' + prop + ' ' + JSON.stringify(v));
            }
            for (const v of bad) {
                const message = validate.call({}, v, {});
                assert.strictEqual(typeof message, 'string', prop + ' accepted ' + JSON.stringify(v));
                assert.ok(!/websocket\./.test(message), message);
                assert.strictEqual(runtime(v), false, 'runtime accepted ' + prop + ' ' + JSON.stringify(v));
            }
        });
    }

    it('accept a client URL written as an environment variable, as core does', function () {
        const validate = defs['websocket-client'].defaults.path.validate;
        for (const v of ['ws://127.0.0.1:1880/ws', 'wss://example.com/a?b=c', '${WS_URL}', '${env.WS_URL}']) {
            assert.strictEqual(validate.call({}, v, {}), true, v);
        }
        // Only a whole-value reference without spaces is put in by the runtime.
        for (const v of ['http://example.com/', 'example.com', '${WS URL}', ' ${WS_URL}', '${}']) {
            assert.strictEqual(typeof validate.call({}, v, {}), 'string', v);
        }
    });

    it('check the cluster\'s URL and prefix as the runtime does, and label it without user-info', function () {
        const d = defs['websocket-cluster'];
        const url = d.defaults.url.validate;
        for (const v of ['redis://127.0.0.1:6379', 'rediss://h:6380/1']) assert.strictEqual(url.call({}, v, {}), true, v);
        // The runtime refuses an uppercase scheme: so does the editor.
        for (const v of ['REDIS://127.0.0.1:6379', 'Rediss://h', 'http://h']) assert.strictEqual(typeof url.call({}, v, {}), 'string', v);
        const prefix = d.defaults.prefix.validate;
        assert.strictEqual(prefix.call({}, 'nr-ws:', {}), true);
        for (const v of ['', 'nr-ws:/a', '/']) assert.strictEqual(typeof prefix.call({}, v, {}), 'string', JSON.stringify(v));
        assert.strictEqual(d.label.call({ url: 'redis://user:s3cret@h:6379/0' }), 'redis://h:6379/0');
        assert.strictEqual(d.label.call({ name: 'n', url: 'redis://:pw@h' }), 'n');
    });

    it('have every message in all ten locales', function () {
        const keys = (o, prefix = '') => Object.entries(o).flatMap(([k, v]) => (typeof v === 'object' ? keys(v, prefix + k + '.') : [prefix + k]));
        const want = keys(en).sort();
        assert.strictEqual(LOCALES.length, 10);
        for (const locale of LOCALES) {
            const catalog = JSON.parse(fs.readFileSync(path.join(NODES, 'locales', locale, 'websocket.json'), 'utf8'));
            assert.deepStrictEqual(keys(catalog).sort(), want, locale);
        }
    });

    it('have every message the WebSockets sidebar asks for, in all ten locales', function () {
        const keys = (o, prefix = '') => Object.entries(o).flatMap(([k, v]) => (typeof v === 'object' ? keys(v, prefix + k + '.') : [prefix + k]));
        const read = (locale) => JSON.parse(fs.readFileSync(path.join(NODES, 'locales', locale, 'websocket-live.json'), 'utf8'));
        const want = keys(read('en-US')).sort();
        for (const locale of LOCALES) assert.deepStrictEqual(keys(read(locale)).sort(), want, locale);
        // Every key the tab asks for (t("..."), and the marks the endpoint names) exists.
        const html = fs.readFileSync(path.join(NODES, 'websocket-live.html'), 'utf8');
        const asked = [...html.matchAll(/\bt\("([a-z.-]+)"[,)]/g)].map((m) => 'live.' + m[1]);
        const marks = ['queue-near-cap', 'drops', 'queue-full', 'refusals', 'connect-failed'];
        for (const k of [...asked, ...marks.flatMap((m) => ['live.mark.' + m, 'live.short.' + m])]) {
            assert.ok(want.includes(k), k + ' is not in the catalog');
        }
    });

    it('describe the live view and the rich status in the help of both config nodes in all ten locales', function () {
        for (const locale of LOCALES) {
            const html = fs.readFileSync(path.join(NODES, 'locales', locale, 'websocket.html'), 'utf8');
            for (const type of ['websocket-listener', 'websocket-client']) {
                const help = html.split('data-help-name="' + type + '"')[1].split('</script>')[0];
                for (const needle of ['/websocket-rs/stats', 'websocket.read', 'websocket.write', '3.2k']) {
                    assert.ok(help.includes(needle), locale + ' ' + type + ' help lacks ' + needle);
                }
            }
        }
    });

    it('have the limits in the help of both config nodes in all ten locales', function () {
        for (const locale of LOCALES) {
            const html = fs.readFileSync(path.join(NODES, 'locales', locale, 'websocket.html'), 'utf8');
            const help = (type) => html.split('data-help-name="' + type + '"')[1].split('</script>')[0];
            for (const needle of ['1009', '1008', '1001', '503', '403', 'inboundWebSocketTimeout', '100 MiB', '256 MiB']) {
                assert.ok(help('websocket-listener').includes(needle), locale + ' listener help lacks ' + needle);
            }
            for (const needle of ['1009', '1008', '1001', '30', '100 MiB', '256 MiB']) {
                assert.ok(help('websocket-client').includes(needle), locale + ' client help lacks ' + needle);
            }
        }
    });
});
