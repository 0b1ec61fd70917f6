import type { FastifyInstance } from 'fastify';
import { HttpError } from '../errors.js';

/**
 * Deepest nesting of arrays and objects in `text` (JSON), scanning without recursion; stops as
 * soon as `limit` is passed (returns `limit + 1`). Strings are skipped with `indexOf`, so a body of
 * large payloads costs about what parsing it does.
 */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      i = closingQuote(text, i + 1);
      if (i < 0) return max; // unterminated: JSON.parse reports it
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/** Index of the quote closing a string that starts at `from`, or -1. */
function closingQuote(text: string, from: number): number {
  let at = text.indexOf('"', from);
  while (at > 0) {
    let backslashes = 0;
    while (text.charCodeAt(at - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return at;
    at = text.indexOf('"', at + 1);
  }
  return -1;
}

/**
 * Replaces the JSON body parser with one that refuses bodies nested deeper than `maxDepth` with
 * 400 `JSON_TOO_DEEP` before parsing: payloads are serialised again (size check, storage), and a
 * value thousands of levels deep overflows the stack there (a 500 and a stack trace in the log).
 * Parsing itself stays Fastify's (prototype-poisoning checks included).
 */
export function registerJsonBodyParser(app: FastifyInstance, maxDepth: number): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = body as string;
    if (jsonDepth(text, maxDepth) > maxDepth) {
      done(new HttpError(400, 'JSON_TOO_DEEP', `JSON nested deeper than ${maxDepth} levels`), undefined);
      return;
    }
    parse(req, text, done);
  });
}
