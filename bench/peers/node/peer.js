#!/usr/bin/env node
// Node.js (libuv) peer for the ringloop benchmarks.  No npm packages.
//
// Usage: node peer.js <scenario> <n> [conns] [secs]
//   echo, unix_echo (over a Unix socket in /tmp): n is the number of connections (a 3rd argument overrides it);
//         secs defaults to 2.
//   udp_echo: n is the payload in bytes, conns the client sockets (1).
// Prints one `key=value ...` line on stdout (see bench/peers/README.md).
//
// Idioms: a sleep is a Promise around setTimeout, gather is Promise.all,
// wait_for is Promise.race against a rejecting setTimeout that is cleared
// afterwards (Node has no built-in timeout combinator for an arbitrary
// promise), cancel is clearTimeout + settling the promise.
//
// Fairness notes: libuv timers have 1 ms resolution (a 1 ms setTimeout
// fires on the first loop turn at or after 1 ms, measured in whole ms);
// setTimeout always arms a timer, so wait_for_fast and wait_for_yield
// both pay for it.  There is no generic "single I/O op" API to await (fs
// reads go to the thread pool, sockets are streams), so wait_for_io is
// skipped.
'use strict';

const fs = require('fs');
const net = require('net');
const childProcess = require('child_process');
const dgram = require('dgram');

function cpuS() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

// Wall clock and CPU from the start of a scenario (Node start-up excluded).
function meter() {
  return { t0: process.hrtime.bigint(), c0: cpuS() };
}

function base(m, peer, sc, n) {
  const wall = Number(process.hrtime.bigint() - m.t0) / 1e9;
  // resourceUsage().maxRSS is ru_maxrss, in KiB.
  const rss = process.resourceUsage().maxRSS;
  return `peer=${peer} scenario=${sc} n=${n} wall_s=${wall.toFixed(3)} ` +
    `cpu_s=${(cpuS() - m.c0).toFixed(3)} rss_kb=${rss}`;
}

// Nearest-rank percentile (q in percent) of a sorted array: element
// ceil(q*n/100)-1.  All peers use this definition.
function pct(sorted, q) {
  const idx = Math.max(1, Math.floor((sorted.length * q + 99) / 100));
  return sorted[idx - 1];
}

