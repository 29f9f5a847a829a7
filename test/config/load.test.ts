import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { ReaperError } from '../../src/errors.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'hum-reaper-config-'));
const file = (dir: string, text: string) => {
  const p = join(dir, 'config.json');
  writeFileSync(p, text);
  return p;
};
function rejects(fn: () => unknown, code: string, ...mentions: string[]) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ReaperError, String(err));
    assert.equal(err.code, code);
    assert.equal(err.exitCode, 2);
    for (const m of mentions) assert.ok(err.message.includes(m), `"${err.message}" mentions ${m}`);
    return true;
  });
}

test('embedded defaults per OS', () => {
  const mac = loadConfig({ env: {}, platform: 'darwin', home: '/Users/ada' }).config;
  assert.deepEqual(mac.log, { type: 'file', path: '/Users/ada/Library/Logs/sh.hum.hum-claude-cli-worker.out.log' });
  assert.equal(mac.stateDir, '/Users/ada/Library/Application Support/hum-reaper');
  const linux = loadConfig({ env: {}, platform: 'linux', home: '/home/ada' }).config;
  assert.equal(linux.log.type, 'command');
  assert.equal(linux.stateDir, '/home/ada/.local/state/hum-reaper');
  assert.equal(loadConfig({ env: { XDG_STATE_HOME: '/x/state' }, platform: 'linux', home: '/home/ada' }).config.stateDir, '/x/state/hum-reaper');
  assert.ok(linux.signature.requiredArgs.includes('--mcp-config'));
  assert.ok(linux.maxOrphans >= 1000);
});

test('layers: defaults < user file < environment < flags', () => {
  const dir = tmp();
  const cfg = file(dir, JSON.stringify({ graceMs: 100, minAgeMs: 100, signature: { sidPrefix: 'from-file-' } }));
  const { config } = loadConfig({
    flags: { config: cfg, minAgeMs: 7, log: '/tmp/w.log' },
    env: { HUM_REAPER_GRACE_MS: '250', HUM_REAPER_SID_PREFIX: 'from-env-' },
    platform: 'linux',
    home: dir,
  });
  assert.equal(config.graceMs, 250);
  assert.equal(config.minAgeMs, 7);
  assert.equal(config.signature.sidPrefix, 'from-env-');
  assert.deepEqual(config.log, { type: 'file', path: '/tmp/w.log' });
  // Untouched nested defaults survive a partial override.
  assert.ok(config.signature.requiredArgs.length > 3);
});

test('~/.config/hum-reaper/config.json is read when present', () => {
  const home = tmp();
  mkdirSync(join(home, '.config', 'hum-reaper'), { recursive: true });
  writeFileSync(join(home, '.config', 'hum-reaper', 'config.json'), '{"maxOrphans": 5}');
  assert.equal(loadConfig({ env: {}, platform: 'linux', home }).config.maxOrphans, 5);
});

test('bad config files and values: exit 2 with the key named', () => {
  const dir = tmp();
  rejects(() => loadConfig({ flags: { config: file(dir, '{ nope') }, env: {}, home: dir }), 'E_CONFIG_JSON', 'config.json', 'not valid JSON');
  rejects(() => loadConfig({ flags: { config: join(dir, 'missing.json') }, env: {}, home: dir }), 'E_CONFIG_FILE', 'missing.json');
  rejects(() => loadConfig({ flags: { config: file(dir, '{"graceMs": -5}') }, env: {}, home: dir }), 'E_CONFIG_VALUE', '"graceMs"', '-5');
  rejects(() => loadConfig({ flags: { config: file(dir, '{"gracems": 5}') }, env: {}, home: dir }), 'E_CONFIG_VALUE', 'unknown key', '"gracems"');
  rejects(() => loadConfig({ flags: { config: file(dir, '{"signature": {"sidprefix": "x"}}') }, env: {}, home: dir }), 'E_CONFIG_VALUE', '"signature.sidprefix"');
  rejects(() => loadConfig({ flags: { config: file(dir, '{"signature": {"requiredArgs": []}}') }, env: {}, home: dir }), 'E_CONFIG_VALUE', '"signature.requiredArgs"');
  rejects(() => loadConfig({ flags: { config: file(dir, '[1,2]') }, env: {}, home: dir }), 'E_CONFIG_JSON', 'object');
  rejects(() => loadConfig({ env: { HUM_REAPER_GRACE_MS: '-1' }, home: dir }), 'E_ENV_VALUE', 'HUM_REAPER_GRACE_MS');
  rejects(() => loadConfig({ env: { HUM_REAPER_DRY_RUN: 'maybe' }, home: dir }), 'E_ENV_VALUE', 'HUM_REAPER_DRY_RUN');
});

test('durations past what a timer holds, a "__proto__" key, a missing key: named, with the layer to blame', () => {
  const dir = tmp();
  // 2^31 ms would fire at once: a sweep loop, not a sweep a month.
  rejects(() => loadConfig({ flags: { sweepIntervalMs: 2 ** 31 }, env: {}, home: dir }), 'E_CONFIG_VALUE', '"sweepIntervalMs"', 'command line');
  rejects(() => loadConfig({ flags: { config: file(dir, '{"graceMs": 3000000000}') }, env: {}, home: dir }), 'E_CONFIG_VALUE', '"graceMs"');
  assert.equal(loadConfig({ flags: { sweepIntervalMs: 2 ** 31 - 1 }, env: {}, home: dir }).config.sweepIntervalMs, 2 ** 31 - 1);
  rejects(() => loadConfig({ flags: { config: file(dir, '{"__proto__": {"graceMs": -1}}') }, env: {}, home: dir }), 'E_CONFIG_VALUE', 'unknown key', '"__proto__"');
  const cfg = file(dir, '{"log": {"type": "file"}}');
  rejects(() => loadConfig({ flags: { config: cfg }, env: {}, platform: 'linux', home: dir }), 'E_CONFIG_VALUE', '"log.path"', cfg);
});

test('a log with a path and no type is a file, on every OS', () => {
  const dir = tmp();
  const cfg = file(dir, '{"log": {"path": "~/w.log"}}');
  for (const platform of ['linux', 'darwin'] as const) {
    assert.deepEqual(loadConfig({ flags: { config: cfg }, env: {}, platform, home: '/home/ada' }).config.log, { type: 'file', path: '/home/ada/w.log' });
  }
});

test('unknown HUM_REAPER_ variables are warned about, not fatal', () => {
  const { warnings } = loadConfig({ env: { HUM_REAPER_GRAEC_MS: '5' }, platform: 'linux', home: tmp() });
  assert.ok(warnings.some((w) => w.includes('HUM_REAPER_GRAEC_MS')));
});
