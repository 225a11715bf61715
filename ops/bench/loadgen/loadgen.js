'use strict';
// The benchmark's load generator (ops/bench/run drives it; not product). One master forks
// `procs` workers (a process holds at most ~20,000 sockets here: the fd ceiling), each owning
// the clients i with i % procs == its index. Prints JSON lines: events for the driver to sample
// the server's CPU and memory at, then one result.
//
//   node loadgen.js '<json config>'     (see DEFAULTS)
//
// Modes:
//   fanout   connect every client, then senders send `rate` messages/s per room for `seconds`;
//            measures deliveries, latency (send to receive), lost and duplicated messages.
//   connect  the connect storm itself is measured: handshakes/s, failures, handshake latency.
//   join     everyone joins room 0; measures until every client's member list is complete,
//            and the presence frames that took.
// Every loop is bounded: by count (clients, messages) and by time (timeoutSeconds).
const { fork } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const { monitorEventLoopDelay } = require('perf_hooks');
const wsclient = require('./wsclient');

const DEFAULTS = {
  mode: 'fanout',
  url: 'ws://chat:8001', // the server, inside the stack's network
  auth: 'token', // 'token': Parley (signed like the website's); 'query': yardsticks (?user=)
  keyFile: '/run/secrets/signing-key/jwt_signing_key.pem',
  origin: null,
  clients: 100,
  rooms: 1,
  senders: 2, // per room
  rate: 10, // messages/s per room
  seconds: 5,
  pauseSeconds: 2, // after everyone is connected, before the window (let the join noise settle)
  connectRate: 0, // handshakes started per second (0: as fast as `inflight` allows)
  inflight: 100, // handshakes in progress at once
  procs: 1,
  timeoutSeconds: 120,
  handshakeTimeoutSeconds: 15, // a handshake not answered by then fails ('handshake_timeout')
  quietMs: 500, // the drain ends when nothing arrived for this long (or after drainSeconds)
  drainSeconds: 10,
};
const cfg = { ...DEFAULTS, ...JSON.parse(process.env.BENCH_CONFIG || process.argv[2] || '{}') };

// --- shared -----------------------------------------------------------------------------------

const nowUs = () => {
  const [s, ns] = process.hrtime(); // CLOCK_MONOTONIC: one clock for every worker
  return s * 1e6 + ns / 1e3;
};
// Latency histogram: 10 µs buckets below 10 ms, 1 ms buckets up to 60 s.
const BUCKETS = 1000 + 60000;
const bucketOf = (us) => (us < 10000 ? Math.floor(us / 10) : Math.min(BUCKETS - 1, 1000 + Math.floor(us / 1000)));
const bucketUs = (b) => (b < 1000 ? b * 10 + 5 : (b - 1000) * 1000 + 500);
function histogram() {
  return { counts: new Array(BUCKETS).fill(0), n: 0, max: 0 };
}
function record(h, us) {
  h.counts[bucketOf(us)] += 1;
  h.n += 1;
  if (us > h.max) h.max = us;
}
function merge(into, h) {
  for (let b = 0; b < BUCKETS; b++) into.counts[b] += h.counts[b];
  into.n += h.n;
  into.max = Math.max(into.max, h.max);
}
function percentile(h, p) {
  if (!h.n) return null;
  const rank = Math.ceil((p / 100) * h.n);
  let seen = 0;
  for (let b = 0; b < BUCKETS; b++) {
    seen += h.counts[b];
    if (seen >= rank) return bucketUs(b) / 1000;
  }
  return h.max / 1000;
}
const ms = (us) => Math.round(us) / 1000;
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const roomOf = (i) => i % cfg.rooms;
const roomName = (r) => `bench-${r}`;
const senderCount = () => Math.min(cfg.clients, cfg.rooms * cfg.senders);

// --- worker -------------------------------------------------------------------------------------

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}
function tokenMinter() {
  // Signed as the website signs (website/website/tokens.py): EdDSA, kid = RFC 7638 thumbprint.
  const key = crypto.createPrivateKey(fs.readFileSync(cfg.keyFile));
  const jwk = crypto.createPublicKey(key).export({ format: 'jwk' });
  const kid = b64url(crypto.createHash('sha256').update(
    JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x })).digest());
  const header = b64url(JSON.stringify({ alg: 'EdDSA', typ: 'JWT', kid }));
  return (i) => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: 'parley-website', aud: 'parley-chat', iat: now, nbf: now, exp: now + 110,
                     jti: crypto.randomBytes(16).toString('hex'), sub: userId(i),
                     name: `bench ${i}`, room: roomName(roomOf(i)) };
    const input = `${header}.${b64url(JSON.stringify(claims))}`;
    return `${input}.${b64url(crypto.sign(null, Buffer.from(input), key))}`;
  };
}

