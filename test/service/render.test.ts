// The rendered plist and unit, checked by the tools that will read them: plistutil
// (libplist-utils) and systemd-analyze verify (systemd). On Linux a missing tool fails the
// test with the apt package to install; elsewhere (macOS) those tests are skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReaperError } from '../../src/errors.js';
import { daemonPath, execWord, pathWord, renderService, templateFile, type ServiceContext } from '../../src/service/render.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'hum-reaper-render-'));
const template = (m: 'launchd' | 'systemd') => readFileSync(templateFile(m), 'utf8');

const hasTool = (name: string) => spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim() !== '';
/** Skip reason off Linux when the tool is missing; on Linux the test runs and needTool fails it. */
const skipOffLinux = (name: string, aptPackage: string) =>
  process.platform !== 'linux' && !hasTool(name) ? `${name} is not installed (Debian package ${aptPackage})` : false;
function needTool(name: string, aptPackage: string): void {
  assert.ok(hasTool(name), `${name} is not installed: apt-get install -y ${aptPackage}`);
}

/** Paths that need escaping in both formats: spaces, &, <, %, $ (and quotes where systemd allows them). */
const awkward = '/tmp/hum reaper & <co> 50% $HOME';
const ctx = (over: Partial<ServiceContext> = {}): ServiceContext => ({
  node: `${awkward}/bin/node`,
  entry: `${awkward}/lib "q" 'r'/dist/cli/main.js`,
  home: '/Users/ada lovelace',
  path: daemonPath(`${awkward}/bin`),
  stateDir: null,
  runArgs: ['--state-dir', '/var/tmp/state dir', '--grace', '5000'],
  ...over,
});

// ---- plist ---------------------------------------------------------------------------

type PlistValue = string | number | boolean | PlistValue[] | { [key: string]: PlistValue };

/** Just enough of a plist XML reader for plistutil's canonical output (no comments, no attributes inside values). */
function parsePlist(xml: string): PlistValue {
  const body = xml.replace(/<\?xml[^>]*\?>/, '').replace(/<!DOCTYPE[^>]*>/, '');
  const tokens = [...body.matchAll(/<(\/?)(\w+)[^>]*?(\/?)>|([^<]+)/g)];
  let i = 0;
  const unescape = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
  const skipSpace = () => {
    while (i < tokens.length && tokens[i]![4] !== undefined && tokens[i]![4]!.trim() === '') i++;
  };
  const text = (tag: string) => {
    let s = '';
    while (tokens[i]![4] !== undefined) s += tokens[i++]![4];
    assert.equal(`${tokens[i]![1]}${tokens[i]![2]}`, `/${tag}`);
    i++;
    return unescape(s);
  };
  const value = (): PlistValue => {
    skipSpace();
    const [, close, tag, selfClose] = tokens[i++]!;
    assert.ok(!close && tag, `expected an element at token ${i - 1}`);
    if (selfClose) {
      if (tag === 'true') return true;
      if (tag === 'false') return false;
      if (tag === 'dict') return {};
      if (tag === 'array') return [];
      assert.fail(`unexpected <${tag}/>`);
    }
    if (tag === 'plist') {
      const v = value();
      skipSpace();
      i++;
      return v;
    }
    if (tag === 'string') return text(tag);
    if (tag === 'integer') return Number(text(tag));
    if (tag === 'array' || tag === 'dict') {
      const items: PlistValue[] = [];
      const dict: Record<string, PlistValue> = {};
      for (;;) {
        skipSpace();
        if (tokens[i]![1] === '/') break;
        if (tag === 'dict') {
          assert.equal(tokens[i++]![2], 'key');
          const key = text('key');
          dict[key] = value();
        } else items.push(value());
      }
      i++;
      return tag === 'dict' ? dict : items;
    }
    assert.fail(`unexpected <${tag}>`);
  };
  return value();
}

