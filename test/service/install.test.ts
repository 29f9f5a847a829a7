// install / uninstall through main(), against a temporary HOME, with launchctl and systemctl
// replaced on PATH by stand-ins that record their argv. PATH holds nothing else, so the real
// tools can never be reached from here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';
import { applySteps, lineDiff, notLoaded, packageEntry, type RunOutcome, type Step } from '../../src/service/install.js';
import { daemonPath, execWord, executableWord, renderService, templateFile, xmlText } from '../../src/service/render.js';

const GOLDEN = fileURLToPath(new URL('./golden/', import.meta.url));
const uid = process.getuid?.() ?? 0;

interface Sandbox {
  home: string;
  bin: string;
  record: string;
  /** The argv of every stand-in call so far, one array per call. */
  calls: () => string[][];
}

type StandIn = 'ok' | 'fail' | 'absent';

/** How `launchctl bootout` ends instead, whatever is loaded: its exit status and what it prints. */
interface Bootout {
  code: number;
  says: string;
}

/** A temp HOME (its name has a space) and a bin dir with recording launchctl/systemctl. */
function sandbox(kind: StandIn = 'ok', bootout?: Bootout): Sandbox {
  const root = mkdtempSync(join(tmpdir(), 'hum-reaper-install-'));
  const home = join(root, 'home dir');
  const bin = join(root, 'bin');
  const record = join(root, 'calls.tsv');
  mkdirSync(home);
  mkdirSync(bin);
  writeFileSync(record, '');
  // Builtins only: PATH has nothing but this directory.
  const recordLine = `{ printf '%s' "\${0##*/}"; for a in "$@"; do printf '\\t%s' "$a"; done; printf '\\n'; } >> '${record}'`;
  const loaded = join(root, 'launchd-state');
  const bootoutLine = bootout ? `[ "$1" = bootout ] && { echo '${bootout.says}' >&2; exit ${bootout.code}; }\n` : '';
  const launchctl =
    kind === 'fail'
      ? `${recordLine}\n${bootoutLine}echo 'Bootstrap failed: 5: Input/output error' >&2\nexit 5\n`
      : // bootout fails with 3 (as launchctl does) unless a bootstrap loaded the job.
        `${recordLine}
${bootoutLine}state=unloaded; [ -f '${loaded}' ] && read state < '${loaded}'
case "$1" in
  bootstrap) echo loaded > '${loaded}' ;;
  bootout) [ "$state" = loaded ] || { echo 'Boot-out failed: 3: No such process' >&2; exit 3; }; echo unloaded > '${loaded}' ;;
esac
exit 0
`;
  const systemctl = kind === 'fail' ? `${recordLine}\necho 'Failed to connect to bus: No medium found' >&2\nexit 5\n` : `${recordLine}\nexit 0\n`;
  if (kind !== 'absent') {
    writeFileSync(join(bin, 'launchctl'), `#!/bin/sh\n${launchctl}`, { mode: 0o755 });
    writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\n${systemctl}`, { mode: 0o755 });
  }
  const calls = () =>
    readFileSync(record, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split('\t'));
  return { home, bin, record, calls };
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** main(argv) with HOME and PATH of the sandbox; every other variable we read is cleared, then all restored. */
async function run(sb: Sandbox, argv: string[], env: Record<string, string> = {}): Promise<Result> {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('XDG_') || k.startsWith('HUM_REAPER_')) delete process.env[k];
  Object.assign(process.env, { HOME: sb.home, PATH: sb.bin }, env);
  const out: string[] = [];
  const err: string[] = [];
  try {
    const code = await main(argv, { stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

const unitFile = (sb: Sandbox) => join(sb.home, '.config', 'systemd', 'user', 'hum-reaper.service');
const plistFile = (sb: Sandbox) => join(sb.home, 'Library', 'LaunchAgents', 'sh.hum.hum-reaper.plist');

function expectedUnit(stateDir: string | null = null, runArgs: string[] = []): string {
  return renderService('systemd', readFileSync(templateFile('systemd'), 'utf8'), {
    node: process.execPath,
    entry: packageEntry(),
    home: '/',
    path: daemonPath(dirname(process.execPath)),
    stateDir,
    runArgs,
  });
}

// ---- --print -------------------------------------------------------------------------

/** Paths and ids that differ per machine become <NAMES>. */
function normalise(text: string, sb: Sandbox): string {
  const swaps: [string, string][] = [
    [daemonPath(dirname(process.execPath)), '<PATH>'],
    // As written into each format, should this machine's paths need escaping.
    [executableWord(process.execPath), '<NODE>'],
    [execWord(packageEntry()), '<ENTRY>'],
    [xmlText(process.execPath), '<NODE>'],
    [xmlText(packageEntry()), '<ENTRY>'],
    [process.execPath, '<NODE>'],
    [packageEntry(), '<ENTRY>'],
    [sb.home, '<HOME>'],
    [`gui/${uid}`, 'gui/<UID>'],
  ];
  return swaps.reduce((t, [from, to]) => t.split(from).join(to), text);
}

function golden(name: string, actual: string): void {
  const file = join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(file, `${actual}\n`);
  }
  assert.equal(`${actual}\n`, readFileSync(file, 'utf8'), `${name} differs; rerun with UPDATE_GOLDEN=1 if the change is intended`);
}

for (const manager of ['systemd', 'launchd'] as const) {
  test(`install --${manager} --print: golden output, nothing written, nothing run`, async () => {
    const sb = sandbox();
    const r = await run(sb, ['install', `--${manager}`, '--print']);
    assert.equal(r.code, 0, r.stderr);
    golden(`install-print-${manager}.txt`, normalise(r.stdout, sb));
    assert.deepEqual(sb.calls(), []);
    assert.ok(!existsSync(join(sb.home, '.config')) && !existsSync(join(sb.home, 'Library')) && !existsSync(join(sb.home, '.local')), 'nothing created');
  });
}

test('without --launchd/--systemd the manager follows the OS: launchd on macOS, systemd elsewhere', async () => {
  const sb = sandbox();
  const r = await run(sb, ['install', '--print']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, process.platform === 'darwin' ? /^# hum-reaper install --launchd --print/ : /^# hum-reaper install --systemd --print/);
});

// ---- systemd -------------------------------------------------------------------------

test('systemd: install writes the unit, creates the state dir, reloads and enables; again is idempotent', async () => {
  const sb = sandbox();
  const first = await run(sb, ['install', '--systemd']);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(readFileSync(unitFile(sb), 'utf8'), expectedUnit());
  assert.equal(statSync(unitFile(sb)).mode & 0o777, 0o644);
  const stateDir = join(sb.home, '.local', 'state', 'hum-reaper');
  assert.equal(statSync(stateDir).mode & 0o777, 0o700, 'state dir created, private (the sandbox makes HOME read-only)');
  assert.deepEqual(sb.calls(), [
    ['systemctl', '--user', 'daemon-reload'],
    ['systemctl', '--user', 'enable', '--now', 'hum-reaper.service'],
  ]);
  assert.match(first.stdout, /wrote .*hum-reaper\.service/);
  assert.match(first.stdout, /systemctl --user status hum-reaper\.service/);

  const again = await run(sb, ['install', '--systemd']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /^unchanged .*hum-reaper\.service$/m);
  assert.doesNotMatch(again.stdout, /wrote/);
  assert.equal(readFileSync(unitFile(sb), 'utf8'), expectedUnit());
  assert.deepEqual(sb.calls().slice(2), [
    ['systemctl', '--user', 'daemon-reload'],
    ['systemctl', '--user', 'enable', '--now', 'hum-reaper.service'],
  ]);
});

test('systemd: a different unit with our name is refused with a diff; --force replaces it and restarts', async () => {
  const sb = sandbox();
  mkdirSync(dirname(unitFile(sb)), { recursive: true });
  const theirs = expectedUnit().replace('RestartSec=5', 'RestartSec=60');
  writeFileSync(unitFile(sb), theirs);

  const refused = await run(sb, ['install', '--systemd']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^-RestartSec=60$/m);
  assert.match(refused.stderr, /^\+RestartSec=5$/m);
  assert.match(refused.stderr, /^@@ -\d+,\d+ \+\d+,\d+ @@$/m);
  assert.match(refused.stderr, /--force to replace it \[E_SERVICE_EXISTS\]$/);
  assert.equal(readFileSync(unitFile(sb), 'utf8'), theirs, 'left alone');
  assert.deepEqual(sb.calls(), [], 'nothing run');

  const forced = await run(sb, ['install', '--systemd', '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(readFileSync(unitFile(sb), 'utf8'), expectedUnit());
  assert.deepEqual(sb.calls(), [
    ['systemctl', '--user', 'daemon-reload'],
    ['systemctl', '--user', 'enable', '--now', 'hum-reaper.service'],
    ['systemctl', '--user', 'restart', 'hum-reaper.service'],
  ]);
});

test('systemd: uninstall disables, removes, reloads; when not installed it is a no-op', async () => {
  const sb = sandbox();
  assert.equal((await run(sb, ['install', '--systemd'])).code, 0);
  const before = sb.calls().length;
  const r = await run(sb, ['uninstall', '--systemd']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!existsSync(unitFile(sb)));
  assert.deepEqual(sb.calls().slice(before), [
    ['systemctl', '--user', 'disable', '--now', 'hum-reaper.service'],
    ['systemctl', '--user', 'daemon-reload'],
  ]);
  assert.ok(existsSync(join(sb.home, '.local', 'state', 'hum-reaper')), 'state kept');

  const again = await run(sb, ['uninstall', '--systemd']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /not installed/);
  assert.equal(sb.calls().length, before + 2, 'nothing run');
});

test('systemd: XDG_CONFIG_HOME and a custom state dir are honoured; install flags reach the daemon', async () => {
  const sb = sandbox();
  const config = join(sb.home, 'xdg config');
  const state = join(sb.home, 'my state');
  const r = await run(sb, ['install', '--systemd', '--state-dir', state, '--grace', '5s'], { XDG_CONFIG_HOME: config });
  assert.equal(r.code, 0, r.stderr);
  const file = join(config, 'systemd', 'user', 'hum-reaper.service');
  assert.equal(readFileSync(file, 'utf8'), expectedUnit(state, ['--state-dir', state, '--grace', '5000']));
  assert.match(readFileSync(file, 'utf8'), /^ReadWritePaths=-".*\/home dir\/my state"$/m);
  assert.equal(statSync(state).mode & 0o777, 0o700);
});

test('systemd: systemctl failing → exit 1, the command and the file named, the file left in place', async () => {
  const sb = sandbox('fail');
  const r = await run(sb, ['install', '--systemd']);
  assert.equal(r.code, 1);
  assert.ok(existsSync(unitFile(sb)));
  assert.match(r.stderr, /"systemctl --user daemon-reload" failed \(exit 5\): Failed to connect to bus/);
  assert.ok(r.stderr.includes(`${unitFile(sb)} is written and left in place`), r.stderr);
  assert.match(r.stderr, /\[E_SERVICE_MANAGER\]$/);

  const u = await run(sb, ['uninstall', '--systemd']);
  assert.equal(u.code, 1);
  assert.ok(existsSync(unitFile(sb)), 'not removed while the unit may still run');
  assert.ok(u.stderr.includes(`${unitFile(sb)} is left in place`), u.stderr);
});

test('systemd: systemctl absent → exit 1, named, file left in place', async () => {
  const sb = sandbox('absent');
  const r = await run(sb, ['install', '--systemd']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /systemctl not found on PATH/);
  assert.ok(r.stderr.includes(unitFile(sb)));
  assert.ok(existsSync(unitFile(sb)));
});

// ---- launchd -------------------------------------------------------------------------

test('launchd: install writes the plist, boots out (not loaded: fine) and bootstraps; again reloads it', async () => {
  const sb = sandbox();
  const r = await run(sb, ['install', '--launchd']);
  assert.equal(r.code, 0, r.stderr);
  const plist = readFileSync(plistFile(sb), 'utf8');
  assert.ok(plist.includes(`<string>${process.execPath}</string>`) && plist.includes('<string>run</string>'));
  assert.ok(plist.includes(`<string>${sb.home}/Library/Logs/sh.hum.hum-reaper.err.log</string>`));
  assert.deepEqual(sb.calls(), [
    ['launchctl', 'bootout', `gui/${uid}/sh.hum.hum-reaper`],
    ['launchctl', 'bootstrap', `gui/${uid}`, plistFile(sb)],
  ]);
  const again = await run(sb, ['install', '--launchd']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /^unchanged /m);
  assert.equal(readFileSync(plistFile(sb), 'utf8'), plist);
  assert.deepEqual(sb.calls().slice(2), [
    ['launchctl', 'bootout', `gui/${uid}/sh.hum.hum-reaper`],
    ['launchctl', 'bootstrap', `gui/${uid}`, plistFile(sb)],
  ]);

  const u = await run(sb, ['uninstall', '--launchd']);
  assert.equal(u.code, 0, u.stderr);
  assert.ok(!existsSync(plistFile(sb)));
  assert.deepEqual(sb.calls().slice(4), [['launchctl', 'bootout', `gui/${uid}/sh.hum.hum-reaper`]]);
});

test('launchd: launchctl failing or absent → exit 1 naming it, plist left in place', async () => {
  const failing = sandbox('fail', { code: 3, says: 'Boot-out failed: 3: No such process' });
  const f = await run(failing, ['install', '--launchd']);
  assert.equal(f.code, 1);
  assert.ok(f.stderr.includes(`"launchctl bootstrap gui/${uid} ${plistFile(failing)}" failed (exit 5)`), f.stderr);
  assert.ok(existsSync(plistFile(failing)));
  assert.equal(failing.calls().length, 2, 'bootout "not loaded" is fine, bootstrap tried once (nothing was draining)');

  const absent = sandbox('absent');
  const a = await run(absent, ['install', '--launchd']);
  assert.equal(a.code, 1);
  assert.match(a.stderr, /launchctl not found on PATH/);
  assert.ok(a.stderr.includes(`${plistFile(absent)} is written and left in place`), a.stderr);
});

test('launchd: bootout failing other than "not loaded" → install and uninstall exit 1 naming it, plist left in place', async () => {
  const sb = sandbox('ok', { code: 5, says: 'Boot-out failed: 5: Input/output error' });
  const bootout = `"launchctl bootout gui/${uid}/sh.hum.hum-reaper" failed (exit 5): Boot-out failed: 5: Input/output error`;

  // install: the old job may still be loaded, so no bootstrap over it.
  const i = await run(sb, ['install', '--launchd']);
  assert.equal(i.code, 1);
  assert.ok(i.stderr.includes(bootout), i.stderr);
  assert.ok(i.stderr.includes(`${plistFile(sb)} is written and left in place`), i.stderr);
  assert.deepEqual(sb.calls(), [['launchctl', 'bootout', `gui/${uid}/sh.hum.hum-reaper`]], 'no bootstrap');
  assert.ok(existsSync(plistFile(sb)));

  // uninstall: the agent may still be loaded, so its plist stays.
  const u = await run(sb, ['uninstall', '--launchd']);
  assert.equal(u.code, 1);
  assert.ok(u.stderr.includes(bootout), u.stderr);
  assert.ok(u.stderr.includes(`${plistFile(sb)} is left in place`), u.stderr);
  assert.match(u.stderr, /\[E_SERVICE_MANAGER\]$/);
  assert.doesNotMatch(u.stdout, /not loaded|removed|uninstalled/);
  assert.ok(existsSync(plistFile(sb)), 'not removed while the agent may still be loaded');
});

for (const bootout of [
  { code: 3, says: 'Boot-out failed: 3: No such process' },
  { code: 113, says: 'Could not find service "sh.hum.hum-reaper" in domain for uid: 501' },
]) {
  test(`launchd: uninstall when bootout says not loaded (exit ${bootout.code}) → exit 0, plist removed`, async () => {
    const sb = sandbox('ok', bootout);
    const i = await run(sb, ['install', '--launchd']);
    assert.equal(i.code, 0, i.stderr);
    const u = await run(sb, ['uninstall', '--launchd']);
    assert.equal(u.code, 0, u.stderr);
    assert.match(u.stdout, /^ran \(not loaded\): launchctl bootout /m);
    assert.match(u.stdout, /hum-reaper is uninstalled from launchd/);
    assert.ok(!existsSync(plistFile(sb)));
  });
}

test('notLoaded: launchctl\'s "nothing to stop" answers, by status or by message; nothing else', () => {
  const exited = (code: number, output = ''): RunOutcome => ({ kind: 'exited', code, output });
  assert.ok(notLoaded(exited(3, 'Boot-out failed: 3: No such process')));
  assert.ok(notLoaded(exited(113)));
  assert.ok(notLoaded(exited(1, 'Could not find service "x" in domain for port')));
  assert.ok(notLoaded(exited(1, 'Service is not loaded')));
  assert.ok(!notLoaded(exited(5, 'Boot-out failed: 5: Input/output error')));
  assert.ok(!notLoaded(exited(37, 'Operation already in progress')));
  assert.ok(!notLoaded(exited(0)));
  assert.ok(!notLoaded({ kind: 'missing' }));
});

// ---- --metrics-port ------------------------------------------------------------------

for (const manager of ['launchd', 'systemd'] as const) {
  test(`install --${manager} --print --metrics-port: the port reaches the daemon's command line`, async () => {
    const sb = sandbox();
    const r = await run(sb, ['install', `--${manager}`, '--print', '--metrics-port', '9100']);
    assert.equal(r.code, 0, r.stderr);
    if (manager === 'systemd') assert.match(r.stdout, /^ExecStart=.* run --metrics-port 9100$/m);
    else assert.match(r.stdout, /<string>run<\/string>\n\t\t<string>--metrics-port<\/string>\n\t\t<string>9100<\/string>\n\t<\/array>/);

    // From the environment it is still dropped (the service would not see it), with a warning.
    const env = await run(sb, ['install', `--${manager}`, '--print'], { HUM_REAPER_METRICS_PORT: '9100' });
    assert.equal(env.code, 0, env.stderr);
    assert.match(env.stderr, /HUM_REAPER_METRICS_PORT is set here but the service will not see it/);
    assert.doesNotMatch(env.stdout, /metrics-port/);

    // 0 is "no metrics server", the default: nothing to forward.
    const off = await run(sb, ['install', `--${manager}`, '--print', '--metrics-port', '0']);
    assert.equal(off.code, 0, off.stderr);
    assert.doesNotMatch(off.stdout, /metrics-port/);
  });
}