// A client's member list in the join storm: one bit per member, over one table of ids per
// worker. As 2,000 Sets of up to 2,000 id strings, the lists kept about 4 million strings
// alive, and collecting them stalled the load generator's loop for up to a second (its sockets
// unread meanwhile, the storm's loop lag). The table starts with the clients' own ids, bits
// 0 to clients - 1, so a complete list is exactly those: an id no client has counts against it.
class MemberList {
  constructor(table, capacity) {
    this.table = table; // member id -> bit, shared by a worker's clients
    this.capacity = capacity;
    this.bits = new Uint8Array((capacity >> 3) + 1);
    this.size = 0;
    this.strangers = 0; // members whose id is no client's
  }

  complete() {
    return this.size === this.capacity && this.strangers === 0;
  }

  bitOf(id) { // for add(): a new id gets the next bit, and the bitset grows to hold it
    let bit = this.table.get(id);
    if (bit === undefined) this.table.set(id, (bit = this.table.size));
    if ((bit >> 3) >= this.bits.length) { // an id beyond the clients: keep counting it
      const grown = new Uint8Array(Math.max((bit >> 3) + 1, this.bits.length * 2));
      grown.set(this.bits);
      this.bits = grown;
    }
    return bit;
  }

  add(id) {
    const bit = this.bitOf(id);
    const mask = 1 << (bit & 7);
    if (this.bits[bit >> 3] & mask) return;
    this.bits[bit >> 3] |= mask;
    if (bit < this.capacity) this.size += 1;
    else this.strangers += 1;
  }

  delete(id) {
    const bit = this.table.get(id);
    if (bit === undefined || (bit >> 3) >= this.bits.length) return; // never in this list
    const mask = 1 << (bit & 7);
    if (!(this.bits[bit >> 3] & mask)) return;
    this.bits[bit >> 3] &= ~mask;
    if (bit < this.capacity) this.size -= 1;
    else this.strangers -= 1;
  }
}

// The ids of a welcome's members, or of a presence frame's joined and left users, read from
// the text without JSON.parse: the join storm's 2,000 welcomes list about 2 million members,
// and parsing them into objects took a third of the load generator's core (its CPU profile),
// near what the storm itself needs. An id follows each `"id":"` at or after `from` (-1: none);
// JSON cannot hold that inside a string (a quote there is escaped). `leaving` says whether
// the frame's ids leave or join (the yardsticks' `join` and `leave`, a welcome); null: an id
// is a leave if the last array opened before it is `"left":[` (a presence frame). An id with
// escapes matches no client's: counted as a stranger, it fails a list, never completes one.
const MEMBERS = '"members":[';
const ID = '"id":"';
function applyIds(list, s, from, leaving) {
  if (from < 0) return;
  const left = leaving === null ? s.indexOf('"left":[', from) : -1;
  const joined = leaving === null ? s.indexOf('"joined":[', from) : -1;
  // A while loop: written as `for (let at = ...)`, with `at` moved in the body, V8 took 131 s
  // over a storm's 2,000 welcomes instead of 0.4 s.
  let at = from;
  while ((at = s.indexOf(ID, at)) !== -1) {
    at += ID.length;
    const end = s.indexOf('"', at);
    if (leaving ?? (left !== -1 && left < at && (joined < left || joined > at))) {
      list.delete(s.slice(at, end));
    } else list.add(s.slice(at, end));
    at = end;
  }
}

// Client i's user id: its token's `sub` for Parley, `?user=` for the yardsticks.
const userId = (i) => `u${i}`;

