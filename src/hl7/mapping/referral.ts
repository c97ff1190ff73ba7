import type { V2Repetition, V2Segment } from '../message/v2-message.js';
import {
  codeableConceptOf,
  dateOf,
  humanNameOf,
  type Identifier,
  type LogicalReference,
} from './datatypes.js';
import { identifierOfEi } from './observation.js';

/** RF1-1 referral status (table 0283) to ServiceRequest.status: an expired one ended unfulfilled. */
const REFERRAL_STATUS: Record<string, string> = {
  A: 'active', // accepted
  P: 'active', // pending: requested, in force until answered
  R: 'revoked', // rejected
  E: 'revoked', // expired
};

/** RF1-2 referral priority (table 0280) to ServiceRequest.priority. */
const PRIORITY: Record<string, string> = { S: 'stat', A: 'asap', R: 'routine' };

const SNOMED = 'http://snomed.info/sct';

export interface ReferralOfRf1 {
  /** RF1-6, the originating referral identifier, that later messages name it by. */
  identifier: Identifier | undefined;
  resource: Record<string, unknown>;
}

/**
 * RF1 with the PRD segments (providers) of a REF message to a referral ServiceRequest: the
 * referring provider (PRD-1 RP) as requester, the one referred to (RT) as performer, the
 * referral type (RF1-3) as category beside SNOMED's patient referral, its period from the
 * effective and expiration dates (RF1-7, RF1-8).
 */
export function referralFromRf1(
  rf1: V2Segment,
  providers: readonly V2Segment[],
  patientId: string,
  sender: string | undefined,
): ReferralOfRf1 {
  const identifier = identifierOfEi(rf1.repetitions(6)[0], sender);
  const external = identifierOfEi(rf1.repetitions(11)[0], sender);
  const identifiers = [identifier, external].filter((id): id is Identifier => id !== undefined);
  const type = codeableConceptOf(rf1.repetitions(3)[0]);
  const priority = PRIORITY[rf1.value(2)?.toUpperCase() ?? ''];
  const start = dateOf(rf1.value(7));
  const end = dateOf(rf1.value(8));
  const provider = (role: string) =>
    providers
      .filter((prd) => prd.value(1)?.toUpperCase() === role)
      .map((prd) => providerOf(prd, sender))
      .filter((reference) => reference !== undefined);
  const [requester] = provider('RP');
  const performers = provider('RT');
  return {
    identifier,
    resource: {
      resourceType: 'ServiceRequest',
      ...(identifiers.length > 0 ? { identifier: identifiers } : {}),
      status: REFERRAL_STATUS[rf1.value(1)?.toUpperCase() ?? ''] ?? 'active',
      intent: 'order',
      category: [
        { coding: [{ system: SNOMED, code: '3457005', display: 'Patient referral' }] },
        ...(type ? [type] : []),
      ],
      ...(priority ? { priority } : {}),
      subject: { reference: `Patient/${patientId}` },
      ...(start || end
        ? { occurrencePeriod: { ...(start ? { start } : {}), ...(end ? { end } : {}) } }
        : {}),
      ...(requester ? { requester } : {}),
      ...(performers.length > 0 ? { performer: performers } : {}),
    },
  };
}

/** PRD: the provider by their identifier (PRD-7) and name (PRD-2), as a logical reference. */
function providerOf(prd: V2Segment, sender: string | undefined): LogicalReference | undefined {
  const id = prd.repetitions(7)[0]?.value(1);
  const display = displayOf(prd.repetitions(2)[0]);
  if (!id && !display) return undefined;
  return {
    ...(id ? { identifier: { ...(sender ? { system: sender } : {}), value: id } } : {}),
    ...(display ? { display } : {}),
  };
}

function displayOf(xpn: V2Repetition | undefined): string | undefined {
  const name = xpn && humanNameOf(xpn);
  if (!name) return undefined;
  const parts = [
    ...((name['prefix'] as string[] | undefined) ?? []),
    ...((name['given'] as string[] | undefined) ?? []),
    name['family'] as string | undefined,
    ...((name['suffix'] as string[] | undefined) ?? []),
  ];
  return parts.filter(Boolean).join(' ') || undefined;
}
