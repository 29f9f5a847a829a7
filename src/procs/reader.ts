import { existsSync } from 'node:fs';
import { LinuxProcessReader } from './linux.js';
import { PsProcessReader } from './ps.js';
import type { ProcessReader } from './types.js';

export function defaultProcessReader(): ProcessReader {
  return process.platform === 'linux' && existsSync('/proc/self/stat') ? new LinuxProcessReader() : new PsProcessReader();
}