function worker(index) {
  const mint = cfg.auth === 'token' ? tokenMinter() : null;
  const mine = [];
  for (let i = index; i < cfg.clients; i += cfg.procs) mine.push(i);
  const S = senderCount();
  const clients = new Map(); // i -> { ws, last, members }
  const tokens = new Map(); // i -> a token signed ahead (connect and join storms)
  // member id -> its bit in every MemberList (join storm): the clients' ids first
  const memberBits = new Map();
  if (cfg.mode === 'join') for (let i = 0; i < cfg.clients; i++) memberBits.set(userId(i), i);
  const stats = {
    attempted: 0, opened: 0, welcomed: 0, failures: {}, handshake: histogram(),
    latency: histogram(), received: 0, unique: 0, dup: 0, errors: 0, frames: {},
    sent: 0, sentPerRoom: {}, membersPerRoom: {}, complete: 0, cpuUs: 0,
  };
  const fail = (why) => { stats.failures[why] = (stats.failures[why] || 0) + 1; };
  let lastArrival = 0;
  let closing = false; // the master said close: the closes that follow are ours

  // A message frame is read straight from the bytes (no string, no JSON.parse): the load
  // generator must stay far from its core's limit at 100,000 deliveries/s.
  const MESSAGE = Buffer.from('{"type":"message"');
  const TEXT = Buffer.from('"text":"');
  const PIPE = 124;
  const QUOTE = 34;
  function numberAt(buf, at, stop) {
    let n = 0;
    for (; buf[at] !== stop; at++) n = n * 10 + (buf[at] - 48);
    return [n, at + 1];
  }
  function onFrame(c, data) {
    lastArrival = nowUs();
    if (data.compare(MESSAGE, 0, MESSAGE.length, 0, MESSAGE.length) === 0) {
      let at = data.indexOf(TEXT) + TEXT.length;
      let sender, seq, sentAt;
      [sender, at] = numberAt(data, at, PIPE);
      [seq, at] = numberAt(data, at, PIPE);
      [sentAt] = numberAt(data, at, QUOTE);
      stats.received += 1;
      record(stats.latency, lastArrival - sentAt);
      const j = Math.floor(sender / cfg.rooms); // the sender's place among its room's senders
      if (seq <= c.last[j]) stats.dup += 1;
      else { stats.unique += 1; c.last[j] = seq; }
      return;
    }
    const s = data.toString();
    const type = s.slice(9, s.indexOf('"', 9));
    stats.frames[type] = (stats.frames[type] || 0) + 1;
    if (type === 'error') { stats.errors += 1; if (stats.errors <= 3) emit({ event: 'error-frame', frame: s }); }
    if (c.members === null) {
      if (type === 'welcome') c.welcomed();
      return;
    }
    if (type === 'join' || type === 'leave') applyIds(c.members, s, 0, type === 'leave');
    else if (type === 'welcome') {
      applyIds(c.members, s, s.indexOf(MEMBERS), false);
      c.welcomed();
    } else if (type === 'presence') applyIds(c.members, s, 0, null);
    if (c.members.complete() && !c.complete) { c.complete = true; stats.complete += 1; }
  }

  function connect(i) {
    return new Promise((resolve) => {
      stats.attempted += 1;
      const room = roomName(roomOf(i));
      let url = `${cfg.url}/ws/rooms/${room}`;
      const options = { timeoutMs: cfg.handshakeTimeoutSeconds * 1000, headers: {} };
      if (mint) {
        options.headers.Authorization = `Bearer ${tokens.get(i) || mint(i)}`;
        options.protocols = ['parley.v1'];
      } else url += `?user=${userId(i)}`;
      if (cfg.origin) options.headers.Origin = cfg.origin;
      const started = nowUs();
      const c = { ws: null, last: new Int32Array(cfg.senders).fill(-1), complete: false,
                  members: cfg.mode === 'join' ? new MemberList(memberBits, cfg.clients) : null,
                  done: false };
      const finish = (ok) => { if (!c.done) { c.done = true; resolve(ok); } };
      c.welcomed = () => { stats.welcomed += 1; finish(true); };
      c.ws = wsclient.open(url, options, {
        upgrade: () => { record(stats.handshake, nowUs() - started); stats.opened += 1; },
        message: (data) => onFrame(c, data),
        fail: (why) => { fail(why); finish(false); clients.delete(i); },
        // A socket closed by the server during the run (after its welcome) counts too: a cut.
        close: (code) => {
          if (!c.done) fail(`close_${code}`);
          else if (!closing) fail(`closed_after_welcome_${code}`);
          finish(false);
          clients.delete(i);
        },
      });
      clients.set(i, c);
    });
  }

  // Where the connects are what is measured, the tokens are signed beforehand: the load
  // generator's signing must not slow the storm it offers (nor count as its loop's lag).
  function signAhead() {
    if (mint && cfg.mode !== 'fanout') for (const i of mine) tokens.set(i, mint(i));
  }

  async function connectAll() {
    const share = cfg.connectRate > 0 ? cfg.connectRate / cfg.procs : 0;
    const t0 = nowUs();
    let next = 0;
    let inflight = 0;
    const all = [];
    await new Promise((resolve) => {
      const pump = () => {
        const due = share > 0 ? Math.floor(((nowUs() - t0) / 1e6) * share) + 1 : mine.length;
        while (next < mine.length && next < due && inflight < cfg.inflight) {
          inflight += 1;
          all.push(connect(mine[next++]).then(() => { inflight -= 1; }));
        }
        if (next < mine.length) setTimeout(pump, 1);
        else resolve();
      };
      pump();
    });
    await Promise.all(all);
    for (const i of clients.keys()) {
      const r = roomOf(i);
      stats.membersPerRoom[r] = (stats.membersPerRoom[r] || 0) + 1;
    }
    return (nowUs() - t0) / 1e6;
  }

  async function send() {
    const R = cfg.rooms * cfg.rate;
    const total = Math.floor(R * cfg.seconds);
    const t0 = nowUs();
    let k = 0;
    await new Promise((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor(((nowUs() - t0) / 1e6) * R));
        for (; k < due; k++) {
          const sender = k % S;
          if (sender % cfg.procs !== index) continue;
          const c = clients.get(sender);
          if (!c || !c.ws.open) continue;
          const seq = Math.floor(k / S);
          c.ws.send(`{"type":"message","text":"${sender}|${seq}|${Math.round(nowUs())}"}`);
          stats.sent += 1;
          const r = roomOf(sender);
          stats.sentPerRoom[r] = (stats.sentPerRoom[r] || 0) + 1;
        }
        if (k < total) setTimeout(tick, 2);
        else resolve();
      };
      tick();
    });
    // Drain: until nothing arrived for quietMs, at most drainSeconds.
    const end = nowUs() + cfg.drainSeconds * 1e6;
    await new Promise((resolve) => {
      const poll = () => {
        const t = nowUs();
        if (t > end || t - lastArrival > cfg.quietMs * 1000) resolve();
        else setTimeout(poll, 50);
      };
      poll();
    });
  }

  async function converge() {
    // join mode: until every client has the whole member list (or the time bound).
    // Bounded short of the master's own deadline, so what was reached is still reported.
    const end = nowUs() + Math.max(1, cfg.timeoutSeconds - 15) * 1e6;
    while (stats.complete < clients.size && nowUs() < end) await new Promise((r) => setTimeout(r, 20));
  }

  // How late this process's own loop ran while `work` measured: latency the server did not
  // cause, and in a storm how long the sockets went unread. A 1 ms timer; the histogram holds
  // whole intervals, so 1 ms is no lag.
  async function lagDuring(work) {
    const lag = monitorEventLoopDelay({ resolution: 1 });
    lag.enable();
    const value = await work();
    lag.disable();
    const lagMs = (ns) => Math.max(0, ns / 1e6 - 1);
    stats.loopLagMs = { p99: lagMs(lag.percentile(99)), max: lagMs(lag.max) };
    return value;
  }

  process.on('message', async (msg) => {
    const cpu0 = process.cpuUsage();
    if (msg === 'connect') {
      // The storms are measured here; in fan-out, connecting is only the setup.
      const storm = cfg.mode === 'connect' || cfg.mode === 'join';
      signAhead();
      const connect = async () => {
        const seconds = await connectAll();
        if (cfg.mode === 'join') await converge();
        return seconds;
      };
      stats.connectSeconds = storm ? await lagDuring(connect) : await connect();
      stats.cpuUs += cpuOf(cpu0);
      process.send({ type: 'connected', stats: summary() });
    } else if (msg === 'go') {
      await lagDuring(send);
      stats.cpuUs += cpuOf(cpu0);
      process.send({ type: 'done', stats: summary() });
    } else if (msg === 'report') {
      process.send({ type: 'report', stats: summary() });
    } else if (msg === 'close') {
      closing = true;
      for (const c of clients.values()) c.ws.terminate();
      setTimeout(() => process.exit(0), 200);
    }
  });
  const cpuOf = (c0) => { const c = process.cpuUsage(c0); return c.user + c.system; };
  const summary = () => ({ ...stats, open: clients.size });
}

