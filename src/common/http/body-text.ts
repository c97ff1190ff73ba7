import { AppError } from '../errors/app-error.js';

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A JSON or form body's text. Both are UTF-8 (RFC 8259 for JSON; FHIR's own rule for every
 * format, and what percent-encoded forms spell): a body labelled with another charset is a 415,
 * and bytes that are not UTF-8 a 400. Decoded leniently, as Node decodes a string, a Latin-1
 * `Müller` was stored as `M\uFFFDller`, the name lost, with a 201.
 */
export function bodyText(body: Buffer, contentType: string | undefined): string {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType ?? '')?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw AppError.of(
      415,
      'not-supported',
      'Request bodies are UTF-8: send charset=utf-8, or no charset, with the text in UTF-8',
    );
  }
  try {
    // A leading byte order mark is dropped, as JSON parsers may (RFC 8259 8.1).
    return UTF8.decode(body);
  } catch {
    throw AppError.of(400, 'structure', 'The request body is not valid UTF-8');
  }
}
