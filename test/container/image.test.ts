/**
 * docker/Dockerfile built and run for real, as an operator with Docker would: the base image it names (a local
 * stand-in here, no registry being reachable — see stand-in-base.sh), `buildah bud` of the unchanged Dockerfile,
 * then the image run with podman on the host network against Redis and moto on loopback. Then docker/compose.yml
 * brought up with podman-compose.
 *
 * Needs root and podman, buildah, debootstrap, runc, podman-compose (`npm run setup` as root installs them).
 * The stand-in bases are built once per machine (minutes, debootstrap) and reused while their recipe is unchanged;
 * the image build reuses buildah's layer cache.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/files.js';
import { startMoto, type Moto } from '../support/moto.js';
import { freePort } from '../support/ports.js';
import { waitForPort } from '../support/process.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { ACCOUNT, awsClients, createBuckets, listKeys, REGION, storedBytes, waitFor, type AwsFixture } from '../gateway/helpers.js';
import { startS3Gate, type S3Gate } from './s3-gate.js';
import { buildahBuild, containerToolsMissing, LIMITS, mustPodman, npmCafile, podman, redisStandIn, ROOT, run, standInBases, type StandIns } from './support.js';

const skip = containerToolsMissing();
/** One tag, moved by every build: the image it leaves behind keeps its layers as the next build's cache. */
const IMAGE = 'localhost/mailroom:test';
const BUCKET = 'container-mail';
/** Under `docker stop -t` (and compose's stop_grace_period, 70 s): a drain must end well within it. */
const GRACE_S = 60;
const names = { containers: new Set<string>(), volumes: new Set<string>() };
const unique = (what: string) => `mailroom-it-${process.pid}-${what}`;

let bases: StandIns;
let moto: Moto;
let redis: RedisServer;
let aws: AwsFixture;
let gate: S3Gate;
let dir: Awaited<ReturnType<typeof tempDir>>;
let configFile: string;

function log(line: string): void {
  process.stdout.write(`[container] ${line}\n`);
}

interface Container {
  name: string;
  smtpPort: number;
  httpPort: number;
  logs: () => Promise<string>;
}

/** Runs the image as `docker run -d` would, with the host's network (the container's ports are loopback ports here). */
async function startContainer(what: string, volume: string, nodeId: string): Promise<Container> {
  const name = unique(what);
  const [smtpPort, httpPort] = [await freePort(), await freePort()];
  names.containers.add(name);
  names.volumes.add(volume);
  const env = {
    REDIS_URL: redis.url,
    AWS_ENDPOINT_URL: gate.endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: REGION,
    MAILROOM_SMTP_HOST: '127.0.0.1',
    MAILROOM_SMTP_PORT: String(smtpPort),
    MAILROOM_HTTP_PORT: String(httpPort),
    MAILROOM_NODE_ID: nodeId,
    LOG_LEVEL: 'info',
  };
  await mustPodman([
    'run', '-d', '--name', name, '--network', 'host', ...LIMITS,
    '-v', `${configFile}:/etc/mailroom/config.json:ro`, '-v', `${volume}:/var/spool/mailroom`,
    ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    IMAGE,
  ]);
  const logs = async () => {
    const r = await podman(['logs', name]);
    return r.stdout + r.stderr;
  };
  await waitForPort(smtpPort, 90_000).catch(async (err: Error) => {
    throw new Error(`${err.message}\n--- ${name} ---\n${await logs()}`);
  });
  return { name, smtpPort, httpPort, logs };
}