const now = () => process.hrtime.bigint();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// wait_for(p, ms): the usual race against a timer, which is always cleared
// so that no timer outlives the operation.
async function waitFor(p, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// A sleep that can be cancelled: clearTimeout, then settle the promise.
function cancellableSleep(ms) {
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  const timer = setTimeout(() => resolve(false), ms);
  return {
    promise,
    cancel() { clearTimeout(timer); resolve(true); },
  };
}

async function trivial(i) { return i; }

// Yields to the event loop once (setImmediate = next loop iteration, the
// equivalent of a task going back on the ready queue), then returns.
async function yieldOnce(i) {
  await new Promise((r) => setImmediate(r));
  return i;
}

const scenarios = {
  async sleep_many(peer, n) {
    const m = meter();
    const task = async () => { await sleep(100); };
    const tasks = new Array(n);
    for (let i = 0; i < n; i++) tasks[i] = task();
    await Promise.all(tasks);
    return base(m, peer, 'sleep_many', n);
  },

  async lateness(peer, n, sc = 'lateness', loaded = false) {
    const m = meter();
    const pending = [];
    if (loaded) for (let i = 0; i < 10000; i++) pending.push(cancellableSleep(3600e3));
    const lat = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const a = now();
      await sleep(1);
      lat[i] = (Number(now() - a) - 1e6) / 1e3;
    }
    for (const p of pending) p.cancel();
    await Promise.all(pending.map((p) => p.promise));
    lat.sort();
    return `${base(m, peer, sc, n)} p50_us=${pct(lat, 50).toFixed(1)} ` +
      `p99_us=${pct(lat, 99).toFixed(1)} max_us=${lat[n - 1].toFixed(1)}`;
  },

  async lateness_loaded(peer, n) {
    return scenarios.lateness(peer, n, 'lateness_loaded', true);
  },

  async spawn_gather(peer, n) {
    const m = meter();
    const a = now();
    const tasks = new Array(n);
    for (let i = 0; i < n; i++) tasks[i] = trivial(i);
    const r = await Promise.all(tasks);
    const d = Number(now() - a);
    if (r[n - 1] !== n - 1) throw new Error('bad result');
    return `${base(m, peer, 'spawn_gather', n)} ns_per_op=${(d / n).toFixed(1)}`;
  },

  // N sequential child_process.spawn('/bin/true') + its 'exit'; stdio inherited, as the
  // other peers' default (Node's own default would make three pipes).
  async spawn_process(peer, n) {
    const m = meter();
    const a = now();
    for (let i = 0; i < n; i++) {
      await new Promise((resolve, reject) => {
        const child = childProcess.spawn('/bin/true', [], { stdio: 'inherit' });
        child.on('error', reject);
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))));
      });
    }
    const d = Number(now() - a);
    return `${base(m, peer, 'spawn_process', n)} procs_per_s=${(n / (d / 1e9)).toFixed(0)} ` +
      `us_per_op=${(d / n / 1e3).toFixed(1)}`;
  },

  async wait_for_fast(peer, n) {
    const m = meter();
    const a = now();
    let sum = 0;
    for (let i = 0; i < n; i++) sum += await waitFor(trivial(i), 1000);
    const d = Number(now() - a);
    if (sum !== n * (n - 1) / 2) throw new Error('bad sum');
    return `${base(m, peer, 'wait_for_fast', n)} ns_per_op=${(d / n).toFixed(1)}`;
  },

  async wait_for_yield(peer, n) {
    const m = meter();
    const a = now();
    let sum = 0;
    for (let i = 0; i < n; i++) sum += await waitFor(yieldOnce(i), 1000);
    const d = Number(now() - a);
    if (sum !== n * (n - 1) / 2) throw new Error('bad sum');
    return `${base(m, peer, 'wait_for_yield', n)} ns_per_op=${(d / n).toFixed(1)}`;
  },

  async wait_for_io(peer, n) {
    return `peer=${peer} scenario=wait_for_io n=${n} skipped=no_single_io_op_api_in_node`;
  },

  async cancel_many(peer, n) {
    const m = meter();
    // setTimeout registers synchronously: every timer is armed here.
    const sleeps = new Array(n);
    for (let i = 0; i < n; i++) sleeps[i] = cancellableSleep(3600e3);
    // The tasks: one async function per sleep, suspended on it.
    const tasks = sleeps.map(async (s) => { const cancelled = await s.promise; return cancelled; });
    const a = now();
    for (let i = 0; i < n; i++) sleeps[i].cancel();
    const r = await Promise.all(tasks);
    const d = Number(now() - a);
    if (!r.every((x) => x === true)) throw new Error('not cancelled');
    return `${base(m, peer, 'cancel_many', n)} ns_per_op=${(d / n).toFixed(1)}`;
  },

  async echo(peer, n, conns, secs) { return echoOver(peer, 'echo', conns, secs, null); },

  // The same over a Unix socket at a path in /tmp.
  async unix_echo(peer, n, conns, secs) {
    const path = `/tmp/ringloop-node-${process.pid}.sock`;
    try { fs.unlinkSync(path); } catch (e) { /* none left over */ }
    return echoOver(peer, 'unix_echo', conns, secs, path);
  },

  async udp_echo(peer, n, conns, secs) {
    const m = meter();
    // Server: every datagram back to its sender.
    const server = dgram.createSocket('udp4');
    server.on('message', (d, rinfo) => server.send(d, rinfo.port, rinfo.address));
    await new Promise((r) => server.bind(0, '127.0.0.1', r));
    const port = server.address().port;
    // Set-up (untimed): every client socket connected first.
    const socks = await Promise.all(Array.from({ length: conns }, () =>
      new Promise((resolve) => {
        const s = dgram.createSocket('udp4');
        s.connect(port, '127.0.0.1', () => resolve(s));
      })));
    const msg = Buffer.alloc(n, 'x');
    const rtts = [];
    const start = now();
    const deadline = start + BigInt(Math.round(secs * 1e9));
    // Client: send one datagram, wait for its echo, repeat.
    const client = (s) => new Promise((resolve, reject) => {
      let t = now();
      s.on('message', (d) => {
        if (d.length !== n) { reject(new Error('udp_echo: a short echo')); return; }
        const e = now();
        rtts.push(Number(e - t));
        if (e >= deadline) { resolve(); return; }
        t = e;
        s.send(msg);
      });
      s.send(msg);
    });
    await Promise.all(socks.map(client));
    const elapsed = Number(now() - start) / 1e9;
    for (const s of socks) s.close();
    server.close();
    const sorted = Float64Array.from(rtts).sort();
    const p99 = sorted.length ? pct(sorted, 99) / 1e3 : 0;
    return `${base(m, peer, 'udp_echo', n)} conns=${conns} secs=${secs} ` +
      `datagrams_per_s=${(rtts.length / elapsed).toFixed(0)} p99_us=${p99.toFixed(1)}`;
  },
};

