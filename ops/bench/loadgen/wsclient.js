'use strict';
// The load generator's WebSocket client (RFC 6455, client side), not product: it opens the TCP
// connection, writes the upgrade request, reads the status line and headers of the answer, and
// then frames and unframes.
// Why not the `ws` library here: its per-message machinery (a Writable stream, events, buffer
// lists) is the load generator's own cost; with this client, which reads every frame of a TCP
// read in one loop and hands the payload over as a slice of that read, the load generator took
// 75% of its core at 100,000 deliveries/s instead of 81% (same stack, same run).
// Why not Node's `http` for the opening handshake: a ClientRequest, its parser and its events
// cost the load generator more per handshake than the Node `ws` yardstick spent answering it,
// so a connect storm measured the load generator (its core 92-94% busy).
//
//   const c = open(url, { protocols, headers, timeoutMs }, {
//     upgrade(),            the 101 arrived (the handshake is over)
//     message(payload),     a whole text or binary message (a Buffer slice: use it at once)
//     fail(reason),         no 101: 'http_403', 'ECONNREFUSED', 'handshake_timeout',
//                           'closed_before_answer', …
//     close(code),          the connection ended after the 101 (1006: without a close frame)
//   });
//   c.send(string)   one masked text frame;   c.open   true between the 101 and the close;
//   c.terminate()    drop the TCP connection (the close handler then sees 1006).
const crypto = require('crypto');
const dns = require('dns');
const net = require('net');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const TEXT = 0x1;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;

// One masked frame, as every client-to-server frame must be (RFC 6455 §5.3).
function frame(opcode, payload) {
  const len = payload.length;
  const head = len < 126 ? 6 : len < 65536 ? 8 : 14;
  const out = Buffer.allocUnsafe(head + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65536) { out[1] = 0x80 | 126; out.writeUInt16BE(len, 2); }
  else { out[1] = 0x80 | 127; out.writeBigUInt64BE(BigInt(len), 2); }
  // The mask need not be unpredictable here: no proxy's cache sits between bench and server.
  const mask = (Math.random() * 0x100000000) >>> 0;
  out.writeUInt32BE(mask, head - 4);
  const m = [out[head - 4], out[head - 3], out[head - 2], out[head - 1]];
  for (let i = 0; i < len; i++) out[head + i] = payload[i] ^ m[i & 3];
  return out;
}

const HEAD_END = Buffer.from('\r\n\r\n');
// Every socket reads into this one buffer (net's `onread`): no Buffer and no 'data' event per
// read. Each read is used up before the next one lands, so only the bytes kept across reads
// (an incomplete frame, an incomplete answer) are copied out of it.
const READ_BUFFER = Buffer.allocUnsafe(65536);
const MAX_HEAD = 16384; // an answer's status line and headers: more is not a WebSocket server's

// The server's addresses, looked up once per name: a lookup per connect (getaddrinfo on
// libuv's threads) was 8% of the load generator's core in the join storm. The connects of a
// burst wait for the one lookup; a failed lookup fails them and is tried again by the next.
// Connects take the addresses in turn, so a name with several still spreads them.
const addresses = new Map(); // hostname -> { list (null while looked up), next, waiting }
function lookupOnce(hostname, options, callback) {
  let known = addresses.get(hostname);
  if (!known) {
    known = { list: null, next: 0, waiting: [] };
    addresses.set(hostname, known);
    dns.lookup(hostname, { all: true }, (err, list) => {
      if (err) addresses.delete(hostname);
      else known.list = list;
      for (const [opts, cb] of known.waiting.splice(0)) {
        if (err) cb(err);
        else lookupOnce(hostname, opts, cb);
      }
    });
  }
  if (known.list === null) { known.waiting.push([options, callback]); return; }
  const a = known.list[known.next++ % known.list.length];
  if (options.all) callback(null, [a]);
  else callback(null, a.address, a.family);
}

// The upgrade request (RFC 6455 §4.1), as one string.
function request(url, key, options) {
  const { hostname, port, pathname, search } = new URL(url);
  const host = port ? `${hostname}:${port}` : hostname;
  let head = `GET ${pathname}${search} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\n`
    + `Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n`;
  if (options.protocols) head += `Sec-WebSocket-Protocol: ${options.protocols.join(', ')}\r\n`;
  for (const [name, value] of Object.entries(options.headers || {})) head += `${name}: ${value}\r\n`;
  return { hostname, port: Number(port) || 80, head: `${head}\r\n` };
}

