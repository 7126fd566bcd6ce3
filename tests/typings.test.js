'use strict';
// native/index.d.ts is generated (`npm run build:loader`) and committed: it must
// name what the addon has, no more and no less, or TypeScript users and readers
// of the API are misled. Compared with the loaded addon's classes.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const native = require('../native/index.js');

const typings = fs.readFileSync(path.join(__dirname, '..', 'native', 'index.d.ts'), 'utf8');

/** Each declared class with the names of its methods and accessors. */
function declaredClasses() {
    const classes = new Map();
    for (const [, name, body] of typings.matchAll(/^export declare class (\w+) \{\n([\s\S]*?)^\}/gm)) {
        const members = [...body.matchAll(/^ {2}(?:static )?(?:get |set )?(\w+)\(/gm)].map((m) => m[1]);
        classes.set(name, new Set(members.filter((m) => m !== 'constructor')));
    }
    return classes;
}

describe('the addon\'s typings', function () {
    it('declare every class the addon exports, each with exactly its methods', function () {
        const declared = declaredClasses();
        const exported = Object.keys(native).filter((k) => typeof native[k] === 'function' && native[k].prototype && !k.startsWith('Js'));
        const classes = exported.filter((k) => Object.getOwnPropertyNames(native[k].prototype).length > 1);
        assert.ok(classes.includes('Listener') && classes.includes('Client'), 'the addon exports its classes: ' + classes);
        assert.deepStrictEqual([...declared.keys()].sort(), classes.sort());
        for (const name of classes) {
            const actual = Object.getOwnPropertyNames(native[name].prototype).filter((m) => m !== 'constructor').sort();
            assert.deepStrictEqual([...declared.get(name)].sort(), actual, name);
        }
    });

    it('declare every function the addon exports', function () {
        // Test hooks (`__test…`) are left out of the typings on purpose.
        const functions = Object.keys(native).filter((k) => typeof native[k] === 'function' && !/^([A-Z]|__)/.test(k));
        assert.ok(functions.length > 0);
        for (const name of functions) {
            assert.match(typings, new RegExp('^export declare function ' + name + '\\(', 'm'), name);
        }
    });
});
