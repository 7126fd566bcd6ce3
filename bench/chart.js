'use strict';
// bench/chart.svg from bench/results.json: one bar per ratio on a log scale,
// drawn from the reference line at 1, with each target marked. Every bar reads
// "higher is better": for memory and latency, where ours ÷ core should be low,
// the bar is core ÷ ours and the target its inverse.
//
//   node bench/chart.js [results.json] [chart.svg]

const fs = require('fs');
const path = require('path');

const W = 980;
const LABEL_RIGHT = 470;
const X0 = 490;
const X1 = 900;
const ROW = 20;
const LO = 0.1;
const HI = 30;
const COLORS = { met: '#2e7d32', missed: '#c62828', none: '#78909c' };

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const x = (v) => X0 + ((Math.log(Math.min(HI, Math.max(LO, v))) - Math.log(LO)) / (Math.log(HI) - Math.log(LO))) * (X1 - X0);
const num = (v) => (v >= 10 ? v.toFixed(1) : v.toFixed(2));
const short = (label) => label.replace(/ connections/g, ' conns').replace(/ subscribers/g, ' subs').replace(/RSS per connection/, 'RSS per conn');

/** The rows to draw: {group, label, value, target, status}, all "higher is better". */
function rows(results) {
    const out = [];
    for (const sc of results.scenarios) {
        for (const c of sc.cases) {
            for (const r of c.ratios) {
                if (r.value === null || !Number.isFinite(r.value)) continue;
                const inverse = r.target && r.target.op === '<=';
                const value = inverse ? 1 / r.value : r.value;
                const target = r.target ? (inverse ? 1 / r.target.value : r.target.value) : null;
                const status = target === null ? 'none' : value >= target - 1e-9 ? 'met' : 'missed';
                out.push({ group: sc.title, label: short(inverse ? r.invLabel : r.label), value, target, status });
            }
        }
    }
    return out;
}

function svg(results) {
    const list = rows(results);
    const groups = [...new Set(list.map((r) => r.group))];
    const top = 70;
    const height = top + list.length * ROW + groups.length * 24 + 50;
    const m = results.meta;
    const parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="' + W + '" height="' + height + '" viewBox="0 0 ' + W + ' ' + height + '" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        '<text x="20" y="24" font-size="16" font-weight="bold">websocket-rs against core Node-RED: ratios per scenario (higher is better)</text>',
        '<text x="20" y="44" fill="#444">' + esc(m.date + ', ' + m.machine.cpus + ' cores (' + m.machine.cpuModel + '), Node ' + m.node + ', Node-RED ' + m.nodeRed + ', medians of ' + m.rounds + ' round(s)' + (m.loadavgStart || m.loadavgEnd ? ', load average ' + (m.loadavgStart || m.loadavgEnd)[0] + (m.loadavgStart ? ' at the start' : ' at the end') : '') + (m.smoke ? ', SMOKE RUN (not a measurement)' : '')) + '</text>',
        '<text x="20" y="60" fill="#444">' + esc('green: target met, red: missed, grey: ceiling or reference (no target); ▼ marks the target; log scale') + '</text>'
    ];
    const bottom = height - 40;
    for (const t of [0.1, 0.2, 0.5, 1, 2, 5, 10, 20]) {
        parts.push('<line x1="' + x(t).toFixed(1) + '" y1="' + top + '" x2="' + x(t).toFixed(1) + '" y2="' + bottom + '" stroke="' + (t === 1 ? '#000' : '#ddd') + '" stroke-width="' + (t === 1 ? 1.5 : 1) + '"/>');
        parts.push('<text x="' + x(t).toFixed(1) + '" y="' + (bottom + 16) + '" text-anchor="middle" fill="#444">' + t + '×</text>');
    }
    let y = top;
    let group = null;
    for (const r of list) {
        if (r.group !== group) {
            group = r.group;
            y += 18;
            parts.push('<text x="20" y="' + (y - 4) + '" font-weight="bold">' + esc(group) + '</text>');
            y += 6;
        }
        const mid = y + ROW / 2;
        const a = Math.min(x(1), x(r.value));
        const b = Math.max(x(1), x(r.value));
        parts.push('<text x="' + LABEL_RIGHT + '" y="' + (mid + 4) + '" text-anchor="end">' + esc(r.label) + '</text>');
        parts.push('<rect x="' + a.toFixed(1) + '" y="' + (y + 4) + '" width="' + Math.max(1, b - a).toFixed(1) + '" height="' + (ROW - 8) + '" fill="' + COLORS[r.status] + '"/>');
        // The figure goes right of the bar, or of the target mark if that is further right.
        const tx = r.target === null ? b : Math.max(b, x(r.target) + 4);
        parts.push('<text x="' + (tx + 4).toFixed(1) + '" y="' + (mid + 4) + '" fill="#222">' + num(r.value) + '×</text>');
        if (r.target !== null) {
            const tx = x(r.target).toFixed(1);
            parts.push('<path d="M' + tx + ' ' + (y + 9) + ' l-4 -7 h8 z" fill="#000"/><line x1="' + tx + '" y1="' + (y + 2) + '" x2="' + tx + '" y2="' + (y + ROW - 2) + '" stroke="#000"/>');
        }
        y += ROW;
    }
    parts.push('</svg>');
    return parts.join('\n') + '\n';
}

module.exports = { svg, rows };

if (require.main === module) {
    const input = process.argv[2] || path.join(__dirname, 'results.json');
    const output = process.argv[3] || path.join(__dirname, 'chart.svg');
    fs.writeFileSync(output, svg(JSON.parse(fs.readFileSync(input, 'utf8'))));
    console.log('wrote ' + output);
}
