// The simulator must be faithful to hum's claude-cli-worker 0.31.x, or every integration
// test built on it proves nothing. Ground truth: /work/shared/upstream-worker.md and the
// fixtures in /work/shared/fixtures/.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  SIM_CLAUDE_PATH,
  carriesToken,
  cleanupRun,
  descendants,
  isAlive,
  newRunToken,
  parentPid,
  pidsOfRun,
  processGroup,
  readCmdline,
  sessionUuid,
  sleep,
  spawnDecoys,
  startSimWorker,
  waitFor,
  workerChildArgs,
  type SimWorker,
} from '../support/sim.js';

const here = path.dirname(fileURLToPath(import.meta.url));
function fixtureDir(): string {
  for (const d of [
    process.env.HUM_REAPER_FIXTURES,
    path.resolve(here, '../../../shared/fixtures'),
    '/work/shared/fixtures',
  ]) {
    if (d && fs.existsSync(path.join(d, 'worker-0.31.16.ansi.log'))) return d;
  }
  throw new Error('shared/fixtures not found (set HUM_REAPER_FIXTURES)');
}
const FIX = fixtureDir();
const ansiFixture = fs.readFileSync(path.join(FIX, 'worker-0.31.16.ansi.log'), 'utf8');
const plainFixture = fs.readFileSync(path.join(FIX, 'worker-0.31.16.plain.log'), 'utf8');

