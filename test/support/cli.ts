import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RUN_ENV } from './sim.js';

export const MAIN_TS = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the real CLI (from source, via tsx) as its own process. */
export function runCli(args: string[], opts: { env?: Record<string, string>; token?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  if (opts.token) env[RUN_ENV] = opts.token;
  delete env.NODE_TEST_CONTEXT;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN_TS, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Config flags that confine a reaper to one test run's sids, whatever else runs here. */
export function scopedEnv(token: string, extra: Record<string, string> = {}): Record<string, string> {
  return { HUM_REAPER_SID_PREFIX: `${token}-`, HUM_REAPER_MIN_AGE_MS: '0', HUM_REAPER_GRACE_MS: '1000', ...extra };
}
