import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import { LineSplitter } from './lines.js';

const RESUME_MARGIN_MS = 60_000;

export type CommandNotice = { event: 'source.started' | 'source.exited' | 'source.error'; argv: string[]; [k: string]: unknown };

export interface CommandTailOptions {
  argv: string[];
  /** journalctl only: resume after this cursor and keep it current (`--cursor-file`). */
  cursorFile?: string;
  /** journalctl only, when there is no cursor yet: start from this time (epoch ms). */
  sinceMs?: number;
  onBatch: (lines: string[]) => Promise<void>;
  onNotice?: (n: CommandNotice) => void;
  maxBackoffMs?: number;
  /** Hand over only lines holding one of these (LineSplitter markers). */
  markers?: readonly string[];
  /** A line's own timestamp (epoch ms, NaN if none): a restart without a cursor resumes
   *  shortly before the newest one handled. Without it a restart reads from sinceMs again. */
  lineTime?: (line: string) => number;
}

/**
 * Follows a command's stdout (the journal on Linux), line by line, restarting it with
 * backoff when it exits. Batches are handed over one at a time: stdout is paused meanwhile.
 */
export class CommandTail {
  private child: ChildProcess | null = null;
  private stopped = false;
  private backoffMs = 500;
  private restartTimer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  private sinceMs: number | undefined;
  /** The newest line timestamp handed over: where a restart without a cursor resumes. */
  private handledUpTo = -Infinity;
  private retryWait: { timer: NodeJS.Timeout; wake: () => void } | null = null;
  readonly splitter: LineSplitter;

  constructor(private readonly opts: CommandTailOptions) {
    this.splitter = new LineSplitter(undefined, opts.markers);
    this.sinceMs = opts.sinceMs;
  }

  start(): void {
    // A cursor left by an earlier run is not trusted: journalctl -f may never have updated
    // it (some systemd versions do not), and lines it printed into the pipe as we stopped
    // were never read. The history since sinceMs is read instead (a line twice is harmless).
    if (this.opts.cursorFile !== undefined && this.sinceMs !== undefined) rmSync(this.opts.cursorFile, { force: true });
    this.launch();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.retryWait) {
      clearTimeout(this.retryWait.timer);
      this.retryWait.wake();
    }
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('close', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    }
    await this.chain;
  }

  /** A batch whose handling failed is offered again (stdout stays paused), never skipped. */
  private async deliver(lines: string[], argv: string[]): Promise<void> {
    for (let retryMs = 250; !this.stopped; retryMs = Math.min(retryMs * 2, 5000)) {
      try {
        await this.opts.onBatch(lines);
        for (const line of lines) this.handledUpTo = Math.max(this.handledUpTo, this.opts.lineTime?.(line) || -Infinity);
        return;
      } catch (err) {
        this.opts.onNotice?.({ event: 'source.error', argv, error: String(err), retryMs });
      }
      // stop() cuts the wait short; the loop then ends.
      await new Promise<void>((wake) => (this.retryWait = { timer: setTimeout(wake, retryMs), wake }));
      this.retryWait = null;
    }
  }

  private argv(): string[] {
    const argv = [...this.opts.argv];
    if (basename(argv[0] ?? '') === 'journalctl') {
      if (this.opts.cursorFile) argv.push(`--cursor-file=${this.opts.cursorFile}`);
      // journalctl takes a cursor or a start time, not both; the cursor wins once it exists.
      const resuming = this.opts.cursorFile !== undefined && existsSync(this.opts.cursorFile);
      if (this.sinceMs !== undefined && !resuming) argv.push(`--since=@${Math.floor(this.sinceMs / 1000)}`);
    }
    return argv;
  }

  private launch(): void {
    if (this.stopped) return;
    const argv = this.argv();
    const started = Date.now();
    this.splitter.reset();
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let stderr = '';
    this.opts.onNotice?.({ event: 'source.started', argv });
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines: string[] = [];
      this.splitter.push(chunk, (line) => lines.push(line));
      if (lines.length === 0) return;
      child.stdout!.pause();
      this.chain = this.chain.then(() => this.deliver(lines, argv)).finally(() => child.stdout!.resume());
    });
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 2000) stderr += d.toString();
    });
    child.on('error', (err) => this.opts.onNotice?.({ event: 'source.error', argv, error: String(err) }));
    child.on('close', (code, signal) => {
      this.child = null;
      if (this.stopped) return;
      // A command that ran a while before exiting starts over at the short backoff.
      if (Date.now() - started > 60_000) this.backoffMs = 500;
      // Without a cursor (journalctl did not write one), resume a little before the last line.
      if (this.sinceMs !== undefined) this.sinceMs = Math.max(this.sinceMs, this.handledUpTo - RESUME_MARGIN_MS);
      this.opts.onNotice?.({ event: 'source.exited', argv, code, signal, stderr: stderr.trim().slice(0, 500), retryMs: this.backoffMs });
      this.restartTimer = setTimeout(() => this.launch(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs ?? 30_000);
    });
  }
}
