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

/** The echo flow with its in node renamed, and a second tab holding a comment. */
function withTwoTabs(inName, otherName) {
    const flow = JSON.parse(ECHO_FLOW);
    flow.find((n) => n.type === 'websocket in').name = inName;
    flow.push({ id: 'e2etab2000000001', type: 'tab', label: 'other', disabled: false, info: '', env: [] });
    flow.push({ id: 'e2ecomment000002', type: 'comment', z: 'e2etab2000000001', name: otherName, info: '', x: 230, y: 100, wires: [] });
    return flow;
}

/** Signs of a crash in Node-RED's output. */
const CRASH = /uncaught|FATAL|panicked|\bpanic\b|Segmentation fault|core dumped|Aborted|RangeError: Maximum call stack/i;

/** The lines of `output` that look like a crash. */
function crashLines(output) {
    return output.split('\n').filter((l) => CRASH.test(l));
}


/** The seed example, a core Node-RED export: a listener echo on /ws/echo and a
 *  client (ws://localhost:1880/ws/echo) with inject → client out, client in → debug. */
const SEED_FLOW = '[{"id":"43294be738b7699a","type":"tab","label":"WebSockets","disabled":false,"info":"","env":[]},{"id":"e788dbc44428f6b7","type":"websocket in","z":"43294be738b7699a","name":"","server":"","client":"4db78eb653d6d50d","x":290,"y":240,"wires":[["d86baf93795dbb2d"]]},{"id":"8c702971b0292f9b","type":"websocket out","z":"43294be738b7699a","name":"","server":"","client":"4db78eb653d6d50d","x":510,"y":180,"wires":[]},{"id":"dda81a976ccf2a2b","type":"inject","z":"43294be738b7699a","name":"","props":[{"p":"payload"},{"p":"topic","vt":"str"}],"repeat":"","crontab":"","once":false,"onceDelay":0.1,"topic":"","payload":"","payloadType":"date","x":220,"y":180,"wires":[["8c702971b0292f9b"]]},{"id":"d86baf93795dbb2d","type":"debug","z":"43294be738b7699a","name":"debug 5","active":true,"tosidebar":true,"console":false,"tostatus":false,"complete":"false","statusVal":"","statusType":"auto","x":580,"y":240,"wires":[]},{"id":"d36a13e17814e375","type":"websocket in","z":"43294be738b7699a","name":"","server":"542f751e15337c46","client":"","x":230,"y":320,"wires":[["1660b4da46db22ad"]]},{"id":"1660b4da46db22ad","type":"websocket out","z":"43294be738b7699a","name":"","server":"542f751e15337c46","client":"","x":560,"y":320,"wires":[]},{"id":"4db78eb653d6d50d","type":"websocket-client","path":"ws://localhost:1880/ws/echo","tls":"","wholemsg":"false","hb":"0","subprotocol":""},{"id":"542f751e15337c46","type":"websocket-listener","path":"/ws/echo","wholemsg":"false"}]';

/** The seed flow, unchanged but for the port its client dials. */
function seedFlow(port) {
    return JSON.parse(SEED_FLOW.replace('ws://localhost:1880/', 'ws://localhost:' + port + '/'));
}

/** A websocket-client config plus in (to a helper sink) and out nodes, and `more`. */
function clientFlow(url, extra = {}, more = []) {
    return [
        { id: 'client', type: 'websocket-client', path: url, tls: '', wholemsg: 'false', hb: '0', subprotocol: '', headers: [], ...extra },
        { id: 'in', type: 'websocket in', server: '', client: 'client', wires: [['sink']] },
        { id: 'sink', type: 'helper' },
        { id: 'out', type: 'websocket out', server: '', client: 'client' },
        ...more
    ];
}

module.exports = {
    withTwoTabs,
    SEED_FLOW,
    seedFlow, ECHO_FLOW, TAB, IN, OUT, withChange, withComment, CRASH, crashLines, clientFlow };
