import type { V2Repetition, V2Segment } from '../message/v2-message.js';
import {
  codeableConceptIn,
  codeableConceptOf,
  dateTimeOf,
  systemOfHd,
  type Identifier,
} from './datatypes.js';

export interface SpecimenOfSpm {
  /** The filler's specimen id (SPM-2.2), else the placer's (SPM-2.1): what names it again. */
  identifier: Identifier | undefined;
  resource: Record<string, unknown>;
}

/**
 * SPM to a Specimen (v2-to-FHIR SPM[Specimen]): the placer's and filler's ids (SPM-2), type
 * (SPM-4, table 0487), source site (SPM-8), collection time or period (SPM-17) and the time it
 * was received (SPM-18).
 */
export function specimenFromSpm(
  spm: V2Segment,
  patientId: string,
  sender: string | undefined,
): SpecimenOfSpm {
  const ids = spm.repetitions(2)[0];
  const placer = ids && eiOfComponent(ids, 1, sender);
  const filler = ids && eiOfComponent(ids, 2, sender);
  const identifiers = [placer, filler].filter((id): id is Identifier => id !== undefined);
  const type = codeableConceptIn(spm.repetitions(4)[0], '0487');
  const site = codeableConceptOf(spm.repetitions(8)[0]);
  const zone = spm.timeZone;
  const collectedFrom = dateTimeOf(spm.value(17, 1), zone);
  const collectedTo = dateTimeOf(spm.value(17, 2), zone);
  const received = dateTimeOf(spm.value(18), zone);
  const collection = {
    ...(collectedFrom && collectedTo && collectedTo !== collectedFrom
      ? { collectedPeriod: { start: collectedFrom, end: collectedTo } }
      : collectedFrom
        ? { collectedDateTime: collectedFrom }
        : {}),
    ...(site ? { bodySite: site } : {}),
  };
  return {
    identifier: filler ?? placer,
    resource: {
      resourceType: 'Specimen',
      ...(identifiers.length > 0 ? { identifier: identifiers } : {}),
      ...(type ? { type } : {}),
      subject: { reference: `Patient/${patientId}` },
      ...(received ? { receivedTime: received } : {}),
      ...(Object.keys(collection).length > 0 ? { collection } : {}),
    },
  };
}

/** An EI that is one component of an EIP (its parts subcomponents): SPM-2's placer or filler id. */
function eiOfComponent(
  eip: V2Repetition,
  component: number,
  sender: string | undefined,
): Identifier | undefined {
  const value = eip.value(component, 1);
  if (!value) return undefined;
  const system =
    systemOfHd(eip.value(component, 2), eip.value(component, 3), eip.value(component, 4)) ?? sender;
  return { ...(system ? { system } : {}), value };
}
