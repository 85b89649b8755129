import { Testing } from '../../../infra/framework.js';
import { MailroomStack } from '../../../infra/stack.js';
import type { PolicyDocument, PolicyStatement } from '../../../infra/policy.js';

export interface Synthesized {
  stack: MailroomStack;
  text: string;
  json: TfJson;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type TfJson = { resource: Record<string, Record<string, any>>; output: Record<string, { value: any }>; provider: { aws: any[] } };

/** Synthesizes one MailroomStack in-process (no cdktf-cli). */
export function synth(config: unknown, opts: { endpointUrl?: string; source?: string } = {}): Synthesized {
  const app = Testing.app();
  const stack = new MailroomStack(app, 'mailroom', { config, ...opts });
  const text = Testing.synth(stack);
  return { stack, text, json: JSON.parse(text) as TfJson };
}

/** All resources of a type as [logicalId, body]. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function all(json: TfJson, type: string): Array<[string, any]> {
  return Object.entries(json.resource[type] ?? {});
}

/** The single resource of a type matching a predicate; fails loudly otherwise. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function one(json: TfJson, type: string, pred: (r: any) => boolean = () => true): [string, any] {
  const found = all(json, type).filter(([, r]) => pred(r));
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}: ${found.map(([id]) => id).join(', ')}`);
  return found[0]!;
}

export function ref(type: string, id: string): string {
  return `${type}.${id}`;
}

export function policy(text: string): PolicyDocument {
  return JSON.parse(text) as PolicyDocument;
}

export function statement(doc: PolicyDocument, sid: string): PolicyStatement {
  const s = doc.Statement.find((x) => x.Sid === sid);
  if (!s) throw new Error(`no statement ${sid} in ${JSON.stringify(doc)}`);
  return s;
}

export function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}
