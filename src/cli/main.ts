#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ReaperError, usageError } from '../errors.js';
import { parseCommandArgs, type CommonArgs } from './args.js';
import type { CommandIO } from './reap.js';

interface Command {
  summary: string;
  /** Takes --json (one JSON object on stdout). */
  json?: true;
  /** Flags of this command beyond the common ones. */
  options?: Parameters<typeof parseCommandArgs>[1];
  run: (args: CommonArgs, io: CommandIO) => Promise<number>;
}

// Each command's module is loaded when it runs: `ps` need not load the daemon, chokidar and
// the installer (a third of a one-shot run's start-up time).
const serviceOptions = { launchd: { type: 'boolean' }, systemd: { type: 'boolean' }, print: { type: 'boolean' } } as const;
const commands: Record<string, Command> = {
  ps: { json: true, summary: 'list the worker children with their verdict (kills nothing)', run: async (a, io) => (await import('./reap.js')).reapCommand('ps', a, io) },
  reap: { json: true, summary: 'kill every orphan and its descendants (--dry-run: only say which)', run: async (a, io) => (await import('./reap.js')).reapCommand('reap', a, io) },
  run: { summary: 'the sidecar: follow the worker log, kill each evicted cell at once, sweep every --sweep-interval', run: async (a, io) => (await import('./run.js')).runCommand(a, io) },
  status: { json: true, summary: 'what the daemon has done (from its state dir) and the orphans right now', run: async (a, io) => (await import('./status.js')).statusCommand(a, io) },
  doctor: { json: true, summary: 'check the worker, its log, the state dir, the daemon: one screen of ✓/✗ with fixes', run: async (a, io) => (await import('./doctor.js')).doctorCommand(a, io) },
  install: { summary: 'run the reaper as a launchd agent / systemd user unit (--launchd, --systemd, --print, --force)', options: serviceOptions, run: async (a, io) => (await import('./service.js')).installCommand(a, io) },
  uninstall: { summary: 'stop the agent/unit and remove it (--launchd, --systemd, --print)', options: serviceOptions, run: async (a, io) => (await import('./service.js')).uninstallCommand(a, io) },
};

const version = (): string => {
  const pkg = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
};

function usage(): string {
  const names = Object.keys(commands);
  const width = Math.max(...names.map((n) => n.length));
  return `hum-reaper ${version()} — kills the claude processes an unpatched hum claude-cli-worker leaks

Usage: hum-reaper <command> [options]

Commands:
${names.map((n) => `  ${n.padEnd(width)}  ${commands[n]!.summary}`).join('\n')}

Options (all commands):
  --config FILE         config file (default ~/.config/hum-reaper/config.json when present)
  --log FILE            the worker log to read ("none": use no log evidence)
  --state-dir DIR       where the ledger, checkpoint and metrics live
  --json                one JSON object on stdout, nothing else
  --dry-run             decide and report, kill nothing
  --grace MS            SIGTERM → SIGKILL wait (default 3000)
  --min-age MS          never touch processes younger than this (default 2000)
  --force               kill even when the orphan count trips the safety valve
  --sweep-interval MS   run: full process-table sweep every MS (default 30000)
  --metrics-port PORT   run: also serve /metrics on 127.0.0.1:PORT
  -h, --help            this help
  -V, --version         the version

Exit codes: 0 done (also when nothing was found), 1 some kill failed or the safety valve
tripped, 2 bad usage or config (nothing is killed).`;
}

export async function main(argv: string[], io: CommandIO): Promise<number> {
  const [name, ...rest] = argv;
  try {
    // Asked for: stdout, exit 0. No command at all is bad usage: stderr, exit 2.
    if (name === undefined) {
      io.stderr(usage());
      return 2;
    }
    if (name === '--help' || name === '-h' || name === 'help') {
      io.stdout(usage());
      return 0;
    }
    if (name === '--version' || name === '-V') {
      io.stdout(version());
      return 0;
    }
    const command = commands[name];
    if (!command) throw usageError(`unknown command "${name}"; try hum-reaper --help`);
    const args = parseCommandArgs(rest, command.options);
    if (args.json && !command.json) throw usageError(`${name} has no --json output (ps, reap, status and doctor do)`);
    if (args.help) {
      io.stdout(usage());
      return 0;
    }
    if (args.version) {
      io.stdout(version());
      return 0;
    }
    return await command.run(args, io);
  } catch (err) {
    if (err instanceof ReaperError) {
      io.stderr(`hum-reaper: ${err.message} [${err.code}]`);
      return err.exitCode;
    }
    io.stderr(`hum-reaper: unexpected error: ${(err as Error).stack ?? String(err)}`);
    return 1;
  }
}

const isEntry = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === (await import('node:fs')).realpathSync(process.argv[1]);
if (isEntry) {
  const io: CommandIO = {
    stdout: (t) => process.stdout.write(`${t}\n`),
    stderr: (t) => process.stderr.write(`${t}\n`),
  };
  const code = await main(process.argv.slice(2), io);
  process.exitCode = code;
}
