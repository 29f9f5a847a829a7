import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileExclusive, writeFileAtomic } from '../../src/service/atomic.js';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
const freshDir = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hum-reaper-atomic-'));
  dirs.push(dir);
  return dir;
};

test('writeFileAtomic creates a file 0600 and leaves no temp file', async () => {
  const dir = await freshDir();
  const path = join(dir, 'checkpoint.json');
  await writeFileAtomic(path, '{"offset":1}\n');
  assert.equal(await readFile(path, 'utf8'), '{"offset":1}\n');
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.deepEqual(await readdir(dir), ['checkpoint.json']);
});

test('writeFileAtomic replaces contents and mode, whatever the umask', async () => {
  const dir = await freshDir();
  const path = join(dir, 'state');
  await writeFile(path, 'old contents, longer than the new ones', { mode: 0o644 });
  const umask = process.umask(0o077);
  try {
    await writeFileAtomic(path, Buffer.from('new'));
    assert.equal(await readFile(path, 'utf8'), 'new');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    await writeFileAtomic(path, 'shared', 0o644);
    assert.equal((await stat(path)).mode & 0o777, 0o644, 'an explicit mode is applied exactly');
  } finally {
    process.umask(umask);
  }
  assert.deepEqual(await readdir(dir), ['state']);
});

test('writeFileAtomic: a failed rename removes the temp file and rethrows', async () => {
  const dir = await freshDir();
  const path = join(dir, 'in-the-way');
  await mkdir(join(path, 'child'), { recursive: true }); // rename over a non-empty dir fails
  await assert.rejects(writeFileAtomic(path, 'x'), (err: NodeJS.ErrnoException) => ['EISDIR', 'ENOTEMPTY', 'EEXIST'].includes(err.code!));
  assert.deepEqual(await readdir(dir), ['in-the-way']);
});

test('writeFileAtomic: a missing directory rejects and leaves nothing', async () => {
  const dir = await freshDir();
  await assert.rejects(writeFileAtomic(join(dir, 'no-such-dir', 'f'), 'x'), { code: 'ENOENT' });
  assert.deepEqual(await readdir(dir), []);
});

test('writeFileAtomic: concurrent writers to one path leave one whole version', async () => {
  const dir = await freshDir();
  const path = join(dir, 'contended');
  const versions = Array.from({ length: 20 }, (_, i) => `version ${i} `.repeat(1000));
  await Promise.all(versions.map((v) => writeFileAtomic(path, v)));
  assert.ok(versions.includes(await readFile(path, 'utf8')));
  assert.deepEqual(await readdir(dir), ['contended']);
});

test('createFileExclusive creates once, never overwrites, leaves no temp file', async () => {
  const dir = await freshDir();
  const path = join(dir, 'daemon.lock');
  assert.equal(await createFileExclusive(path, 'first\n'), true);
  assert.equal(await createFileExclusive(path, 'second\n'), false);
  assert.equal(await readFile(path, 'utf8'), 'first\n');
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => createFileExclusive(join(dir, 'race'), `${i}`)));
  assert.equal(results.filter(Boolean).length, 1, 'exactly one concurrent creator wins');
  assert.deepEqual((await readdir(dir)).sort(), ['daemon.lock', 'race']);
});
