/**
 * ListObjects (v1 and v2) over a bucket index read in pages: prefix, delimiter and common
 * prefixes, max-keys, and resumption after a marker / start-after / continuation token. Pure
 * apart from the injected page reader. Keys come in UTF-8 byte order, as S3 lists them.
 */
import { assert } from '@aspen/shared';

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

export type PageReader<E> = (startAfter: string, prefix: string, max: number) => Promise<{ entries: [string, E][]; more: boolean }>;

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
