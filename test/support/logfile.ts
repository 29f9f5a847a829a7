// Writing a worker log the way the real one is written, and rotating it the ways users do
// (logrotate / newsyslog: rename-and-create, copy-and-truncate, delete-and-recreate).
import { closeSync, copyFileSync, openSync, renameSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';

const ts = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

/** An eviction line as the file holds it (ANSI on), naming `sid`; no trailing newline. */
export function evictionLine(sid: string, atMs = Date.now()): string {
  return `\x1b[2m${ts(atMs)}\x1b[0m \x1b[33m WARN\x1b[0m worker.cell.evict.lru \x1b[3mevicted_sid\x1b[0m\x1b[2m=\x1b[0m${sid}`;
}

/** n eviction lines for sids `${prefix}-1` … `${prefix}-n`. */
export function evictionLines(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => evictionLine(`${prefix}-${i + 1}`));
}

/**
 * The worker's stdout: one O_APPEND descriptor that stays open across a rename or unlink
 * (as launchd's does) until reopen() — what a writer does after logrotate's `create`.
 */
export class LogWriter {
  private fd: number;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'a');
  }

  write(text: string | Buffer): void {
    const bytes = typeof text === 'string' ? Buffer.from(text) : text;
    for (let done = 0; done < bytes.length; ) done += writeSync(this.fd, bytes, done);
  }

  /** Each line followed by a newline, in one write. */
  lines(lines: readonly string[]): void {
    if (lines.length > 0) this.write(lines.map((l) => `${l}\n`).join(''));
  }

  reopen(): void {
    closeSync(this.fd);
    this.fd = openSync(this.path, 'a');
  }

  close(): void {
    closeSync(this.fd);
  }
}

export const rotate = {
  /** logrotate default / newsyslog: rename away; the writer keeps the old inode open. */
  rename(path: string, to = `${path}.1`): void {
    renameSync(path, to);
  },
  /** logrotate `create`: a new empty file at the path. */
  create(path: string): void {
    writeFileSync(path, '', { flag: 'wx' });
  },
  /** logrotate `copytruncate`: copy the contents away, then cut the file to 0 in place. */
  copyTruncate(path: string, to = `${path}.1`): void {
    copyFileSync(path, to);
    truncateSync(path, 0);
  },
  /** A user's `rm`: the writer keeps the unlinked inode open. */
  remove(path: string): void {
    unlinkSync(path);
  },
};
