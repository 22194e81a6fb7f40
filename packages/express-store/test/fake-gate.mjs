// A fake sessiongate for the unit tests: a real node:http server implementing the store
// endpoints' contract (see ../README.md), with counters and switches for failures.
//
//   const gate = await startFakeGate();
//   gate.url, gate.token, gate.sessions (sid -> { text, expires }), gate.count('PUT')
//   gate.script.push(503, 'hang', { status: 400, body: {...} })  // the next requests, in order
//   gate.mode = 'ok' | 'hang' | 503 | 401 ...                    // every request after the script
//   gate.disabled = true                                        // 404 without the header
//   gate.latencyMs = 50
import http from 'node:http';

export const TOKEN = 'test-token-0123456789abcdef';
const PREFIX = '/_sessiongate/sessions/';
const SID_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;
const MAX_BODY = 65536;

export async function startFakeGate({ token = TOKEN } = {}) {
  const sockets = new Set();
  const gate = {
    token,
    url: '',
    sessions: new Map(),
    requests: [], // { method, sid, authorization, contentType, body, status }
    script: [],
    mode: 'ok',
    disabled: false,
    latencyMs: 0,
    closedSockets: 0, // what DELETE reports as "closed"
    count(method) {
      return this.requests.filter((r) => method === undefined || r.method === method).length;
    },
    reset() {
      this.sessions.clear();
      this.requests.length = 0;
      this.script.length = 0;
      this.mode = 'ok';
      this.disabled = false;
      this.latencyMs = 0;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };

  const server = http.createServer(async (req, res) => {
    const body = await readBody(req);
    const record = {
      method: req.method,
      path: req.url,
      sid: req.url.startsWith(PREFIX) ? safeDecode(req.url.slice(PREFIX.length)) : undefined,
      authorization: req.headers.authorization,
      contentType: req.headers['content-type'],
      body: body.text,
      status: undefined,
    };
    gate.requests.push(record);
    const send = (status, json, headers = {}) => {
      record.status = status;
      const text = typeof json === 'string' ? json : JSON.stringify(json);
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(text);
    };

    if (gate.latencyMs) await new Promise((r) => setTimeout(r, gate.latencyMs));

    const action = gate.script.length ? gate.script.shift() : gate.mode;
    if (action === 'hang') return; // never answers; the client's timeout must fire
    if (typeof action === 'number') {
      const headers = action === 503 || action === 429 ? { 'retry-after': '0' } : {};
      if (action === 401) headers['www-authenticate'] = 'Bearer';
      return send(action, { error: `scripted ${action}` }, headers);
    }
    if (action && typeof action === 'object') {
      return send(action.status, action.body ?? { error: 'scripted' }, action.headers);
    }

    // The contract.
    if (!req.url.startsWith(PREFIX)) return send(404, { error: 'not found' });
    if (gate.disabled) return send(404, { error: 'store endpoints disabled' });
    if (req.headers.authorization !== `Bearer ${token}`) {
      return send(401, { error: 'bad token' }, { 'www-authenticate': 'Bearer' });
    }
    const sid = record.sid;
    if (sid === undefined || !SID_PATTERN.test(sid)) return send(400, { error: 'bad sid' });

    if (req.method === 'PUT') {
      if (body.tooLarge) return send(413, { error: 'body too large' });
      let sess;
      try {
        sess = JSON.parse(body.text);
      } catch {
        return send(400, { error: 'body is not JSON' });
      }
      if (!sess || typeof sess !== 'object' || Array.isArray(sess) || !sess.cookie || typeof sess.cookie !== 'object') {
        return send(400, { error: 'body is not a session' });
      }
      const expires = sess.cookie.expires ? Date.parse(sess.cookie.expires) : null;
      const ttl = expires === null ? null : Math.max(60, Math.ceil((expires - Date.now()) / 1000));
      gate.sessions.set(sid, { text: body.text, expires });
      return send(200, { stored: true, ttl_seconds: ttl });
    }
    if (req.method === 'GET') {
      const entry = gate.sessions.get(sid);
      if (!entry) return send(404, { error: 'no such session' }, { 'x-sessiongate-session': 'absent' });
      record.status = 200;
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(entry.text);
    }
    if (req.method === 'DELETE') {
      gate.sessions.delete(sid);
      return send(200, { deleted: true, closed: gate.closedSockets, rooms: gate.closedSockets ? 1 : 0 });
    }
    return send(405, { error: 'method not allowed' }, { allow: 'GET, PUT, DELETE' });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  gate.url = `http://127.0.0.1:${server.address().port}`;
  return gate;
}

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on('end', () => resolve({ text: Buffer.concat(chunks).toString('utf8'), tooLarge: size > MAX_BODY }));
  });
}

function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

// A session as express-session hands it to a store (after JSON: cookie.expires a string).
export function sessionFor(data = {}, maxAgeMs = 3600_000, now = Date.now()) {
  return {
    cookie: {
      originalMaxAge: maxAgeMs,
      expires: maxAgeMs === null ? null : new Date(now + maxAgeMs).toISOString(),
      secure: false,
      httpOnly: true,
      path: '/',
    },
    ...data,
  };
}

export const SID = 'AbCdEfGhIjKlMnOpQrStUvWxYz012345'; // 32 chars, like express-session's ids
export const SID2 = 'zyxwvutsrqponmlkjihgfedcba_-9876';
