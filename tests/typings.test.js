'use strict';
// native/index.d.ts is generated (`npm run build:loader`) and committed: it must
// name what the addon has, no more and no less, and be valid TypeScript, or
// TypeScript users and readers of the API are misled. Compared with the loaded
// addon, and checked by TypeScript's compiler.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const ts = require('typescript');
const native = require('../native/index.js');

const TYPINGS = path.join(__dirname, '..', 'native', 'index.d.ts');
const typings = fs.readFileSync(TYPINGS, 'utf8');

/** Each declared class with the names of its instance members and of its static ones. */
function declaredClasses() {
    const classes = new Map();
    for (const [, name, body] of typings.matchAll(/^export declare class (\w+) \{\n([\s\S]*?)^\}/gm)) {
        const members = { instance: new Set(), statics: new Set() };
        for (const [, isStatic, member] of body.matchAll(/^ {2}(static )?(?:get |set )?(\w+)\(/gm)) {
            if (member !== 'constructor') members[isStatic ? 'statics' : 'instance'].add(member);
        }
        classes.set(name, members);
    }
    return classes;
}

const sorted = (names) => [...names].sort();
// The `Js…` names are aliases of the classes (`export type JsListener = Listener`);
// test hooks (`__test…`) are left out of the typings on purpose.
const exportedClasses = Object.keys(native).filter((k) => /^[A-Z]/.test(k) && !k.startsWith('Js') && typeof native[k] === 'function');
const exportedFunctions = Object.keys(native).filter((k) => /^[a-z]/.test(k) && typeof native[k] === 'function');

describe('the addon\'s typings', function () {
    it('declare the classes the addon exports, each with exactly its methods and statics', function () {
        const declared = declaredClasses();
        assert.ok(exportedClasses.includes('Listener') && exportedClasses.includes('Client'), 'the addon exports its classes: ' + exportedClasses);
        assert.deepStrictEqual(sorted(declared.keys()), sorted(exportedClasses));
        for (const name of exportedClasses) {
            const instance = Object.getOwnPropertyNames(native[name].prototype).filter((m) => m !== 'constructor');
            const statics = Object.getOwnPropertyNames(native[name]).filter((m) => !['length', 'name', 'prototype', 'arguments', 'caller'].includes(m));
            assert.deepStrictEqual(sorted(declared.get(name).instance), sorted(instance), name);
            assert.deepStrictEqual(sorted(declared.get(name).statics), sorted(statics), name + ' (static)');
        }
    });

    it('declare the functions the addon exports, and no others', function () {
        const declared = [...typings.matchAll(/^export declare function (\w+)\(/gm)].map((m) => m[1]);
        assert.ok(exportedFunctions.length > 0);
        assert.deepStrictEqual(sorted(declared), sorted(exportedFunctions));
    });

    it('are valid TypeScript (strict, with Node\'s types)', function () {
        this.timeout(60000);
        const program = ts.createProgram([TYPINGS], { noEmit: true, strict: true, types: ['node'] });
        const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n') +
            (d.file ? ' (' + path.basename(d.file.fileName) + ':' + (d.file.getLineAndCharacterOfPosition(d.start).line + 1) + ')' : ''));
        assert.deepStrictEqual(problems, []);
    });
});
