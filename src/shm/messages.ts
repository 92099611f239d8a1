// Threads: all. THE one definition of every message shape that crosses a thread boundary.
// Per-write traffic never uses messages: it goes through the write ring (ring.ts). Messages
// carry only rare control events: open, close, MANIFEST edits, memtable rotation, failures.

import type { WireError } from '../common/errors.js';
import type { VersionEdit, VersionState } from '../log/manifest.js';

export interface DatabaseOptions {
  createIfMissing: boolean;
  errorIfExists: boolean;
  writeBufferSize: number;
  immutableMemtablesMax: number;
  walPreallocateBytes: number;
}

export interface MemtableHandle {
  generation: number;
  buffer: SharedArrayBuffer;
  /** The oldest WAL segment holding data of this memtable. */
  firstSegment: number;
  immutable: boolean;
}

/** Caller's thread → WAL worker, through a MessagePort the worker polls synchronously. */
export type WalRequest =
  | { type: 'open'; requestId: number; dbId: number; location: string; options: DatabaseOptions; ring: SharedArrayBuffer; control: SharedArrayBuffer; ownerThreadId: number }
  | { type: 'edit'; requestId: number; dbId: number; edit: VersionEdit }
  | { type: 'close'; requestId: number; dbId: number }
  | { type: 'shutdown' };

/** WAL worker → caller's thread, through the worker's parent port. */
export type WalReply =
  | { type: 'opened'; requestId: number; dbId: number; state: VersionState; memtables: MemtableHandle[]; lastSequence: number; recoveredBatches: number }
  | { type: 'done'; requestId: number }
  | { type: 'error'; requestId: number; error: WireError }
  | { type: 'rotated'; dbId: number; memtable: MemtableHandle }
  | { type: 'failed'; dbId: number; error: WireError };

/** Caller's thread → flush/compaction pool (piscina task). */
export interface FlushTask {
  type: 'flush';
  location: string;
  fileNumber: number;
  memtable: SharedArrayBuffer;
  blockSize: number;
  compression: boolean;
}

export interface FlushResult {
  fileNumber: number;
  fileSize: number;
  entryCount: number;
  smallestKey: Uint8Array;
  largestKey: Uint8Array;
  smallestSequence: number;
  largestSequence: number;
}
