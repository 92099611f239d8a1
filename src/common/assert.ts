// Threads: all. Assertions for programmer errors: a broken invariant is a bug, never an
// operating condition, so it throws a plain AssertionError that nothing should catch.

export class AssertionError extends Error {
  constructor(message: string) {
    super(`stemedb assertion failed: ${message}`);
    this.name = 'AssertionError';
  }
}

export function assert(condition: unknown, message = 'invariant violated'): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Expensive invariant checks run only when STEMEDB_PARANOID=1. */
export const paranoid: boolean = typeof process !== 'undefined' && process.env?.STEMEDB_PARANOID === '1';
