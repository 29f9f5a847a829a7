// Fault injection, hostile ledger: before the daemon starts, ledger.jsonl says the cells of
// soon-evicted sids live at our own pid, pid 1, the worker, processes of another uid, a
// recycled pid and a live cell. The log then evicts every one of those sids. The ledger is
// only a hint: identity and the decision are re-checked, so none of them may be signalled,
// while a genuinely evicted child in the same run is killed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import readline from 'node:readline';
import { evictionLine } from '../support/logfile.js';
import { isAlive, pidsOfRun, readCmdline, RUN_ENV, SIM_CLAUDE_PATH, SIM_WORKER_PATH, sleep, waitFor, workerChildArgs } from '../support/sim.js';
import { appendLog, eventsNamed, Harness, isRoot, NOBODY, ppidOf, report, spawnAsNobody, startKeyOf } from './support.js';

const h = new Harness();
after(() => h.cleanup());

interface Hostile {
  name: string;
  pid: number;
  sid: string;
  startKey: string;
  /** The process must still be alive at the end (false: it is not ours to watch). */
  watch: boolean;
}

/** A simulated worker running as uid 65534, driven over its stdin like startSimWorker's. */
function startNobodyWorker(token: string, logDir: string) {
  const cp = spawn(process.execPath, [SIM_WORKER_PATH, '--log', join(logDir, 'nobody-worker.log'), '--claude', SIM_CLAUDE_PATH], {
    uid: NOBODY,
    gid: NOBODY,
    cwd: '/',
    detached: true,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp', CLAUDE_CLI_PATH: SIM_CLAUDE_PATH, [RUN_ENV]: token },
    stdio: ['pipe', 'pipe', 'pipe'],
  }) as ChildProcessWithoutNullStreams;
  cp.on('error', () => undefined);
  cp.stdin.on('error', () => undefined);
  let stderr = '';
  cp.stderr.on('data', (d) => (stderr = (stderr + String(d)).slice(-2000)));
  const replies = new Map<number, (r: Record<string, unknown>) => void>();
  readline.createInterface({ input: cp.stdout }).on('line', (line) => {
    try {
      const r = JSON.parse(line) as Record<string, unknown>;
      replies.get(r.id as number)?.(r);
    } catch {
      /* not a reply */
    }
  });
  let id = 0;
  const prompt = (sid: string) =>
    new Promise<number>((resolve, reject) => {
      const n = ++id;
      const timer = setTimeout(() => reject(new Error(`nobody worker: no reply to prompt ${sid}; stderr: ${stderr}`)), 10_000);
      replies.set(n, (r) => {
        clearTimeout(timer);
        if (r.ok === true && typeof r.pid === 'number') resolve(r.pid);
        else reject(new Error(`nobody worker: ${JSON.stringify(r)}`));
      });
      cp.stdin.write(`${JSON.stringify({ cmd: 'prompt', sid, id: n })}\n`);
    });
  return { pid: cp.pid!, prompt, stop: () => cp.stdin.end() };
}

const cellRecord = (o: { sid: string; pid: number; startKey: string; port: number; ppid: number; at: number }) => ({
  t: 'cell', sid: o.sid, sessionUuid: null, bridgePort: o.port, pid: o.pid, startKey: o.startKey, startedAt: o.at - 60_000, ppid: o.ppid, firstSeen: o.at, lastSeen: o.at,
});

