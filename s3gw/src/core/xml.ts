/**
 * XML of the S3 REST API: a tiny writer for responses (namespace
 * http://s3.amazonaws.com/doc/2006-03-01/) and a bounded parser for request bodies
 * (DeleteObjects, CompleteMultipartUpload) on fast-xml-parser.
 */
import { XMLParser } from 'fast-xml-parser';
import { S3Error } from './errors.ts';

export const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';
/** Largest XML request body we parse (named limit; S3 caps DeleteObjects at 1000 keys). */
export const XML_BODY_MAX_BYTES = 2 * 1024 * 1024;

/** An element tree: a name with text or children; undefined children are skipped. */
export type XmlNode = [string, string | number | boolean | (XmlNode | undefined)[]];

export function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function render(n: XmlNode): string {
  const [name, body] = n;
  if (Array.isArray(body)) return `<${name}>${body.filter((x): x is XmlNode => x !== undefined).map(render).join('')}</${name}>`;
  return `<${name}>${xmlEscape(String(body))}</${name}>`;
}

/** A whole document whose root carries the S3 namespace. */
export function xmlDocument(root: string, children: (XmlNode | undefined)[], xmlns = true): string {
  const inner = children.filter((x): x is XmlNode => x !== undefined).map(render).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root}${xmlns ? ` xmlns="${S3_XMLNS}"` : ''}>${inner}</${root}>`;
}

const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: false, isArray: (name) => name === 'Part' || name === 'Object' });

/**
 * Parses a request body and returns the content of root element `root`.
 * @throws S3Error MalformedXML
 */
export function parseXmlBody(text: string, root: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parser.parse(text, true);
  } catch {
    throw new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
  }
  const r = (doc as Record<string, unknown> | null)?.[root];
  if (typeof r !== 'object' || r === null) throw new S3Error('MalformedXML', `The XML you provided was not well-formed or did not validate against our published schema (expected <${root}>).`);
  return r as Record<string, unknown>;
}

/** S3 timestamps: ISO 8601 with milliseconds. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}
