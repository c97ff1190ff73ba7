import type { V2Segment, V2Value } from '../message/v2-message.js';
import { codeableConceptOf, dateOf, identifierOf, type Identifier } from './datatypes.js';

const COVERAGE_CLASS = 'http://terminology.hl7.org/CodeSystem/coverage-class';

function coverageClass(
  code: string,
  value: V2Value,
  name: V2Value,
): Record<string, unknown> | undefined {
  if (!value) return undefined;
  return {
    type: { coding: [{ system: COVERAGE_CLASS, code }] },
    value,
    ...(name ? { name } : {}),
  };
}

export interface CoverageOfIn1 {
  /** The policy number, which identifies the coverage for updates. */
  identifier: Identifier | undefined;
  /** The plan id, which identifies it for the patient when there is no policy number. */
  plan: string | undefined;
  resource: Record<string, unknown>;
}

/**
 * IN1 to a Coverage (v2-to-FHIR IN1[Coverage]): the insurer (IN1-3 id, IN1-4 name) as payor,
 * the policy number (IN1-36) as identifier, plan (IN1-2) and group (IN1-8, IN1-9) as classes,
 * plan type, dates, the insured's relationship and id. Undefined without an insurer, which a
 * Coverage must name.
 */
export function coverageFromIn1(
  in1: V2Segment,
  patientId: string,
  senderSystem?: string,
): CoverageOfIn1 | undefined {
  const insurer = in1.repetitions(3)[0];
  const payorId = insurer ? identifierOf(insurer, senderSystem) : undefined;
  const payorName = in1.value(4)?.trim() || undefined;
  if (!payorId && !payorName) return undefined;
  const policy = in1.value(36);
  const identifier = policy
    ? { ...(senderSystem ? { system: senderSystem } : {}), value: policy }
    : undefined;
  const plan = in1.value(2) ?? undefined;
  const classes = [
    coverageClass('plan', plan, in1.value(2, 2)),
    coverageClass('group', in1.value(8), in1.value(9)),
  ].filter(Boolean);
  const start = dateOf(in1.value(12));
  const end = dateOf(in1.value(13));
  const relationship = codeableConceptOf(in1.repetitions(17)[0]);
  const type = codeableConceptOf(in1.repetitions(15)[0]);
  const subscriberId = in1.value(49);
  return {
    identifier,
    plan,
    resource: {
      resourceType: 'Coverage',
      ...(identifier ? { identifier: [identifier] } : {}),
      status: 'active',
      ...(type ? { type } : {}),
      ...(subscriberId ? { subscriberId } : {}),
      beneficiary: { reference: `Patient/${patientId}` },
      ...(relationship ? { relationship } : {}),
      ...(start || end ? { period: { ...(start ? { start } : {}), ...(end ? { end } : {}) } } : {}),
      payor: [
        {
          ...(payorId ? { identifier: payorId } : {}),
          ...(payorName ? { display: payorName } : {}),
        },
      ],
      ...(classes.length > 0 ? { class: classes } : {}),
    },
  };
}
