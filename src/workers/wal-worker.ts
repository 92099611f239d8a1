// Threads: the WAL worker (one per runtime). Entry point.
//
// The worker runs a blocking loop, which is fine off the event-loop thread:
//   1. Note the doorbell value.
//   2. Take every pending control message with receiveMessageOnPort (open, edit, close).
//   3. Drain each open database's write ring (group commit, see wal/database.ts).
//   4. If nothing happened, park on the doorbell until a producer rings it. Parking with the
//      value from step 1 closes the race with a ring() that lands during steps 2-3.
// Control messages are polled rather than delivered as events because the loop never
// returns to the worker's event loop while databases are open.

import { receiveMessageOnPort, workerData, parentPort, type MessagePort } from 'node:worker_threads';
import { errorToWire } from '../common/errors.js';
import type { WalReply, WalRequest } from '../shm/messages.js';
import { Doorbell } from '../shm/signals.js';
import { WalDatabase } from './wal/database.js';

/** Upper bound on one park; a safety net only, every producer rings the doorbell. */
const PARK_TIMEOUT_MS = 500;

const { doorbell: doorbellBuffer, port } = workerData as { doorbell: SharedArrayBuffer; port: MessagePort };
const doorbell = new Doorbell(doorbellBuffer);
const databases = new Map<number, WalDatabase>();
const locksHeld = new Set<string>();
const post = (reply: WalReply) => parentPort!.postMessage(reply);
let running = true;

function handle(request: WalRequest): void {
  switch (request.type) {
    case 'open': {
      const db = new WalDatabase(request.dbId, request.location, request.options, request.ring, request.control, post);
      try {
        const opened = db.open(request.ownerThreadId, locksHeld);
        databases.set(request.dbId, db);
        post({ type: 'opened', requestId: request.requestId, dbId: request.dbId, state: db.state, ...opened });
      } catch (e) {
        post({ type: 'error', requestId: request.requestId, error: errorToWire(e) });
      }
      return;
    }
    case 'edit': {
      const db = databases.get(request.dbId);
      try {
        if (!db) throw new Error('stemedb assertion failed: edit for a database that is not open');
        db.applyEdit(request.edit);
        post({ type: 'done', requestId: request.requestId });
      } catch (e) {
        post({ type: 'error', requestId: request.requestId, error: errorToWire(e) });
      }
      return;
    }
    case 'delete': {
      const db = databases.get(request.dbId);
      try {
        db?.deleteTables(request.fileNumbers);
        post({ type: 'done', requestId: request.requestId });
      } catch (e) {
        post({ type: 'error', requestId: request.requestId, error: errorToWire(e) });
      }
      return;
    }
    case 'close': {
      const db = databases.get(request.dbId);
      try {
        if (db) {
          while (db.service()) { /* drain what the caller published before closing */ }
          db.close(locksHeld);
          databases.delete(request.dbId);
        }
        post({ type: 'done', requestId: request.requestId });
      } catch (e) {
        databases.delete(request.dbId);
        post({ type: 'error', requestId: request.requestId, error: errorToWire(e) });
      }
      return;
    }
    case 'release':
      databases.get(request.dbId)?.releaseMemtables(request.generations);
      return;
    case 'shutdown':
      running = false;
      return;
  }
}

while (running) {
  const seen = doorbell.snapshot();
  let worked = false;
  for (let message = receiveMessageOnPort(port); message; message = receiveMessageOnPort(port)) {
    handle(message.message as WalRequest);
    worked = true;
  }
  for (const db of databases.values()) {
    if (db.service()) worked = true;
  }
  if (!worked && running) doorbell.park(seen, PARK_TIMEOUT_MS);
}
port.close();
