/** Runs mailroom CLI commands as child processes, the way an operator (or systemd) would. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ReceivingConfigInput } from '../../shared/config/index.js';
import { startProcess, waitForPort, type Started } from '../support/process.js';
import { run } from './helpers.js';

export const MAILROOM = join(import.meta.dirname, '..', '..', 'bin', 'mailroom.js');

export async function writeConfig(dir: string, name: string, config: ReceivingConfigInput): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, JSON.stringify(config, null, 2));
  return file;
}

/** Starts `mailroom <command> --config <file>` and waits for its SMTP port (when it has one). */
export async function startMailroom(command: 'gateway' | 'smtp' | 'worker', configFile: string, env: Record<string, string>, smtpPort?: number): Promise<Started> {
  const proc = startProcess(process.execPath, [MAILROOM, command, '--config', configFile], { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', ...env });
  if (smtpPort !== undefined) {
    try {
      await waitForPort(smtpPort, 30_000, proc.child);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- output ---\n${proc.output()}`);
    }
  }
  return proc;
}

export function killHard(proc: Started): Promise<void> {
  return new Promise((resolve) => {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) return resolve();
    proc.child.once('exit', () => resolve());
    proc.child.kill('SIGKILL');
  });
}

/** Runs a short CLI command to completion; returns exit code and output. */
export async function mailroomCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [MAILROOM, ...args], { env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
