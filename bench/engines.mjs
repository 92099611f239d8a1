// Engine adapters. Each open() returns the same small interface the workloads use:
//   batch(ops) put(key, value, sync) get(key) getSync(key) scan(lat, chunk) -> count, stats(), close()
// scan reads every entry, chunk at a time, and stores the time of chunk i in lat[i] when lat is given.
// Engines run with their default tuning; only durability and binary encodings are set.
import * as fs from 'node:fs';

const version = (pkg) => JSON.parse(fs.readFileSync(new URL(`../${pkg}/package.json`, import.meta.url), 'utf8')).version;
const SYNC = { sync: true };
const BINARY = { keyEncoding: 'buffer', valueEncoding: 'buffer' };

/** abstract-level databases (StemeDB, classic-level) share one adapter. */
function levelAdapter(db) {
  return {
    batch: (ops) => db.batch(ops),
    put: (key, value, sync) => db.put(key, value, sync ? SYNC : undefined),
    get: (key) => db.get(key),
    getSync: (key) => db.getSync(key),
    async scan(lat, chunk) {
      const it = db.iterator();
      let n = 0;
      for (let i = 0; ; i++) {
        const t = performance.now();
        const entries = await it.nextv(chunk);
        if (lat) lat[i] = performance.now() - t;
        if (entries.length === 0) break;
        n += entries.length;
      }
      await it.close();
      return n;
    },
    stats: () => (typeof db.stats === 'function' ? db.stats() : undefined),
    close: () => db.close(),
  };
}

export const ENGINES = {
  'stemedb': {
    version: () => version('.'),
    how: 'defaults (4 MiB memtable, 8 MiB block cache, LZ4); durable writes use { sync: true } (group commit)',
    async open(dir) {
      const { StemeDB } = await import('../dist/index.js');
      const db = new StemeDB(dir, BINARY);
      await db.open();
      return levelAdapter(db);
    },
  },
  'classic-level': {
    version: () => version('node_modules/classic-level'),
    how: 'defaults (4 MiB write buffer, 8 MiB cache, snappy); durable writes use { sync: true }',
    async open(dir) {
      const { ClassicLevel } = await import('classic-level');
      const db = new ClassicLevel(dir, BINARY);
      await db.open();
      return levelAdapter(db);
    },
  },
  'lmdb': {
    version: () => version('node_modules/lmdb'),
    how: 'binary encoding, no compression; non-durable runs open with noSync: true; durable runs use the defaults '
      + '(overlappingSync) with separateFlushed, and each put awaits its commit\'s flushed promise; '
      + 'batches are one db.batch() callback; async reads use getAsync, sync reads get; readseq uses getRange',
    async open(dir, { durable }) {
      const { open } = await import('lmdb');
      const db = open({ path: dir, keyEncoding: 'binary', encoding: 'binary', noSync: !durable, separateFlushed: durable });
      return {
        batch: (ops) => db.batch(() => { for (const op of ops) db.put(op.key, op.value); }),
        async put(key, value, sync) {
          const committed = db.put(key, value);
          await committed;
          if (sync) await committed.flushed;
        },
        get: (key) => db.getAsync(key),
        getSync: (key) => db.get(key),
        async scan(lat, chunk) {
          // getRange is a synchronous iterator: time each run of `chunk` entries.
          let n = 0;
          let i = 0;
          let t = performance.now();
          for (const entry of db.getRange()) {
            if (entry.value) n++;
            if (lat && n % chunk === 0) { const now = performance.now(); lat[i++] = now - t; t = now; }
          }
          if (lat) lat[i] = performance.now() - t;
          return n;
        },
        stats: () => undefined,
        close: () => db.close(),
      };
    },
  },
};
