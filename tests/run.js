'use strict';
// `npm run test:js`: the mocha suite (settings from .mocharc.js), ending with one
// plain "N passed, N failed" line that CI logs can be read by.

const fs = require('fs');
const path = require('path');
const { Mocha } = require('mocha');
const config = require('../.mocharc.js');

const mocha = new Mocha({ timeout: config.timeout, reporter: 'spec' });
for (const file of fs.readdirSync(__dirname).filter((f) => f.endsWith('.test.js')).sort()) {
    mocha.addFile(path.join(__dirname, file));
}

const runner = mocha.run();
runner.on('end', () => {
    const { passes, failures, pending } = runner.stats;
    console.log('Tests: ' + passes + ' passed, ' + failures + ' failed' + (pending ? ', ' + pending + ' skipped' : ''));
    process.exit(failures ? 1 : 0);
});
