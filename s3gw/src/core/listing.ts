/**
 * ListObjects (v1 and v2) over a bucket index read in pages: prefix, delimiter and common
 * prefixes, max-keys, and resumption after a marker / start-after / continuation token. Pure
 * apart from the injected page reader. Keys come in UTF-8 byte order, as S3 lists them.
 */
import { assert } from '@aspen/shared';
import { VERSIONS_NS, parseVersionKey, versionsPrefix } from '../store/layout.ts';

/** Sorts after every key that starts with a given prefix (U+10FFFF, the largest code point). */
const PAST = '\u{10FFFF}';
/** Index entries read per page. */
export const LIST_PAGE_ENTRIES = 1000;

export interface ListQuery {
  prefix: string;
  delimiter: string;
  maxKeys: number;
  /** List keys strictly after this one ('' = from the start). */
  startAfter: string;
}

export interface ListResult<E> {
  contents: [string, E][];
  commonPrefixes: string[];
  isTruncated: boolean;
  /** The last key or common prefix returned (v1 NextMarker; v2 continuation). */
  next: string;
}

/** Reads index entries after `startAfter` with `prefix`, in UTF-8 byte order; a null entry is skipped (e.g. a delete marker) but advances the listing. */
export type PageReader<E> = (startAfter: string, prefix: string, max: number) => Promise<{ entries: [string, E | null][]; more: boolean }>;

export async function listKeys<E>(q: ListQuery, readPage: PageReader<E>): Promise<ListResult<E>> {
  assert(q.maxKeys >= 0, 'max-keys is non-negative');
  const out: ListResult<E> = { contents: [], commonPrefixes: [], isTruncated: false, next: '' };
  if (q.maxKeys === 0) return out;
  let after = q.startAfter;
  let lastPrefix: string | null = null;
  // Resuming after a common prefix (a marker ending in the delimiter) skips the keys under it.
  if (q.delimiter !== '' && after !== '' && after.startsWith(q.prefix) && after.endsWith(q.delimiter) && after.length > q.prefix.length) {
    lastPrefix = after;
    after = after + PAST;
  }
  if (after < q.prefix) after = '';
  let count = 0;
  for (;;) {
    const page = await readPage(after, q.prefix, LIST_PAGE_ENTRIES);
    let jumped = false;
    for (const [key, entry] of page.entries) {
      assert(after === '' || key > after || key.startsWith(after), 'index pages are in key order');
      after = key;
      if (entry === null) continue;
      let cp: string | null = null;
      if (q.delimiter !== '') {
        const i = key.indexOf(q.delimiter, q.prefix.length);
        if (i >= 0) cp = key.slice(0, i + q.delimiter.length);
      }
      if (cp !== null && cp === lastPrefix) continue;
      if (count === q.maxKeys) {
        out.isTruncated = true;
        return out;
      }
      count++;
      if (cp !== null) {
        out.commonPrefixes.push(cp);
        out.next = cp;
        lastPrefix = cp;
        after = cp + PAST;
        jumped = true;
        break;
      }
      out.contents.push([key, entry]);
      out.next = key;
    }
    if (!jumped && !page.more) return out;
  }
}

/** Compares strings as S3 and the omap order them: by UTF-8 bytes. */
export function cmpUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** A forward-only paged reader of one omap range. */
class Cursor<E> {
  private buf: [string, E | null][] = [];
  private i = 0;
  private more = true;
  constructor(private readonly read: PageReader<E>, private readonly prefix: string, private after: string) {}

  async peek(): Promise<[string, E | null] | null> {
    while (this.i >= this.buf.length) {
      if (!this.more) return null;
      const page = await this.read(this.after, this.prefix, LIST_PAGE_ENTRIES);
      this.buf = page.entries;
      this.i = 0;
      this.more = page.more && page.entries.length > 0;
      if (page.entries.length > 0) this.after = page.entries.at(-1)![0];
    }
    return this.buf[this.i]!;
  }

  skip(): void {
    assert(this.i < this.buf.length, 'skip after peek');
    this.i++;
  }

  /** Moves past every key up to and including `after` (never backwards). */
  seek(after: string): void {
    while (this.i < this.buf.length && cmpUtf8(this.buf[this.i]![0], after) <= 0) this.i++;
    if (this.i >= this.buf.length && cmpUtf8(after, this.after) > 0) {
      this.after = after;
      this.more = true;
    }
  }
}

