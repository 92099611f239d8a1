// Threads: all. LEB128 unsigned varints up to 2^53, used by every on-disk format.

export function varintLength(value: number): number {
  let n = 1;
  while (value >= 0x80) { value = Math.floor(value / 128); n++; }
  return n;
}

/** Writes value at offset; returns the offset after it. */
export function putVarint(out: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    out[offset++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[offset++] = value;
  return offset;
}

/** Reads a varint; returns [value, nextOffset], or [-1, -1] if it runs past end or is too long. */
export function getVarint(buf: Uint8Array, offset: number, end: number = buf.length): [number, number] {
  let result = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    if (offset >= end) return [-1, -1];
    const byte = buf[offset++];
    result += (byte & 0x7f) * scale;
    if (byte < 0x80) return [result, offset];
    scale *= 128;
  }
  return [-1, -1];
}
