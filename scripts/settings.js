// Node-RED settings for `npm start`: the package loaded, core websocket nodes
// excluded (both register the same types), editor on loopback only.
module.exports = {
    uiHost: process.env.HOST || '127.0.0.1',
    uiPort: Number(process.env.PORT) || 1880,
    flowFile: 'flows.json',
    flowFilePretty: true,
    nodesExcludes: ['22-websocket.js'],
    logging: { console: { level: 'info', metrics: false, audit: false } },
    editorTheme: { tours: false }
};