export interface VersionsQuery {
  prefix: string;
  delimiter: string;
  maxKeys: number;
  /** key-marker ('' = from the start). */
  keyMarker: string;
  /** Resume inside keyMarker: after its head (''), or after the noncurrent version of this rev; null = after all its versions. */
  revMarker: string | null;
}

export interface VersionRow<E> {
  key: string;
  entry: E;
  isLatest: boolean;
}

export interface VersionsResult<E> {
  rows: VersionRow<E>[];
  commonPrefixes: string[];
  isTruncated: boolean;
  /** The last row or common prefix returned (NextKeyMarker / NextVersionIdMarker). */
  next: { key: string; row: VersionRow<E> | null };
}

/**
 * ListObjectVersions: every key's head (IsLatest) then its noncurrent versions newest first,
 * keys in UTF-8 order, with prefix / delimiter / max-keys (rows + common prefixes) and
 * resumption after key-marker / version-id-marker. Merges two index ranges: the heads
 * (`readHeads`) and the noncurrent namespace (`readNoncurrent`, keys as layout.versionKey).
 */
export async function listVersions<E>(q: VersionsQuery, readHeads: PageReader<E>, readNoncurrent: PageReader<E>): Promise<VersionsResult<E>> {
  assert(q.maxKeys >= 0, 'max-keys is non-negative');
  const out: VersionsResult<E> = { rows: [], commonPrefixes: [], isTruncated: false, next: { key: '', row: null } };
  if (q.maxKeys === 0) return out;
  const heads = new Cursor(readHeads, q.prefix, '');
  const nc = new Cursor(readNoncurrent, VERSIONS_NS + q.prefix, '');
  const cpOf = (key: string): string | null => {
    if (q.delimiter === '') return null;
    const i = key.indexOf(q.delimiter, q.prefix.length);
    return i >= 0 ? key.slice(0, i + q.delimiter.length) : null;
  };
  let count = 0;
  const room = (): boolean => {
    if (count === q.maxKeys) {
      out.isTruncated = true;
      return false;
    }
    count++;
    return true;
  };
  /** Emits the noncurrent versions of `key` the cursor is at; false when truncated. */
  const noncurrentOf = async (key: string): Promise<boolean> => {
    for (let n = await nc.peek(); n !== null; n = await nc.peek()) {
      if (parseVersionKey(n[0]).key !== key) break;
      if (n[1] !== null) {
        if (!room()) return false;
        const row = { key, entry: n[1], isLatest: false };
        out.rows.push(row);
        out.next = { key, row };
      }
      nc.skip();
    }
    return true;
  };
  let lastPrefix: string | null = null;
  const k = q.keyMarker;
  if (k !== '' && cmpUtf8(k, q.prefix) >= 0) {
    const cp = cpOf(k);
    if (cp !== null && cp === k) {
      lastPrefix = cp;
      heads.seek(cp + PAST);
      nc.seek(VERSIONS_NS + cp + PAST);
    } else {
      if (q.revMarker !== null) {
        nc.seek(q.revMarker === '' ? versionsPrefix(k) : versionsPrefix(k) + q.revMarker);
        if (!(await noncurrentOf(k))) return out;
      }
      heads.seek(k);
      nc.seek(versionsPrefix(k) + PAST);
    }
  }
  for (let h = await heads.peek(); h !== null; h = await heads.peek()) {
    const [key, head] = h;
    const cp = cpOf(key);
    if (cp !== null && cp !== lastPrefix) {
      if (!room()) return out;
      out.commonPrefixes.push(cp);
      out.next = { key: cp, row: null };
      lastPrefix = cp;
      heads.seek(cp + PAST);
      nc.seek(VERSIONS_NS + cp + PAST);
      continue;
    }
    if (cp !== null) {
      heads.skip();
      continue;
    }
    if (head !== null) {
      if (!room()) return out;
      const row = { key, entry: head, isLatest: true };
      out.rows.push(row);
      out.next = { key, row };
    }
    heads.skip();
    nc.seek(versionsPrefix(key));
    if (!(await noncurrentOf(key))) return out;
  }
  return out;
}
