'use strict';
// `npm run test:validate`: Node-RED's scorecard (`node-red-dev validate`) on this
// package must pass every check with no warning. node-red-dev (pinned in
// tests/validate/package.json) is installed here when missing. Its one request to
// the flow library's catalogue is answered locally (local-catalogue.js); a second
// run with a catalogue in which another module claims our type names must fail
// the unique-names check, proving that the local answer is the one used.

const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const modules = path.join(__dirname, 'node_modules');
const cli = path.join(modules, 'node-red-dev', 'bin', 'run');

function ensureInstalled() {
    if (fs.existsSync(cli)) return;
    const r = spawnSync('npm', ['ci', '--prefix', __dirname, '--cache', path.join(modules, '.npm-cache'), '--no-audit', '--no-fund'],
        { stdio: 'inherit', timeout: 600000 });
    assert.strictEqual(r.status, 0, 'npm ci --prefix tests/validate failed');
}

/** Runs `node-red-dev validate` on the package; returns {status, out, scorecard}. */
function validate(catalogueFile) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-validate-'));
    const card = path.join(tmp, 'scorecard.json');
    try {
        const r = spawnSync(process.execPath, ['-r', path.join(__dirname, 'local-catalogue.js'), cli, 'validate', '-p', ROOT, '-o', card], {
            encoding: 'utf8', timeout: 300000, killSignal: 'SIGKILL', input: '',
            env: { ...process.env, WSRS_CATALOGUE: catalogueFile }
        });
        const out = (r.stdout || '') + (r.stderr || '');
        return { status: r.status, out, scorecard: fs.existsSync(card) ? JSON.parse(fs.readFileSync(card, 'utf8')) : null };
    } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
    }
}

/** The checks (P01, N01, D03, ...) that did not pass. */
function failed(scorecard) {
    return Object.entries(scorecard).filter(([k, v]) => /^[A-Z]\d\d$/.test(k) && !v.test).map(([k]) => k);
}

function main() {
    ensureInstalled();
    const ok = validate(path.join(__dirname, 'catalogue.json'));
    console.log(ok.out.trim());
    assert.ok(ok.scorecard, 'no scorecard was written');
    assert.match(ok.out, /local catalogue answered 2 request\(s\)/);
    assert.deepStrictEqual(failed(ok.scorecard), [], 'failed checks');
    const checks = Object.keys(ok.scorecard).filter((k) => /^[A-Z]\d\d$/.test(k)).sort();
    for (const k of ['P01', 'P03', 'P04', 'P05', 'P06', 'P07', 'P08', 'N01', 'N02', 'D01', 'D02', 'D03']) {
        assert.ok(checks.includes(k), k + ' did not run: ' + checks.join(' '));
    }
    assert.doesNotMatch(ok.out, /Warning|Error/i, 'node-red-dev printed a warning or an error');

    // Positive control: a module in the catalogue that registers "websocket in".
    const clash = JSON.parse(fs.readFileSync(path.join(__dirname, 'catalogue.json'), 'utf8'));
    clash.modules.push({ id: 'node-red-contrib-some-websocket', version: '1.0.0', types: ['websocket in'] });
    const clashFile = path.join(os.tmpdir(), 'wsrs-catalogue-clash-' + process.pid + '.json');
    fs.writeFileSync(clashFile, JSON.stringify(clash));
    try {
        const bad = validate(clashFile);
        assert.ok(bad.scorecard && bad.scorecard.N01 && bad.scorecard.N01.test === false, 'N01 did not see the clash:\n' + bad.out);
        assert.match(bad.out, /Duplicate nodename websocket in found in package\s+(›\s+)?node-red-contrib-some-websocket/);
    } finally {
        fs.rmSync(clashFile, { force: true });
    }
    console.log('node-red-dev validate: ' + checks.length + ' checks passed (' + checks.join(' ') + '), no warnings; ' +
        'control: a clashing catalogue entry fails N01');
}

try {
    main();
} catch (err) {
    console.error('FAIL ' + err.message);
    process.exit(1);
}
