'use strict';
// `--name value` options of the bench scripts, over their numeric defaults.

function parseOptions(defaults, argv) {
    const options = { ...defaults };
    for (let i = 0; i < argv.length; i += 2) {
        const key = argv[i].replace(/^--/, '');
        if (!(key in options)) throw new Error('unknown option ' + argv[i]);
        const value = Number(argv[i + 1]);
        if (!Number.isFinite(value)) throw new Error(argv[i] + ' needs a number');
        options[key] = value;
    }
    return options;
}

module.exports = { parseOptions };
