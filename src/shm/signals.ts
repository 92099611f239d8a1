// Threads: all. Wrappers for every Atomics wait/notify StemeDB does outside the ring, so raw
// Atomics stay inside src/shm.
//
// The main thread only ever uses waitAsync; Atomics.wait is reserved for worker threads
// (parkWorker). Spinning is avoided: on 2 cores a spinning waiter steals the CPU from the
// thread it waits for (shared/BASELINES.md measured both latency and throughput worse).

import { Control, DOORBELL, DOORBELL_INT32S, WORKER_PARKED } from './layout.js';

export class Doorbell {
  readonly words: Int32Array;
  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(DOORBELL_INT32S * 4)) {
    this.words = new Int32Array(buffer);
  }

  /** Any thread: tell the WAL worker there is work (ring records or a control message). */
  ring(): void {
    // Atomics.add: makes the change visible to a worker that is about to park on the old value.
    Atomics.add(this.words, DOORBELL, 1);
    // Notify only a parked worker: Atomics.notify takes a lock even with nobody waiting.
    if (Atomics.load(this.words, WORKER_PARKED) === 1) Atomics.notify(this.words, DOORBELL);
  }

  /** WAL worker: the value to pass to park() after checking for work. */
  snapshot(): number {
    return Atomics.load(this.words, DOORBELL);
  }

  /** WAL worker only (it may block): sleeps until ring() or timeout, unless ring() already ran since seen. */
  park(seen: number, timeoutMs: number): void {
    Atomics.store(this.words, WORKER_PARKED, 1);
    Atomics.wait(this.words, DOORBELL, seen, timeoutMs);
    Atomics.store(this.words, WORKER_PARKED, 0);
  }
}

export class ControlBlock {
  readonly words: Int32Array;
  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(Control.Int32s * 4)) {
    this.words = new Int32Array(buffer);
  }
  load(slot: Control): number {
    return Atomics.load(this.words, slot);
  }
  store(slot: Control, value: number): void {
    Atomics.store(this.words, slot, value | 0);
  }
  add(slot: Control, delta: number): number {
    return Atomics.add(this.words, slot, delta);
  }
  notify(slot: Control): void {
    Atomics.notify(this.words, slot);
  }
  /** Adds to a 64-bit counter kept as two uint32 halves (lowSlot, lowSlot + 1). Single writer. */
  addWide(lowSlot: Control, delta: number): void {
    const total = this.loadWide(lowSlot) + delta;
    Atomics.store(this.words, lowSlot + 1, Math.floor(total / 0x100000000) | 0);
    Atomics.store(this.words, lowSlot, total % 0x100000000 | 0);
  }
  loadWide(lowSlot: Control): number {
    return (Atomics.load(this.words, lowSlot + 1) >>> 0) * 0x100000000 + (Atomics.load(this.words, lowSlot) >>> 0);
  }
  /** Main thread: resolves when slot changes from `seen` or after timeoutMs. Never blocks. */
  async waitChange(slot: Control, seen: number, timeoutMs: number): Promise<void> {
    const result = Atomics.waitAsync(this.words, slot, seen | 0, timeoutMs);
    if (result.async) await result.value;
  }
}

/** Wrapping comparison of 32-bit counters: true when a is at or after b. */
export function counterAtOrAfter(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

/** Worker threads only: blocks the calling thread for ms (the compaction throttle test hook). */
export function sleepWorker(ms: number): void {
  // Atomics.wait on a private cell nobody notifies: a sleep that burns no CPU.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
