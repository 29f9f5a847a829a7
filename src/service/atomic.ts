import { randomBytes } from 'node:crypto';
import { link, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { errnoCode } from '../errors.js';

/**
 * Replace `path` with `data` so a reader (or a crash) sees the old file or the new one, never
 * a mix: write a sibling temp file, fsync it, rename it over `path`, fsync the directory.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = await writeTemp(path, data, mode);
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await syncDir(dirname(path));
}

/**
 * Create `path` holding `data` only if nothing is there yet; false when it exists. The file
 * appears with its full contents at once (a temp file hard-linked into place), so nobody ever
 * reads it empty or half-written, which `open(path, 'wx')` followed by a write would allow.
 */
export async function createFileExclusive(path: string, data: string | Uint8Array, mode = 0o600): Promise<boolean> {
  const tmp = await writeTemp(path, data, mode);
  try {
    await link(tmp, path);
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw err;
  } finally {
    await rm(tmp, { force: true }).catch(() => undefined);
  }
  await syncDir(dirname(path));
  return true;
}

/** A sibling of `path` nobody else will pick: same directory, so rename and link stay atomic. */
export const siblingName = (path: string, tag: string): string =>
  `${path}.${tag}-${process.pid}-${randomBytes(6).toString('hex')}`;

/** Write and fsync a fresh temp file next to `path`; on failure nothing is left behind. */
async function writeTemp(path: string, data: string | Uint8Array, mode: number): Promise<string> {
  const tmp = siblingName(path, 'tmp');
  try {
    // 'wx' (O_CREAT|O_EXCL) never follows a symlink planted at the temp name.
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.chmod(mode); // the umask may have narrowed or widened `mode` at create
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return tmp;
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** Make a rename or link in `dir` durable. Some platforms cannot fsync a directory; that is fine. */
async function syncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    const code = errnoCode(err);
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'ENOTSUP') throw err;
  } finally {
    await fh?.close();
  }
}
