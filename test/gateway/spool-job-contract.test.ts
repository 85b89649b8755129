/** The contract between spool and queue: what a spool file holds, the jobs made from it, and how a delivery reads them. */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { newMessageId } from '../../shared/ses/message-id.js';
import { cappedExponentialBackoff, deliveryBatch, deliveryJobId, isSpoolFileJobId, spoolFileJobs, type DeliveryJobData } from '../../gateway/queue/jobs.js';
import type { SpoolRecord } from '../../gateway/spool/format.js';
import { SpoolMissingError } from '../../gateway/spool/reader.js';
import { deliver } from '../../gateway/worker/deliver.js';
import { Slots } from '../../gateway/worker/slots.js';
import { tempDir } from '../support/files.js';
import { spooledMessage, TestSpool } from '../support/spool.js';

describe('spool and job contract', () => {
  const record = (id: string): SpoolRecord => ({
    v: 1,
    envelope: { messageId: id, receivedAt: new Date().toISOString(), mailFrom: '', helo: 'h.example', clientIp: '127.0.0.1', tls: false, byHost: 'mx.example', accountId: '123456789012', region: 'us-east-1' },
    rules: [{ name: 'r.1', recipients: ['a@example.com'], scanEnabled: false, s3Action: { bucketName: 'bucket-x', objectKeyPrefix: '' } }],
  });

  it('writes record + DATA, reads them back, refuses oversize without keeping it, removes', async () => {
    const dir = await tempDir();
    const spool = new TestSpool(dir.path);
    try {
      await spool.init({ clearIncoming: true });
      const id = newMessageId();
      const data = Buffer.from('Subject: x\r\n\r\nbody with "quotes" and \n bare LF\r\n');
      const r = await spool.receive(record(id), Readable.from([data.subarray(0, 5), data.subarray(5)]));
      expect(r).toMatchObject({ ok: true, dataLength: data.length, file: { id, entries: [{ at: 0 }] } });
      const msg = await spooledMessage(spool, id);
      expect(msg.record.envelope.messageId).toBe(id);
      expect(msg.record.rules).toEqual(record(id).rules);
      expect(msg.dataLength).toBe(data.length);
      const chunks: Buffer[] = [];
      for await (const c of spool.dataStream(msg)) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
      expect(await spool.list()).toEqual([id]);

      const big = newMessageId();
      expect((await spool.receive(record(big), Readable.from([Buffer.alloc(10), Buffer.alloc(10)]), 15)).ok).toBe(false);
      expect(await spool.list()).toEqual([id]);

      expect(await spool.remove(id)).toBe(true);
      await expect(spooledMessage(spool, id)).rejects.toBeInstanceOf(SpoolMissingError);
    } finally {
      await spool.close();
      await dir.remove();
    }
  });

  it('one flow per spool file: parent = file id, one delivery job per rule listing its messages and their places, colon-free deterministic ids', () => {
    const [a, b] = [newMessageId(), newMessageId()];
    const second = record(b);
    second.rules.push({ name: 'r.2', recipients: ['b@example.com'], scanEnabled: true, s3Action: { bucketName: 'bucket-y', objectKeyPrefix: 'y/' } });
    const flow = spoolFileJobs({ id: a, entries: [{ record: record(a), at: 0 }, { record: second, at: 812 }] }, { attempts: 5, backoffBaseMs: 100, keepCompleted: 10 });
    expect(flow.opts?.jobId).toBe(a);
    expect(flow.data).toEqual({ v: 1, spoolFile: `${a}.msg`, messageIds: [a, b] });
    expect(flow.children?.map((c) => c.opts?.jobId)).toEqual([deliveryJobId(a, 'r.1'), deliveryJobId(a, 'r.2')]);
    const [r1, r2] = flow.children!.map((c) => c.data as DeliveryJobData);
    expect(r1).toEqual({ v: 2, spoolFile: `${a}.msg`, rule: { name: 'r.1', scanEnabled: false, s3Action: { bucketName: 'bucket-x', objectKeyPrefix: '' } }, messages: [{ at: 0, envelope: record(a).envelope, recipients: ['a@example.com'] }, { at: 812, envelope: second.envelope, recipients: ['a@example.com'] }].map((m) => ({ ...m, envelope: { ...m.envelope, receivedAt: expect.any(String) } })) });
    expect(r2!.messages.map((m) => [m.at, m.envelope.messageId, m.recipients])).toEqual([[812, b, ['b@example.com']]]);
    expect(deliveryJobId(a, 'r.1')).not.toContain(':');
    expect(JSON.stringify(flow)).not.toContain('Subject'); // jobs never carry the body
  });

  it('a file whose messages all matched one rule gets one delivery job, named by the file id, that releases the file itself', () => {
    const [a, b] = [newMessageId(), newMessageId()];
    const job = spoolFileJobs({ id: a, entries: [{ record: record(a), at: 0, length: 700 }, { record: record(b), at: 812 }] }, { attempts: 5, backoffBaseMs: 100, keepCompleted: 10 });
    expect(job.children).toBeUndefined();
    expect([job.queueName, job.name, job.opts?.jobId, job.opts?.attempts]).toEqual(['deliveries', 'deliver', a, 5]);
    const data = job.data as DeliveryJobData;
    expect(data.release).toBe(true);
    expect(data.rule.name).toBe('r.1');
    expect(data.messages.map((m) => [m.at, m.length, m.envelope.messageId])).toEqual([[0, 700, a], [812, undefined, b]]);
    expect(isSpoolFileJobId(job.opts!.jobId!)).toBe(true);
    expect(isSpoolFileJobId(deliveryJobId(a, 'r.1'))).toBe(false);
  });

  it('a lone job whose spool file is gone on a later run counts its messages done (an earlier run released them); on its first run, or as a flow child, it fails them for good', async () => {
    const dir = await tempDir();
    const spool = new TestSpool(dir.path);
    try {
      await spool.init({ clearIncoming: true });
      const [a, b] = [newMessageId(), newMessageId()];
      const job = spoolFileJobs({ id: a, entries: [{ record: record(a), at: 0 }, { record: record(b), at: 812 }] }, { attempts: 5, backoffBaseMs: 100, keepCompleted: 10 });
      // No AWS is reached: the file is missing before anything is read.
      const deps = { spool: spool.reader, aws: undefined as never, tuning: { multipartThresholdBytes: 1, partSizeBytes: 1, queueSize: 1 }, slots: new Slots(2), ranBefore: true };
      const lone = await deliver(job.data as DeliveryJobData, deps);
      expect(lone.failed).toEqual([]);
      expect(lone.foundReleased).toEqual([a, b]);
      expect(lone.done.sort()).toEqual([a, b].sort());
      // First run: nothing can have released the file — it never reached the disk (or was deleted). Never "done".
      const first = await deliver(job.data as DeliveryJobData, { ...deps, ranBefore: false });
      expect(first.foundReleased).toEqual([]);
      expect(first.done).toEqual([]);
      expect(first.failed.map((f) => [f.messageId, f.unrecoverable, f.error instanceof SpoolMissingError])).toEqual([[a, true, true], [b, true, true]]);
      expect(first.failed[0]!.error.message).toMatch(/no earlier run of this job released it: the machine stopped before the file reached the disk/);
      const { release: _, ...child } = job.data as DeliveryJobData;
      const orphan = await deliver(child, deps);
      expect(orphan.foundReleased).toEqual([]);
      expect(orphan.failed.map((f) => [f.messageId, f.unrecoverable, f.error instanceof SpoolMissingError])).toEqual([[a, true, true], [b, true, true]]);
    } finally {
      await spool.close();
      await dir.remove();
    }
  });

  it('a check on the first bytes refuses DATA like an oversized message: nothing kept, the reason handed back', async () => {
    const dir = await tempDir();
    const spool = new TestSpool(dir.path);
    try {
      await spool.init({ clearIncoming: true });
      const checked: string[] = [];
      const check = (head: Buffer) => (checked.push(head.toString('latin1')), head[0] === 0x20 ? 'refused' : undefined);
      const stream = (...parts: string[]) => Readable.from(parts.map((p) => Buffer.from(p, 'latin1')));
      const r = await spool.writer.receive(record(newMessageId()), stream('', ' PASS\r\n', 'Subject: x\r\n\r\nbody'), Infinity, check);
      expect(r).toEqual({ ok: false, reason: 'refused', why: 'refused', dataLength: 25 });
      expect(await spool.list()).toEqual([]);
      const ok = newMessageId();
      const accepted = await spool.writer.receive(record(ok), stream('Subject: x\r\n', ' folded\r\n\r\nbody'), Infinity, check);
      expect(accepted.ok).toBe(true);
      if (accepted.ok) await accepted.durable;
      // Judged once, on the first bytes only: a folded line further down is the sender's own header.
      expect(checked).toEqual([' PASS\r\n', 'Subject: x\r\n']);
      expect(await spool.list()).toEqual([ok]);
    } finally {
      await spool.close();
      await dir.remove();
    }
  });

  it('a spooled message whose DATA would continue the header block (spooled before the SMTP front refused it) fails for good, before anything is stored', async () => {
    const dir = await tempDir();
    const spool = new TestSpool(dir.path);
    try {
      await spool.init({ clearIncoming: true });
      const id = newMessageId();
      const received = await spool.receive(record(id), Readable.from([Buffer.from(' PASS\r\nSubject: x\r\n\r\nbody')]));
      expect(received.ok).toBe(true);
      const job = spoolFileJobs({ id, entries: [{ record: record(id), at: 0 }] }, { attempts: 5, backoffBaseMs: 100, keepCompleted: 10 });
      // No AWS client: the refusal must come before any S3 request.
      const out = await deliver(job.data as DeliveryJobData, { spool: spool.reader, aws: undefined as never, tuning: { multipartThresholdBytes: 1, partSizeBytes: 1, queueSize: 1 }, slots: new Slots(1), ranBefore: false });
      expect(out.failed.map((f) => [f.messageId, f.unrecoverable, f.error.name])).toEqual([[id, true, 'HeaderInjectionError']]);
      expect(out.stored).toEqual([]);
    } finally {
      await spool.close();
      await dir.remove();
    }
  });

  it('a job of the previous release (one message, one rule) reads as a batch of one', () => {
    const id = newMessageId();
    const rec = record(id);
    expect(deliveryBatch({ v: 1, spoolFile: `${id}.msg`, envelope: rec.envelope, rule: rec.rules[0]!, stored: true })).toEqual({
      v: 2,
      spoolFile: `${id}.msg`,
      rule: { name: 'r.1', scanEnabled: false, s3Action: { bucketName: 'bucket-x', objectKeyPrefix: '' } },
      messages: [{ at: 0, envelope: rec.envelope, recipients: ['a@example.com'] }],
      stored: [id],
    });
  });

  it('backoff doubles, is capped, and jitters', () => {
    const f = cappedExponentialBackoff(1000, 5000);
    expect(f(1)).toBeGreaterThanOrEqual(800);
    expect(f(1)).toBeLessThanOrEqual(1200);
    expect(f(3)).toBeGreaterThanOrEqual(3200);
    expect(f(20)).toBeLessThanOrEqual(6000);
  });
});
