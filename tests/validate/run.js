'use strict';
// `npm run test:validate`: Node-RED's scorecard (`node-red-dev validate`) on this
// package as packed must pass every check with no warning. node-red-dev (pinned in
// tests/validate/package.json) is installed here when missing. Its requests to the
// flow library's catalogue are answered locally (local-catalogue.js); a second
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

/** The package as published: `npm pack` (binaries do not matter here), unpacked into `dir`. */
function unpacked(dir) {
    const r = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', timeout: 120000 });
    assert.strictEqual(r.status, 0, 'npm pack failed: ' + r.stderr);
    const tarball = path.join(dir, JSON.parse(r.stdout)[0].filename);
    const x = spawnSync('tar', ['xzf', tarball, '-C', dir], { encoding: 'utf8' });
    assert.strictEqual(x.status, 0, 'tar failed: ' + x.stderr);
    return path.join(dir, 'package');
}

/** Runs `node-red-dev validate` on the unpacked package; returns {status, out, scorecard}. */
function validate(pkgDir, catalogueFile) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-validate-'));
    const card = path.join(tmp, 'scorecard.json');
    try {
        const r = spawnSync(process.execPath, ['-r', path.join(__dirname, 'local-catalogue.js'), cli, 'validate', '-p', pkgDir, '-o', card], {
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

function main(tmp) {
    ensureInstalled();
    const pkgDir = unpacked(tmp);
    const ok = validate(pkgDir, path.join(__dirname, 'catalogue.json'));
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
    const clashFile = path.join(tmp, 'catalogue-clash.json');
    fs.writeFileSync(clashFile, JSON.stringify(clash));
    const bad = validate(pkgDir, clashFile);
    assert.ok(bad.scorecard && bad.scorecard.N01 && bad.scorecard.N01.test === false, 'N01 did not see the clash:\n' + bad.out);
    assert.match(bad.out, /Duplicate nodename websocket in found in package\s+(›\s+)?node-red-contrib-some-websocket/);
    console.log('node-red-dev validate: ' + checks.length + ' checks passed (' + checks.join(' ') + '), no warnings; ' +
        'control: a clashing catalogue entry fails N01');
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-validate-pkg-'));
try {
    main(tmp);
} catch (err) {
    console.error('FAIL ' + err.message);
    process.exitCode = 1;
} finally {
    fs.rmSync(tmp, { recursive: true, force: true });
}
