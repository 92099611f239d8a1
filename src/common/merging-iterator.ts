// Threads: caller's thread (database iterators), pool workers (compaction).
//
// Merges child iterators, each sorted by internal key, into one sorted stream. It does no
// duplicate suppression and no snapshot filtering: the layer above decides which versions of
// a user key are visible. It runs in one direction, fixed at construction, because
// abstract-level iterators never change direction; this keeps it free of LevelDB's
// direction-switch logic. With the handful of children an LSM has (memtables, L0 files, one
// per deeper level) a linear scan for the minimum beats a heap.

import type { InternalIterator } from './iterator.js';
import { compareInternalKeys } from './keys.js';

export class MergingIterator {
  private current: InternalIterator | undefined;

  constructor(private readonly children: InternalIterator[], readonly reverse: boolean) {}

  valid(): boolean {
    return this.current !== undefined;
  }

  /** Forward: the smallest entry. Reverse: the largest. */
  seekToStart(): void {
    for (const c of this.children) {
      if (this.reverse) c.seekToLast();
      else c.seekToFirst();
    }
    this.pick();
  }

  /** Forward: first entry >= target. Reverse: last entry <= target. */
  seek(target: Uint8Array): void {
    for (const c of this.children) {
      c.seek(target);
      if (this.reverse) {
        if (!c.valid()) c.seekToLast();
        else if (compareInternalKeys(c.key(), target) > 0) c.prev();
      }
    }
    this.pick();
  }

  advance(): void {
    const c = this.current!;
    if (this.reverse) c.prev();
    else c.next();
    this.pick();
  }

  key(): Uint8Array {
    return this.current!.key();
  }

  value(): Uint8Array {
    return this.current!.value();
  }

  close(): void {
    for (const c of this.children) c.close();
    this.current = undefined;
  }

  private pick(): void {
    let best: InternalIterator | undefined;
    for (const c of this.children) {
      if (!c.valid()) continue;
      if (!best) { best = c; continue; }
      const cmp = compareInternalKeys(c.key(), best.key());
      if (this.reverse ? cmp > 0 : cmp < 0) best = c;
    }
    this.current = best;
  }
}
