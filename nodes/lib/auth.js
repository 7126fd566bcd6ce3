'use strict';
// A listener's authentication settings, as the addon takes them. The secrets (the
// shared token, an HS256 secret) are Node-RED credentials; a PEM public key is not
// secret and is a plain property.

const MODES = ['', 'token', 'jwt'];
const ALGORITHMS = ['HS256', 'RS256', 'ES256'];

/** The addon's `auth` option, or undefined for none (as core). Throws on an unknown mode. */
function authOptions(n, credentials) {
    const mode = n.auth || '';
    if (!MODES.includes(mode)) throw new Error('unknown authentication mode: ' + mode);
    if (mode === '') return undefined;
    const c = credentials || {};
    const param = typeof n.authParam === 'string' && n.authParam.trim() ? n.authParam.trim() : undefined;
    if (mode === 'token') return { mode, token: c.authToken || '', param };
    const algorithm = n.jwtAlg || 'HS256';
    return {
        mode,
        algorithm,
        key: algorithm === 'HS256' ? c.jwtSecret || '' : n.jwtPem || '',
        issuer: n.jwtIss || undefined,
        audience: n.jwtAud || undefined,
        param
    };
}

/** What the listener's credentials hold, for registerType. */
const CREDENTIALS = { authToken: { type: 'password' }, jwtSecret: { type: 'password' } };

module.exports = { authOptions, CREDENTIALS, ALGORITHMS };
