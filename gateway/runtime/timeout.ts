/**
 * `p`, or a rejection with `error()` once `ms` have passed. The work behind `p` is not cancelled: use it where a late
 * answer is harmless, or hand `p` to whoever decides what a late answer means (EnqueueTimeoutError).
 */
export function within<T>(p: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(error()), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