const ESC = '\x1b';
const TS_RE = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/;
const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '');
const stripAnsi = (s: string): string => s.replace(/\x1b\[[0-9;]*m/g, '');

/** The byte skeleton of an ANSI line: timestamp and field values blanked, the rest verbatim. */
function ansiShape(line: string): string {
  return line
    .replace(TS_RE, 'TS')
    .replace(/pid=Some\(\d+\)/, 'pid=Some(N)')
    .replace(/(\x1b\[2m=\x1b\[0m).*?(?= \x1b\[3m|$)/g, '$1V');
}

/** The same for a plain line: values run up to the next ` key=` or the end. */
function plainShape(line: string): string {
  return line
    .replace(TS_RE, 'TS')
    .replace(/pid=Some\(\d+\)/, 'pid=Some(N)')
    .replace(/^(TS .{5} \S+(?: [^=]+?)?)((?: [a-z_]+=.*?)*)$/, (_m, head: string, fields: string) =>
      head + fields.replace(/( [a-z_]+=).*?(?= [a-z_]+=|$)/g, '$1V'),
    );
}

/** Same skeleton, levels, messages and order, from two logs of the same command script. */
function normalise(line: string): string {
  return line
    .replace(TS_RE, 'TS')
    .replace(/wbee_[0-9a-f]{4}/, 'wbee_H')
    .replace(/\d+/g, 'N');
}

// Drive a worker through every line kind the fixture has (but worker.result.error).
async function exercise(w: SimWorker, p: string): Promise<void> {
  for (let i = 1; i <= 4; i++) await w.prompt(`${p}-bee-${i}`);
  await w.prompt(`${p}-bee-2`); // reused
  await w.prompt(`${p}-bee-5`); // evicts bee-1 (table 4)
  await w.race(`${p}-bee-6`); // evicts bee-3; two spawns, one orphaned silently
  await w.idle(`${p}-bee-4`, 300412);
  await w.exitCell(`${p}-bee-5`);
  await w.reconnect();
  await w.prompt(`${p}-bee-7`);
}

describe('simulated worker log format', () => {
  const token = newRunToken();
  after(async () => {
    await cleanupRun(token);
  });

  test('ANSI lines have the byte structure of the fixture', async () => {
    const w = await startSimWorker({ token, table: 4 });
    try {
      await exercise(w, token);
      const sim = lines(w.readLog());
      const fixtureShapes = new Set(lines(ansiFixture).map(ansiShape));
      const simShapes = new Set(sim.map(ansiShape));
      for (const l of sim) {
        assert.ok(fixtureShapes.has(ansiShape(l)), `sim line shape not in fixture:\n${JSON.stringify(ansiShape(l))}\n${JSON.stringify(l)}`);
      }
      for (const s of fixtureShapes) {
        if (s.includes('worker.result.error')) continue; // the sim never sees an API error
        assert.ok(simShapes.has(s), `fixture line shape never produced by the sim:\n${JSON.stringify(s)}`);
      }
      // Level colour pairs, exactly as the fixture has them.
      const pair = /^\x1b\[2mTS\x1b\[0m \x1b\[(\d+)m(.{5})\x1b\[0m /;
      const fixturePairs = new Set(lines(ansiFixture).map((l) => ansiShape(l).match(pair)?.slice(1, 3).join(':')));
      for (const l of sim) {
        const m = ansiShape(l).match(pair);
        assert.ok(m, JSON.stringify(l));
        assert.ok(fixturePairs.has(`${m[1]}:${m[2]}`), `level/colour ${m[1]}:${m[2]}`);
      }
      // Values look like the real ones.
      const text = sim.join('\n');
      assert.match(text, /mcp_url\x1b\[0m\x1b\[2m=\x1b\[0mhttp:\/\/127\.0\.0\.1:\d+\n/);
      assert.match(text, /hid\x1b\[0m\x1b\[2m=\x1b\[0mwbee_[0-9a-f]{4} /);
      assert.match(text, /models\x1b\[0m\x1b\[2m=\x1b\[0m"claude-opus-4-7"\n/);
      assert.match(text, new RegExp(`evicted_sid\\x1b\\[0m\\x1b\\[2m=\\x1b\\[0m${token}-bee-1\\n`));
      assert.match(text, /age_ms\x1b\[0m\x1b\[2m=\x1b\[0m300412\n/);
      assert.match(text, /exit_code\x1b\[0m\x1b\[2m=\x1b\[0m0\n/);
      assert.match(text, /err\x1b\[0m\x1b\[2m=\x1b\[0mconnection reset by peer \(os error 54\)\n/);
      // `spawned pid=Some(N)` is an unstyled message.
      assert.ok(sim.some((l) => /^\x1b\[2m\S+\x1b\[0m \x1b\[35mTRACE\x1b\[0m spawned pid=Some\(\d+\)$/.test(l)));
      // RFC 3339 UTC with microseconds, close to now, never going back.
      let prev = '';
      for (const l of sim) {
        const ts = l.slice(4, 4 + 27);
        assert.match(ts, new RegExp(`^${TS_RE.source}$`));
        assert.ok(Math.abs(Date.parse(ts) - Date.now()) < 60_000, ts);
        assert.ok(ts > prev, `${ts} after ${prev}`);
        prev = ts;
      }
      assert.equal(stripAnsi(ansiFixture), plainFixture, 'fixtures agree with each other');
    } finally {
      await w.stop();
    }
  });

  test('NO_COLOR gives the plain fixture format, the same lines without the escapes', async () => {
    const wc = await startSimWorker({ token, table: 4 });
    const wp = await startSimWorker({ token, table: 4, color: false });
    try {
      await exercise(wc, 'sid-x');
      await exercise(wp, 'sid-x');
      const plain = lines(wp.readLog());
      assert.ok(!plain.join('').includes(ESC), 'no escape byte with NO_COLOR');
      const fixtureShapes = new Set(lines(plainFixture).map(plainShape));
      for (const l of plain) {
        assert.match(l, new RegExp(`^${TS_RE.source} (TRACE|DEBUG| INFO| WARN|ERROR) \\S`));
        assert.ok(fixtureShapes.has(plainShape(l)), `plain shape not in fixture: ${JSON.stringify(plainShape(l))}`);
      }
      assert.deepEqual(plain.map(normalise), lines(wc.readLog()).map(stripAnsi).map(normalise));
    } finally {
      await wc.stop();
      await wp.stop();
    }
  });

  test('HUM_LOG_LEVEL=info drops TRACE lines', async () => {
    const w = await startSimWorker({ token, table: 1, logLevel: 'info' });
    try {
      await w.prompt(`${token}-a`);
      await w.prompt(`${token}-b`);
      const log = stripAnsi(w.readLog());
      assert.doesNotMatch(log, /TRACE/);
      assert.match(log, / WARN worker\.cell\.evict\.lru evicted_sid=hrt-[0-9a-f]+-a\n/);
    } finally {
      await w.stop();
    }
  });
});

describe('simulated worker processes', () => {
  const token = newRunToken();
  after(async () => {
    await cleanupRun(token);
  });

  test('worker looks like claude-cli-worker; child argv, env, parent and group are upstream', async () => {
    const w = await startSimWorker({ token });
    try {
      assert.equal(fs.readFileSync(`/proc/${w.pid}/comm`, 'utf8').trim(), 'claude-cli-work');
      assert.deepEqual(readCmdline(w.pid), ['claude-cli-worker']);
      const sid = `${token}-daman-operator`;
      const r = await w.prompt(sid);
      const { port } = await w.state();
      const expected = [
        '/bin/sh', SIM_CLAUDE_PATH,
        '-p', '--verbose', '--model', 'claude-opus-4-7',
        '--dangerously-skip-permissions', '--disable-slash-commands',
        '--input-format', 'stream-json', '--output-format', 'stream-json',
        '--include-partial-messages',
        '--mcp-config', `{"mcpServers":{"hum":{"type":"http","url":"http://127.0.0.1:${port}/s/${sid}"}}}`,
        '--strict-mcp-config',
      ];
      assert.deepEqual(readCmdline(r.pid), expected);
      assert.deepEqual(readCmdline(r.pid).slice(2), workerChildArgs({ sid, port }));
      assert.equal(fs.readFileSync(`/proc/${r.pid}/comm`, 'utf8').trim(), 'claude');
      const env = fs.readFileSync(`/proc/${r.pid}/environ`, 'utf8').split('\0');
      for (const e of ['CLAUDE_CODE_DISABLE_CLAUDE_MDS=1', `CLAUDE_CLI_PATH=${SIM_CLAUDE_PATH}`, 'HUM_THRUM_SOCK=/tmp/hum/thrum.sock', `HUM_REAPER_TEST_RUN=${token}`]) {
        assert.ok(env.includes(e), e);
      }
      assert.equal(parentPid(r.pid), w.pid);
      assert.equal(processGroup(r.pid), processGroup(w.pid), 'child shares the worker process group');
      assert.equal(processGroup(w.pid), w.pid, 'worker leads its own group, like a service');
      assert.deepEqual(descendants(r.pid), [], 'hang mode has no child of its own');
      assert.match(w.readLog(), new RegExp(`TRACE\\x1b\\[0m spawned pid=Some\\(${r.pid}\\)\\n.*worker\\.cell\\.spawned .*=\\x1b\\[0m${sid}\\n`));
    } finally {
      await w.stop();
    }
  });

  test('0.31.18 appends --session-id uuid5(sid); test-sid gives the documented uuid', async () => {
    assert.equal(sessionUuid('test-sid'), '59708d62-47e6-52a9-9a24-6a4b644fe6e2');
    const w = await startSimWorker({ token, workerVersion: '0.31.18' });
    try {
      const r = await w.prompt('test-sid');
      const argv = readCmdline(r.pid);
      assert.deepEqual(argv.slice(-3), ['--strict-mcp-config', '--session-id', '59708d62-47e6-52a9-9a24-6a4b644fe6e2']);
      assert.deepEqual(argv.slice(2), workerChildArgs({ sid: 'test-sid', port: w.initialPort, workerVersion: '0.31.18' }));
    } finally {
      await w.stop();
    }
  });

  test('LRU eviction at table size 8 drops the cell and leaves its child running', async () => {
    const w = await startSimWorker({ token });
    try {
      const sids = Array.from({ length: 9 }, (_, i) => `${token}-s${i + 1}`);
      const pids: number[] = [];
      for (const sid of sids.slice(0, 8)) {
        const r = await w.prompt(sid);
        assert.equal(r.evicted, null);
        pids.push(r.pid);
      }
      const again = await w.prompt(sids[0]!); // touch s1: s2 is now least recent
      assert.equal(again.reused, true);
      assert.equal(again.pid, pids[0]);
      const r9 = await w.prompt(sids[8]!);
      assert.deepEqual(r9.evicted, { sid: sids[1], pid: pids[1] });
      await sleep(200);
      assert.ok(isAlive(pids[1]!), 'evicted child still running (the upstream bug)');
      assert.equal(parentPid(pids[1]!), w.pid);
      const st = await w.state();
      assert.equal(st.cells.length, 8);
      assert.ok(!st.cells.some((c) => c.sid === sids[1]));
      assert.deepEqual(st.cells.at(-1), { sid: sids[8], pid: r9.pid });
      assert.equal(st.children.length, 9);
      const log = stripAnsi(w.readLog());
      assert.match(log, new RegExp(`TRACE worker\\.cell\\.reused sid=${sids[0]}\\n`));
      assert.match(log, new RegExp(` WARN worker\\.cell\\.evict\\.lru evicted_sid=${sids[1]}\\n`));
      // The sid comes back: a fresh child, the old one still running.
      const back = await w.prompt(sids[1]!);
      assert.notEqual(back.pid, pids[1]);
      assert.equal(back.evicted?.sid, sids[2]);
      assert.ok(isAlive(pids[1]!));
    } finally {
      await w.stop();
    }
  });

  test('race orphans the first child without a line; idle leaves the child; exit really exits', async () => {
    const w = await startSimWorker({ token });
    try {
      const sid = `${token}-race`;
      const r = await w.race(sid);
      assert.notEqual(r.pid, r.orphanedPid);
      assert.ok(isAlive(r.orphanedPid) && isAlive(r.pid));
      let st = await w.state();
      assert.deepEqual(st.cells, [{ sid, pid: r.pid }]);
      const log = stripAnsi(w.readLog());
      assert.equal(log.match(new RegExp(`worker\\.cell\\.spawned sid=${sid}\\n`, 'g'))?.length, 2);
      assert.equal(log.match(/spawned pid=Some/g)?.length, 2);
      assert.doesNotMatch(log, /WARN/);

      const idleSid = `${token}-idle`;
      const i = await w.prompt(idleSid);
      const ir = await w.idle(idleSid);
      assert.equal(ir.pid, i.pid);
      assert.match(stripAnsi(w.readLog()), new RegExp(` WARN worker\\.cell\\.idle\\.kill sid=${idleSid} age_ms=\\d+\\n`));
      await sleep(100);
      assert.ok(isAlive(i.pid));
      st = await w.state();
      assert.ok(!st.cells.some((c) => c.sid === idleSid));

      const exitSid = `${token}-exit`;
      const e = await w.prompt(exitSid, 'children');
      const kids = descendants(e.pid);
      assert.equal(kids.length, 2);
      const er = await w.exitCell(exitSid);
      assert.equal(er.exit_code, 0);
      assert.ok(!isAlive(e.pid));
      assert.ok(await waitFor(() => kids.every((k) => !isAlive(k)), 2000), 'a finished claude takes its tools along');
      assert.match(stripAnsi(w.readLog()), new RegExp(`TRACE worker\\.cell\\.exit sid=${exitSid} exit_code=0\\n`));
      st = await w.state();
      assert.ok(!st.cells.some((c) => c.sid === exitSid));

      const bad = await w.send({ cmd: 'nope' });
      assert.equal(bad.ok, false);
      assert.equal((await w.send({ cmd: 'idle', sid: 'no-such-sid' })).ok, false);
      assert.equal((await w.send({ cmd: 'prompt' })).ok, false);
      assert.equal((await w.send({ cmd: 'prompt', sid: 'x', mode: 'weird' })).ok, false);
      assert.ok(w.alive(), 'bad commands do not crash the worker');
    } finally {
      await w.stop();
    }
  });

  test('killing an old orphan logs its exit and drops the fresh cell of the same sid (upstream quirk)', async () => {
    const w = await startSimWorker({ token, table: 1 });
    try {
      const a = `${token}-a`;
      const first = await w.prompt(a);
      await w.prompt(`${token}-b`); // evicts a
      const fresh = await w.prompt(a); // evicts b, a comes back
      process.kill(first.pid, 'SIGTERM');
      assert.ok(await waitFor(() => !isAlive(first.pid), 2000));
      assert.ok(await waitFor(async () => !(await w.state()).cells.some((c) => c.sid === a), 2000));
      assert.ok(isAlive(fresh.pid), 'the fresh child runs on, forgotten by the worker');
      assert.match(stripAnsi(w.readLog()), new RegExp(`TRACE worker\\.cell\\.exit sid=${a} exit_code=1\\n`));
    } finally {
      await w.stop();
    }
  });

  test('reconnect: new bridge port, empty table, old children keep running', async () => {
    const w = await startSimWorker({ token });
    try {
      const old = await w.prompt(`${token}-r1`);
      const r = await w.reconnect();
      assert.equal(r.oldPort, w.initialPort);
      assert.notEqual(r.port, r.oldPort);
      assert.deepEqual(r.orphaned, [{ sid: `${token}-r1`, pid: old.pid }]);
      const st = await w.state();
      assert.equal(st.port, r.port);
      assert.deepEqual(st.cells, []);
      assert.ok(isAlive(old.pid));
      assert.ok(readCmdline(old.pid).some((a) => a.includes(`127.0.0.1:${r.oldPort}/s/`)));
      const fresh = await w.prompt(`${token}-r1`);
      assert.equal(fresh.reused, false);
      assert.ok(readCmdline(fresh.pid).some((a) => a.includes(`127.0.0.1:${r.port}/s/`)));
      const ups = [...stripAnsi(w.readLog()).matchAll(/worker\.mcp\.bridge\.up mcp_url=http:\/\/127\.0\.0\.1:(\d+)\n/g)].map((m) => Number(m[1]));
      assert.deepEqual(ups, [r.oldPort, r.port]);
      assert.match(stripAnsi(w.readLog()), / INFO serve_worker: thrum dropped, reconnecting err=connection reset by peer \(os error 54\)\n/);
    } finally {
      await w.stop();
    }
  });

  test('quit leaves the children running, reparented away from the dead worker', async () => {
    const w = await startSimWorker({ token });
    try {
      const a = await w.prompt(`${token}-q1`);
      const b = await w.prompt(`${token}-q2`, 'children');
      const grand = descendants(b.pid);
      assert.equal(grand.length, 2);
      await w.quit();
      assert.ok(!isAlive(w.pid));
      for (const p of [a.pid, b.pid]) {
        assert.ok(isAlive(p), `child ${p} outlives the worker`);
        const pp = parentPid(p);
        assert.ok(pp !== null && pp !== w.pid, `child ${p} reparented (now ${pp})`);
      }
      for (const g of grand) assert.equal(parentPid(g), b.pid, 'grandchildren stay under their claude');
    } finally {
      await w.stop();
    }
  });

  test('stand-in modes: ignore-term survives TERM, fork-on-term forks then exits, children dies without its kids', async () => {
    const w = await startSimWorker({ token });
    try {
      const ig = await w.prompt(`${token}-ig`, 'ignore-term');
      process.kill(ig.pid, 'SIGTERM');
      await sleep(200);
      assert.ok(isAlive(ig.pid), 'ignore-term ignores TERM');

      const fk = await w.prompt(`${token}-fk`, 'fork-on-term');
      assert.deepEqual(descendants(fk.pid), []);
      process.kill(fk.pid, 'SIGTERM');
      assert.ok(await waitFor(() => !isAlive(fk.pid), 2000));
      const forked = pidsOfRun(token).filter((p) => readCmdline(p).join(' ') === 'sleep 300' && parentPid(p) !== fk.pid);
      assert.ok(forked.length >= 1, 'a new child appeared on TERM');

      const ch = await w.prompt(`${token}-ch`, 'children');
      const kids = descendants(ch.pid);
      assert.deepEqual(kids.map((k) => readCmdline(k)), [['sleep', '300'], ['sleep', '300']]);
      process.kill(ch.pid, 'SIGTERM');
      assert.ok(await waitFor(() => !isAlive(ch.pid), 2000));
      assert.ok(kids.every(isAlive), 'killing only the top leaves the tree: kill the tree');
    } finally {
      await w.stop();
    }
  });
});

describe('decoys and cleanup', () => {
  test('decoys look right; cleanupRun leaves nothing of the run alive', async () => {
    const token = newRunToken();
    const other = newRunToken();
    const w = await startSimWorker({ token, table: 2 });
    const bystander = await spawnDecoys(other);
    try {
      const d = await spawnDecoys(token, { port: w.initialPort });
      assert.deepEqual(readCmdline(d.interactive), ['/bin/sh', SIM_CLAUDE_PATH, '--model', 'x']);
      assert.deepEqual(readCmdline(d.handStarted).slice(2), workerChildArgs({ sid: d.handStartedSid, port: w.initialPort }));
      for (const p of d.pids) {
        assert.equal(parentPid(p), process.pid, 'decoys are children of the live test process');
        assert.ok(carriesToken(p, token));
      }
      const pids: number[] = [w.pid, ...d.pids];
      pids.push((await w.prompt(`${token}-1`, 'children')).pid);
      pids.push((await w.prompt(`${token}-2`, 'fork-on-term')).pid);
      pids.push((await w.prompt(`${token}-3`, 'ignore-term')).pid); // evicts 1
      pids.push(...(await w.race(`${token}-4`)).pids);
      await w.reconnect();
      pids.push((await w.prompt(`${token}-5`)).pid);
      const all = pidsOfRun(token);
      assert.ok(all.length >= pids.length + 2, 'children-mode kids carry the token too');
      assert.ok(!all.includes(process.pid));

      const killed = await cleanupRun(token);
      assert.ok(killed.length >= all.length);
      assert.deepEqual(pidsOfRun(token), []);
      for (const p of [...pids, ...all]) assert.ok(!isAlive(p), `pid ${p} still alive`);
      for (const p of bystander.pids) assert.ok(isAlive(p), 'another run is untouched');
      await assert.rejects(cleanupRun('') as Promise<unknown>, /not a run token/);
    } finally {
      await w.stop();
      await cleanupRun(token);
      await cleanupRun(other);
    }
    assert.deepEqual(pidsOfRun(other), []);
  });

  test('stop() removes the worker, its children and its orphans', async () => {
    const token = newRunToken();
    try {
      const w = await startSimWorker({ token, table: 1 });
      const a = await w.prompt(`${token}-a`, 'children');
      const b = await w.prompt(`${token}-b`, 'ignore-term');
      const kids = descendants(a.pid);
      await w.stop();
      for (const p of [w.pid, a.pid, b.pid, ...kids]) assert.ok(await waitFor(() => !isAlive(p), 2000), `pid ${p}`);
      assert.deepEqual(pidsOfRun(token), []);
      assert.ok(!fs.existsSync(w.logPath), 'temp log removed');
    } finally {
      await cleanupRun(token);
    }
  });

  test('a worker whose driver vanishes (stdin EOF) kills what it parents', async () => {
    const token = newRunToken();
    try {
      const w = await startSimWorker({ token });
      const a = await w.prompt(`${token}-a`, 'children');
      const kids = descendants(a.pid);
      await w.send({ cmd: 'state' });
      // stop() first closes stdin; check the worker did the killing, not the fallback sweep.
      const t0 = Date.now();
      await w.stop();
      assert.ok(Date.now() - t0 < 2500, 'worker exited on EOF without needing SIGKILL');
      for (const p of [a.pid, ...kids]) assert.ok(await waitFor(() => !isAlive(p), 2000));
    } finally {
      await cleanupRun(token);
    }
  });

  test('--auto prompts random sids with the given prefix', async () => {
    const token = newRunToken();
    const w = await startSimWorker({
      token,
      table: 3,
      color: false,
      args: ['--auto', '--sids', '6', '--tick-ms', '5', '--rounds', '40', '--sid-prefix', `${token}-auto-`, '--reconnect-every', '15'],
    });
    try {
      assert.ok(await waitFor(() => (w.readLog().match(/ thrum dropped/g)?.length ?? 0) >= 2, 5000));
      const log = w.readLog();
      assert.match(log, new RegExp(`worker\\.cell\\.spawned sid=${token}-auto-[1-6]\\n`));
      assert.match(log, / WARN worker\.cell\.evict\.lru evicted_sid=/);
      const st = await w.state();
      assert.equal(st.conn, 3);
      assert.ok(st.cells.length <= 3);
    } finally {
      await w.stop();
      await cleanupRun(token);
    }
  });
});