/** swaks into the container's SMTP port; returns the message id of the gateway's 250. */
async function swaks(c: Container, subject: string, body: string): Promise<string> {
  const r = await run('swaks', ['--server', '127.0.0.1', '--port', String(c.smtpPort), '--helo', 'client.test', '--from', 'sender@origin.example', '--to', 'user@example.com', '--header', `Subject: ${subject}`, '--body', body], { timeoutMs: 60_000 });
  const id = /<[-~] +250 Ok ([0-9a-v]{38}[08go]1)/.exec(r.stdout)?.[1];
  if (r.code !== 0 || !id) throw new Error(`swaks exited with ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return id;
}

async function state(name: string): Promise<{ Running: boolean; ExitCode: number; Status: string }> {
  return JSON.parse(await mustPodman(['inspect', '--format', '{{json .State}}', name])) as { Running: boolean; ExitCode: number; Status: string };
}

async function readyz(c: Container): Promise<{ status: number; body: { ready?: boolean; checks?: Record<string, string> } }> {
  const res = await fetch(`http://127.0.0.1:${c.httpPort}/readyz`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: (await res.json()) as { ready?: boolean; checks?: Record<string, string> } };
}

/** `docker stop -t GRACE_S`: SIGTERM (the image's STOPSIGNAL), SIGKILL after the grace period. */
async function stopContainer(c: Container): Promise<{ ms: number; exitCode: number }> {
  const started = Date.now();
  await mustPodman(['stop', '-t', String(GRACE_S), c.name], { timeoutMs: (GRACE_S + 30) * 1000 });
  return { ms: Date.now() - started, exitCode: (await state(c.name)).ExitCode };
}

async function stored(messageId: string, from: Container): Promise<string> {
  const key = `in/${messageId}`;
  await waitFor(`${key} in the bucket`, async () => (await listKeys(aws, BUCKET, 'in/')).includes(key), 60_000, 250).catch(async (err: Error) => {
    throw new Error(`${err.message}\n--- ${from.name} ---\n${await from.logs()}`);
  });
  return (await storedBytes(aws, BUCKET, key)).body.toString('utf8');
}

describe.skipIf(skip !== undefined)(`docker/Dockerfile built and run${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(async () => {
    let t = Date.now();
    bases = await standInBases();
    log(bases.builtMs === undefined ? `stand-in bases cached: ${bases.node}, ${bases.debian}` : `stand-in bases built in ${(bases.builtMs / 1000).toFixed(0)} s`);

    // The documented way through a TLS-intercepting proxy: npm's CA as a build secret (none needed elsewhere).
    const ca = await npmCafile();
    t = Date.now();
    const built = await buildahBuild([...(ca ? ['--secret', `id=npm_ca,src=${ca}`] : []), '-f', join(ROOT, 'docker', 'Dockerfile'), '-t', IMAGE, ROOT]);
    if (built.code !== 0) throw new Error(`buildah bud docker/Dockerfile failed:\n${built.stderr.slice(-6000)}\n${built.stdout.slice(-3000)}`);
    log(`image built in ${((Date.now() - t) / 1000).toFixed(0)} s`);

    [moto, redis, dir] = await Promise.all([startMoto(), startRedis(), tempDir('mailroom-container-')]);
    aws = awsClients(moto);
    await createBuckets(aws, BUCKET);
    gate = await startS3Gate(moto.port);
    configFile = join(dir.path, 'config.json');
    await writeFile(
      configFile,
      JSON.stringify({
        region: REGION,
        accountId: ACCOUNT,
        ruleSetName: 'container',
        rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: BUCKET, objectKeyPrefix: 'in/' } }],
        gateway: {
          hostname: 'mx.container.test',
          smtp: { reverseDns: false },
          http: { readyCacheMs: 200, checkTimeoutMs: 1000 },
          worker: { backoffBaseMs: 500, backoffMaxMs: 2000 },
        },
      }),
      { mode: 0o644 },
    );
  }, 30 * 60_000);

  afterAll(async () => {
    for (const name of names.containers) await podman(['rm', '-f', '-t', '0', name]);
    for (const volume of names.volumes) await podman(['volume', 'rm', '-f', volume]);
    await gate?.stop();
    aws?.destroy();
    await Promise.all([moto?.stop(), redis?.stop()]);
    await dir?.remove();
  }, 120_000);

  it(`adds at most 150 MB to its base image, and carries no infra packages, tsx or TypeScript`, async () => {
    const size = async (image: string) => Number((await mustPodman(['image', 'inspect', '--format', '{{.Size}}', image])).trim());
    const [image, base] = [await size(IMAGE), await size(bases.node)];
    log(`image ${(image / 1e6).toFixed(0)} MB on a ${(base / 1e6).toFixed(0)} MB base: ${((image - base) / 1e6).toFixed(1)} MB added`);
    expect(image - base).toBeLessThanOrEqual(150e6);
    const listing = await mustPodman(['run', '--rm', '--network', 'host', ...LIMITS, '--entrypoint', 'ls', IMAGE, '/app', '/app/dist', '/app/node_modules', '/app/node_modules/.bin']);
    for (const absent of ['cdktf', 'cdktf-cli', 'constructs', 'tsx', 'typescript', 'esbuild', 'vitest', '@cdktf', 'infra', 'test']) expect(listing.split(/\s+/), absent).not.toContain(absent);
  });

  describe('one container on the host network, with Redis and moto on loopback', () => {
    let c: Container;
    beforeAll(async () => {
      c = await startContainer('a', unique('spool-a'), 'container-a');
    }, 120_000);

    it('runs as the image\'s non-root user, with tini as PID 1 and node under it', async () => {
      expect((await mustPodman(['inspect', '--format', '{{.Config.User}}', c.name])).trim()).toBe('node');
      // argv[0] from cmdline: Node 24 names its main thread "MainThread", so /proc/<pid>/status says that, not node.
      const script = 'for d in /proc/[0-9]*; do exe=$(tr "\\0" "\\n" < $d/cmdline | head -n1); [ -n "$exe" ] && awk -v exe="$exe" \'/^Pid:/ { p = $2 } /^PPid:/ { pp = $2 } /^Uid:/ { u = $2 } END { print exe, p, pp, u }\' $d/status; done 2>/dev/null; true';
      const table = (await mustPodman(['exec', c.name, 'sh', '-c', script])).trim().split('\n').map((l) => l.trim().split(' '));
      expect(table.find((p) => p[1] === '1')?.[0]).toBe('/usr/bin/tini');
      expect(table.filter((p) => p[0] === 'node' && p[2] === '1')).toHaveLength(1);
      for (const [proc, , , uid] of table) expect(`${proc} uid ${uid}`).toBe(`${proc} uid 1000`);
    });

    it('takes mail from swaks on its SMTP port and stores it in the bucket', async () => {
      const id = await swaks(c, 'from swaks', 'hello from the container test');
      const body = await stored(id, c);
      expect(body.startsWith('Return-Path: <sender@origin.example>\r\n')).toBe(true);
      expect(body).toContain('Subject: from swaks');
      expect(body).toContain('hello from the container test');
    });

    it('passes its HEALTHCHECK', async () => {
      const healthcheck = await mustPodman(['inspect', '--format', '{{json .Config.Healthcheck}}', c.name]);
      expect(healthcheck).toContain('/healthz');
      const r = await podman(['healthcheck', 'run', c.name]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    });

    it('/readyz says unready while Redis is down and ready again once it is back', async () => {
      expect(await readyz(c)).toMatchObject({ status: 200, body: { ready: true } });
      await redis.stop();
      const down = await waitFor('503 from /readyz', async () => {
        const r = await readyz(c);
        return r.status === 503 ? r : undefined;
      }, 30_000, 250);
      expect(down.body.checks?.redis).toMatch(/does not answer/);
      await redis.restart();
      await waitFor('200 from /readyz', async () => (await readyz(c)).status === 200, 30_000, 250);
    });

    it('drains on SIGTERM: a delivery in flight is finished, then exit 0 within the grace period', async () => {
      gate.hold();
      let stopping: ReturnType<typeof stopContainer> | undefined;
      let id = '';
      try {
        id = await swaks(c, 'in flight', 'delivered while the container stops');
        await waitFor('its PutObject held at the S3 relay', async () => gate.heldRequests().some((l) => l.startsWith(`PUT /${BUCKET}/in/${id}`)), 30_000, 50);
        stopping = stopContainer(c);
        await new Promise((r) => setTimeout(r, 3_000));
        // Still there, waiting for the upload ("stopping" is podman's state between the signal and the exit).
        expect(['running', 'stopping'], await c.logs()).toContain((await state(c.name)).Status);
      } finally {
        gate.release();
      }
      const { ms, exitCode } = await stopping!;
      log(`drained and stopped in ${(ms / 1000).toFixed(1)} s`);
      expect(exitCode).toBe(0);
      expect(ms).toBeLessThan(GRACE_S * 1000);
      expect(await stored(id, c)).toContain('delivered while the container stops');
      const logs = await c.logs();
      expect(logs).toContain('"msg":"stopped"');
      expect(logs).not.toContain('deliveries still running at shutdown');
    }, 120_000);
  });

  it('keeps mail accepted while S3 is unreachable on its spool volume, and a new container on that volume delivers it', async () => {
    await gate.refuse();
    const volume = unique('spool-b');
    const first = await startContainer('b1', volume, 'container-b');
    const id = await swaks(first, 'while S3 is away', 'accepted, spooled, delivered later');
    await waitFor('a failed delivery attempt', async () => {
      const metrics = await (await fetch(`http://127.0.0.1:${first.httpPort}/metrics`)).text();
      return /^mailroom_deliveries_total\{result="retry"\} [1-9]/m.test(metrics);
    }, 30_000, 250);
    expect(await stopContainer(first)).toMatchObject({ exitCode: 0 });
    await mustPodman(['rm', first.name]);
    expect(await listKeys(aws, BUCKET, 'in/')).not.toContain(`in/${id}`);

    await gate.open();
    const second = await startContainer('b2', volume, 'container-b');
    expect(await stored(id, second)).toContain('accepted, spooled, delivered later');
    expect(await stopContainer(second)).toMatchObject({ exitCode: 0 });
  }, 240_000);
});


