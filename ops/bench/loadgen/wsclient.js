'use strict';
// The load generator's WebSocket client (RFC 6455, client side), not product. Node's own http
// module does the opening handshake (the 'upgrade' event); this file only frames and unframes.
// Why not the `ws` library here: its per-message machinery (a Writable stream, events, buffer
// lists) is the load generator's own cost; with this client, which reads every frame of a TCP
// read in one loop and hands the payload over as a slice of that read, the load generator took
// 75% of its core at 100,000 deliveries/s instead of 81% (same stack, same run).
//
//   const c = open(url, { protocols, headers, timeoutMs }, {
//     upgrade(),            the 101 arrived (the handshake is over)
//     message(payload),     a whole text or binary message (a Buffer slice: use it at once)
//     fail(reason),         no 101: 'http_403', 'ECONNREFUSED', 'handshake_timeout', …
//     close(code),          the connection ended after the 101 (1006: without a close frame)
//   });
//   c.send(string)   one masked text frame;   c.open   true between the 101 and the close;
//   c.terminate()    drop the TCP connection (the close handler then sees 1006).
const crypto = require('crypto');
const http = require('http');

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

function open(url, options, on) {
  const { hostname, port, pathname, search } = new URL(url);
  const key = crypto.randomBytes(16).toString('base64');
  const headers = { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
                    'Sec-WebSocket-Key': key, ...(options.headers || {}) };
  if (options.protocols) headers['Sec-WebSocket-Protocol'] = options.protocols.join(', ');
  const req = http.request({ host: hostname, port: port || 80, path: pathname + search, headers,
                             agent: false });
  const client = { open: false, send: () => {}, terminate: () => req.destroy() };
  let settled = false; // fail() or upgrade() has been called
  const failOnce = (reason) => { if (!settled) { settled = true; on.fail(reason); } };
  // As the `ws` library's handshakeTimeout: the socket idle that long (no 101 yet) fails it.
  req.setTimeout(options.timeoutMs || 15000, () => { failOnce('handshake_timeout'); req.destroy(); });

  req.on('response', (res) => { failOnce(`http_${res.statusCode}`); res.resume(); req.destroy(); });
  req.on('error', (err) => failOnce(err.code || err.message.slice(0, 40)));
  req.on('upgrade', (res, socket, head) => {
    socket.setTimeout(0);
    const accept = crypto.createHash('sha1').update(key + GUID).digest('base64');
    if (res.headers['sec-websocket-accept'] !== accept) {
      failOnce('bad_accept');
      socket.destroy();
      return;
    }
    settled = true;
    socket.setNoDelay(true);
    client.open = true;
    client.send = (text) => { if (client.open) socket.write(frame(TEXT, Buffer.from(text))); };
    client.terminate = () => socket.destroy();
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
      pending = at < buf.length ? buf.subarray(at) : null;
    };
    socket.on('data', read);
    socket.on('error', () => {}); // the close that follows says it
    socket.on('close', () => { client.open = false; on.close(closeCode); });
    on.upgrade();
    if (head.length) read(head);
  });
  req.end();
  return client;
}

module.exports = { open };
