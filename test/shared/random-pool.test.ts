import { describe, expect, it } from 'vitest';
import { randomPool } from '../../shared/random-pool.js';

describe('randomPool', () => {
  it('hands out fresh values of the asked size across refills; each value is its own copy', () => {
    const next = randomPool(12, 4);
    const values = Array.from({ length: 1000 }, next);
    expect(values.every((v) => v.length === 12)).toBe(true);
    expect(new Set(values.map((v) => v.toString('hex'))).size).toBe(1000);
    // Writing to one value changes no other (not views of one pool).
    const a = next();
    const b = next();
    const before = b.toString('hex');
    a.fill(0);
    expect(b.toString('hex')).toBe(before);
  });
});
