/**
 * Test helper: turns values with bigints, byte arrays (Buffers too) and Maps into plain JSON-like
 * data, so `toEqual` compares contents rather than representations (a decoded `Buffer` and an
 * encoded `Uint8Array` with the same bytes compare equal).
 */
export function toPlain(x: unknown): unknown {
  if (typeof x === 'bigint') return `${x}n`;
  if (x instanceof Uint8Array) return Array.from(x);
  if (x instanceof Map) return [...x].map(toPlain);
  if (Array.isArray(x)) return x.map(toPlain);
  if (x !== null && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, toPlain(v)]));
  return x;
}
