// Threads: the caller's (main) thread. Hands write batches to the WAL worker through the
// database's write ring and resolves each write when the worker acknowledges it.
//
// Protocol (see shm/layout.ts for the memory, workers/wal/database.ts for the other side):
//   1. write() assigns the batch its sequence numbers and a ticket, encodes it straight into
//      the ring (no intermediate copy, no postMessage), publishes it and rings the doorbell.
//      A batch larger than a ring record goes as WriteFirst/Middle/Last fragments; a batch
//      that finds the ring full waits in a FIFO, so ring order always equals call order.
//   2. One acknowledgement loop per database parks (waitAsync, via shm/signals.ts) on AckedTickets.
//      When it moves, every pending write with a smaller ticket is settled in order.
//   3. Before settling, the loop checks MemtableGeneration: if the worker started a memtable
//      the caller's thread has not received yet, settling waits for that 'rotated' message,
//      so a resolved write is always readable by a get() issued right after it.
//   4. Failed is sticky: writes from FailedFromTicket on are rejected with LEVEL_IO_ERROR
//      (cause = the OS error), and so is every later write.
// Invariant: visibleSequence only grows, and only past writes that were acknowledged.

import { StemeError } from '../common/errors.js';
import { batchBytes, encodeBatch, type BatchOp } from '../log/batch.js';
import { Control, RingRecord } from '../shm/layout.js';
import { RingProducer, ringRecordPayloadMax } from '../shm/ring.js';
import { ControlBlock, counterAtOrAfter } from '../shm/signals.js';
import type { Runtime } from './runtime.js';

/** Upper bound on one waitAsync; a safety net that also notices a dead worker. */
const ACK_WAIT_TIMEOUT_MS = 1000;
const SPACE_WAIT_TIMEOUT_MS = 1000;

interface PendingWrite {
  ticket: number;
  lastSequence: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

interface QueuedWrite {
  /** A batch to place in the ring, or a request to rotate the memtable (db.flush()). */
  kind: 'batch' | 'rotate';
  bytes: Uint8Array;
  pending: PendingWrite;
}

export class WriteChannel {
  readonly producer: RingProducer;
  readonly control: ControlBlock;
  private readonly payloadMax: number;
  private nextTicket: number;
  private readonly inFlight: PendingWrite[] = [];
  private inFlightHead = 0;
  /** Writes waiting for ring space, oldest at queueHead (an index, since shift() on a long array is O(n)). */
  private queue: QueuedWrite[] = [];
  private queueHead = 0;
  private draining = false;
  private acking = false;
  private failure: Error | undefined;
  /** Sequence numbers handed out so far. */
  lastSequence: number;
  /** Highest sequence number every reader may see: all writes up to it are acknowledged. */
  visibleSequence: number;
  /** The newest memtable generation the caller's thread has received. */
  knownGeneration: number;

  constructor(
    ring: SharedArrayBuffer,
    control: SharedArrayBuffer,
    private readonly runtime: Runtime,
    lastSequence: number,
    generation: number,
  ) {
    this.producer = new RingProducer(ring);
    this.control = new ControlBlock(control);
    this.payloadMax = ringRecordPayloadMax(this.producer.capacity);
    this.nextTicket = this.control.load(Control.AckedTickets);
    this.lastSequence = lastSequence;
    this.visibleSequence = lastSequence;
    this.knownGeneration = generation;
  }

  get pendingCount(): number {
    return this.inFlight.length - this.inFlightHead + this.queue.length - this.queueHead;
  }

  /** Resolves once the batch is in the OS (and on the device when sync) and visible to reads. */
  write(ops: readonly BatchOp[], sync: boolean): Promise<void> {
    if (this.failure) return Promise.reject(this.writeError());
    const sequence = this.lastSequence + 1;
    this.lastSequence += ops.length;
    const bytes = batchBytes(ops);
    return new Promise<void>((resolve, reject) => {
      const pending: PendingWrite = { ticket: 0, lastSequence: this.lastSequence, resolve, reject };
      if (this.queue.length === this.queueHead && bytes <= this.payloadMax) {
        const at = this.producer.reserve(RingRecord.Write, bytes);
        if (at >= 0) {
          encodeBatch(this.producer.bytes, at, sequence, sync, ops);
          this.sent(pending);
          return;
        }
      }
      const buffer = new Uint8Array(bytes);
      encodeBatch(buffer, 0, sequence, sync, ops);
      this.queue.push({ kind: 'batch', bytes: buffer, pending });
      void this.drainQueue();
    });
  }

  /** Asks the WAL worker to make the active memtable immutable after every earlier write. */
  rotate(): Promise<void> {
    if (this.failure) return Promise.reject(this.writeError());
    return new Promise<void>((resolve, reject) => {
      const pending: PendingWrite = { ticket: 0, lastSequence: this.lastSequence, resolve, reject };
      if (this.queue.length === this.queueHead) {
        const at = this.producer.reserve(RingRecord.Rotate, 0);
        if (at >= 0) { this.sent(pending); return; }
      }
      this.queue.push({ kind: 'rotate', bytes: new Uint8Array(0), pending });
      void this.drainQueue();
    });
  }

  private sent(pending: PendingWrite): void {
    pending.ticket = this.nextTicket;
    this.nextTicket = (this.nextTicket + 1) | 0;
    // Publish and ring once per microtask turn, not per write: writes issued together (64
    // awaited puts resumed by one ack) reach the WAL worker as one wake-up and one group, and
    // the caller pays one futex wake instead of one per write.
    if (!this.publishQueued) {
      this.publishQueued = true;
      queueMicrotask(this.publishNow);
    }
    this.inFlight.push(pending);
    if (!this.acking) void this.ackLoop();
  }

