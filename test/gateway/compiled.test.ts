/**
 * The build operators run. The container (docker/Dockerfile) runs `node bin/mailroom.js gateway` on `npm run build`'s
 * output with `npm ci --omit=dev`'s packages: compiled JavaScript, no tsx, only the packages under `dependencies`. Every other
 * test runs the TypeScript sources through tsx, where a dev-only import or a `.ts`-only path (the delivery thread
 * finds its entry file by extension) would go unnoticed. Here the project is compiled with its own tsconfig into a
 * scratch copy, `mailroom gateway` runs from it with the delivery thread on, a message goes through to moto, and a
 * module-resolution hook in every thread of that process records which packages the compiled code imports.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { startProcess, waitForPort, type Started } from '../support/process.js';
import { writeConfig } from './child.js';
import { ACCOUNT, createBuckets, listKeys, rawMessage, REGION, sendRaw, startBackends, storedBytes, waitFor, type Backends } from './helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');
const BUCKET = 'compiled';

/**
 * Registered with --import in the process and (through execArgv) in its delivery thread: for every bare import made
 * from the compiled app, one line "<package> <importing file>" in RECORD; every resolved `.ts` file or tsx module too.
 */
const HOOKS = `
import { appendFileSync } from 'node:fs';
const app = process.env.MAILROOM_TEST_APP_URL;
const record = process.env.MAILROOM_TEST_RECORD;
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const parent = context.parentURL ?? '';
  const bare = !/^(node:|file:|data:|\\.|\\/)/.test(specifier);
  if (bare && parent.startsWith(app)) {
    const parts = specifier.split('/');
    appendFileSync(record, 'import ' + (specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]) + ' ' + parent.slice(app.length) + '\\n');
  }
  if (r.url.endsWith('.ts') || r.url.includes('/node_modules/tsx/')) appendFileSync(record, 'source ' + r.url + '\\n');
  return r;
}
`;
const REGISTER = `import { register } from 'node:module';\nregister(new URL('./hooks.mjs', import.meta.url));\n`;

let backends: Backends;
let app: string;
let proc: Started | undefined;

beforeAll(async () => {
  backends = await startBackends('mailroom-compiled-');
  await createBuckets(backends.aws, BUCKET);
  app = join(backends.dir.path, 'app');
  await mkdir(join(app, 'bin'), { recursive: true });
  // `npm run build` is `tsc -p tsconfig.json`; the same, into the scratch copy.
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.json'), '--outDir', join(app, 'dist')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`tsc exited with ${code}:\n${out}`));
    });
  });
  await copyFile(join(ROOT, 'bin', 'mailroom.js'), join(app, 'bin', 'mailroom.js'));
  await copyFile(join(ROOT, 'package.json'), join(app, 'package.json'));
  await symlink(join(ROOT, 'node_modules'), join(app, 'node_modules'), 'dir');
  await writeFile(join(app, 'hooks.mjs'), HOOKS);
  await writeFile(join(app, 'register.mjs'), REGISTER);
}, 300_000);

afterAll(async () => {
  await proc?.stop();
  await backends?.stop();
});

describe('the compiled build (what the container runs)', () => {
  it('runs `mailroom gateway` with the delivery thread from dist/, importing only its dependencies', async () => {
    const port = await freePort();
    const configFile = await writeConfig(backends.dir.path, 'compiled.json', {
      region: REGION,
      accountId: ACCOUNT,
      ruleSetName: 'compiled',
      rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: BUCKET, objectKeyPrefix: 'in/' } }],
      gateway: {
        hostname: 'mx.compiled.test',
        spoolDir: join(backends.dir.path, 'spool'),
        smtp: { port, reverseDns: false },
        redis: { url: backends.redis.url, prefix: 'compiled' },
        worker: { thread: 'yes' },
      },
    });
    const record = join(backends.dir.path, 'imports.txt');
    await writeFile(record, '');
    proc = startProcess(process.execPath, ['--import', join(app, 'register.mjs'), join(app, 'bin', 'mailroom.js'), 'gateway', '--config', configFile], {
      ...process.env,
      ...backends.moto.env,
      LOG_LEVEL: 'info',
      MAILROOM_TEST_APP_URL: `file://${app}/`,
      MAILROOM_TEST_RECORD: record,
    });
    await waitForPort(port, 60_000, proc.child).catch((err: Error) => {
      throw new Error(`${err.message}\n--- output ---\n${proc!.output()}`);
    });

    const body = 'compiled and delivered from the thread\r\n';
    const sent = await sendRaw(port, { from: 'a@origin.example', to: ['user@example.com'] }, rawMessage([['Subject', 'compiled']], body));
    const key = `in/${sent.messageId}`;
    await waitFor(`${key} stored`, async () => (await listKeys(backends.aws, BUCKET, 'in/')).includes(key), 30_000, 200);
    const stored = (await storedBytes(backends.aws, BUCKET, key)).body.toString('utf8');
    expect(stored.startsWith('Return-Path: <a@origin.example>\r\n')).toBe(true);
    expect(stored.endsWith(`\r\n\r\n${body}`)).toBe(true);

    // Delivered by the thread, then a clean stop on SIGTERM.
    const lines = () => proc!.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    await waitFor('delivered line', async () => lines().some((l) => l.msg === 'delivered' && l.messageId === sent.messageId), 10_000, 100);
    expect(lines().find((l) => l.msg === 'delivered' && l.messageId === sent.messageId)).toMatchObject({ thread: 'delivery', key });
    const exited = new Promise<number | null>((resolve) => proc!.child.once('exit', (code) => resolve(code)));
    proc.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(lines().filter((l) => typeof l.level === 'number' && l.level >= 50)).toEqual([]);

    const recorded = (await readFile(record, 'utf8')).split('\n').filter(Boolean);
    expect(recorded.filter((l) => l.startsWith('source '))).toEqual([]);
    const imported = new Map<string, string>();
    for (const l of recorded.filter((x) => x.startsWith('import '))) {
      const [, pkg, from] = l.split(' ');
      imported.set(pkg!, from!);
    }
    // The hook saw the main thread's and the delivery thread's imports.
    expect([...imported.keys()]).toEqual(expect.arrayContaining(['smtp-server', 'bullmq', 'ioredis', 'pino', '@aws-sdk/client-s3', '@smithy/signature-v4']));
    const { dependencies } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const notDependencies = [...imported].filter(([pkg]) => !(pkg in dependencies)).map(([pkg, from]) => `${pkg} (from ${from})`);
    expect(notDependencies).toEqual([]);
    // The gateway never loads the infrastructure framework (seconds and hundreds of MB per load).
    expect([...imported.keys()].filter((p) => p === 'cdktf' || p.startsWith('@cdktf/'))).toEqual([]);
  });
});
