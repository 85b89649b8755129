import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { ConfigError } from '../../shared/config/index.js';
import type { GatewaySettings } from '../../shared/config/gateway.js';
import type { Logger } from '../runtime/log.js';

export interface TlsPair {
  key: Buffer;
  cert: Buffer;
}

type TlsSettings = NonNullable<GatewaySettings['smtp']['tls']>;

function readTlsFile(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError(path, [{ path: `gateway.smtp.tls.${field}`, message: `cannot read "${path}" (${code})`, fix: 'give the path of a PEM file the gateway can read' }]);
  }
}

/**
 * The SMTP listeners' certificate and key: read at start (a file that cannot be read is a config error naming its
 * field), and read again on SIGHUP or, with `watch`, when their directories change. Sessions that start TLS after a
 * reload get the new pair; open ones keep theirs.
 */
export class TlsCertificate {
  private current: TlsPair;
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly tls: TlsSettings,
    private readonly log: Logger,
  ) {
    this.current = { key: readTlsFile(tls.keyFile, 'keyFile'), cert: readTlsFile(tls.certFile, 'certFile') };
  }

  get pair(): TlsPair {
    return this.current;
  }

  /**
   * Re-reads the pair; true when it changed (then `apply` got it). A pair that does not load (a half-written
   * renewal, a key not matching) keeps the previous one.
   */
  reload(reason: string, apply: (pair: TlsPair) => void): boolean {
    let pair: TlsPair;
    try {
      pair = { key: readFileSync(this.tls.keyFile), cert: readFileSync(this.tls.certFile) };
      createSecureContext(pair);
    } catch (err) {
      this.log.error({ reason, err: (err as Error).message }, 'TLS certificate reload failed; keeping the previous certificate');
      return false;
    }
    if (pair.key.equals(this.current.key) && pair.cert.equals(this.current.cert)) return false;
    apply(pair);
    this.current = pair;
    this.log.info({ reason }, 'TLS certificate reloaded');
    return true;
  }

  /** Watches the directories (renewals replace files by rename or symlink swap, which a file watch would miss). */
  watch(apply: (pair: TlsPair) => void): void {
    if (!this.tls.watch) return;
    for (const dir of new Set([dirname(resolve(this.tls.certFile)), dirname(resolve(this.tls.keyFile))])) {
      try {
        const w = watch(dir, () => {
          // Cert and key are written one after the other: wait for both.
          clearTimeout(this.timer);
          this.timer = setTimeout(() => this.reload('file change', apply), 250).unref();
        });
        w.on('error', (err) => this.log.warn({ dir, err: err.message }, 'cannot watch TLS files; reload with SIGHUP'));
        w.unref();
        this.watchers.push(w);
      } catch (err) {
        this.log.warn({ dir, err: (err as Error).message }, 'cannot watch TLS files; reload with SIGHUP');
      }
    }
  }

  close(): void {
    clearTimeout(this.timer);
    for (const w of this.watchers.splice(0)) w.close();
  }
}