  private publishQueued = false;
  private readonly publishNow = (): void => {
    this.publishQueued = false;
    this.producer.publish();
    this.runtime.doorbell.ring();
  };

  /** Moves queued writes into the ring as space frees up, fragmenting the large ones. */
  private async drainQueue(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.runtime.hold();
    try {
      while (this.queueHead < this.queue.length) {
        const { kind, bytes, pending } = this.queue[this.queueHead];
        if (this.failure) {
          this.queueHead++;
          pending.reject(this.writeError());
          continue;
        }
        if (kind === 'rotate') {
          if (!(await this.place(RingRecord.Rotate, bytes))) continue;
        } else if (bytes.length <= this.payloadMax) {
          if (!(await this.place(RingRecord.Write, bytes))) continue;
        } else {
          for (let at = 0; at < bytes.length; at += this.payloadMax) {
            const end = Math.min(bytes.length, at + this.payloadMax);
            const type = at === 0 ? RingRecord.WriteFirst : end === bytes.length ? RingRecord.WriteLast : RingRecord.WriteMiddle;
            while (!(await this.place(type, bytes.subarray(at, end)))) { /* waited for space */ }
            if (type !== RingRecord.WriteLast) { this.producer.publish(); this.runtime.doorbell.ring(); }
          }
        }
        this.queueHead++;
        this.sent(pending);
      }
      this.queue = [];
      this.queueHead = 0;
    } finally {
      this.draining = false;
      this.runtime.release();
    }
  }

  /** Copies one record into the ring, or waits for space and returns false. */
  private async place(type: RingRecord, payload: Uint8Array): Promise<boolean> {
    const at = this.producer.reserve(type, payload.length);
    if (at < 0) {
      await this.producer.waitForSpace(SPACE_WAIT_TIMEOUT_MS);
      return false;
    }
    this.producer.bytes.set(payload, at);
    return true;
  }

  private async ackLoop(): Promise<void> {
    this.acking = true;
    this.runtime.hold();
    try {
      while (this.inFlightHead < this.inFlight.length) {
        const acked = this.control.load(Control.AckedTickets);
        if (!this.settle(acked)) {
          await this.control.waitChange(Control.AckedTickets, acked, ACK_WAIT_TIMEOUT_MS);
          if (this.runtime.isDead) this.failAll(new StemeError('LEVEL_IO_ERROR', 'the WAL worker has stopped'));
        }
      }
      this.inFlight.length = 0;
      this.inFlightHead = 0;
    } finally {
      this.acking = false;
      this.runtime.release();
    }
  }

  /** Settles writes acknowledged up to `acked`. Returns true when it settled any. */
  private settle(acked: number): boolean {
    if (this.inFlightHead >= this.inFlight.length) return false;
    if (!counterAtOrAfter(acked - 1, this.inFlight[this.inFlightHead].ticket)) return false;
    if (this.control.load(Control.MemtableGeneration) !== this.knownGeneration) return false; // wait for 'rotated'
    const failed = this.control.load(Control.Failed) === 1;
    const failedFrom = this.control.load(Control.FailedFromTicket);
    if (failed && !this.failure) return false; // wait for the 'failed' message with the OS error
    let settled = false;
    while (this.inFlightHead < this.inFlight.length) {
      const p = this.inFlight[this.inFlightHead];
      if (!counterAtOrAfter(acked - 1, p.ticket)) break;
      this.inFlightHead++;
      settled = true;
      if (failed && counterAtOrAfter(p.ticket, failedFrom)) {
        p.reject(this.writeError());
      } else {
        if (p.lastSequence > this.visibleSequence) this.visibleSequence = p.lastSequence;
        p.resolve();
      }
    }
    if (this.inFlightHead > 1024 && this.inFlightHead * 2 > this.inFlight.length) {
      this.inFlight.splice(0, this.inFlightHead);
      this.inFlightHead = 0;
    }
    return settled;
  }

  walStats(): { bytesWritten: number; syncs: number; groups: number; memtableBuffersAllocated: number } {
    return {
      memtableBuffersAllocated: this.control.load(Control.MemtableBuffersAllocated),
      bytesWritten: this.control.loadWide(Control.WalBytesLow),
      syncs: this.control.load(Control.WalSyncs) >>> 0,
      groups: this.control.load(Control.WalGroups) >>> 0,
    };
  }

  /** Called when a 'rotated' message arrives: settling may continue. */
  generationArrived(generation: number): void {
    if (generation > this.knownGeneration) this.knownGeneration = generation;
    this.control.notify(Control.AckedTickets); // wakes the ack loop to re-check
    this.poke();
  }

  setFailure(error: Error): void {
    if (!this.failure) this.failure = error;
    this.poke();
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  private writeError(): Error {
    return new StemeError('LEVEL_IO_ERROR', 'the database stopped accepting writes after a failed WAL write or sync', { cause: (this.failure as { cause?: unknown })?.cause ?? this.failure });
  }

  private poke(): void {
    const acked = this.control.load(Control.AckedTickets);
    this.settle(acked);
  }

  private failAll(error: Error): void {
    this.setFailure(error);
    while (this.inFlightHead < this.inFlight.length) this.inFlight[this.inFlightHead++].reject(this.writeError());
    while (this.queueHead < this.queue.length) this.queue[this.queueHead++].pending.reject(this.writeError());
  }
}
