'use strict';
// Loads the addon on first use, never at require time: a node file that throws
// while loading makes Node-RED hold back every flow ("waiting for missing types").
// A failure is remembered and reported by each node instead.

let addon = null;
let loadError = null;

function load() {
    if (!addon && !loadError) {
        try {
            addon = require('../../index.js');
        } catch (err) {
            loadError = err;
        }
    }
    if (loadError) {
        throw loadError;
    }
    return addon;
}

module.exports = { load };
