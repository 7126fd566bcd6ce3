'use strict';
module.exports = {
    spec: ['tests/*.test.js'],
    timeout: 20000,
    exit: true
};