// --- master -------------------------------------------------------------------------------------

async function master() {
  const workers = [];
  for (let w = 0; w < cfg.procs; w++) {
    workers.push(fork(__filename, [], { env: { ...process.env, BENCH_WORKER: String(w), BENCH_CONFIG: JSON.stringify(cfg) } }));
  }
  const ask = (what, answer) => Promise.all(workers.map((w) => new Promise((resolve) => {
    const on = (msg) => { if (msg.type === answer) { w.off('message', on); resolve(msg.stats); } };
    w.on('message', on);
    w.send(what);
  })));
  // At the deadline: whatever the workers reached, marked timed out, then stop.
  let windowOpen = false;
  const deadline = setTimeout(async () => {
    emit({ event: 'timeout', seconds: cfg.timeoutSeconds });
    if (windowOpen) emit({ event: 'window-end' });
    const partial = await Promise.race([ask('report', 'report'), new Promise((r) => setTimeout(() => r(null), 5000))]);
    if (partial) emit({ event: 'result', timed_out: true, ...result(partial, (nowUs() - t0) / 1e6, (nowUs() - t0) / 1e6) });
    for (const w of workers) w.kill('SIGKILL');
    process.exit(3);
  }, cfg.timeoutSeconds * 1000);
  const t0 = nowUs();
  const measuredConnect = cfg.mode !== 'fanout';
  if (measuredConnect) { emit({ event: 'window-start' }); windowOpen = true; }
  const connected = await ask('connect', 'connected');
  const connectSeconds = (nowUs() - t0) / 1e6;
  if (measuredConnect) { emit({ event: 'window-end' }); windowOpen = false; }
  let done = connected;
  let windowSeconds = connectSeconds;
  emit({ event: 'connected', open: sum(connected, 'open'), seconds: round(connectSeconds) });
  if (cfg.mode === 'fanout') {
    await new Promise((r) => setTimeout(r, cfg.pauseSeconds * 1000));
    emit({ event: 'window-start' });
    windowOpen = true;
    const t1 = nowUs();
    done = await ask('go', 'done');
    windowSeconds = (nowUs() - t1) / 1e6;
    emit({ event: 'window-end' });
    windowOpen = false;
  }
  emit({ event: 'result', ...result(done, connectSeconds, windowSeconds) });
  for (const w of workers) w.send('close');
  clearTimeout(deadline);
  setTimeout(() => process.exit(0), 1000);
}

