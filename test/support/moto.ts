import { freePort } from './ports.js';
import { startProcess, waitForPort, type Started } from './process.js';

export interface Moto {
  endpoint: string;
  port: number;
  /** Env for child processes and SDK clients pointed at this moto. */
  env: Record<string, string>;
  stop: () => Promise<void>;
}

/**
 * Starts moto_server (an AWS API emulator) on a free loopback port. Sets nothing globally: callers pass `env` to
 * children, or call `useMotoEnv` in a test file to point this process's SDK clients at it.
 */
export async function startMoto(): Promise<Moto> {
  const port = await freePort();
  let proc: Started;
  try {
    proc = startProcess('moto_server', ['-H', '127.0.0.1', '-p', String(port)]);
    await waitForPort(port, 30_000, proc.child);
  } catch (err) {
    throw new Error(`could not start moto_server (is moto installed? pip install 'moto[server]'): ${(err as Error).message}`);
  }
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    port,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_REGION: 'us-east-1',
      AWS_DEFAULT_REGION: 'us-east-1',
    },
    stop: () => proc.stop(),
  };
}

/** Points this process's AWS SDK at moto; returns a function that restores the previous environment. */
export function useMotoEnv(moto: Moto): () => void {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(moto.env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  for (const k of ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL_KMS', 'AWS_ENDPOINT_URL_SNS', 'AWS_ENDPOINT_URL_SQS', 'AWS_PROFILE']) {
    saved[k] = process.env[k];
    delete process.env[k];
  }
  return () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}
