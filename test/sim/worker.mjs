#!/usr/bin/env node
// Simulated hum `claude-cli-worker` 0.31.16 / 0.31.18 (unpatched): the process our
// integration tests, demo and benchmarks drive. Plain JS, no dependencies, no build step.
// Ground truth: shared/upstream-worker.md and the log fixtures in shared/fixtures/.
//
//   node test/sim/worker.mjs [--log FILE] [--claude PATH] [--table N] [--model M]
//                            [--worker-version 0.31.16|0.31.18] [--hid wbee_xxxx]
//                            [--auto --sids K --tick-ms T [--rounds R] [--sid-prefix P]
//                             [--reconnect-every N] [--race-every N] [--idle-every N]
//                             [--mode MODE] [--max-live M]]
//
// Log: tracing compact format, ANSI unless NO_COLOR is set, level filter HUM_LOG_LEVEL
// (default trace), appended to --log FILE (O_APPEND) or written to stdout.
// Children: `$CLAUDE_CLI_PATH` (or --claude) with the exact worker-child argv, the worker's
// env plus CLAUDE_CODE_DISABLE_*=1 (and FAKE_CLAUDE_MODE), in the worker's process group.
//
// Control: one JSON command per line on stdin, one JSON reply per line on stdout; a
// command's "id" is echoed. Errors reply {"ok":false,"error":...}, never crash.
//   {"cmd":"prompt","sid":S,"mode"?:M}  reuse S's cell (TRACE worker.cell.reused), or evict the
//        LRU cell when the table is full (WARN worker.cell.evict.lru; its child keeps running)
//        and spawn -> {"ok":true,"sid","pid","reused","evicted":{"sid","pid"}|null}
//   {"cmd":"race","sid":S,"mode"?:M}    two spawns for S, the second takes the table slot, the
//        first is orphaned silently -> {"ok":true,"sid","pid","orphanedPid","pids":[first,second],"evicted"}
//   {"cmd":"idle","sid":S,"age_ms"?:n}  WARN worker.cell.idle.kill, drop, child keeps running
//   {"cmd":"exit","sid":S}              the child exits 0 (SIGUSR1 to the stand-in), TRACE
//        worker.cell.exit sid=S exit_code=0 -> {"ok":true,"sid","pid","exit_code"}
//   {"cmd":"reconnect"}                 INFO thrum dropped, new connection, new bridge port,
//        new empty table; old children keep running -> {"ok":true,"oldPort","port","orphaned"}
//   {"cmd":"state"}  -> {"ok":true,"port","conn","version","table","cells":[{"sid","pid"}],
//        "children":[every pid ever spawned],"live":[pids not seen exiting]}
//   {"cmd":"reopen"} close the --log file and open the path again (after a rename rotation).
//   {"cmd":"quit"}   a crash: exit at once, children keep running and get reparented.
// Any child that exits (including an orphan a reaper kills) logs TRACE worker.cell.exit
// (exit_code=1 when killed by a signal) and removes its sid from its connection's table:
// the upstream by-sid quirk.
// --auto: every tick-ms, prompt a random sid P1..PK (reconnect / race / idle every N ticks),
// for R ticks (default forever), then idle; spawns stop while --max-live (1000) children live.
//
// Not leaking: when stdin is a pipe and reaches EOF (the driver stopped or died), or stdout
// breaks, the worker SIGKILLs the children it still parents and their descendants, then
// exits. With --auto and stdin a terminal or /dev/null, stdin is not read at all.
process.title = 'claude-cli-worker';

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const o = {
    log: null,
    claude: process.env.CLAUDE_CLI_PATH || 'claude',
    table: 8,
    model: 'claude-opus-4-7',
    workerVersion: '0.31.16',
    auto: false,
    sids: 20,
    tickMs: 500,
    rounds: Infinity,
    sidPrefix: 'sid-sim-',
    reconnectEvery: 0,
    raceEvery: 0,
    idleEvery: 0,
    mode: null,
    maxLive: 1000,
    hid: null,
  };
  const num = (name, v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) die(`${name} wants a non-negative number, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) die(`${a} wants a value`);
      return argv[++i];
    };
    switch (a) {
      case '--log': o.log = val(); break;
      case '--claude': o.claude = val(); break;
      case '--table': o.table = Math.max(1, Math.floor(num(a, val()))); break;
      case '--model': o.model = val(); break;
      case '--worker-version': o.workerVersion = val(); break;
      case '--auto': o.auto = true; break;
      case '--sids': o.sids = Math.max(1, Math.floor(num(a, val()))); break;
      case '--tick-ms': o.tickMs = num(a, val()); break;
      case '--rounds': o.rounds = Math.floor(num(a, val())); break;
      case '--sid-prefix': o.sidPrefix = val(); break;
      case '--reconnect-every': o.reconnectEvery = Math.floor(num(a, val())); break;
      case '--race-every': o.raceEvery = Math.floor(num(a, val())); break;
      case '--idle-every': o.idleEvery = Math.floor(num(a, val())); break;
      case '--mode': o.mode = val(); break;
      case '--max-live': o.maxLive = Math.floor(num(a, val())); break;
      case '--hid': o.hid = val(); break;
      case '-h': case '--help':
        process.stdout.write('see the header of test/sim/worker.mjs\n');
        process.exit(0);
        break;
      default: die(`unknown option ${a}`);
    }
  }
  if (o.mode !== null && !MODES.has(o.mode)) die(`unknown --mode ${o.mode}`);
  return o;
}

function die(msg) {
  process.stderr.write(`worker.mjs: ${msg}\n`);
  process.exit(2);
}

const MODES = new Set(['hang', 'children', 'ignore-term', 'fork-on-term']);
const opts = parseArgs(process.argv.slice(2));
// The installer gives an absolute CLAUDE_CLI_PATH; a bare name goes through PATH.
const claudePath = opts.claude.includes('/') ? path.resolve(opts.claude) : opts.claude;
const socketPath = process.env.HUM_THRUM_SOCK || '/tmp/hum/thrum.sock';
const hid = opts.hid || `wbee_${randomBytes(2).toString('hex')}`;
const addsSessionId = versionAtLeast(opts.workerVersion, [0, 31, 18]);

function versionAtLeast(v, min) {
  const p = String(v).split('.').map((x) => parseInt(x, 10) || 0);
  for (let i = 0; i < 3; i++) {
    if ((p[i] ?? 0) !== min[i]) return (p[i] ?? 0) > min[i];
  }
  return true;
}

// ---------------------------------------------------------------- log (tracing compact format)

const LEVELS = { TRACE: [0, 35], DEBUG: [1, 34], INFO: [2, 32], WARN: [3, 33], ERROR: [4, 31] };
const minLevel = (() => {
  const v = (process.env.HUM_LOG_LEVEL || 'trace').trim().toUpperCase();
  return LEVELS[v] ? LEVELS[v][0] : 0;
})();
const color = !('NO_COLOR' in process.env) || process.env.NO_COLOR === '';
let logFd = opts.log ? fs.openSync(opts.log, 'a') : null; // O_APPEND, like launchd's StandardOutPath

const t0ns = process.hrtime.bigint();
const t0us = BigInt(Date.now()) * 1000n;
let lastUs = 0n;
function timestamp() {
  let us = t0us + (process.hrtime.bigint() - t0ns) / 1000n;
  if (us <= lastUs) us = lastUs + 1n; // strictly increasing, like one tracing writer
  lastUs = us;
  const iso = new Date(Number(us / 1000n)).toISOString(); // 2026-05-27T12:05:02.100Z
  return `${iso.slice(0, 19)}.${String(us % 1000000n).padStart(6, '0')}Z`;
}

/** fields: [key, displayValue][]; values are written as given (quote Debug values yourself). */
function log(level, message, fields = []) {
  const [rank, code] = LEVELS[level];
  if (rank < minLevel) return;
  const ts = timestamp();
  const lvl = level.padStart(5);
  let line;
  if (color) {
    line = `\x1b[2m${ts}\x1b[0m \x1b[${code}m${lvl}\x1b[0m ${message}`;
    for (const [k, v] of fields) line += ` \x1b[3m${k}\x1b[0m\x1b[2m=\x1b[0m${v}`;
  } else {
    line = `${ts} ${lvl} ${message}`;
    for (const [k, v] of fields) line += ` ${k}=${v}`;
  }
  line += '\n';
  if (logFd !== null) fs.writeSync(logFd, line);
  else process.stdout.write(line);
}

function reply(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

// ---------------------------------------------------------------- uuid v5 (0.31.18 --session-id)

const SESSION_NS = '68756d2d-7365-7373-696f-6e2d6e730001';
function uuid5(name, ns = SESSION_NS) {
  const nsBytes = Buffer.from(ns.replace(/-/g, ''), 'hex');
  const h = createHash('sha1').update(nsBytes).update(Buffer.from(name, 'utf8')).digest();
  const b = h.subarray(0, 16);
  b[6] = (b[6] & 0x0f) | 0x50;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = b.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

// ---------------------------------------------------------------- connection state

let conn = 0;            // connection generation
let bridge = null;       // http server (the MCP bridge)
let port = 0;
let cells = new Map();   // sid -> child record; Map order = LRU order (first = least recent)
const children = [];     // every child ever spawned, in spawn order
const byPid = new Map(); // pid -> child record

function listenBridge() {
  return new Promise((resolve, reject) => {
    const srv = http.createServer((req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":"simulated hum mcp bridge"}');
    });
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

async function connect() {
  conn += 1;
  cells = new Map();
  log('INFO', 'worker.connecting', [['socket', socketPath], ['hive', 'claude-cli']]);
  log('INFO', 'worker.hello.sent', [['hive', 'claude-cli'], ['hid', hid], ['models', JSON.stringify(opts.model)]]);
  const next = await listenBridge(); // bound before the old one closes, so the port differs
  const old = bridge;
  bridge = next;
  port = next.address().port;
  if (old) old.close();
  log('INFO', 'worker.mcp.bridge.up', [['mcp_url', `http://127.0.0.1:${port}`]]);
}

// ---------------------------------------------------------------- children

function childArgv(sid) {
  const mcp = JSON.stringify({ mcpServers: { hum: { type: 'http', url: `http://127.0.0.1:${port}/s/${sid}` } } });
  const argv = [
    '-p', '--verbose', '--model', opts.model,
    '--dangerously-skip-permissions', '--disable-slash-commands',
    '--input-format', 'stream-json', '--output-format', 'stream-json',
    '--include-partial-messages', '--mcp-config', mcp, '--strict-mcp-config',
  ];
  if (addsSessionId) argv.push('--session-id', uuid5(sid));
  return argv;
}

function childEnv(mode) {
  const env = {
    ...process.env,
    CLAUDE_CODE_DISABLE_CLAUDE_MDS: '1',
    CLAUDE_CODE_DISABLE_AUTO_MEMORY: '1',
    CLAUDE_CODE_DISABLE_BACKGROUND_TASKS: '1',
    CLAUDE_CODE_DISABLE_FAST_MODE: '1',
    CLAUDE_CODE_DISABLE_ADAPTIVE_THINKING: '1',
    DISABLE_INTERLEAVED_THINKING: '1',
    ENABLE_TOOL_SEARCH: 'false',
  };
  if (mode) env.FAKE_CLAUDE_MODE = mode;
  return env;
}

/** Spawn one child for sid; resolves to its record, rejects if the spawn failed. */
function spawnChild(sid, mode) {
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(claudePath, childArgv(sid), {
        env: childEnv(mode),
        stdio: ['pipe', 'ignore', 'pipe'],
        detached: false, // same process group as the worker, like 0.31.x
      });
    } catch (e) {
      reject(e);
      return;
    }
    if (child.pid === undefined) {
      child.once('error', reject);
      return;
    }
    child.on('error', () => {}); // e.g. EPIPE on a dead child's stdin
    child.stdin.on('error', () => {});
    const rec = { sid, pid: child.pid, conn, child, exited: false, exitCode: null, spawnedAt: Date.now(), touchedAt: Date.now() };
    children.push(rec);
    byPid.set(rec.pid, rec);
    readline.createInterface({ input: child.stderr }).on('line', (l) => {
      const t = l.trim();
      if (t) log('TRACE', `stderr: ${t}`);
    });
    child.on('exit', (code) => onChildExit(rec, code));
    log('TRACE', `spawned pid=Some(${rec.pid})`);
    log('TRACE', 'worker.cell.spawned', [['sid', sid]]);
    if (waitsReady) waitReady(rec).then(() => resolve(rec));
    else resolve(rec);
  });
}

// When the child is our stand-in, the reply waits until the script has set its traps, started
// its own children and blocked (it then holds fd 9, a pipe), so a test may signal it at once.
const simClaude = fileURLToPath(new URL('./claude', import.meta.url));
const waitsReady = process.platform === 'linux' && sameFile(claudePath, simClaude);

function sameFile(a, b) {
  try { return fs.realpathSync(a) === fs.realpathSync(b); } catch { return false; }
}

async function waitReady(rec, ms = 2000) {
  const deadline = Date.now() + ms;
  while (!rec.exited && Date.now() < deadline) {
    try {
      if (fs.readlinkSync(`/proc/${rec.pid}/fd/9`).startsWith('pipe:')) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 1));
  }
}

const exitWaiters = new Map(); // pid -> resolve[]

function onChildExit(rec, code) {
  rec.exited = true;
  rec.exitCode = code ?? 1; // killed by a signal: no code; hum's wait path says 1
  // The child's wait task outlives eviction and reconnects, so every exit is logged, and the
  // entry is removed BY SID from that child's own connection table (upstream quirk: killing an
  // old orphan of sid S also drops a fresh S cell from the table).
  log('TRACE', 'worker.cell.exit', [['sid', rec.sid], ['exit_code', String(rec.exitCode)]]);
  log('TRACE', 'worker.dispatch.exit', [['sid', rec.sid]]);
  if (rec.conn === conn) cells.delete(rec.sid);
  const ws = exitWaiters.get(rec.pid);
  if (ws) {
    exitWaiters.delete(rec.pid);
    for (const w of ws) w();
  }
}

function waitExit(rec, ms) {
  if (rec.exited) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    const list = exitWaiters.get(rec.pid) ?? [];
    list.push(() => { clearTimeout(t); resolve(true); });
    exitWaiters.set(rec.pid, list);
  });
}

function touch(sid, rec) {
  cells.delete(sid);
  rec.touchedAt = Date.now();
  cells.set(sid, rec);
}

/** Eviction check as upstream: before the spawn; the drop does not kill (the bug). */
function evictIfFull() {
  if (cells.size < opts.table) return null;
  const [lruSid, lru] = cells.entries().next().value;
  log('WARN', 'worker.cell.evict.lru', [['evicted_sid', lruSid]]);
  cells.delete(lruSid);
  return { sid: lruSid, pid: lru.pid };
}

function liveCount() {
  let n = 0;
  for (const c of children) if (!c.exited) n++;
  return n;
}

// ---------------------------------------------------------------- commands

function needSid(c) {
  if (typeof c.sid !== 'string' || c.sid === '') throw new Error('missing "sid" (non-empty string)');
  return c.sid;
}

function needMode(c) {
  if (c.mode === undefined || c.mode === null) return opts.mode;
  if (!MODES.has(c.mode)) throw new Error(`unknown mode ${JSON.stringify(c.mode)}`);
  return c.mode;
}

const commands = {
  // What a writer does after logrotate's postrotate signal: close the log, open the path anew.
  reopen() {
    if (logFd === null) return { reopened: false };
    fs.closeSync(logFd);
    logFd = fs.openSync(opts.log, 'a');
    return { reopened: true };
  },

  async prompt(c) {
    const sid = needSid(c);
    const mode = needMode(c);
    const have = cells.get(sid);
    if (have) {
      log('TRACE', 'worker.cell.reused', [['sid', sid]]);
      touch(sid, have);
      return { sid, pid: have.pid, reused: true, evicted: null };
    }
    const evicted = evictIfFull();
    const rec = await spawnChild(sid, mode);
    cells.set(sid, rec);
    return { sid, pid: rec.pid, reused: false, evicted };
  },

  // Two prompts for one sid race: one eviction check, two spawns, the second insert wins and
  // the first child is orphaned without a line of its own. If sid already has a cell, that
  // cell's child is the one superseded.
  async race(c) {
    const sid = needSid(c);
    const mode = needMode(c);
    let first = cells.get(sid);
    let evicted = null;
    if (!first) {
      evicted = evictIfFull();
      first = await spawnChild(sid, mode);
      cells.set(sid, first);
    }
    const second = await spawnChild(sid, mode);
    cells.delete(sid);
    cells.set(sid, second);
    return { sid, pid: second.pid, orphanedPid: first.pid, pids: [first.pid, second.pid], evicted };
  },

  async idle(c) {
    const sid = needSid(c);
    const rec = cells.get(sid);
    if (!rec) throw new Error(`no cell for sid ${sid}`);
    const age = Number.isFinite(c.age_ms) ? Math.floor(c.age_ms) : Date.now() - rec.touchedAt;
    log('WARN', 'worker.cell.idle.kill', [['sid', sid], ['age_ms', String(age)]]);
    cells.delete(sid);
    return { sid, pid: rec.pid, age_ms: age };
  },

  async exit(c) {
    const sid = needSid(c);
    const rec = cells.get(sid);
    if (!rec) throw new Error(`no cell for sid ${sid}`);
    // The child finishes its turn and exits 0 (the stand-in exits 0 on SIGUSR1).
    try { process.kill(rec.pid, 'SIGUSR1'); } catch { /* already gone */ }
    let ok = await waitExit(rec, 3000);
    if (!ok) {
      try { process.kill(rec.pid, 'SIGKILL'); } catch { /* gone */ }
      ok = await waitExit(rec, 3000);
    }
    if (!ok) throw new Error(`child ${rec.pid} of ${sid} did not exit`);
    cells.delete(sid);
    return { sid, pid: rec.pid, exit_code: rec.exitCode };
  },

  async reconnect() {
    const oldPort = port;
    const orphaned = [...cells.values()].map((r) => ({ sid: r.sid, pid: r.pid }));
    log('INFO', 'serve_worker: thrum dropped, reconnecting', [['err', 'connection reset by peer (os error 54)']]);
    await connect();
    return { oldPort, port, orphaned };
  },

  async state() {
    return {
      port,
      conn,
      version: opts.workerVersion,
      table: opts.table,
      cells: [...cells.entries()].map(([sid, r]) => ({ sid, pid: r.pid })),
      children: children.map((r) => r.pid),
      live: children.filter((r) => !r.exited).map((r) => r.pid),
    };
  },

  async quit() {
    quitting = true;
    return { pid: process.pid };
  },
};

let quitting = false;
let queue = Promise.resolve();

function handleLine(line) {
  const text = line.trim();
  if (!text) return;
  queue = queue.then(async () => {
    let c;
    try {
      c = JSON.parse(text);
    } catch (e) {
      reply({ ok: false, error: `bad JSON: ${e.message}` });
      return;
    }
    const id = c && typeof c === 'object' && 'id' in c ? { id: c.id } : {};
    const fn = c && typeof c === 'object' && typeof c.cmd === 'string' && Object.hasOwn(commands, c.cmd) ? commands[c.cmd] : null;
    if (!fn) {
      reply({ ...id, ok: false, error: `unknown command ${JSON.stringify(c && typeof c === 'object' ? c.cmd : c)}` });
      return;
    }
    try {
      const r = await fn(c);
      reply({ ...id, ok: true, ...r });
    } catch (e) {
      reply({ ...id, ok: false, error: e instanceof Error ? e.message : String(e) });
    }
    if (quitting) {
      // A crashed worker: gone at once, children keep running and get reparented.
      if (logFd !== null) fs.closeSync(logFd);
      process.stdout.write('', () => process.exit(0));
    }
  });
}

// ---------------------------------------------------------------- teardown (stdin EOF)

function childrenOf() {
  const kids = new Map();
  let entries = [];
  try { entries = fs.readdirSync('/proc'); } catch { return kids; }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    let stat;
    try { stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8'); } catch { continue; }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (!kids.has(ppid)) kids.set(ppid, []);
    kids.get(ppid).push(Number(e));
  }
  return kids;
}

function teardown() {
  if (quitting) return;
  quitting = true;
  const kids = childrenOf();
  const victims = [];
  const walk = (pid) => {
    for (const k of kids.get(pid) ?? []) { victims.push(k); walk(k); }
  };
  for (const rec of children) {
    if (rec.exited) continue; // reaped by us already: the pid may belong to someone else now
    walk(rec.pid);
    victims.push(rec.pid);
  }
  for (const pid of victims) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  if (logFd !== null) fs.closeSync(logFd);
  process.exit(0);
}

// ---------------------------------------------------------------- unattended mode

function startAuto() {
  let tick = 0;
  const timer = setInterval(() => {
    if (quitting) return;
    if (tick >= opts.rounds) {
      clearInterval(timer);
      return;
    }
    tick += 1;
    const sid = `${opts.sidPrefix}${1 + Math.floor(Math.random() * opts.sids)}`;
    let cmd = { cmd: 'prompt', sid };
    if (opts.reconnectEvery > 0 && tick % opts.reconnectEvery === 0) cmd = { cmd: 'reconnect' };
    else if (opts.idleEvery > 0 && tick % opts.idleEvery === 0 && cells.size > 0) cmd = { cmd: 'idle', sid: cells.keys().next().value };
    else if (opts.raceEvery > 0 && tick % opts.raceEvery === 0) cmd = { cmd: 'race', sid };
    if ((cmd.cmd === 'prompt' || cmd.cmd === 'race') && liveCount() >= opts.maxLive && !cells.has(sid)) return; // safety cap
    queue = queue.then(async () => {
      try { await commands[cmd.cmd](cmd); } catch (e) { process.stderr.write(`worker.mjs auto: ${e.message}\n`); }
    });
  }, Math.max(1, opts.tickMs));
}

// ---------------------------------------------------------------- main

queue = queue.then(() => connect()).catch((e) => {
  process.stderr.write(`worker.mjs: bridge failed: ${e.message}\n`);
  process.exit(1);
});

let stdinIsControl = true;
try {
  const st = fs.fstatSync(0);
  // Unattended from a terminal or </dev/null: stdin carries no commands.
  if (opts.auto && (st.isCharacterDevice() || st.isFile())) stdinIsControl = false;
} catch {
  stdinIsControl = false;
}
process.stdout.on('error', () => teardown());
if (stdinIsControl) {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', handleLine);
  rl.on('close', () => { queue = queue.then(teardown, teardown); });
} else {
  process.stdin.destroy();
}
if (opts.auto) queue = queue.then(startAuto);
