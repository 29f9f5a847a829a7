// `hum-reaper install` / `hum-reaper uninstall`: run the reaper as a launchd agent or a
// systemd user unit beside the worker.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { loadConfig, type ConfigFlags } from '../config/load.js';
import { ReaperError, errnoCode, usageError } from '../errors.js';
import {
  applySteps,
  describeStep,
  fileState,
  installSteps,
  lineDiff,
  packageEntry,
  readExisting,
  serviceFile,
  shellWord,
  spawnRunner,
  uninstallSteps,
  type Step,
} from '../service/install.js';
import { LAUNCHD_LABEL, SYSTEMD_UNIT, daemonPath, renderService, templateFile, type ServiceManager } from '../service/render.js';
import type { CommonArgs } from './args.js';
import type { CommandIO } from './reap.js';

/** Flags of install and uninstall beyond the common ones (--force is common). */

interface Machine {
  manager: ServiceManager;
  env: NodeJS.ProcessEnv;
  home: string;
  uid: number;
  file: string;
}

function machine(args: CommonArgs, command: string): Machine {
  if (args.extra.launchd === true && args.extra.systemd === true) throw usageError(`${command}: give --launchd or --systemd, not both`);
  const manager: ServiceManager =
    args.extra.launchd === true ? 'launchd' : args.extra.systemd === true ? 'systemd' : process.platform === 'darwin' ? 'launchd' : 'systemd';
  const env = process.env;
  const home = env.HOME || homedir();
  return { manager, env, home, uid: process.getuid?.() ?? 0, file: serviceFile(manager, env, home) };
}

export async function installCommand(args: CommonArgs, io: CommandIO): Promise<number> {
  const m = machine(args, 'install');
  if (args.flags.dryRun) {
    throw usageError('install --dry-run is ambiguous: use --print to see what install would do, or set "dryRun": true in the config file for a daemon that only reports');
  }
  // The service does not inherit this shell's HUM_REAPER_* variables: resolve the config as it will.
  const serviceEnv = Object.fromEntries(Object.entries(m.env).filter(([k]) => !k.startsWith('HUM_REAPER_')));
  for (const name of Object.keys(m.env).filter((k) => k.startsWith('HUM_REAPER_') && k !== 'HUM_REAPER_TEST_RUN')) {
    io.stderr(`warning: ${name} is set here but the service will not see it; put the setting in the config file or pass it as a flag to install`);
  }
  const { config, warnings } = loadConfig({ flags: args.flags, env: serviceEnv, home: m.home, platform: m.manager === 'launchd' ? 'darwin' : 'linux' });
  warnings.forEach((w) => io.stderr(`warning: ${w}`));

  const node = process.execPath;
  const entry = packageEntry();
  const stateDir = resolve(config.stateDir);
  // The user manager's environment need not hold this shell's XDG_STATE_HOME: any state dir
  // but the plain default is written into the unit, for the daemon and its sandbox alike.
  const named = m.manager === 'systemd' && stateDir !== join(m.home, '.local', 'state', 'hum-reaper');
  const content = renderService(m.manager, await readTemplate(m.manager), {
    node,
    entry,
    home: m.home,
    path: daemonPath(dirname(node)),
    stateDir: named ? stateDir : null,
    runArgs: forwardedArgs(named ? { ...args.flags, stateDir } : args.flags),
  });
  const existing = await readExisting(m.file);
  const state = fileState(existing, content);
  const steps = installSteps({ manager: m.manager, file: m.file, content, state, uid: m.uid, ...(m.manager === 'systemd' ? { stateDir } : {}) });
  const diff = () => lineDiff(existing ?? '', content, [`${m.file} (installed)`, `${m.file} (install would write)`]);

  if (args.extra.print === true) {
    const out = [`# hum-reaper install --${m.manager} --print: nothing was written and nothing was run.`];
    if (state === 'different' && !args.flags.force) out.push(`# ${m.file} exists and differs; install would refuse without --force:`, diff());
    if (state === 'same') out.push(`# ${m.file} is already installed with this content; install would only (re)load it.`);
    out.push(`# ${m.file}:`, content.trimEnd(), '# steps:', ...steps.map(describeStep));
    io.stdout(out.join('\n'));
    return 0;
  }
  if (state === 'different' && !args.flags.force) {
    io.stderr(diff());
    throw new ReaperError('E_SERVICE_EXISTS', `${m.file} exists and differs from what install would write (diff above); run hum-reaper install --force to replace it`, 1);
  }

  if (!existsSync(entry)) io.stderr(`warning: ${entry} does not exist yet; build the package (npm run build) or the service cannot start`);
  if (entry.includes('/_npx/')) {
    io.stderr(`warning: ${entry} is in the npx cache, which npm may clean; for a lasting service run "npm install -g hum-reaper" and then "hum-reaper install"`);
  }
  if (state === 'same') io.stdout(`unchanged ${m.file}`);
  await applySteps(steps, {
    runner: spawnRunner(m.env),
    onStep: (step, what) => io.stdout(progress(step, what)),
    failureNote: `${m.file} is written and left in place; fix the cause and run hum-reaper install again`,
  });
  io.stdout(
    m.manager === 'launchd'
      ? `hum-reaper runs as launchd agent ${LAUNCHD_LABEL}. Check: launchctl print gui/${m.uid}/${LAUNCHD_LABEL}; logs: ${join(m.home, 'Library', 'Logs', `${LAUNCHD_LABEL}.err.log`)}`
      : `hum-reaper runs as systemd user unit ${SYSTEMD_UNIT}. Check: systemctl --user status ${SYSTEMD_UNIT}; logs: journalctl --user -u hum-reaper`,
  );
  return 0;
}

