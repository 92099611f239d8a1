// Threads: all. Names of the files in a database directory (the runbooks depend on this layout):
//
//   <location>/LOCK                      owner's pid and thread id while open
//   <location>/wal/segment.NNNNNN.wal    WAL segments (log/record.ts framing, log/batch.ts payloads)
//   <location>/kv/NNNNNN.sst             SST files (sst/format.ts)
//   <location>/kv/MANIFEST-NNNNNN        version edits (log/manifest.ts)
//   <location>/kv/CURRENT                names the live MANIFEST

import * as path from 'node:path';

export const walDir = (location: string) => path.join(location, 'wal');
export const kvDir = (location: string) => path.join(location, 'kv');
export const lockFile = (location: string) => path.join(location, 'LOCK');

export function segmentName(number: number): string {
  return `segment.${String(number).padStart(6, '0')}.wal`;
}
export function segmentNumberOf(name: string): number | undefined {
  const m = /^segment\.(\d{6,})\.wal$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
export function tableName(number: number): string {
  return `${String(number).padStart(6, '0')}.sst`;
}
export function tableNumberOf(name: string): number | undefined {
  const m = /^(\d{6,})\.sst$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
export const tablePath = (location: string, number: number) => path.join(kvDir(location), tableName(number));
export const segmentPath = (location: string, number: number) => path.join(walDir(location), segmentName(number));