test('the plist survives plistutil: XML → binary → XML, with every key we rely on', { skip: skipOffLinux('plistutil', 'libplist-utils') }, () => {
  needTool('plistutil', 'libplist-utils');
  const dir = tmp();
  const c = ctx();
  const xmlFile = join(dir, 'sh.hum.hum-reaper.plist');
  const binFile = join(dir, 'agent.bplist');
  writeFileSync(xmlFile, renderService('launchd', template('launchd'), c));
  // plistutil 2.2 exits 0 even when it cannot parse: judge it by what it writes.
  const toBinary = spawnSync('plistutil', ['-i', xmlFile, '-o', binFile, '-f', 'bin'], { encoding: 'utf8' });
  assert.equal(toBinary.status, 0, toBinary.stderr);
  assert.equal(toBinary.stderr, '');
  assert.ok(existsSync(binFile), `plistutil wrote no binary plist: ${toBinary.stdout}${toBinary.stderr}`);
  assert.equal(readFileSync(binFile).subarray(0, 8).toString('latin1'), 'bplist00');
  const back = execFileSync('plistutil', ['-i', binFile, '-f', 'xml'], { encoding: 'utf8' });

  assert.deepEqual(parsePlist(back), {
    Label: 'sh.hum.hum-reaper',
    ProgramArguments: [c.node, c.entry, 'run', '--state-dir', '/var/tmp/state dir', '--grace', '5000'],
    RunAtLoad: true,
    KeepAlive: { SuccessfulExit: false },
    ThrottleInterval: 10,
    ExitTimeOut: 30,
    ProcessType: 'Background',
    StandardOutPath: '/Users/ada lovelace/Library/Logs/sh.hum.hum-reaper.out.log',
    StandardErrorPath: '/Users/ada lovelace/Library/Logs/sh.hum.hum-reaper.err.log',
    EnvironmentVariables: { PATH: c.path, HOME: '/Users/ada lovelace' },
  });
  const path = (parsePlist(back) as { EnvironmentVariables: { PATH: string } }).EnvironmentVariables.PATH.split(':');
  assert.ok(path.includes('/bin') && path.includes('/usr/bin'), 'PATH finds /bin/ps and /usr/bin');
});

test('a broken plist is caught by the same check (the check is not vacuous)', { skip: skipOffLinux('plistutil', 'libplist-utils') }, () => {
  needTool('plistutil', 'libplist-utils');
  const dir = tmp();
  const xmlFile = join(dir, 'broken.plist');
  writeFileSync(xmlFile, template('launchd').replace('{{NODE}}', 'a & b'));
  const r = spawnSync('plistutil', ['-i', xmlFile, '-o', join(dir, 'out.bplist'), '-f', 'bin'], { encoding: 'utf8' });
  assert.ok(!existsSync(join(dir, 'out.bplist')) || r.status !== 0);
});

test('the plist is well-formed XML beyond what plistutil checks: no "--" inside comments', () => {
  const rendered = renderService('launchd', template('launchd'), ctx());
  for (const [, body] of rendered.matchAll(/<!--([\s\S]*?)-->/g)) assert.ok(!body!.includes('--'), `comment contains "--": ${body}`);
  assert.ok(!/\{\{|\}\}/.test(rendered), 'every placeholder filled');
});

// ---- systemd -------------------------------------------------------------------------

