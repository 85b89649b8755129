import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Moto } from '../../support/moto.js';
import { freePort } from '../../support/ports.js';
import { startProcess, waitForPort } from '../../support/process.js';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * moto_server with the SES receipt-rule gaps of moto 5.2.1 patched (see moto_ses_patched.py): the IamRoleArn
 * check, alias/aws/ses in KmsKeyArn, and DeleteReceiptRule. Same interface as startMoto() in test/support/moto.ts.
 */
export async function startMotoWithSesPatches(): Promise<Moto & { output: () => string }> {
  const port = await freePort();
  const proc = startProcess(process.env.MAILROOM_PYTHON ?? 'python3', [join(here, 'moto_ses_patched.py'), '-H', '127.0.0.1', '-p', String(port)]);
  try {
    await waitForPort(port, 30_000, proc.child);
  } catch (err) {
    throw new Error(`could not start patched moto_server (pip install 'moto[server]'): ${(err as Error).message}\n${proc.output()}`);
  }
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    port,
    env: { AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: 'us-east-1' },
    stop: () => proc.stop(),
    output: () => proc.output(),
  };
}
