import type { DeliveryResources } from './delivery-resources.js';

/**
 * What `destroy` keeps (a synth note) or, with infra.allowMailDestroy, what it deletes (a warning). The guards
 * themselves are the prevent_destroy flags DeliveryResources sets on created buckets and mail keys.
 */
export function destroyGuardMessages(delivery: DeliveryResources, bucketSettings: Record<string, { forceDestroy?: boolean | undefined }>): { notes: string[]; warnings: string[] } {
  const notes: string[] = [];
  const warnings: string[] = [];
  const createdBuckets = [...delivery.buckets.values()].filter((b) => b.bucket).map((b) => b.name);
  const mailKeys = delivery.mailKeyNames.map((n) => `"${n}"`);
  const guarded = [
    ...(createdBuckets.length > 0 ? [`bucket${createdBuckets.length === 1 ? '' : 's'} ${createdBuckets.join(', ')}`] : []),
    ...(mailKeys.length > 0 ? [`KMS key${mailKeys.length === 1 ? '' : 's'} ${mailKeys.join(', ')} (infra.createKmsKeys)`] : []),
  ].join(' and ');
  if (guarded && delivery.keepMail) {
    notes.push(
      `destroy keeps the mail: ${guarded} have prevent_destroy, so \`destroy\` stops with Terraform's "Instance cannot be destroyed" before it changes anything, and stored mail stays readable. ` +
        'To delete them and the mail in them, set infra.allowMailDestroy to true (and forceDestroy on each bucket that still holds mail), run `deploy`, then `destroy`.',
    );
  } else if (guarded) {
    warnings.push(
      `infra.allowMailDestroy is true: \`destroy\` deletes ${guarded}. Deleted keys are scheduled for deletion; once the deletion window ends, mail encrypted under them can never be read again. ` +
        'S3 refuses to delete a bucket that still holds mail unless its forceDestroy is true (set it, then `deploy` once, before `destroy`); when it refuses, Terraform has already removed the bucket\'s policy, public access block, encryption and lifecycle settings, but the keys of its mail are kept (they are destroyed only after their bucket).',
    );
  }
  for (const [name, b] of Object.entries(bucketSettings)) {
    if (b.forceDestroy && delivery.keepMail && delivery.buckets.get(name)?.bucket) {
      warnings.push(`infra.buckets.${name}.forceDestroy has no effect while infra.allowMailDestroy is false: \`destroy\` keeps the bucket and its mail.`);
    }
  }
  return { notes, warnings };
}
