/** The units `mailroom load` flags take: durations, sizes, counts and rates, each error naming the flag and the fix. */
import { UsageError } from '../cli/command/command.js';

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const DURATION_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

/** `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds. */
export function parseDuration(flag: string, value: string): number {
  const m = DURATION_RE.exec(value.trim());
  const ms = m ? Number(m[1]) * DURATION_MS[(m[2] ?? 's') as keyof typeof DURATION_MS] : NaN;
  if (!Number.isFinite(ms) || ms <= 0) throw new UsageError(`--${flag} "${value}" is not a duration; write e.g. --${flag} 30s, 500ms, 2m or 1h`);
  return Math.round(ms);
}

const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib)?$/i;

/** Bytes; KB and MB are binary (1024), as the project's benchmarks and SES's 40 MB limit (41,943,040 bytes) count. */
export function parseSize(flag: string, value: string): number {
  const m = SIZE_RE.exec(value.trim());
  if (!m) throw new UsageError(`--${flag} "${value}" is not a size; write e.g. --${flag} 10KB, 512KB or 2MB`);
  const unit = (m[2] ?? 'b').toLowerCase();
  const scale = unit.startsWith('m') ? 1024 * 1024 : unit.startsWith('k') ? 1024 : 1;
  return Math.round(Number(m[1]) * scale);
}

export function parseWhole(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${flag} "${value}" is not a whole number from ${min} to ${max}; write e.g. --${flag} ${Math.min(max, Math.max(min, 20))}`);
  }
  return n;
}

export function parseRate(flag: string, value: string, max: number): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(n > 0) || n > max) throw new UsageError(`--${flag} "${value}" is not a rate in messages per second greater than 0 and at most ${max}; write e.g. --${flag} 200`);
  return n;
}

/** `10240` → `10 KB`, for people (tables, the report). */
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${+(bytes / (1024 * 1024)).toFixed(1)} MB`;
  if (bytes >= 1024) return `${+(bytes / 1024).toFixed(1)} KB`;
  return `${bytes} B`;
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
