'use strict';
// The mocha suites (settings from .mocharc.js), each run ending with one plain
// "N passed, N failed" line that CI logs can be read by.

const fs = require('fs');
const path = require('path');
const { Mocha } = require('mocha');
const config = require('../.mocharc.js');

// `node tests/run.js [dir]`: the *.test.js files of tests/ (npm test), or of another
// suite's directory (tests/package, ...).
const dir = path.resolve(process.argv[2] || __dirname);
const mocha = new Mocha({ timeout: config.timeout, reporter: 'spec' });
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort()) {
    mocha.addFile(path.join(dir, file));
}

const runner = mocha.run();
runner.on('end', () => {
    const { passes, failures, pending } = runner.stats;
    console.log('Tests: ' + passes + ' passed, ' + failures + ' failed' + (pending ? ', ' + pending + ' skipped' : ''));
    process.exit(failures ? 1 : 0);
});
