'use strict';
//! How tests/conformance/run.js judges a wstest report: a case whose behaviour is
//! OK but whose close behaviour is wrong fails the run too.

const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { summarize, sideFails, AGENT } = require('./conformance/run');

function report(cases) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-autobahn-'));
    fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ [AGENT]: cases }));
    try {
        return summarize(dir, Object.keys(cases).length);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

describe('conformance report summary', function () {
    const ok = { behavior: 'OK', behaviorClose: 'OK' };

    it('passes OK and INFORMATIONAL cases, also with an INFORMATIONAL close', function () {
        const s = report({ '1.1.1': ok, '7.1.6': { behavior: 'INFORMATIONAL', behaviorClose: 'INFORMATIONAL' }, '7.13.1': { behavior: 'INFORMATIONAL', behaviorClose: 'OK' } });
        assert.strictEqual(sideFails(s, false), false, s.notOk.join('\n'));
        assert.deepStrictEqual(s.notOk, ['7.1.6 INFORMATIONAL (close INFORMATIONAL)', '7.13.1 INFORMATIONAL']);
    });

    for (const close of ['WRONG CODE', 'UNCLEAN', 'FAILED']) {
        it('fails a case that is OK but whose close behaviour is ' + close + ', and lists it', function () {
            const s = report({ '1.1.1': ok, '7.3.1': { behavior: 'OK', behaviorClose: close } });
            assert.strictEqual(s.badClose, 1);
            assert.strictEqual(sideFails(s, false), true);
            assert.deepStrictEqual(s.notOk, ['7.3.1 OK (close ' + close + ')']);
        });
    }

    it('fails a FAILED case (the control)', function () {
        assert.strictEqual(sideFails(report({ '1.1.1': ok, '5.1': { behavior: 'FAILED', behaviorClose: 'OK' } }), false), true);
    });
});