test('hostile ledger: entries naming our pid, pid 1, the worker, other uids, a recycled pid and a live cell are never signalled', { skip: isRoot ? false : 'needs root (processes of uid 65534)' }, async (t) => {
  const token = h.token();
  const dir = h.tempDir('ledger');
  const nobodyDir = h.tempDir('ledger-nobody');
  chownSync(nobodyDir, NOBODY, NOBODY);
  const w = await h.worker(token, { table: 3 });
  const sid = (name: string) => `${token}-${name}`;

  // Processes of another uid: a plain sleep, a worker child of a uid-65534 worker (a real
  // "evicted" cell but for its uid), and a reparented one (an "unparented" orphan but for its uid).
  const sleeper = spawnAsNobody('sleep', ['300'], token);
  const nobodyWorker = startNobodyWorker(token, nobodyDir);
  const nobodyCell = await nobodyWorker.prompt(sid('x-nobody-cell'));
  const wrapper = spawnAsNobody('/bin/sh', ['-c', '"$0" "$@" &', SIM_CLAUDE_PATH, ...workerChildArgs({ sid: sid('x-nobody-orphan'), port: w.initialPort })], token);
  const isOrphanStandIn = (p: number) => {
    try {
      const argv = readCmdline(p);
      return argv[1] === SIM_CLAUDE_PATH && argv.some((a) => a.includes(`/s/${sid('x-nobody-orphan')}"`));
    } catch {
      return false; // gone meanwhile
    }
  };
  let nobodyOrphan = 0;
  assert.ok(
    await waitFor(() => {
      nobodyOrphan = pidsOfRun(token).find(isOrphanStandIn) ?? 0;
      return nobodyOrphan > 0 && !isAlive(wrapper.pid!) && existsSync(`/proc/${nobodyOrphan}/fd/9`);
    }, 5000),
    'the reparented uid-65534 stand-in runs',
  );
  // A hand-started root sleep whose pid the ledger claims for an older process (pid recycled).
  const recycledSleep = spawn('sleep', ['300'], { env: { ...process.env, [RUN_ENV]: token }, stdio: 'ignore', detached: true });
  recycledSleep.unref();
  // Cells of the worker: two stay live (the ledger lies about them), one is evicted for real.
  const genuine = await w.prompt(sid('genuine'));
  const live = await w.prompt(sid('live'));
  const live2 = await w.prompt(sid('live2'));
  assert.ok(await waitFor(() => [sleeper.pid!, recycledSleep.pid!, nobodyCell].every((p) => isAlive(p) && startKeyOf(p) !== ''), 3000));

  const at = Date.now();
  const port = w.initialPort;
  const hostile: Hostile[] = [
    { name: 'our own pid', pid: process.pid, sid: sid('x-self'), startKey: startKeyOf(process.pid), watch: true },
    { name: 'pid 1', pid: 1, sid: sid('x-init'), startKey: startKeyOf(1), watch: true },
    { name: 'the worker', pid: w.pid, sid: sid('x-worker'), startKey: startKeyOf(w.pid), watch: true },
    { name: 'uid 65534 sleep', pid: sleeper.pid!, sid: sid('x-nobody-sleep'), startKey: startKeyOf(sleeper.pid!), watch: true },
    { name: 'uid 65534 worker child', pid: nobodyCell, sid: sid('x-nobody-cell'), startKey: startKeyOf(nobodyCell), watch: true },
    { name: 'uid 65534 reparented child', pid: nobodyOrphan, sid: sid('x-nobody-orphan'), startKey: startKeyOf(nobodyOrphan), watch: true },
    { name: 'uid 65534 worker', pid: nobodyWorker.pid, sid: sid('x-nobody-worker'), startKey: startKeyOf(nobodyWorker.pid), watch: true },
    { name: 'recycled pid (sleep)', pid: recycledSleep.pid!, sid: sid('x-recycled'), startKey: String(Number(startKeyOf(recycledSleep.pid!)) - 500), watch: true },
    { name: 'recycled pid (live cell)', pid: live.pid, sid: sid('x-recycled-cell'), startKey: String(Number(startKeyOf(live.pid)) - 500), watch: true },
    { name: 'live cell, forged sid', pid: live2.pid, sid: sid('x-forged'), startKey: startKeyOf(live2.pid), watch: true },
    // The runner that started this test process: an ancestor of the reaper.
    { name: 'the genuine sid, forged to an ancestor', pid: process.ppid, sid: sid('genuine'), startKey: startKeyOf(process.ppid), watch: true },
    { name: 'no such pid', pid: 4_194_000, sid: sid('x-nopid'), startKey: '12345', watch: false },
  ];
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir, { mode: 0o700 });
  const ledgerLines = hostile.map((x) => JSON.stringify(cellRecord({ sid: x.sid, pid: x.pid, startKey: x.startKey, port, ppid: x.pid === 1 || !x.watch ? 0 : ppidOf(x.pid), at })));
  writeFileSync(join(stateDir, 'ledger.jsonl'), `${ledgerLines.join('\n')}\n`, { mode: 0o600 });

  // Trap a stray SIGTERM to this test process: a wrong kill to count, not a dead runner.
  let selfSignalled = 0;
  const onTerm = () => selfSignalled++;
  process.on('SIGTERM', onTerm);
  try {
    const d = h.daemon(token, ['--log', w.logPath, '--state-dir', stateDir, '--sweep-interval', '1000'], { HUM_REAPER_GRACE_MS: '300' });
    const loaded = await d.waitForEvent((e) => e.event === 'ledger.loaded');
    await d.waitForEvent((e) => e.event === 'reaper.sweep');
    // The log evicts every sid the ledger lies about, then the worker evicts `genuine` for real.
    appendLog(w.logPath, hostile.map((x) => `${evictionLine(x.sid)}\n`).join(''));
    await w.prompt(sid('fourth')); // table of 3: evicts `genuine`, the least recently used
    const genuineKill = await d.waitForEvent((e) => e.event === 'reaper.kill' && e.pid === genuine.pid, 5000);
    // Let the hot path and a few sweeps have their go at the hostile entries.
    const sweeps = eventsNamed(d.events, 'reaper.sweep').length;
    await d.waitForEvent((e) => e.event === 'reaper.sweep' && eventsNamed(d.events, 'reaper.sweep').length >= sweeps + 2, 5000);
    await sleep(200);

    const hostilePids = new Set(hostile.map((x) => x.pid));
    const acted = d.events.filter((e) => ['reaper.kill', 'reaper.kill-failed', 'reaper.would-kill'].includes(e.event ?? '') && hostilePids.has(e.pid as number));
    const dead = hostile.filter((x) => x.watch && !isAlive(x.pid)).map((x) => `${x.name} (${x.pid})`);
    const kills = eventsNamed(d.events, 'reaper.kill');
    report(t, {
      events: hostile.length + 1, kills: kills.length, wrongKills: acted.length + dead.length + selfSignalled, misses: isAlive(genuine.pid) ? 1 : 0,
      hostileEntries: Number(loaded.cells ?? 0), ledgerMisses: eventsNamed(d.events, 'reaper.ledger-miss').length,
    });
    assert.equal(loaded.cells, hostile.length, 'every hostile entry was loaded');
    assert.deepEqual(acted, [], 'no action on a hostile pid');
    assert.deepEqual(dead, [], 'every process the ledger pointed at is alive');
    assert.equal(selfSignalled, 0, 'this test process got no SIGTERM');
    assert.equal(genuineKill.sid, sid('genuine'));
    assert.equal(isAlive(genuine.pid), false, 'the genuinely evicted child is dead');
    assert.deepEqual(kills.map((e) => e.pid), [genuine.pid], 'and it is the only kill');
    assert.ok(w.alive() && isAlive(live.pid) && isAlive(live2.pid), 'the worker and its live cells live');
    assert.equal(await d.stop(), 0);
  } finally {
    process.off('SIGTERM', onTerm);
    nobodyWorker.stop();
  }
});