// The answer's status code and its Sec-WebSocket-Accept (null if absent).
function answer(head) {
  const lines = head.split('\r\n');
  const status = Number(lines[0].split(' ')[1]) || 0;
  let accept = null;
  for (let i = 1; i < lines.length; i++) {
    const colon = lines[i].indexOf(':');
    if (colon > 0 && lines[i].slice(0, colon).trim().toLowerCase() === 'sec-websocket-accept') {
      accept = lines[i].slice(colon + 1).trim();
    }
  }
  return { status, accept };
}

function open(url, options, on) {
  const key = crypto.randomBytes(16).toString('base64');
  const { hostname, port, head } = request(url, key, options);
  let onBytes = null; // the handshake's reader, then the frames' (below)
  const socket = net.connect({ host: hostname, port, lookup: lookupOnce, onread: {
    buffer: READ_BUFFER, callback: (n, buf) => { onBytes(buf.subarray(0, n)); } } });
  const client = { open: false, send: () => {}, terminate: () => socket.destroy() };
  let settled = false; // fail() or upgrade() has been called
  const failOnce = (reason) => { if (!settled) { settled = true; on.fail(reason); } };
  // As the `ws` library's handshakeTimeout: the socket idle that long (no 101 yet) fails it.
  socket.setTimeout(options.timeoutMs || 15000, () => {
    failOnce('handshake_timeout');
    socket.destroy();
  });
  socket.setNoDelay(true);
  socket.on('connect', () => socket.write(head));
  socket.on('error', (err) => failOnce(err.code || err.message.slice(0, 40)));

  let closeCode = 1006;
  let pending = null; // the bytes of an incomplete frame
  let fragments = null; // a fragmented message's parts so far
  const read = (chunk) => {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    let at = 0;
    while (buf.length - at >= 2) {
      const b0 = buf[at];
      let len = buf[at + 1] & 0x7f;
      let head = 2;
      if (len === 126) {
        if (buf.length - at < 4) break;
        len = buf.readUInt16BE(at + 2);
        head = 4;
      } else if (len === 127) {
        if (buf.length - at < 10) break;
        len = Number(buf.readBigUInt64BE(at + 2));
        head = 10;
      }
      if (buf.length - at < head + len) break;
      const payload = buf.subarray(at + head, at + head + len);
      at += head + len;
      const opcode = b0 & 0x0f;
      if (opcode === PING) socket.write(frame(PONG, payload));
      else if (opcode === CLOSE) {
        closeCode = len >= 2 ? payload.readUInt16BE(0) : 1005;
        socket.end(frame(CLOSE, payload.subarray(0, 2)));
        client.open = false;
      } else if (opcode !== PONG) {
        const fin = (b0 & 0x80) !== 0;
        if (!fin || fragments) {
          (fragments = fragments || []).push(Buffer.from(payload));
          if (fin) { const whole = Buffer.concat(fragments); fragments = null; on.message(whole); }
        } else on.message(payload);
      }
    }
    pending = at < buf.length ? Buffer.from(buf.subarray(at)) : null;
  };

  // Until the answer's head is whole: then a 101 with the right accept opens the connection,
  // anything else fails it (the status, as the http module's 'response' would have given).
  let answered = null;
  let upgraded = false;
  const handshake = (chunk) => {
    answered = answered ? Buffer.concat([answered, chunk]) : Buffer.from(chunk);
    const end = answered.indexOf(HEAD_END);
    if (end < 0) {
      if (answered.length > MAX_HEAD) { failOnce('bad_answer'); socket.destroy(); }
      return;
    }
    const { status, accept } = answer(answered.toString('latin1', 0, end));
    const rest = answered.subarray(end + HEAD_END.length);
    answered = null;
    if (status !== 101) { failOnce(`http_${status}`); socket.destroy(); return; }
    if (accept !== crypto.createHash('sha1').update(key + GUID).digest('base64')) {
      failOnce('bad_accept');
      socket.destroy();
      return;
    }
    settled = true;
    upgraded = true;
    socket.setTimeout(0);
    onBytes = read;
    client.open = true;
    client.send = (text) => { if (client.open) socket.write(frame(TEXT, Buffer.from(text))); };
    on.upgrade();
    if (rest.length) read(rest);
  };
  onBytes = handshake;
  // The close that ends an upgraded connection; before the 101, a close is a failed handshake.
  socket.on('close', () => {
    if (!upgraded) { failOnce('closed_before_answer'); return; }
    client.open = false;
    on.close(closeCode);
  });
  return client;
}

module.exports = { open };
