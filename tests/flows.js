'use strict';
// Flows for the tests that run a real Node-RED (e2e, https).

// Exported from a core Node-RED: a listener echo on /ws/echo. Used verbatim.
const ECHO_FLOW = '[{"id":"43294be738b7699a","type":"tab","label":"WebSockets","disabled":false,"info":"","env":[]},{"id":"d36a13e17814e375","type":"websocket in","z":"43294be738b7699a","name":"","server":"542f751e15337c46","client":"","x":230,"y":320,"wires":[["1660b4da46db22ad"]]},{"id":"1660b4da46db22ad","type":"websocket out","z":"43294be738b7699a","name":"","server":"542f751e15337c46","client":"","x":560,"y":320,"wires":[]},{"id":"542f751e15337c46","type":"websocket-listener","path":"/ws/echo","wholemsg":"false"}]';

const TAB = '43294be738b7699a';
const IN = 'd36a13e17814e375';
const OUT = '1660b4da46db22ad';

/** The echo flow with a change node (given rules) between `websocket in` and `websocket out`. */
function withChange(rules) {
    const flow = JSON.parse(ECHO_FLOW);
    flow.find((n) => n.id === IN).wires = [['e2echange0000001']];
    flow.push({
        id: 'e2echange0000001', type: 'change', z: TAB, name: '', rules,
        action: '', property: '', from: '', to: '', reg: false, x: 400, y: 320, wires: [[OUT]]
    });
    return flow;
}

/** The echo flow plus a comment node unrelated to the websocket nodes. */
function withComment(name) {
    const flow = JSON.parse(ECHO_FLOW);
    flow.push({ id: 'e2ecomment000001', type: 'comment', z: TAB, name, info: '', x: 230, y: 200, wires: [] });
    return flow;
}

/** Signs of a crash in Node-RED's output. */
const CRASH = /uncaught|FATAL|panicked|\bpanic\b|Segmentation fault|core dumped|Aborted|RangeError: Maximum call stack/i;

/** The lines of `output` that look like a crash. */
function crashLines(output) {
    return output.split('\n').filter((l) => CRASH.test(l));
}

module.exports = { ECHO_FLOW, TAB, IN, OUT, withChange, withComment, CRASH, crashLines };
