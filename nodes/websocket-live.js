'use strict';
// The editor's "WebSockets" sidebar tab (websocket-live.html), an editor plugin.
// Its data comes from the admin endpoint that nodes/websocket.js registers
// (lib/admin.js), so this runtime part has nothing to do but exist.

module.exports = function (RED) {
    RED.plugins.registerPlugin('websocket-live', { type: 'websocket-rs-live' });
};