export async function uninstallCommand(args: CommonArgs, io: CommandIO): Promise<number> {
  const m = machine(args, 'uninstall');
  const installed = (await readExisting(m.file)) !== null;
  const steps = installed ? uninstallSteps(m.manager, m.file, m.uid) : [];
  if (args.extra.print === true) {
    const out = [`# hum-reaper uninstall --${m.manager} --print: nothing was removed and nothing was run.`];
    out.push(installed ? '# steps:' : `# not installed (no ${m.file}); uninstall would do nothing.`, ...steps.map(describeStep));
    io.stdout(out.join('\n'));
    return 0;
  }
  if (!installed) {
    io.stdout(`hum-reaper is not installed for ${m.manager} (no ${m.file}); nothing to do.`);
    return 0;
  }
  await applySteps(steps, {
    runner: spawnRunner(m.env),
    onStep: (step, what) => io.stdout(progress(step, what)),
    failureNote: `${m.file} is left in place; fix the cause and run hum-reaper uninstall again`,
  });
  io.stdout(`hum-reaper is uninstalled from ${m.manager}; its state directory (ledger, metrics) is kept.`);
  return 0;
}

function progress(step: Step, what: string): string {
  if (step.kind === 'run') return `${what}: ${step.argv.map(shellWord).join(' ')}`;
  return `${what} ${step.kind === 'mkdir' ? step.dir : step.file}`;
}

async function readTemplate(manager: ServiceManager): Promise<string> {
  const file = templateFile(manager);
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ReaperError('E_SERVICE_TEMPLATE', `cannot read the ${manager} template ${file} (${errnoCode(err) ?? String(err)})`, 2);
  }
}

/** Flags given to install that shape the daemon's config: the daemon gets them too, paths made absolute. */
function forwardedArgs(flags: ConfigFlags): string[] {
  const out: string[] = [];
  if (flags.config !== undefined) out.push('--config', resolve(flags.config));
  if (flags.log !== undefined) out.push('--log', flags.log === 'none' ? 'none' : resolve(flags.log));
  if (flags.stateDir !== undefined) out.push('--state-dir', resolve(flags.stateDir));
  if (flags.graceMs !== undefined) out.push('--grace', String(flags.graceMs));
  if (flags.minAgeMs !== undefined) out.push('--min-age', String(flags.minAgeMs));
  if (flags.sweepIntervalMs !== undefined) out.push('--sweep-interval', String(flags.sweepIntervalMs));
  if (flags.metricsPort !== undefined && flags.metricsPort > 0) out.push('--metrics-port', String(flags.metricsPort));
  return out;
}
