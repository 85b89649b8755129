import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * A worker thread running the module `<name>.ts` next to `callerUrl` — or its compiled `<name>.js` in the build —
 * with `data` as its workerData. Under tsx (sources, no build) the loader is registered in the thread first: a thread
 * does not inherit hooks registered through the module API.
 */
export function moduleThread(callerUrl: string, name: string, data: object): Worker {
  const fromSources = callerUrl.endsWith('.ts');
  const entry = new URL(`./${name}.${fromSources ? 'ts' : 'js'}`, callerUrl).href;
  // import.meta.resolve is missing where a test runner rewrote import.meta; require's resolver finds the same package.
  const tsx = fromSources ? (import.meta.resolve?.('tsx/esm/api') ?? pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api')).href) : undefined;
  const boot = `
const { workerData } = require('node:worker_threads');
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  await import(workerData.entry);
})().catch((err) => { process.nextTick(() => { throw err; }); });`;
  return new Worker(boot, { eval: true, workerData: { ...data, tsx, entry } });
}
