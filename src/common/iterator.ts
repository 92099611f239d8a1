// Threads: all. The internal iterator contract shared by memtables, SST tables and the
// merging iterator. Keys are internal keys (see keys.ts): user key + 8-byte trailer.
//
// REQUIRES: key() and value() are called only while valid(). The returned arrays stay
// unchanged until the iterator moves; callers that keep them longer must copy.

export interface InternalIterator {
  valid(): boolean;
  seekToFirst(): void;
  seekToLast(): void;
  /** Positions at the first entry whose internal key is >= target. */
  seek(target: Uint8Array): void;
  next(): void;
  prev(): void;
  key(): Uint8Array;
  value(): Uint8Array;
  /** Releases resources (file references); the iterator is unusable afterwards. */
  close(): void;
}

export interface LookupResult {
  kind: number;
  sequence: number;
  value: Uint8Array;
}
