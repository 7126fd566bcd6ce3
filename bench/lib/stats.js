'use strict';
// Medians and the number formats of the tables.

function median(xs) {
    const s = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
    if (!s.length) return null;
    const mid = Math.floor(s.length / 2);
    return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function ratio(a, b) {
    return a === null || b === null || !b ? null : a / b;
}

/** 1234567 -> "1 234 567" (as the README writes figures). */
function int(x) {
    if (x === null || x === undefined) return '-';
    return String(Math.round(x)).replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
}

function fixed(digits) {
    return (x) => (x === null || x === undefined ? '-' : x.toFixed(digits));
}

module.exports = { median, ratio, int, fixed };
