// Threads: caller's thread (database iterators), pool workers (compaction).
//
// Merges child iterators, each sorted by internal key, into one sorted stream. It does no
// duplicate suppression and no snapshot filtering: the layer above decides which versions of
// a user key are visible. It runs in one direction, fixed at construction, because
// abstract-level iterators never change direction; this keeps it free of LevelDB's
// direction-switch logic. Children sit in a binary heap keyed on their current entry.

import type { InternalIterator } from './iterator.js';
import { compareInternalKeys } from './keys.js';

export class MergingIterator {
  /** Children that are valid, arranged as a binary heap on their current keys (min-heap forward, max-heap reverse). */
  private heap: InternalIterator[] = [];

  constructor(private readonly children: InternalIterator[], readonly reverse: boolean) {}

  valid(): boolean {
    return this.heap.length > 0;
  }

  /** Forward: the smallest entry. Reverse: the largest. */
  seekToStart(): void {
    for (const c of this.children) {
      if (this.reverse) c.seekToLast();
      else c.seekToFirst();
    }
    this.rebuild();
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
    this.rebuild();
  }

  advance(): void {
    const top = this.heap[0];
    if (this.reverse) top.prev();
    else top.next();
    if (top.valid()) {
      this.siftDown(0);
    } else {
      const last = this.heap.pop()!;
      if (this.heap.length > 0) {
        this.heap[0] = last;
        this.siftDown(0);
      }
    }
  }

  key(): Uint8Array {
    return this.heap[0].key();
  }

  value(): Uint8Array {
    return this.heap[0].value();
  }

  close(): void {
    for (const c of this.children) c.close();
    this.heap = [];
  }

  /** True when a should come out before b. */
  private before(a: InternalIterator, b: InternalIterator): boolean {
    const c = compareInternalKeys(a.key(), b.key());
    return this.reverse ? c > 0 : c < 0;
  }

  private rebuild(): void {
    this.heap = this.children.filter((c) => c.valid());
    for (let i = (this.heap.length >>> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const item = heap[i];
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.before(heap[right], heap[left]) ? right : left;
      if (!this.before(heap[child], item)) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = item;
  }
}