function verifyUnit(unitText: string, dir: string): { status: number | null; output: string } {
  const unitFile = join(dir, 'hum-reaper.service');
  writeFileSync(unitFile, unitText);
  // A user-mode manager needs a runtime dir; a private one works for root in a container.
  const runtime = join(dir, 'runtime');
  mkdirSync(runtime, { mode: 0o700, recursive: true });
  chmodSync(runtime, 0o700);
  const r = spawnSync('systemd-analyze', ['--user', 'verify', unitFile], {
    encoding: 'utf8',
    env: { ...process.env, XDG_RUNTIME_DIR: runtime, SYSTEMD_LOG_LEVEL: 'notice', HOME: dir },
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** A real node and a real entry, reached through directories whose names need escaping. */
function realPaths(): { dir: string; node: string; entry: string } {
  const dir = tmp();
  const nodeDir = join(dir, 'node dir 50% $x');
  const entryDir = join(dir, `entry "q" 'r' \\ $HOME 100%`);
  mkdirSync(nodeDir);
  mkdirSync(entryDir);
  symlinkSync(process.execPath, join(nodeDir, 'node'));
  writeFileSync(join(entryDir, 'main.js'), '');
  return { dir, node: join(nodeDir, 'node'), entry: join(entryDir, 'main.js') };
}

test('systemd-analyze verify accepts the unit, with paths that need quoting and escaping', { skip: skipOffLinux('systemd-analyze', 'systemd') }, () => {
  needTool('systemd-analyze', 'systemd');
  const { dir, node, entry } = realPaths();
  const r = verifyUnit(renderService('systemd', template('systemd'), ctx({ node, entry, stateDir: join(dir, 'state dir 100%') })), dir);
  assert.equal(r.status, 0, r.output);
  assert.equal(r.output, '', 'no warnings');
  const d = verifyUnit(renderService('systemd', template('systemd'), ctx({ node, entry, stateDir: null, runArgs: [] })), dir);
  assert.equal(d.status, 0, d.output);
  assert.equal(d.output, '', 'no warnings');
});

test('systemd-analyze verify catches what we would get wrong (the check is not vacuous)', { skip: skipOffLinux('systemd-analyze', 'systemd') }, () => {
  needTool('systemd-analyze', 'systemd');
  const { dir, node, entry } = realPaths();
  // Unescaped: the space splits the path, so the binary is not found.
  const raw = template('systemd').replace('{{NODE}}', node).replace('{{ENTRY}}', entry);
  const unquoted = verifyUnit(renderService('systemd', raw, ctx()), dir);
  assert.notEqual(unquoted.status, 0, unquoted.output);
  const typo = verifyUnit(renderService('systemd', template('systemd'), ctx({ node, entry })).replace('RestartSec=', 'RestartSecs='), dir);
  assert.match(typo.output, /Unknown key/);
});

test('the unit: ordering after the worker without PartOf/Wants, restart on failure, journal, sandbox that keeps /proc and signals', () => {
  const unit = renderService('systemd', template('systemd'), ctx({ node: '/usr/bin/node', entry: '/opt/hum-reaper/dist/cli/main.js', runArgs: [] }));
  const directives = unit.split('\n').filter((l) => /^\w+=/.test(l));
  const has = (d: string) => assert.ok(directives.includes(d), `missing ${d}`);
  has('After=hum-claude-cli-worker.service');
  has('ExecStart=/usr/bin/node /opt/hum-reaper/dist/cli/main.js run');
  has('ExecReload=/bin/kill -HUP $MAINPID');
  has('Restart=on-failure');
  has('KillSignal=SIGTERM');
  has('StandardOutput=journal');
  has('NoNewPrivileges=yes');
  has('ProtectSystem=strict');
  has('ProtectHome=read-only');
  has('PrivateTmp=yes');
  has('ReadWritePaths=-%S/hum-reaper');
  has('WantedBy=default.target');
  for (const banned of ['PartOf=', 'BindsTo=', 'Wants=', 'Requires=', 'ProtectProc=', 'ProcSubset=', 'PrivatePIDs=', 'PrivateUsers=', 'MemoryDenyWriteExecute=']) {
    assert.ok(!directives.some((l) => l.startsWith(banned)), `${banned} must not be set`);
  }
});

test('systemd escaping: ExecStart words, Environment values, sandbox paths', () => {
  assert.equal(execWord('/usr/bin/node'), '/usr/bin/node');
  assert.equal(execWord('/a b/node'), '"/a b/node"');
  assert.equal(execWord('/x/50%/$HOME/"q"\\'), '"/x/50%%/$$HOME/\\"q\\"\\\\"');
  assert.equal(pathWord('/a/b'), '/a/b');
  assert.equal(pathWord('/a b/100%'), '"/a b/100%%"');
  const unit = renderService('systemd', template('systemd'), ctx({ path: '/a b:/50%:/usr/bin', stateDir: '/home/ada/state dir' }));
  assert.match(unit, /^Environment="PATH=\/a b:\/50%%:\/usr\/bin"$/m);
  assert.match(unit, /^ReadWritePaths=-"\/home\/ada\/state dir"$/m);
  assert.match(unit, /^ExecStart=.* run --state-dir "\/var\/tmp\/state dir" --grace 5000$/m);
});

test('values a file cannot carry are refused with a code, not written', () => {
  const bad: [ServiceContext, RegExp][] = [
    [ctx({ node: '/usr/bin/no\nde' }), /control character/],
    [ctx({ entry: 'dist/cli/main.js' }), /not an absolute path/],
    [ctx({ stateDir: '/home/"ada"' }), /ReadWritePaths/],
    [ctx({ node: '/opt/"node"/bin/node' }), /executable path/],
  ];
  for (const [c, message] of bad) {
    assert.throws(() => renderService('systemd', template('systemd'), c), (err: unknown) => {
      assert.ok(err instanceof ReaperError);
      assert.equal(err.code, 'E_SERVICE_TEMPLATE');
      assert.match(err.message, message);
      return true;
    });
  }
  assert.throws(() => renderService('launchd', '<string>{{NOPE}}</string>', ctx()), /unknown placeholder \{\{NOPE\}\}/);
});
