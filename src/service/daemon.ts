import { mkdir, access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { EventCollector } from '../events/collect.js';
import { EVENT_MARKERS, lineTimestamp, parseLogLine } from '../events/parse.js';
import { isDropEvent, type DropEvent } from '../events/types.js';
import { EvidenceWindow } from '../events/window.js';
import { killTree, type KillResult } from '../kill/kill.js';
import { Ledger } from '../ledger/ledger.js';
import { decide, type Verdict } from '../policy/decide.js';
import { matchWorkerChild } from '../procs/signature.js';
import type { ProcessInfo, ProcessReader } from '../procs/types.js';
import { reapOnce, type Candidate } from '../reap.js';
import { CommandTail } from '../sources/command-tail.js';
import { loadCheckpoint, positionAt, saveCheckpoint } from '../sources/checkpoint.js';
import { FileTail, type TailBatch } from '../sources/file-tail.js';
import { startOffsetSince } from '../sources/read-log.js';
import { ReaperError, errnoCode } from '../errors.js';
import { acquireLock, type Lock } from './lock.js';
import { LatencyHistogram, renderMetrics, serveMetrics, writeMetricsFile } from './metrics.js';
import { Notifier } from './notify.js';
import type { Server } from 'node:http';
import type { Logger } from './logger.js';

type Orphan = Extract<Verdict, { verdict: 'orphan' }>;

export interface DaemonOptions {
  config: Config;
  reader: ProcessReader;
  log: Logger;
  self?: { pid: number; uid: number };
}

/** What the daemon has done since it started, for `reaper.sweep` and the metrics. */
export interface DaemonStats {
  startedAt: number;
  events: number;
  evictionsSeen: number;
  kills: Record<string, number>;
  failures: number;
  rssFreedBytes: number;
  sweeps: number;
  lastSweepAt: number | null;
  lastSweepMs: number | null;
  lastSweepOrphans: number;
  lastEventAt: number | null;
  /** Bytes of log not yet read, when the source is a file. */
  tailLagBytes: number;
}

const CHECKPOINT_EVERY_MS = 2000;
// Children younger than this margin before the oldest live child keep their evidence.
const WINDOW_MARGIN_MS = 120_000;

/**
 * `hum-reaper run`: follows the worker's log and kills each dropped cell's process the moment
 * its eviction line is written; sweeps the process table every interval for what no line
 * announces. The decision is the same pure `decide` as `reap`; the ledger only says where to
 * look, identity is re-read before every signal.
 */
export class Daemon {
  config: Config;
  readonly stats: DaemonStats;
  private readonly reader: ProcessReader;
  private readonly log: Logger;
  private readonly self: { pid: number; uid: number };
  private readonly window = new EvidenceWindow();
  private readonly collector = new EventCollector();
  private ledger: Ledger | null = null;
  private lock: Lock | null = null;
  private fileTail: FileTail | null = null;
  private commandTail: CommandTail | null = null;
  private catchingUp = true;
  private stopping = false;
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  private selfChain: ProcessInfo[] = [];
  /** Pids whose kill is under way, so the sweep and the hot path never act twice. */
  private readonly inflight = new Set<number>();
  private readonly background = new Set<Promise<unknown>>();
  /** Evictions of cells younger than --min-age, waiting to be judged again. */
  private readonly retries = new Map<number, NodeJS.Timeout>();
  private lastCheckpointAt = 0;
  /** When the last full snapshot was put in the ledger: it knew every worker child then. */
  private ledgerCompleteAt = 0;
  private readonly latency = new LatencyHistogram();
  private readonly notifier: Notifier;
  private metricsServer: Server | null = null;
  private metricsTimer: NodeJS.Timeout | null = null;
  private ledgerTimer: NodeJS.Timeout | null = null;

  constructor(opts: DaemonOptions) {
    this.config = opts.config;
    this.reader = opts.reader;
    this.log = opts.log;
    this.self = opts.self ?? { pid: process.pid, uid: process.getuid?.() ?? 0 };
    this.stats = {
      startedAt: Date.now(), events: 0, evictionsSeen: 0, kills: {}, failures: 0, rssFreedBytes: 0,
      sweeps: 0, lastSweepAt: null, lastSweepMs: null, lastSweepOrphans: 0, lastEventAt: null, tailLagBytes: 0,
    };
    this.notifier = new Notifier(this.config.notify, this.log);
  }

  /** The Prometheus text of what this daemon has done so far. */
  metrics(): string {
    return renderMetrics(this.stats, this.latency);
  }

  async start(): Promise<void> {
    const { config } = this;
    await this.prepareStateDir();
    const me = await this.reader.read(this.self.pid);
    this.lock = await acquireLock(config.stateDir, { pid: this.self.pid, startKey: me?.startKey ?? 'unknown' }, (pid) => this.reader.read(pid));
    if (this.lock.replaced) this.log.warn({ event: 'reaper.lock-taken-over', ...this.lock.replaced });
    try {
      await this.startLocked();
    } catch (err) {
      // An unsafe ledger, a busy metrics port…: leave no lock, server or open ledger behind.
      await this.stop();
      throw err;
    }
  }

  private async startLocked(): Promise<void> {
    const { config } = this;
    this.ledger = await Ledger.open(join(config.stateDir, 'ledger.jsonl'), {
      onNotice: (event, fields) => this.log.warn({ event, ...fields }),
    });
    this.selfChain = await this.ancestry(this.self.pid);
    if (config.metricsPort > 0) {
      this.metricsServer = await serveMetrics(config.metricsPort, () => this.metrics());
      this.log.info({ event: 'metrics.serving', url: `http://127.0.0.1:${config.metricsPort}/metrics` });
    }
    this.log.info({ event: 'reaper.start', dryRun: config.dryRun, log: config.log, stateDir: config.stateDir, sweepIntervalMs: config.sweepIntervalMs, graceMs: config.graceMs });

    // Evidence only matters since the oldest worker child now alive started.
    const snapshot = await this.reader.snapshot();
    const starts = snapshot.processes.filter((p) => matchWorkerChild(p.argv, config.signature)).map((p) => p.startedAt);
    const sinceMs = starts.length ? Math.min(...starts) : Date.now();
    await this.startSource(sinceMs);
    this.catchingUp = false;
    await this.sweep('catch-up');
    this.scheduleSweep();
  }

  /** Finish what is under way, flush ledger and checkpoint, release the lock. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    if (this.metricsTimer) clearTimeout(this.metricsTimer);
    if (this.ledgerTimer) clearTimeout(this.ledgerTimer);
    await this.fileTail?.stop();
    await this.commandTail?.stop();
    // After the sources: a batch they were still handing over may have set one.
    for (const timer of this.retries.values()) clearTimeout(timer);
    await this.sweeping;
    await Promise.allSettled([...this.background]);
    await this.saveCheckpoint(true);
    this.notifier.flush();
    await this.writeMetrics();
    await new Promise((r) => (this.metricsServer ? this.metricsServer.close(r) : r(null)));
    await this.ledger?.close();
    await this.lock?.release();
    this.log.info({ event: 'reaper.stop', uptimeMs: Date.now() - this.stats.startedAt });
  }

  /** SIGHUP: new config for everything but what start() set up: log source, state dir, metrics port. */
  reload(next: Config): void {
    const kept = { log: this.config.log, stateDir: this.config.stateDir, metricsPort: this.config.metricsPort };
    this.config = { ...next, ...kept };
    this.notifier.update(next.notify);
    const restartNeededFor = (Object.keys(kept) as (keyof typeof kept)[]).filter((k) => JSON.stringify(kept[k]) !== JSON.stringify(next[k]));
    this.log.info({ event: 'reaper.reloaded', dryRun: next.dryRun, graceMs: next.graceMs, sweepIntervalMs: next.sweepIntervalMs, restartNeededFor });
  }

  private async prepareStateDir(): Promise<void> {
    const dir = this.config.stateDir;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await access(dir, constants.W_OK);
    } catch (err) {
      throw new ReaperError('E_STATE_DIR', `state dir ${dir} is not writable (${errnoCode(err) ?? String(err)})`);
    }
  }

  private async startSource(sinceMs: number): Promise<void> {
    const src = this.config.log;
    if (src.type === 'none') return;
    if (src.type === 'command') {
      this.commandTail = new CommandTail({
        argv: src.followArgv,
        cursorFile: join(this.config.stateDir, 'journal.cursor'),
        sinceMs: sinceMs - WINDOW_MARGIN_MS,
        markers: EVENT_MARKERS,
        lineTime: lineTimestamp,
        onBatch: (lines) => this.onLines(lines, Date.now()),
        onNotice: (n) => this.log[n.event === 'source.started' ? 'info' : 'warn'](n),
      });
      this.commandTail.start();
      return;
    }
    const { checkpoint, problem } = await loadCheckpoint(this.config.stateDir);
    if (problem) this.log.warn({ event: 'checkpoint.unreadable', problem });
    // Re-read back to the oldest live child's start as well: the decision needs that
    // history (spawn lines, the latest bridge port); events already acted on find their
    // processes gone, so nothing is done twice.
    const historyAt = await positionAt(src.path, await startOffsetSince(src.path, sinceMs));
    const usable = checkpoint?.path === src.path ? checkpoint.position : null;
    // Same inode is not enough: copytruncate keeps the inode and replaces the content.
    const atCheckpoint = usable ? await positionAt(src.path, usable.offset) : null;
    const sameFile =
      usable && historyAt && atCheckpoint && usable.dev === historyAt.dev && usable.ino === historyAt.ino &&
      atCheckpoint.fingerprint === usable.fingerprint && atCheckpoint.fingerprintBytes === usable.fingerprintBytes;
    const from = usable && !sameFile ? usable : historyAt && (!usable || historyAt.offset <= usable.offset) ? historyAt : usable;
    this.fileTail = new FileTail({
      path: src.path,
      from,
      markers: EVENT_MARKERS,
      isWriterLine: (line) => parseLogLine(line) !== null,
      onBatch: (b) => this.onFileBatch(b),
      onNotice: (n) => this.log[n.event === 'tail.error' ? 'warn' : 'info'](n),
    });
    await this.fileTail.start();
  }

  private async onFileBatch(batch: TailBatch): Promise<void> {
    await this.onLines(batch.lines, batch.readAt);
    if (!this.catchingUp) await this.saveCheckpoint(false);
  }

  /** The hot path: each eviction or idle kill is resolved to its pid from the ledger and killed. */
  private async onLines(lines: readonly string[], readAt: number): Promise<void> {
    const drops: DropEvent[] = [];
    const spawned: number[] = [];
    /** Spawn lines logged before the batch's last drop: one of them may be the evicted cell. */
    let spawnedBeforeDrop = 0;
    for (const line of lines) {
      const e = this.collector.take(line);
      if (!e) continue;
      this.stats.events++;
      this.stats.lastEventAt = e.at;
      this.window.add(e);
      if (isDropEvent(e)) this.stats.evictionsSeen++;
      if (this.catchingUp) continue;
      if (e.kind === 'spawned-pid') spawned.push(e.pid);
      else if (isDropEvent(e)) {
        drops.push(e);
        spawnedBeforeDrop = spawned.length;
      }
    }
    // Learn those first (one /proc read each), so their eviction needs no full snapshot;
    // the rest are learnt after the kills.
    for (const pid of spawned.slice(0, spawnedBeforeDrop)) await this.learnPid(pid, 3);
    for (const drop of drops) await this.reapDropped(drop, readAt);
    for (const pid of spawned.slice(spawnedBeforeDrop)) this.track(this.learnPid(pid, 3));
  }

  /** `spawned pid=Some(N)`: read that one pid now, so its eviction needs no full `ps`. */
  private async learnPid(pid: number, retries: number): Promise<void> {
    const p = await this.reader.read(pid);
    const cell = p && matchWorkerChild(p.argv, this.config.signature);
    if (p && cell) {
      this.ledger?.observe({ ...cell, pid, startKey: p.startKey, startedAt: p.startedAt, ppid: p.ppid });
    } else if (p && retries > 0) {
      // Logged right after fork: the child may not have exec'd `claude` yet.
      const later = new Promise((r) => setTimeout(r, 25)).then(() => this.learnPid(pid, retries - 1));
      this.track(later);
    }
  }

  private async reapDropped(e: DropEvent, readAt: number): Promise<void> {
    // The ledger holds no process of the sid that this line condemns (it spawned before we
    // started, its spawn line was missed or is still being read, or the ledger knows only
    // dead or fresh pids): one scan of the worker children, unless one taken after this
    // line was written already found nothing. In a flood of evictions that keeps it to one
    // scan per batch, not one per line.
    if (!(await this.reapRecorded(e, readAt)) && this.ledgerCompleteAt < e.at) {
      this.log.debug({ event: 'reaper.ledger-miss', sid: e.sid });
      // Every worker child carries the mcp-config flag: only those need a full read.
      const flag = this.config.signature.mcpConfigFlag;
      const snapshot = this.reader.withArgv ? await this.reader.withArgv(flag) : await this.reader.snapshot();
      this.observeAll(snapshot.processes);
      this.ledgerCompleteAt = snapshot.takenAt;
      await this.reapRecorded(e, readAt);
    }
  }

  /** Judge each live process the ledger holds for the dropped sid and kill the condemned; false if none was. */
  private async reapRecorded(e: DropEvent, readAt: number): Promise<boolean> {
    const ledger = this.ledger!;
    let condemned = false;
    for (const rec of ledger.cellsOfSid(e.sid)) {
      // Being killed already: an older cell of the sid, maybe, not the one this line names.
      if (this.inflight.has(rec.pid)) continue;
      const p = await this.reader.read(rec.pid);
      if (!p || p.zombie || p.startKey !== rec.startKey) {
        ledger.forget(rec.pid, rec.startKey);
        continue;
      }
      const verdict = await this.judge(p, e);
      if (verdict?.verdict === 'protected' && verdict.reason === 'too-young') {
        this.judgeWhenOld(p, e, readAt);
        continue;
      }
      if (verdict?.verdict !== 'orphan' || (verdict.reason !== 'evicted' && verdict.reason !== 'idle-killed')) {
        this.log.debug({ event: 'reaper.skip', pid: p.pid, sid: e.sid, verdict: verdict?.verdict ?? 'no-match', reason: verdict?.reason });
        continue;
      }
      condemned = true;
      await this.kill(verdict, e.at, readAt);
    }
    return condemned;
  }

  /** Evicted before it was --min-age old (a burst of prompts does that): judged again once it is. */
  private judgeWhenOld(p: ProcessInfo, e: DropEvent, readAt: number): void {
    if (this.stopping || this.retries.has(p.pid)) return;
    const timer = setTimeout(() => {
      this.retries.delete(p.pid);
      if (!this.stopping) this.track(this.reapRecorded(e, readAt));
    }, Math.max(0, p.startedAt + this.config.minAgeMs - Date.now()) + this.reader.startPrecisionMs);
    this.retries.set(p.pid, timer);
  }

  /** The pure decision over just this process, its parent, its descendants and us. */
  private async judge(p: ProcessInfo, e: DropEvent): Promise<Verdict | undefined> {
    const parent = await this.reader.read(p.ppid);
    const descendants = await this.descendantsOf(p.pid);
    const processes = [p, ...(parent ? [parent] : []), ...descendants, ...this.selfChain];
    const now = Date.now();
    const decision = decide({
      snapshot: { processes, takenAt: now, startPrecisionMs: this.reader.startPrecisionMs },
      events: this.window.relevantTo(p.pid, e.sid),
      logComplete: true,
      config: this.config,
      now,
      self: this.self,
    });
    return decision.verdicts.find((v) => v.process.pid === p.pid);
  }

  /** Starts the kill; resolves once SIGTERM is out. Grace and SIGKILL finish in the background. */
  private async kill(v: Orphan, evidenceAt: number, readAt: number): Promise<void> {
    const { process: p, cell } = v;
    if (this.config.dryRun) {
      this.record(v, { pid: p.pid, outcome: 'skipped', signal: null, descendants: v.descendants.map((d) => d.pid) }, 'would-kill', evidenceAt);
      return;
    }
    // Checked and taken with no await in between: the sweep may have started this kill.
    if (this.inflight.has(p.pid)) return;
    this.inflight.add(p.pid);
    let termSent!: () => void;
    const sent = new Promise<void>((r) => (termSent = r));
    const done = killTree(p, v.descendants, { reader: this.reader, graceMs: this.config.graceMs, onTermSent: termSent })
      .then((r) => this.record(v, r, r.outcome === 'failed' ? 'failed' : r.outcome === 'skipped' ? 'skipped' : r.outcome === 'gone' ? 'gone' : 'killed', evidenceAt, readAt))
      .catch((err: unknown) => this.log.error({ event: 'reaper.kill-error', pid: p.pid, sid: cell.sid, error: String(err) }))
      .finally(() => this.inflight.delete(p.pid));
    this.track(done);
    await Promise.race([sent, done]);
  }

  private record(v: Orphan, r: KillResult, action: 'killed' | 'failed' | 'skipped' | 'gone' | 'would-kill', evidenceAt: number, readAt?: number): void {
    const { process: p, cell } = v;
    const latencyMs = r.signalledAt !== undefined && v.evidence.seq !== undefined ? round(r.signalledAt - evidenceAt) : undefined;
    const fields = {
      pid: p.pid, sid: cell.sid, reason: v.reason, signal: r.signal ?? undefined, rssBytes: v.treeRssBytes,
      descendants: r.descendants, latencyMs, readLagMs: readAt !== undefined ? round(readAt - evidenceAt) : undefined, error: r.error,
    };
    if (action === 'killed') {
      this.stats.kills[v.reason] = (this.stats.kills[v.reason] ?? 0) + 1;
      this.stats.rssFreedBytes += v.treeRssBytes;
      if (latencyMs !== undefined) this.latency.observe(latencyMs);
      this.log.info({ event: 'reaper.kill', ...fields });
      this.notifier.killed({ pid: p.pid, sid: cell.sid, reason: v.reason, rssBytes: v.treeRssBytes });
      this.metricsSoon();
    } else if (action === 'failed') {
      this.stats.failures++;
      this.log.error({ event: 'reaper.kill-failed', ...fields });
    } else if (action === 'would-kill') {
      this.log.info({ event: 'reaper.would-kill', ...fields });
    } else {
      this.log.info({ event: 'reaper.skip', ...fields, action });
    }
    this.ledger?.recordAction({
      action, pid: p.pid, startKey: p.startKey, sid: cell.sid, reason: v.reason, at: Date.now(),
      signal: r.signal ?? undefined, rssBytes: v.treeRssBytes, latencyMs, error: r.error,
    });
    if (action !== 'would-kill') this.ledger?.forget(p.pid, p.startKey);
    this.ledgerFlushSoon();
  }

  /**
   * Kills are recorded in memory at once and written (with fdatasync) at most twice a
   * second: an fsync per kill would hold libuv threads the log tail's reads need.
   */
  private ledgerFlushSoon(): void {
    this.ledgerTimer ??= setTimeout(() => {
      this.ledgerTimer = null;
      if (this.ledger) this.track(this.ledger.flush());
    }, 500);
  }

  private scheduleSweep(): void {
    if (this.stopping) return;
    // Chained, not setInterval: a slow sweep never overlaps the next.
    this.sweepTimer = setTimeout(() => {
      this.sweeping = this.sweep('interval').finally(() => {
        this.sweeping = null;
        this.scheduleSweep();
      });
    }, this.config.sweepIntervalMs);
  }

  /** Full snapshot, the same decision as `reap`, ledger refreshed, orphans killed. */
  async sweep(why: 'catch-up' | 'interval' | 'manual'): Promise<void> {
    const t0 = Date.now();
    try {
      const report = await reapOnce({
        config: this.config,
        reader: this.reader,
        dryRun: this.config.dryRun,
        self: this.self,
        events: { events: this.window.all(), complete: true },
        inflight: this.inflight,
        onKill: (c: Candidate) => this.recordSweepKill(c),
      });
      if (this.config.dryRun) for (const c of report.candidates) this.record(c.verdict, { pid: c.verdict.process.pid, outcome: 'skipped', signal: null, descendants: [] }, 'would-kill', c.verdict.evidence.at);
      // Not the ones this pass killed: they are gone, and the hot path should not look there.
      const ended = new Set(report.candidates.filter((c) => c.action === 'killed').map((c) => c.verdict.process.pid));
      this.observeAll(report.snapshot.processes.filter((p) => !ended.has(p.pid)));
      this.ledgerCompleteAt = report.snapshot.takenAt;
      const oldest = Math.min(...report.decision.verdicts.map((v) => v.process.startedAt), Date.now());
      const trimmed = this.window.trimBefore(oldest - WINDOW_MARGIN_MS);
      const killed = report.candidates.filter((c) => c.action === 'killed').length;
      const durationMs = Date.now() - t0;
      this.stats.sweeps++;
      this.stats.lastSweepAt = Date.now();
      this.stats.lastSweepMs = durationMs;
      this.stats.lastSweepOrphans = report.candidates.length;
      this.stats.tailLagBytes = await this.tailLag();
      if (report.decision.valveTripped) {
        this.log.error({ event: 'reaper.valve', orphans: report.candidates.length, maxOrphans: this.config.maxOrphans });
        this.notifier.valve(report.candidates.length, this.config.maxOrphans);
      }
      this.log.info({
        event: 'reaper.sweep', why, durationMs, processes: report.snapshot.processes.length, workers: report.decision.workers.length,
        children: report.decision.verdicts.length, orphans: report.candidates.length, killed, windowEvents: this.window.size, trimmed,
      });
      this.ledger?.recordSweep({ at: Date.now(), durationMs, orphans: report.candidates.length, killed });
      await this.ledger?.flush();
      await this.saveCheckpoint(true);
      await this.writeMetrics();
    } catch (err) {
      this.log.error({ event: 'reaper.sweep-failed', why, error: String(err) });
    }
  }

  /** After kills, refresh metrics.prom once things settle (not once per kill). */
  private metricsSoon(): void {
    this.metricsTimer ??= setTimeout(() => {
      this.metricsTimer = null;
      this.track(this.writeMetrics());
    }, 1000).unref();
  }

  private async writeMetrics(): Promise<void> {
    try {
      await writeMetricsFile(this.config.stateDir, this.metrics());
    } catch (err) {
      this.log.warn({ event: 'metrics.write-failed', error: String(err) });
    }
  }

  private recordSweepKill(c: Candidate): void {
    if (!c.kill) return;
    this.record(c.verdict, c.kill, c.action === 'would-kill' ? 'would-kill' : c.kill.outcome === 'gone' ? 'gone' : c.action, c.verdict.evidence.at);
  }

  private observeAll(processes: readonly ProcessInfo[]): void {
    for (const p of processes) {
      const cell = matchWorkerChild(p.argv, this.config.signature);
      if (cell && !p.zombie) this.ledger?.observe({ ...cell, pid: p.pid, startKey: p.startKey, startedAt: p.startedAt, ppid: p.ppid });
    }
  }

  private async descendantsOf(pid: number): Promise<ProcessInfo[]> {
    const out: ProcessInfo[] = [];
    const walk = async (parent: number, depth: number): Promise<void> => {
      if (depth > 32) return;
      for (const child of await this.reader.children(parent)) {
        const p = await this.reader.read(child);
        if (!p || p.ppid !== parent) continue;
        await walk(child, depth + 1);
        out.push(p);
      }
    };
    await walk(pid, 0);
    return out;
  }

  private async ancestry(pid: number): Promise<ProcessInfo[]> {
    const chain: ProcessInfo[] = [];
    for (let p = await this.reader.read(pid); p && chain.length < 64; p = p.ppid > 0 ? await this.reader.read(p.ppid) : null) chain.push(p);
    return chain;
  }

  private async saveCheckpoint(force: boolean): Promise<void> {
    const pos = this.fileTail?.position;
    if (!pos || this.config.log.type !== 'file') return;
    if (!force && Date.now() - this.lastCheckpointAt < CHECKPOINT_EVERY_MS) return;
    this.lastCheckpointAt = Date.now();
    try {
      await saveCheckpoint(this.config.stateDir, this.config.log.path, pos);
    } catch (err) {
      this.log.warn({ event: 'checkpoint.write-failed', error: String(err) });
    }
  }

  private async tailLag(): Promise<number> {
    const pos = this.fileTail?.position;
    if (!pos || this.config.log.type !== 'file') return 0;
    const now = await positionAt(this.config.log.path, Number.MAX_SAFE_INTEGER);
    return now && now.ino === pos.ino ? Math.max(0, now.offset - pos.offset) : 0;
  }

  private track(p: Promise<unknown>): void {
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;
