// Threads: the caller's (main) thread. The runtime every open database in this thread shares:
// one WAL worker and one piscina pool for flushes (and later compactions).
//
// It starts on the first open and lingers for RUNTIME_LINGER_MS after the last close, so a
// program (or a test suite) that opens and closes thousands of databases in a row pays for
// thread start-up once. While nothing is pending, every thread is unref'd: an idle runtime
// never keeps the process alive. While requests or writes are pending, the WAL worker is
// ref'd, because a pending waitAsync alone does not keep Node's event loop alive.

import * as os from 'node:os';
import { MessageChannel, Worker, threadId, type MessagePort, type WorkerOptions } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { errorFromWire, StemeError } from '../common/errors.js';
import type { FlushResult, FlushTask, CompactionTask, ToolTask, WalReply, WalRequest } from '../shm/messages.js';
import { Doorbell } from '../shm/signals.js';

const RUNTIME_LINGER_MS = 2000;
const WAL_WORKER_URL = new URL('../workers/wal-worker.js', import.meta.url);
const MAINTENANCE_WORKER_URL = new URL('../workers/maintenance-worker.js', import.meta.url);

/**
 * execArgv for our workers. Left alone (undefined), a worker inherits the process's flags, and
 * Node accepts that even for V8 and per-process flags (--expose-gc, --max-old-space-size).
 * An explicit list is validated, and those flags make it throw (nodejs/node#41103). So the
 * list is explicit only when a flag must go: `--input-type` (with `-e`) makes a worker fail to
 * start. Flags Node then rejects are named in its error and dropped (startWorker).
 */
function workerExecArgv(): string[] | undefined {
  const kept = process.execArgv.filter((a) => !a.startsWith('--input-type'));
  return kept.length === process.execArgv.length ? undefined : kept;
}

/** The flag names an ERR_WORKER_INVALID_EXEC_ARGV error lists, normalized (no value, '-' for '_'). */
function rejectedFlags(e: unknown): Set<string> | undefined {
  if ((e as NodeJS.ErrnoException)?.code !== 'ERR_WORKER_INVALID_EXEC_ARGV') return undefined;
  const list = String((e as Error).message).split(': ').slice(1).join(': ');
  return new Set(list.split(', ').map(flagName));
}

function flagName(arg: string): string {
  return arg.split('=')[0].replace(/_/g, '-');
}

/** new Worker(url, options with execArgv), dropping flags Node refuses in an explicit execArgv. */
function startWorker(url: URL, options: WorkerOptions): { worker: Worker; execArgv: string[] | undefined } {
  let execArgv = workerExecArgv();
  try {
    return { worker: new Worker(url, { ...options, execArgv }), execArgv };
  } catch (e) {
    const rejected = rejectedFlags(e);
    if (rejected === undefined || execArgv === undefined) throw e;
    execArgv = execArgv.filter((a) => !rejected.has(flagName(a)));
    return { worker: new Worker(url, { ...options, execArgv }), execArgv };
  }
}

export interface RuntimeClient {
  onRotated(reply: Extract<WalReply, { type: 'rotated' }>): void;
  onFailed(reply: Extract<WalReply, { type: 'failed' }>): void;
}

type RequestBody = WalRequest extends infer R ? (R extends { requestId: number } ? Omit<R, 'requestId'> : never) : never;

export class Runtime {
  readonly doorbell = new Doorbell();
  readonly ownerThreadId = threadId;
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly pool: Piscina;
  private readonly clients = new Map<number, RuntimeClient>();
  private readonly requests = new Map<number, { resolve: (r: WalReply) => void; reject: (e: Error) => void }>();
  private nextRequestId = 1;
  private nextDbId = 1;
  private holds = 0;
  private users = 0;
  private lingerTimer: NodeJS.Timeout | undefined;
  private dead: Error | undefined;

  constructor(readonly maintenanceThreads: number) {
    const channel = new MessageChannel();
    this.port = channel.port1;
    const { worker, execArgv } = startWorker(WAL_WORKER_URL, {
      workerData: { doorbell: this.doorbell.buffer, port: channel.port2 },
      transferList: [channel.port2],
      name: 'stemedb-wal',
    });
    this.worker = worker;
    this.worker.on('message', (reply: WalReply) => this.onReply(reply));
    this.worker.on('error', (e) => this.onDeath(e));
    this.worker.on('exit', (code) => { if (code !== 0 || this.users > 0) this.onDeath(new Error(`WAL worker exited with code ${code}`)); });
    this.worker.unref();
    this.port.unref();
    this.pool = new Piscina({
      filename: MAINTENANCE_WORKER_URL.href,
      minThreads: 0,
      maxThreads: maintenanceThreads,
      idleTimeout: 5000,
      maxQueue: 'auto',
      execArgv, // what the WAL worker was started with
    });
  }

