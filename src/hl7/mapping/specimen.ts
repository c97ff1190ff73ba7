import { periodInOrder } from '../../fhir/period-order.js';
import type { V2Repetition, V2Segment } from '../message/v2-message.js';
import {
  codeableConceptIn,
  codeableConceptOf,
  codingSystemOf,
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

/**
 * OBR-15 (specimen source, SPS: v2.3 to v2.6, which send no SPM) to a Specimen, as the IG's
 * OBR and SPS maps have it: the source (SPS-1, table 0070) as its type, the body site (SPS-4,
 * table 0163) and the collection time (OBR-7, to OBR-8) as its collection, and the time it was
 * received (OBR-14). None when OBR-15 names neither a source nor a site. Dropped until
 * 2026-12-07: a v2.3 lab's blood, urine or swab was on no result, and a clinician reading a
 * culture could not tell what had been cultured.
 */
export function specimenFromObr(
  obr: V2Segment,
  patientId: string,
): Record<string, unknown> | undefined {
  const sps = obr.repetitions(15)[0];
  const type = sps && conceptOfComponent(sps, 1, '0070');
  const site = sps && conceptOfComponent(sps, 4, '0163');
  if (!type && !site) return undefined;
  const zone = obr.timeZone;
  const collectedFrom = dateTimeOf(obr.value(7), zone);
  const collectedTo = dateTimeOf(obr.value(8), zone);
  const received = dateTimeOf(obr.value(14), zone);
  const collection = {
    ...(collectedFrom &&
    collectedTo &&
    collectedTo !== collectedFrom &&
    periodInOrder(collectedFrom, collectedTo)
      ? { collectedPeriod: { start: collectedFrom, end: collectedTo } }
      : collectedFrom
        ? { collectedDateTime: collectedFrom }
        : {}),
    ...(site ? { bodySite: site } : {}),
  };
  return {
    resourceType: 'Specimen',
    ...(type ? { type } : {}),
    subject: { reference: `Patient/${patientId}` },
    ...(received ? { receivedTime: received } : {}),
    ...(Object.keys(collection).length > 0 ? { collection } : {}),
  };
}

/**
 * A CE that is one component of a composite (its parts subcomponents: SPS-1, SPS-4), of an HL7
 * table when it names no coding system and looks like one of its codes (see codeableConceptIn).
 */
function conceptOfComponent(
  composite: V2Repetition,
  component: number,
  table: string,
): Record<string, unknown> | undefined {
  const [code, display, name] = [1, 2, 3].map((sub) => composite.value(component, sub));
  if (!code && !display) return undefined;
  const system = name
    ? codingSystemOf(name)
    : code && /^[A-Za-z0-9][\w.-]{0,11}$/.test(code)
      ? `http://terminology.hl7.org/CodeSystem/v2-${table}`
      : undefined;
  return {
    ...(code
      ? { coding: [{ ...(system ? { system } : {}), code, ...(display ? { display } : {}) }] }
      : {}),
    ...(display ? { text: display } : {}),
  };
}
