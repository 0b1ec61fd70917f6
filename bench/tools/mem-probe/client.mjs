// Child process of probe.mjs: holds idle WebSocket clients on raw sockets. It is sent
// { cmd: 'open', port, proto, specs, hb, concurrency } and answers { ready, failed } once every
// client is welcomed (Pushwire) or upgraded (ws); { cmd: 'close' } ends them all.
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

/** A masked text frame (clients must mask, RFC 6455 §5.3). */
function textFrame(text) {
  const data = Buffer.from(text);
  const len = data.length;
  const head = len < 126 ? 2 : 4;
  const out = Buffer.allocUnsafe(head + 4 + len);
  out[0] = 0x81;
  if (len < 126) out[1] = 0x80 | len;
  else {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  }
  randomBytes(4).copy(out, head);
  for (let i = 0; i < len; i++) out[head + 4 + i] = data[i] ^ out[head + (i & 3)];
  return out;
}

const sockets = [];
let cfg;
let ready = 0;
let failed = 0;
let inflight = 0;
let next = 0;

function open(spec) {
  inflight++;
  const s = connect({ host: '127.0.0.1', port: cfg.port });
  sockets.push(s);
  let stage = 0; // 0: upgrade, 1: hello sent, 2: done
  let acc = '';
  const done = (ok) => {
    if (stage === 2) return;
    stage = 2;
    inflight--;
    if (ok) ready++;
    else failed++;
    pump();
  };
  s.on('connect', () => {
    const pw = cfg.proto === 'pw';
    s.write(
      `GET ${pw ? '/v1/connect' : '/'} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
        `Sec-WebSocket-Version: 13\r\n${pw ? 'Sec-WebSocket-Protocol: pushwire.v1\r\n' : ''}\r\n`,
    );
  });
  s.on('data', (chunk) => {
    if (stage === 2) return;
    acc += chunk.toString('latin1');
    if (stage === 0) {
      const end = acc.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!acc.startsWith('HTTP/1.1 101')) return done(false);
      acc = acc.slice(end + 4);
      if (cfg.proto !== 'pw') return done(true);
      stage = 1;
      s.write(
        textFrame(JSON.stringify({ t: 'hello', v: 1, device: spec.id, token: spec.token, hb: cfg.hb })),
      );
    }
    if (acc.includes('"t":"welcome"')) done(true);
    else if (acc.includes('"t":"error"')) done(false);
  });
  s.on('error', () => done(false));
  s.on('close', () => done(false));
}

function pump() {
  while (inflight < cfg.concurrency && next < cfg.specs.length) open(cfg.specs[next++]);
  if (ready + failed === cfg.specs.length) process.send({ ready, failed });
}

process.on('message', (m) => {
  if (m.cmd === 'open') {
    cfg = m;
    pump();
  } else if (m.cmd === 'close') {
    for (const s of sockets) s.destroy();
    setTimeout(() => process.exit(0), 200);
  }
});