test('systemd: a state dir from this shell\'s XDG_STATE_HOME is written into the unit (the user manager may not have it)', async () => {
  const sb = sandbox();
  const xdg = join(sb.home, 'custom-state');
  const r = await run(sb, ['install', '--systemd'], { XDG_STATE_HOME: xdg });
  assert.equal(r.code, 0, r.stderr);
  const state = join(xdg, 'hum-reaper');
  assert.equal(readFileSync(unitFile(sb), 'utf8'), expectedUnit(state, ['--state-dir', state]));
  assert.ok(statSync(state).isDirectory(), 'and that is the directory install made');
});

test('systemd: install --metrics-port writes it into the unit with the other forwarded flags', async () => {
  const sb = sandbox();
  const r = await run(sb, ['install', '--systemd', '--grace', '5s', '--metrics-port', '9100']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(unitFile(sb), 'utf8'), expectedUnit(null, ['--grace', '5000', '--metrics-port', '9100']));
});

// ---- usage ---------------------------------------------------------------------------

test('usage errors: both managers, --dry-run, stray arguments', async () => {
  const sb = sandbox();
  for (const argv of [['install', '--launchd', '--systemd'], ['install', '--dry-run'], ['uninstall', 'now']]) {
    const r = await run(sb, argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.stderr, /\[E_USAGE\]$/);
  }
  assert.deepEqual(sb.calls(), []);
});

