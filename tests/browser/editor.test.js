'use strict';
//! The editor as a user sees it, in a real browser: Debian's chromium driven by
//! playwright-core (no browser download), against a real Node-RED with the package
//! installed from its packed tarball. Screenshots go to tests/artifacts/.
//! `npm run test:browser`; needs /usr/bin/chromium (.ci/setup installs it).

const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { chromium } = require('playwright-core');
const { startNodeRed } = require('../nodered');
const { WebSocket, nextMessage, closed, within } = require('../support');

const ROOT = path.resolve(__dirname, '..', '..');
const ARTIFACTS = path.join(ROOT, 'tests', 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const UI_MS = 15000;
const WAIT = { ms: 5000 };

function npm(args, options) {
    const cli = process.env.npm_execpath;
    const [cmd, pre] = cli && /\.c?js$/.test(cli) ? [process.execPath, [cli]] : ['npm', []];
    return execFileSync(cmd, [...pre, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

describe('the editor in a browser (chromium)', function () {
    this.timeout(60000);
    let tmp, nr, browser, page;
    const sockets = [];

    async function open(urlPath) {
        const ws = new WebSocket(nr.wsUrl + urlPath);
        sockets.push(ws);
        await within(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 5000, 'open ' + urlPath);
        return ws;
    }

    /** The deploy's answer comes before the flow has started: waits until `urlPath` takes a client. */
    async function untilListening(urlPath) {
        for (let i = 0; ; i++) {
            const ws = new WebSocket(nr.wsUrl + urlPath);
            const ok = await within(new Promise((resolve) => {
                ws.once('open', () => resolve(true));
                ws.once('error', () => resolve(false));
            }), 1000, 'a probe').catch(() => false);
            ws.terminate();
            if (ok) return;
            if (i === 20) throw new Error(urlPath + ' did not take a client after the deploy');
            await new Promise((resolve) => setTimeout(resolve, 250));
        }
    }

    async function echo(ws, text) {
        const got = nextMessage(ws, WAIT);
        ws.send(text);
        assert.strictEqual(String((await got).data), text);
    }

    const shot = (name, target = page) => target.screenshot({ path: path.join(ARTIFACTS, name + '.png') });

    before(async function () {
        this.timeout(180000);
        assert.ok(fs.existsSync(CHROMIUM), CHROMIUM + ' is missing: apt-get install chromium (.ci/setup)');
        fs.mkdirSync(ARTIFACTS, { recursive: true });
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-browser-'));
        // The binaries in native/ as they are (a host build here, every platform in CI).
        const [packed] = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], { cwd: ROOT }));
        const userDir = path.join(tmp, 'user');
        fs.mkdirSync(userDir);
        fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true }));
        npm(['install', path.join(tmp, packed.filename), '--offline', '--no-audit', '--no-fund', '--cache', path.join(tmp, 'npm-cache')], { cwd: userDir });
        nr = await startNodeRed({ userDir, flows: [] });
        browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
        page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
        page.setDefaultTimeout(UI_MS);
        await page.goto(nr.url);
        await page.waitForSelector('.red-ui-palette-node[data-palette-type="websocket in"]');
    });

    afterEach(async function () {
        if (this.currentTest.state === 'failed' && page) {
            await shot('failed-' + this.currentTest.title.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)).catch(() => {});
        }
    });

    after(async function () {
        this.timeout(30000);
        for (const ws of sockets) ws.terminate();
        if (browser) await browser.close();
        if (nr) await nr.stop({ signal: 'SIGKILL', ms: 5000 });
        if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    });

    it('shows websocket in and out under network, and registers both config types', async function () {
        const inNetwork = await page.$$eval('#red-ui-palette-container-network .red-ui-palette-node', (els) =>
            els.map((e) => e.getAttribute('data-palette-type')).filter((t) => t.startsWith('websocket')));
        assert.deepStrictEqual(inNetwork.sort(), ['websocket in', 'websocket out']);
        // Config types never show in a palette: they are registered with category "config".
        const config = await page.evaluate(() => ['websocket-listener', 'websocket-client'].map((t) => {
            const def = RED.nodes.getType(t);
            return def && def.category;
        }));
        assert.deepStrictEqual(config, ['config', 'config']);
        await shot('palette', page.locator('#red-ui-palette'));
    });

    async function editNode(type, extra) {
        const id = await page.evaluate(([type, extra]) => {
            const n = Object.assign({ id: RED.nodes.id(), type, x: 300, y: 200, z: RED.workspaces.active(), wires: [] }, extra);
            RED.view.importNodes([n], { generateIds: false, addFlow: false });
            const node = RED.nodes.node(n.id);
            RED.editor.edit(node);
            return n.id;
        }, [type, extra || {}]);
        await page.waitForSelector('#node-dialog-ok');
        return id;
    }

    /** Types `value` into a config dialog's field; true if the editor marks it invalid. */
    async function invalid(field, value) {
        const input = page.locator('#node-config-input-' + field);
        await input.fill(value);
        await input.dispatchEvent('change');
        await input.dispatchEvent('keyup');
        return input.evaluate((el) => el.classList.contains('input-error'));
    }

    async function cancelDialogs() {
        if (await page.locator('#node-config-dialog-cancel').isVisible()) await page.click('#node-config-dialog-cancel');
        // The node was added for the test: deleted, so the workspace deploys clean.
        await page.click('#node-dialog-delete');
        await page.waitForSelector('#node-dialog-ok', { state: 'detached' });
    }

    it('opens the listener dialog and validates its path and each limit field', async function () {
        await editNode('websocket in', { server: '', client: '' });
        await page.click('#node-input-btn-server-add');
        await page.waitForSelector('#node-config-input-path');
        assert.strictEqual(await invalid('path', '/ws/good'), false, 'a good path');
        assert.strictEqual(await invalid('path', '/debug/ws'), true, 'the debug node\'s path');
        const limits = { limMsg: ['10', 'ten'], limQueue: ['64', '-1'], limHandshake: ['5', 'soon'], limIdle: ['60', 'x'], limConns: ['100', '1.5'], limOrigins: ['https://a.example', 'not a url'] };
        await page.click('.wsrs-limits-toggle');
        for (const [field, [good, bad]] of Object.entries(limits)) {
            assert.strictEqual(await invalid(field, good), false, field + ' ' + good);
            assert.strictEqual(await invalid(field, bad), true, field + ' ' + bad);
        }
        await shot('listener-dialog');
        await cancelDialogs();
    });

    it('opens the client dialog and validates its URL and limit fields', async function () {
        await editNode('websocket out', { server: '', client: '' });
        await page.selectOption('#node-input-mode', 'client').catch(() => {});
        await page.evaluate(() => $('#node-input-mode').val('client').trigger('change'));
        await page.click('#node-input-btn-client-add');
        await page.waitForSelector('#node-config-input-path');
        assert.strictEqual(await invalid('path', 'ws://127.0.0.1:1880/ws'), false, 'a ws:// URL');
        assert.strictEqual(await invalid('path', 'http://127.0.0.1:1880/ws'), true, 'an http:// URL');
        await page.click('.wsrs-limits-toggle');
        for (const [field, [good, bad]] of Object.entries({ limMsg: ['1', 'big'], limQueue: ['8', '0x'], limIdle: ['30', '-3'] })) {
            assert.strictEqual(await invalid(field, good), false, field + ' ' + good);
            assert.strictEqual(await invalid(field, bad), true, field + ' ' + bad);
        }
        await shot('client-dialog');
        await cancelDialogs();
    });

    let listenerId = null;

    it('imports the echo example from Import → Examples, deploys it, and shows the clients in the status', async function () {
        await page.click('#red-ui-header-button-sidemenu');
        await page.click('#menu-item-import');
        await page.click('#red-ui-tab-red-ui-clipboard-dialog-import-tab-examples a');
        const examples = page.locator('#red-ui-clipboard-dialog-import-tab-examples');
        await examples.locator('.red-ui-treeList-label', { hasText: '@websocket-rs/node-red' }).click();
        await examples.locator('.red-ui-treeList-label', { hasText: '01 - Echo server and client' }).click();
        await shot('import-examples');
        // The example brings its own flow tab, so nothing is left to place.
        await page.click('#red-ui-clipboard-dialog-ok');
        await page.click('#red-ui-header-button-deploy');
        await page.waitForSelector('#red-ui-header-button-deploy.disabled');
        await page.waitForFunction(() => !RED.nodes.dirty());
        await untilListening('/ws/echo');
        listenerId = await page.evaluate(() => {
            let id = null;
            RED.nodes.eachConfig((n) => { if (n.type === 'websocket-listener' && n.path === '/ws/echo') id = n.id; });
            return id;
        });
        assert.ok(listenerId, 'the example\'s listener is in the workspace');
        const a = await open('/ws/echo');
        await open('/ws/echo');
        await echo(a, 'hello');
        await page.locator('#red-ui-workspace-tabs .red-ui-tab', { hasText: 'WebSocket echo' }).locator('a').click();
        const inId = await page.evaluate((lid) => RED.nodes.filterNodes({ type: 'websocket in' }).find((n) => n.server === lid).id, listenerId);
        const status = page.locator('[id="' + inId + '"] .red-ui-flow-node-status-label');
        await status.filter({ hasText: 'connected 2' }).waitFor();
        await shot('example-deployed');
    });

    it('shows each node\'s help in the help sidebar', async function () {
        for (const type of ['websocket in', 'websocket out', 'websocket-listener', 'websocket-client']) {
            await page.evaluate((t) => RED.sidebar.help.show(t), type);
            const help = page.locator('.red-ui-sidebar-help-stack');
            await help.locator('h1', { hasText: type }).first().waitFor();
            const text = await help.innerText();
            assert.ok(text.length > 300, type + ': ' + text.slice(0, 200));
        }
        await shot('help', page.locator('#red-ui-sidebar'));
    });

    it('shows live counts in the WebSockets sidebar that match the load, and closes a session from it', async function () {
        // With six tabs the sidebar may keep ours in its overflow menu: the menu's action.
        await page.evaluate(() => RED.sidebar.show('websocket-live'));
        const card = page.locator('.wsrs-live-node[data-id="' + listenerId + '"]');
        await card.waitFor();
        const before = await statOf(card, 'msgs-in');
        // The load: 3 more clients (5 in all), each echoing 20 messages.
        const more = [await open('/ws/echo'), await open('/ws/echo'), await open('/ws/echo')];
        for (const ws of more) {
            for (let i = 0; i < 20; i++) await echo(ws, 'load ' + i);
        }
        const expected = before + 60;
        await page.waitForFunction(([id, n]) => {
            const v = (stat) => {
                const el = document.querySelector('.wsrs-live-node[data-id="' + id + '"] [data-stat="' + stat + '"] .wsrs-live-v');
                return el && el.textContent;
            };
            return /^5 \//.test(v('connections-now')) && v('msgs-in') === String(n);
        }, [listenerId, expected]);
        assert.strictEqual(await statOf(card, 'msgs-in'), expected);
        assert.strictEqual(await statOf(card, 'msgs-out'), expected);
        await card.locator('.wsrs-live-toggle').click();
        await card.locator('tbody tr').nth(4).waitFor();
        assert.strictEqual(await card.locator('tbody tr').count(), 5);
        const victim = more[1];
        const row = card.locator('tbody tr', { hasText: '127.0.0.1:' + victim._socket.localPort });
        await row.waitFor();
        // A few seconds of steady traffic (bounded: 30 rounds), so the sparkline has a shape.
        for (let round = 0; round < 30; round++) {
            for (const ws of more) for (let i = 0; i < 10 + (round % 10) * 3; i++) ws.send('steady');
            await new Promise((resolve) => setTimeout(resolve, 200));
        }
        await page.waitForFunction((id) => {
            const el = document.querySelector('.wsrs-live-node[data-id="' + id + '"] .wsrs-live-in');
            return el && el.getAttribute('points').split(' ').length >= 4;
        }, listenerId);
        await shot('live-sidebar', page.locator('#red-ui-sidebar'));
        await shot('live-editor');
        const gone = closed(victim, WAIT);
        await row.locator('.wsrs-live-close').click();
        const { code } = await gone;
        assert.strictEqual(code, 1000);
        await echo(more[0], 'still here'); // the others are untouched
        await page.waitForFunction((id) => {
            const el = document.querySelector('.wsrs-live-node[data-id="' + id + '"]');
            return el && el.querySelectorAll('tbody tr').length === 4;
        }, listenerId);
        await shot('live-sidebar-after-close', page.locator('#red-ui-sidebar'));
    });

    /** A counter in a card, as the sidebar shows it (exact below 1000). */
    async function statOf(card, which) {
        return Number(await card.locator('[data-stat="' + which + '"] .wsrs-live-v').innerText());
    }
});
