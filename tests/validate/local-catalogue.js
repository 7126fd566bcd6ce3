'use strict';
// Preloaded into node-red-dev (node -r): its axios answers the one request that
// cannot leave this machine, the flow library's catalogue, from the file named by
// WSRS_CATALOGUE; every other request goes out as usual (the npm registry is
// reachable). At exit it reports how many times the catalogue was asked, so the
// runner can tell that the local answer was really used.

const fs = require('fs');
const path = require('path');

const CATALOGUE_URL = 'https://catalogue.nodered.org/catalogue.json';
const devDir = path.dirname(require.resolve('node-red-dev/package.json', { paths: [__dirname] }));
const axios = require(require.resolve('axios', { paths: [devDir] }));
const catalogue = JSON.parse(fs.readFileSync(process.env.WSRS_CATALOGUE, 'utf8'));

let answered = 0;
axios.interceptors.request.use((config) => {
    if (config.url === CATALOGUE_URL) {
        answered++;
        config.adapter = () => Promise.resolve({ data: catalogue, status: 200, statusText: 'OK', headers: {}, config, request: {} });
    }
    return config;
});

process.on('exit', () => {
    process.stderr.write('local catalogue answered ' + answered + ' request(s)\n');
});
