/** The example's synthesized Terraform JSON, committed: any change to what `cdktf deploy` would do shows in review. */
import { describe, expect, it } from 'vitest';
import { synth } from './support/synth.js';

describe('examples/infra.json synthesized', () => {
  it('matches the committed snapshot', async () => {
    const { text } = synth('examples/infra.json');
    await expect(text + '\n').toMatchFileSnapshot('./__snapshots__/infra.example.tf.json');
  });
});
