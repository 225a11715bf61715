'use strict';
// Yardstick, not product: the minimal room broadcaster people would write with Node and `ws`.
// Same frames as Parley (docs/design.md §5: welcome, join, leave, message), no auth, no
// limits, no presence batching, no logs or metrics. The user comes from `?user=` instead of a
// token. One process, one core, as the benchmark pins it.
const http = require('http');
const crypto = require('crypto');
const { WebSocketServer } = require('ws');

const port = Number(process.env.PORT || 8001);
const rooms = new Map(); // room -> Set of sockets
const server = http.createServer((req, res) => {
  res.writeHead(req.url === '/healthz' ? 200 : 404).end();
});
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16384 });

const encode = (frame) => JSON.stringify(frame);
const ts = () => new Date().toISOString();
function broadcast(members, data) {
  for (const ws of members) if (ws.readyState === 1) ws.send(data);
}

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://x');
  const match = /^\/ws\/rooms\/([a-z0-9-]+)$/.exec(url.pathname);
  if (!match) return socket.destroy();
  wss.handleUpgrade(req, socket, head, (ws) => {
    const room = match[1];
    const id = url.searchParams.get('user') || crypto.randomUUID();
    const user = { id, name: id };
    let members = rooms.get(room);
    if (!members) rooms.set(room, (members = new Set()));
    ws.send(encode({ type: 'welcome', room, you: user,
                     members: [...members].map((m) => m.user).concat([user]) }));
    broadcast(members, encode({ type: 'join', user, ts: ts() }));
    ws.user = user;
    members.add(ws);
    ws.on('message', (raw, isBinary) => {
      let msg;
      try { msg = JSON.parse(raw); } catch { return; }
      if (isBinary || msg.type !== 'message' || typeof msg.text !== 'string') return;
      const frame = { type: 'message', id: crypto.randomUUID().replaceAll('-', ''), room,
                      from: user, text: msg.text, ts: ts() };
      if (typeof msg.client_id === 'string') frame.client_id = msg.client_id;
      broadcast(members, encode(frame));
    });
    ws.on('close', () => {
      members.delete(ws);
      if (members.size === 0) rooms.delete(room);
      else broadcast(members, encode({ type: 'leave', user, ts: ts() }));
    });
  });
});
server.listen({ port, backlog: 4096 }, () => console.log(`node ws yardstick on ${port}`));
process.on('SIGTERM', () => process.exit(0));
