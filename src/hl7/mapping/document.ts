import type { V2Segment } from '../message/v2-message.js';
import {
  attachmentOf,
  codeableConceptIn,
  dateTimeOf,
  practitionerOf,
  type Identifier,
  type LogicalReference,
} from './datatypes.js';
import { identifierOfEi } from './observation.js';

/** TXA-17 document completion status (table 0271) to DocumentReference.docStatus. */
const DOC_STATUS: Record<string, string> = {
  AU: 'final', // authenticated
  LA: 'final', // legally authenticated
  DI: 'preliminary', // dictated
  DO: 'preliminary', // documented
  IN: 'preliminary', // incomplete
  IP: 'preliminary', // in progress
  PA: 'preliminary', // pre-authenticated
};

/** TXA-18 confidentiality status (table 0272) to the v3 confidentiality code. */
const CONFIDENTIALITY: Record<string, { code: string; display: string }> = {
  V: { code: 'V', display: 'very restricted' },
  R: { code: 'R', display: 'restricted' },
  U: { code: 'N', display: 'normal' },
};

const V3_CONFIDENTIALITY = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';

export interface DocumentOfTxa {
  /** TXA-12, the unique document number: the document's key. */
  identifier: Identifier | undefined;
  /** TXA-13, the parent document an addendum or a replacement is about. */
  parent: Identifier | undefined;
  /** The DocumentReference, `content` included only when the message carries some. */
  resource: Record<string, unknown>;
}

/**
 * TXA and the OBX segments after it to a DocumentReference (v2-to-FHIR TXA[DocumentReference],
 * OBX[DocumentReference]). Text (TX, FT, ST) becomes one text/plain attachment, its lines those
 * of OBX-5's repetitions and of successive OBX segments (escapes are resolved when parsed, so
 * FT is plain text here too); ED an attachment of its own type with its data; RP a URL.
 */
export function documentFromTxa(
  txa: V2Segment,
  obx: readonly V2Segment[],
  patientId: string,
  sender: string | undefined,
): DocumentOfTxa {
  const identifier = identifierOfEi(txa.repetitions(12)[0], sender);
  const type = codeableConceptIn(txa.repetitions(2)[0], '0270');
  const date = dateTimeOf(txa.value(6), txa.timeZone);
  const authors = txa
    .repetitions(9)
    .map((xcn) => practitionerOf(xcn, sender))
    .filter((author): author is LogicalReference => author !== undefined);
  const authenticator = practitionerOf(txa.repetitions(10)[0], sender);
  const docStatus = DOC_STATUS[txa.value(17)?.toUpperCase() ?? ''];
  const confidentiality = CONFIDENTIALITY[txa.value(18)?.toUpperCase() ?? ''];
  const title = txa.value(25) ?? undefined;
  const content = contentOf(obx);
  return {
    identifier,
    parent: identifierOfEi(txa.repetitions(13)[0], sender),
    resource: {
      resourceType: 'DocumentReference',
      ...(identifier ? { masterIdentifier: identifier } : {}),
      status: 'current',
      ...(docStatus ? { docStatus } : {}),
      ...(type ? { type } : {}),
      subject: { reference: `Patient/${patientId}` },
      // date is an instant: only a time with its offset qualifies.
      ...(date?.includes('T') ? { date } : {}),
      ...(authors.length > 0 ? { author: authors } : {}),
      ...(authenticator ? { authenticator } : {}),
      ...(title ? { description: title } : {}),
      ...(confidentiality
        ? { securityLabel: [{ coding: [{ system: V3_CONFIDENTIALITY, ...confidentiality }] }] }
        : {}),
      ...(content.length > 0 ? { content } : {}),
    },
  };
}

function contentOf(obx: readonly V2Segment[]): { attachment: Record<string, unknown> }[] {
  const content: { attachment: Record<string, unknown> }[] = [];
  const lines: string[] = [];
  for (const segment of obx) {
    const valueType = segment.value(2)?.toUpperCase() ?? '';
    for (const rep of segment.repetitions(5)) {
      if (valueType === 'TX' || valueType === 'FT' || valueType === 'ST') {
        lines.push(rep.value(1) ?? '');
      } else {
        const attachment = attachmentOf(valueType, rep);
        if (attachment) content.push({ attachment });
      }
    }
  }
  if (lines.length > 0) {
    content.unshift({
      attachment: {
        contentType: 'text/plain; charset=utf-8',
        data: Buffer.from(lines.join('\n'), 'utf8').toString('base64'),
      },
    });
  }
  return content;
}
