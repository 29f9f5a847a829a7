import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ledger, type ActionRecord, type SweepEntry, type Totals } from '../ledger/ledger.js';
import type { ProcessReader } from '../procs/types.js';
import { LOCK_FILE, LockRecordSchema, type LockRecord } from './lock.js';

export const LEDGER_FILE = 'ledger.jsonl';

/** What a state dir says about the daemon, read from files only (no socket to the daemon). */
export interface DaemonState {
  stateDir: string;
  /** The lock holder, and whether that exact process (pid + start) is alive. */
  daemon: (LockRecord & { running: boolean }) | null;
  ledger: { totals: Totals; lastSweep: SweepEntry | null; recent: ActionRecord[]; corruptLines: number } | null;
  /** Why the ledger could not be read (unsafe, unreadable), when it exists. */
  ledgerProblem?: string;
}

export async function readDaemonState(stateDir: string, reader: ProcessReader, recent = 10): Promise<DaemonState> {
  const state: DaemonState = { stateDir, daemon: null, ledger: null };
  try {
    const lock = LockRecordSchema.parse(JSON.parse(readFileSync(join(stateDir, LOCK_FILE), 'utf8')));
    const live = await reader.read(lock.pid);
    state.daemon = { ...lock, running: live !== null && !live.zombie && live.startKey === lock.startKey };
  } catch {
    state.daemon = null;
  }
  // Read-only: the daemon may be appending to this file right now through its own descriptor;
  // a reader must never create, rewrite or compact it (Ledger.open would).
  try {
    const ledger = await Ledger.read(join(stateDir, LEDGER_FILE));
    if (ledger) state.ledger = { totals: ledger.totals(), lastSweep: ledger.lastSweep(), recent: ledger.recentActions(recent), corruptLines: ledger.corruptLines };
  } catch (err) {
    state.ledgerProblem = (err as Error).message;
  }
  return state;
}