// echo over TCP on 127.0.0.1, or over a Unix socket at path.
async function echoOver(peer, name, conns, secs, path) {
  const MSG = 64;
  const m = meter();
  // Server: echo back whatever arrives.
  const server = net.createServer({ noDelay: true }, (s) => {
    s.setNoDelay(true);
    s.on('data', (d) => s.write(d));
    s.on('error', () => {});
  });
  await new Promise((r) => (path ? server.listen(path, r) : server.listen(0, '127.0.0.1', r)));
  const where = path ? { path } : { port: server.address().port, host: '127.0.0.1' };
  // Set-up (untimed): connect every client first.
  const socks = await Promise.all(Array.from({ length: conns }, () =>
    new Promise((resolve, reject) => {
      const s = net.connect({ ...where, noDelay: true }, () => resolve(s));
      s.on('error', reject);
    })));
  const msg = Buffer.alloc(MSG, 'x');
  const rtts = [];
  const start = now();
  const deadline = start + BigInt(Math.round(secs * 1e9));
  // Client: send 64 bytes, wait until the 64-byte echo is back, repeat.
  const client = (s) => new Promise((resolve) => {
    let got = 0;
    let t = now();
    s.on('data', (d) => {
      got += d.length;
      if (got < MSG) return;
      got -= MSG;
      const e = now();
      rtts.push(Number(e - t));
      if (e >= deadline) { resolve(); return; }
      t = e;
      s.write(msg);
    });
    s.write(msg);
  });
  await Promise.all(socks.map(client));
  const elapsed = Number(now() - start) / 1e9;
  for (const s of socks) s.destroy();
  server.close();
  const sorted = Float64Array.from(rtts).sort();
  const p99 = sorted.length ? pct(sorted, 99) / 1e3 : 0;
  return `${base(m, peer, name, conns)} conns=${conns} secs=${secs} ` +
    `rtt_per_s=${(rtts.length / elapsed).toFixed(0)} p99_us=${p99.toFixed(1)}`;
}

async function main() {
  const [sc, nArg, connsArg, secsArg] = process.argv.slice(2);
  const n = parseInt(nArg, 10);
  if (!sc || !(n > 0)) {
    process.stderr.write('usage: node peer.js <scenario> <n> [conns] [secs]\n');
    process.exit(2);
  }
  const fn = scenarios[sc];
  if (!fn) {
    process.stderr.write(`node peer: unknown scenario ${sc}\n`);
    process.exit(2);
  }
  const conns = connsArg ? parseInt(connsArg, 10) : (sc === 'udp_echo' ? 1 : n);
  const secs = secsArg ? parseFloat(secsArg) : 2;
  const line = sc === 'echo' || sc === 'udp_echo' || sc === 'unix_echo'
    ? await fn('node', n, conns, secs) : await fn('node', n);
  process.stdout.write(line + '\n');
}

main().catch((e) => { process.stderr.write(`node peer: ${e.stack || e}\n`); process.exit(1); });