const sum = (list, key) => list.reduce((a, s) => a + s[key], 0);
const round = (x, d = 3) => (x === null ? null : Math.round(x * 10 ** d) / 10 ** d);
function addMaps(list, key) {
  const out = {};
  for (const s of list) for (const [k, v] of Object.entries(s[key])) out[k] = (out[k] || 0) + v;
  return out;
}

function result(list, connectSeconds, windowSeconds) {
  const latency = histogram();
  const handshake = histogram();
  for (const s of list) { merge(latency, s.latency); merge(handshake, s.handshake); }
  const sentPerRoom = addMaps(list, 'sentPerRoom');
  const membersPerRoom = addMaps(list, 'membersPerRoom');
  let expected = 0;
  for (const [r, n] of Object.entries(sentPerRoom)) expected += n * (membersPerRoom[r] || 0);
  const unique = sum(list, 'unique');
  const opened = sum(list, 'opened');
  return {
    mode: cfg.mode, url: cfg.url, clients: cfg.clients, rooms: cfg.rooms, procs: cfg.procs,
    attempted: sum(list, 'attempted'), opened, welcomed: sum(list, 'welcomed'), open: sum(list, 'open'),
    failures: addMaps(list, 'failures'),
    connect_seconds: round(connectSeconds),
    // From the first connect to the last welcome, per worker (token signing excluded).
    handshakes_per_s: round(opened / Math.max(...list.map((s) => s.connectSeconds || connectSeconds)), 1),
    handshake_ms: { p50: percentile(handshake, 50), p99: percentile(handshake, 99), max: ms(handshake.max) },
    sent: sum(list, 'sent'), expected, received: sum(list, 'received'), unique,
    lost: Math.max(0, expected - unique), duplicated: sum(list, 'dup'), error_frames: sum(list, 'errors'),
    window_seconds: round(windowSeconds),
    deliveries_per_s: round(sum(list, 'received') / windowSeconds, 1),
    latency_ms: { p50: percentile(latency, 50), p99: percentile(latency, 99), max: ms(latency.max) },
    frames: addMaps(list, 'frames'),
    complete_member_lists: sum(list, 'complete'),
    loadgen_cpu_s: round(sum(list, 'cpuUs') / 1e6),
    // The worst of the workers' (fan-out windows only).
    loadgen_lag_ms: list.every((s) => s.loopLagMs) ? {
      p99: round(Math.max(...list.map((s) => s.loopLagMs.p99)), 2),
      max: round(Math.max(...list.map((s) => s.loopLagMs.max)), 2),
    } : null,
  };
}

if (process.env.BENCH_WORKER === undefined) master();
else worker(Number(process.env.BENCH_WORKER));
