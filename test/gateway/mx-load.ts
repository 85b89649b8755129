import type { Transporter } from 'nodemailer';
import { MESSAGE_ID_RE } from './helpers.js';

export interface MxLoadOptions {
  /** Load ids [from, to): each message carries its id in Subject and X-Load-Id. */
  from: number;
  to: number;
  /** One transport per gateway (an MX host). */
  gateways: Array<() => Transporter>;
  /** Concurrent senders, spread over the gateways as their first choice. */
  senders: number;
  /** Called after every 250 with the load id, the message id the 250 named and how many were acknowledged so far. */
  onAck: (loadId: number, messageId: string, count: number) => void;
  /** Sends per message before the load fails (default 200). */
  maxAttempts?: number;
  retryDelayMs?: number;
}

/**
 * Sends a load as MTAs do to a domain with several MX hosts: a send that fails (a 4xx, a dropped connection) is
 * tried again shortly at the next gateway, until one says 250. Returns how many sends failed on the way.
 */
export async function mxLoad(opts: MxLoadOptions): Promise<{ failedSends: number }> {
  const { gateways, maxAttempts = 200, retryDelayMs = 50 } = opts;
  let next = opts.from;
  let count = 0;
  let failedSends = 0;
  const sender = async (home: number) => {
    for (;;) {
      const i = next++;
      if (i >= opts.to) return;
      const raw = `From: load@origin.example\r\nTo: user@example.com\r\nSubject: load ${i}\r\nX-Load-Id: ${i}\r\n\r\nmessage ${i}\r\n`;
      for (let attempt = 0; ; attempt++) {
        try {
          const info = await gateways[(home + attempt) % gateways.length]!().sendMail({ envelope: { from: 'load@origin.example', to: ['user@example.com'] }, raw });
          const m = MESSAGE_ID_RE.exec(String(info.response));
          if (!m) throw new Error(`unexpected reply ${info.response}`);
          opts.onAck(i, m[1]!, ++count);
          break;
        } catch (err) {
          failedSends++;
          if (attempt + 1 >= maxAttempts) throw new Error(`message ${i} never accepted: ${(err as Error).message}`);
          await new Promise((r) => setTimeout(r, retryDelayMs));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: opts.senders }, (_, k) => sender(k % gateways.length)));
  return { failedSends };
}