  newDbId(): number {
    return this.nextDbId++;
  }

  attach(dbId: number, client: RuntimeClient): void {
    this.clients.set(dbId, client);
  }

  detach(dbId: number): void {
    this.clients.delete(dbId);
  }

  /** Keeps the process alive while the caller waits on shared memory. Pair with release(). */
  hold(): void {
    if (this.holds++ === 0) this.worker.ref();
  }

  release(): void {
    if (--this.holds === 0) this.worker.unref();
  }

  /** A message that needs no reply (memtable releases). Dropped once the WAL worker is gone. */
  send(message: Extract<WalRequest, { type: 'release' }>): void {
    if (this.dead) return;
    this.port.postMessage(message);
    this.doorbell.ring();
  }

  async request(body: RequestBody): Promise<WalReply> {
    if (this.dead) throw new StemeError('LEVEL_IO_ERROR', 'the WAL worker has stopped', { cause: this.dead });
    const requestId = this.nextRequestId++;
    const reply = new Promise<WalReply>((resolve, reject) => this.requests.set(requestId, { resolve, reject }));
    this.hold();
    try {
      this.port.postMessage({ ...body, requestId } as WalRequest);
      this.doorbell.ring();
      const r = await reply;
      if (r.type === 'error') throw errorFromWire(r.error);
      return r;
    } finally {
      this.release();
    }
  }

  async flush(task: FlushTask): Promise<FlushResult> {
    return (await this.runTask(task)) as FlushResult;
  }

  /** Runs a flush or compaction in the pool; errors come back as { code, message, cause } and are rebuilt. */
  async runTask(task: FlushTask | CompactionTask | ToolTask): Promise<unknown> {
    this.hold();
    try {
      const result = await this.pool.run(task);
      if (result && 'error' in result) throw errorFromWire(result.error);
      return result;
    } finally {
      this.release();
    }
  }

  private onReply(reply: WalReply): void {
    switch (reply.type) {
      case 'rotated': this.clients.get(reply.dbId)?.onRotated(reply); return;
      case 'failed': this.clients.get(reply.dbId)?.onFailed(reply); return;
      default: {
        const pending = this.requests.get(reply.requestId);
        this.requests.delete(reply.requestId);
        pending?.resolve(reply);
      }
    }
  }

  private onDeath(error: Error): void {
    if (this.dead) return;
    this.dead = error;
    for (const { reject } of this.requests.values()) reject(new StemeError('LEVEL_IO_ERROR', 'the WAL worker has stopped', { cause: error }));
    this.requests.clear();
    if (current === this) current = undefined;
  }

  get isDead(): boolean {
    return this.dead !== undefined;
  }

  acquire(): void {
    this.users++;
    if (this.lingerTimer) { clearTimeout(this.lingerTimer); this.lingerTimer = undefined; }
  }

  unacquire(): void {
    if (--this.users > 0) return;
    this.lingerTimer = setTimeout(() => this.shutdown(), RUNTIME_LINGER_MS);
    this.lingerTimer.unref();
  }

  get idle(): boolean {
    return this.users === 0;
  }

  shutdownNow(): void {
    if (this.lingerTimer) { clearTimeout(this.lingerTimer); this.lingerTimer = undefined; }
    this.shutdown();
  }

  private shutdown(): void {
    if (this.users > 0) return;
    if (current === this) current = undefined;
    this.port.postMessage({ type: 'shutdown' } satisfies WalRequest);
    this.doorbell.ring();
    void this.pool.destroy();
  }
}

let current: Runtime | undefined;

/**
 * At least two, so a flush never queues behind a long compaction (a database runs at most one
 * of each at a time): a flush that waits stalls writers at the memtable limit. Pool threads
 * are idle except during background work, so the second costs nothing on a 2-core machine.
 */
export function defaultMaintenanceThreads(): number {
  return Math.max(2, Math.min(4, os.availableParallelism() - 1));
}

/** The runtime of this thread, started if needed. Pair with runtime.unacquire(). */
export function acquireRuntime(maintenanceThreads = defaultMaintenanceThreads()): Runtime {
  // An idle runtime sized differently is replaced; one in use keeps its pool for everyone.
  if (current && !current.isDead && current.idle && current.maintenanceThreads !== maintenanceThreads) current.shutdownNow();
  if (!current || current.isDead) current = new Runtime(maintenanceThreads);
  current.acquire();
  return current;
}
