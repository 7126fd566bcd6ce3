'use strict';
// What the bench reads about processes and the machine, from /proc (Linux).

const fs = require('fs');
const os = require('os');
const { execFileSync } = require('child_process');

let ticks = 0;
/** Clock ticks per second of /proc/<pid>/stat times. */
function clockTicks() {
    if (!ticks) {
        try {
            ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
        } catch (err) {
            ticks = 100;
        }
    }
    return ticks;
}

/** CPU seconds (user + system, all threads) a process has used so far. */
function cpuSeconds(pid) {
    const stat = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / clockTicks();
}

/** Resident set size in bytes. */
function rss(pid) {
    return Number(fs.readFileSync('/proc/' + pid + '/status', 'utf8').match(/VmRSS:\s+(\d+)/)[1]) * 1024;
}

function openFds(pid) {
    return fs.readdirSync('/proc/' + pid + '/fd').length;
}

/** This process's descriptor limit, {soft, hard} (Infinity when unlimited). */
function fdLimits() {
    const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const [soft, hard] = line.slice('Max open files'.length).trim().split(/\s+/).map((v) => (v === 'unlimited' ? Infinity : Number(v)));
    return { soft, hard };
}

/** The machine, for the results' header. */
function machine() {
    let distro = os.type();
    try {
        distro = fs.readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]*)"?/m)[1];
    } catch (err) { /* keep os.type() */ }
    const cpus = os.cpus();
    return {
        cpus: cpus.length,
        cpuModel: cpus.length ? cpus[0].model.trim() : 'unknown',
        memGiB: Math.round(os.totalmem() / 2 ** 30),
        os: distro,
        kernel: os.release()
    };
}

/** The 1, 5 and 15 minute load averages: how busy the shared machine was. */
const loadavg = () => os.loadavg().map((x) => Number(x.toFixed(2)));

module.exports = { cpuSeconds, rss, openFds, fdLimits, machine, loadavg };