test('uninstall --print lists the steps and does nothing', async () => {
  const sb = sandbox();
  await run(sb, ['install', '--systemd']);
  const before = sb.calls().length;
  const r = await run(sb, ['uninstall', '--systemd', '--print']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^systemctl --user disable --now hum-reaper\.service$/m);
  assert.match(r.stdout, /^rm -f /m);
  assert.ok(existsSync(unitFile(sb)));
  assert.equal(sb.calls().length, before);
});

// ---- pieces --------------------------------------------------------------------------

test('lineDiff: hunks with context, nothing for equal text', () => {
  const a = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'].join('\n');
  const b = ['a', 'b', 'c', 'D', 'e', 'f', 'g', 'h', 'i', 'j', 'k'].join('\n');
  assert.equal(lineDiff(a, a, ['x', 'y']), '');
  assert.equal(
    lineDiff(a, b, ['old', 'new'], 1),
    ['--- old', '+++ new', '@@ -3,3 +3,3 @@', ' c', '-d', '+D', ' e', '@@ -10,1 +10,2 @@', ' j', '+k'].join('\n'),
  );
  assert.equal(lineDiff('', 'x\n', ['old', 'new']), ['--- old', '+++ new', '@@ -0,0 +1,1 @@', '+x'].join('\n'));
});

test('launchctl bootstrap is retried while launchd drains a job it just booted out', async () => {
  const calls: string[] = [];
  let bootstraps = 0;
  const runner = async (argv: readonly string[]): Promise<RunOutcome> => {
    calls.push(argv[1]!);
    if (argv[1] === 'bootout') return { kind: 'exited', code: 0, output: '' };
    return ++bootstraps < 3 ? { kind: 'exited', code: 5, output: 'Bootstrap failed: 5: Input/output error' } : { kind: 'exited', code: 0, output: '' };
  };
  const steps: Step[] = [
    { kind: 'run', argv: ['launchctl', 'bootout', 'gui/1/x'], ignoreFailure: 'not-loaded' },
    { kind: 'run', argv: ['launchctl', 'bootstrap', 'gui/1', '/p'], retryWhileDraining: true },
  ];
  await applySteps(steps, { runner, sleep: async () => {} });
  assert.deepEqual(calls, ['bootout', 'bootstrap', 'bootstrap', 'bootstrap']);

  // Past the drain window it gives up with the error.
  bootstraps = -1000;
  await assert.rejects(applySteps(steps, { runner, sleep: async () => {}, drainMs: 0 }), /failed \(exit 5\)/);
});