/**
 * docker/compose.yml as the file says to bring it up, with Debian's podman-compose 1.0.3: its Redis (the redis:7
 * stand-in), the gateway built from docker/Dockerfile by compose, the compose network between them (Redis by its
 * service name), SMTP published on a loopback port (MAILROOM_SMTP_PUBLISH). Only this test's override is added: the
 * config file, and an S3 endpoint that nothing answers — moto listens on the host's loopback, which a bridge
 * network cannot reach, and delivery is tested above. podman-compose 1.0.3 ignores `depends_on` conditions and
 * `stop_grace_period` (docker compose honours both): the stop below passes the grace period itself.
 */
describe.skipIf(skip !== undefined)(`docker/compose.yml with podman-compose${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const project = `mailroom-it-${process.pid}`;
  let work: Awaited<ReturnType<typeof tempDir>>;
  let env: NodeJS.ProcessEnv;
  let smtpPort: number;
  const compose = (args: string[], timeoutMs = 300_000) => run('podman-compose', ['-p', project, '-f', join(ROOT, 'docker', 'compose.yml'), '-f', join(work.path, 'test-override.yml'), ...args], { env, timeoutMs });
  const container = (service: string) => `${project}_${service}_1`;

  beforeAll(async () => {
    bases ??= await standInBases();
    await redisStandIn(bases.debian);
    work = await tempDir('mailroom-compose-');
    smtpPort = await freePort();
    await writeFile(join(work.path, 'mailroom.json'), JSON.stringify({ region: REGION, accountId: ACCOUNT, ruleSetName: 'compose', rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: BUCKET } }], gateway: { hostname: 'mx.compose.test', smtp: { reverseDns: false } } }), { mode: 0o644 });
    await writeFile(
      join(work.path, 'test-override.yml'),
      ['services:', '  gateway:', '    environment:', '      AWS_ENDPOINT_URL: http://127.0.0.1:9', '    volumes:', `      - ${join(work.path, 'mailroom.json')}:/etc/mailroom/config.json:ro`, ''].join('\n'),
    );
    // podman-compose runs plain `podman`: this host's runtime and limits come from a containers.conf instead of flags.
    await writeFile(join(work.path, 'containers.conf'), '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n\n[engine]\nruntime = "runc"\n');
    // BUILDAH_FORMAT=docker: podman builds OCI images by default, and OCI image configs have no HEALTHCHECK.
    env = { ...process.env, CONTAINERS_CONF: join(work.path, 'containers.conf'), BUILDAH_FORMAT: 'docker', MAILROOM_SMTP_PUBLISH: `127.0.0.1:${smtpPort}`, AWS_REGION: REGION, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' };
    const started = Date.now();
    const up = await compose(['up', '-d'], 20 * 60_000);
    if (up.code !== 0) throw new Error(`podman-compose up failed (${up.code}):\n${up.stderr.slice(-4000)}\n${up.stdout.slice(-4000)}`);
    log(`podman-compose up (the gateway image built by compose) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    await waitForPort(smtpPort, 90_000).catch(async (err: Error) => {
      throw new Error(`${err.message}\n--- gateway ---\n${(await podman(['logs', container('gateway')])).stdout}`);
    });
  }, 30 * 60_000);

  afterAll(async () => {
    if (!work) return;
    await compose(['down', '-v', '-t', '0']);
    await podman(['network', 'rm', '-f', `${project}_default`]);
    await podman(['rmi', `${project}_gateway`]);
    await work.remove();
  }, 180_000);

  it('starts Redis with its health check passing and AOF on, on a named volume', async () => {
    const health = await podman(['healthcheck', 'run', container('redis')]);
    expect(health.code, health.stdout + health.stderr).toBe(0);
    expect(await mustPodman(['exec', container('redis'), 'redis-cli', 'config', 'get', 'appendonly'])).toMatch(/appendonly\s+yes/);
    expect(await mustPodman(['inspect', '--format', '{{range .Mounts}}{{.Name}} {{.Destination}};{{end}}', container('redis')])).toContain(`${project}_redis-data /data`);
  });

  it('takes mail on the published port, queued in the compose Redis it reaches by service name, and passes its HEALTHCHECK', async () => {
    const r = await run('swaks', ['--server', '127.0.0.1', '--port', String(smtpPort), '--from', 'sender@origin.example', '--to', 'user@example.com', '--body', 'through compose'], { timeoutMs: 60_000 });
    expect(r.stdout).toMatch(/<- +250 Ok [0-9a-v]{40}/);
    const health = await podman(['healthcheck', 'run', container('gateway')]);
    expect(health.code, health.stdout + health.stderr).toBe(0);
    const ready = await mustPodman(['exec', container('gateway'), 'node', '-e', "fetch('http://127.0.0.1:9464/readyz').then(async (r) => console.log(r.status, await r.text()))"]);
    const checks = (JSON.parse(ready.slice(ready.indexOf('{'))) as { checks: Record<string, string> }).checks;
    expect(checks).toMatchObject({ redis: 'ok', spool: 'ok' });
    expect(checks[`s3:${BUCKET}`]).not.toBe('ok'); // nothing answers the S3 endpoint: the mail waits in the spool volume
  });

  it('stops the gateway cleanly within its stop_grace_period (exit 0)', async () => {
    const stop = await compose(['stop', '-t', '70']);
    expect(stop.code, stop.stderr).toBe(0);
    expect((await state(container('gateway'))).ExitCode).toBe(0);
    expect((await podman(['logs', container('gateway')])).stdout).toContain('"msg":"stopped"');
  });
});
