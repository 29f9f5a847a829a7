// What the demo knows for certain about the simulated worker: every child it spawned and
// every one it dropped, straight from the worker's replies. The reaper is judged against
// this, never against its own logs.
import type { CellRef, StateReply } from '../../test/support/sim.js';

/** Why the worker dropped a cell (the demo's words; the reaper names its own reasons). */
export type Cause = 'evicted' | 'idle-killed' | 'race' | 'reconnect';

export interface ChildRecord {
  pid: number;
  sid: string;
  /** Connection generation the child was spawned on (a reconnect starts the next). */
  conn: number;
}

export interface OrphanRecord extends ChildRecord {
  cause: Cause;
  orphanedAt: number;
}

/** One look at the worker: which of its children are alive, in the table, or orphans. */
export interface TableView {
  childrenAlive: number;
  cells: number;
  /** Alive and out of the table, for a drop we saw. */
  orphans: OrphanRecord[];
  /** Alive and out of the table with no drop we saw: the upstream by-sid quirk forgot them. */
  forgotten: ChildRecord[];
}

export class GroundTruth {
  readonly children = new Map<number, ChildRecord>();
  readonly orphans = new Map<number, OrphanRecord>();
  conn = 1;

  /** False when the pid was known already (a race on a sid that had a cell reuses it). */
  spawned(pid: number, sid: string): boolean {
    if (this.children.has(pid)) return false;
    this.children.set(pid, { pid, sid, conn: this.conn });
    return true;
  }

  orphaned(ref: CellRef, cause: Cause, at = Date.now()): void {
    const child = this.children.get(ref.pid) ?? { pid: ref.pid, sid: ref.sid, conn: this.conn };
    if (!this.orphans.has(ref.pid)) this.orphans.set(ref.pid, { ...child, cause, orphanedAt: at });
  }

  reconnected(dropped: readonly CellRef[], at = Date.now()): void {
    for (const ref of dropped) this.orphaned(ref, 'reconnect', at);
    this.conn += 1;
  }

  /**
   * Sids the driver leaves alone for now: an orphan of the current connection still runs
   * under that sid (the worker has not seen it exit). Prompting one of them would race the
   * reaper's kill, and the worker's exit handler would then drop the fresh cell too (the
   * by-sid quirk, upstream-worker.md) — a real upstream leak, but not this demo's story.
   */
  blockedSids(workerLive: ReadonlySet<number>): Set<string> {
    const out = new Set<string>();
    for (const o of this.orphans.values()) if (o.conn === this.conn && workerLive.has(o.pid)) out.add(o.sid);
    return out;
  }

  view(state: StateReply, alive: (pid: number) => boolean): TableView {
    const inTable = new Set(state.cells.map((c) => c.pid));
    let childrenAlive = 0;
    const orphans: OrphanRecord[] = [];
    const forgotten: ChildRecord[] = [];
    for (const pid of state.children) {
      if (!alive(pid)) continue;
      childrenAlive += 1;
      if (inTable.has(pid)) continue;
      const o = this.orphans.get(pid);
      if (o) orphans.push(o);
      else forgotten.push(this.children.get(pid) ?? { pid, sid: '?', conn: state.conn });
    }
    return { childrenAlive, cells: state.cells.length, orphans, forgotten };
  }
}
