import { Injectable } from '@nestjs/common';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { problemFromPrb } from '../mapping/clinical.js';
import type { Identifier } from '../mapping/datatypes.js';
import type { V2Message } from '../message/v2-message.js';
import {
  byIdentifier,
  keepListed,
  withFollowing,
  type PatientOfMessage,
  type Touched,
} from './processing.js';
import { conditionCategory, conditionCriteria } from './record-criteria.js';

/** Problem add, update and delete (PPR PC1, PC2, PC3); a PRB's action code DE deletes too. */
export const PPR_EVENTS: ReadonlySet<string> = new Set(['PC1', 'PC2', 'PC3']);

/** PPR messages (the patient's problem list), for Hl7Processor, in its transaction. */
@Injectable()
export class ProblemMessages {
  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
  ) {}

  /**
   * Each PRB as a problem-list Condition, known by its problem instance id (PRB-4), else by
   * the patient's problem-list entry with that code (never a visit's diagnosis from a DG1). A
   * deleted problem is entered in error; one not on file is already as the sender has it. A
   * message older than one already applied to a problem leaves it as it is.
   */
  async process(
    message: V2Message,
    event: string,
    { sender, patientId, touched, clock }: PatientOfMessage,
  ): Promise<Touched> {
    for (const [prb, notes] of withFollowing(message, 'PRB', ['NTE'])) {
      const problem = problemFromPrb(prb, notes, patientId, sender);
      if (!problem) continue;
      const criteria = this.criteria(problem.identifier, problem.resource, patientId);
      const deletes = problem.deletes || event === 'PC3';
      const id = await keepListed(
        this.fhir,
        this.matches,
        'Condition',
        problem.resource,
        criteria,
        deletes,
        clock,
      );
      if (id) touched.entities.push(`Condition/${id}`);
    }
    return touched;
  }

  private criteria(
    identifier: Identifier | undefined,
    resource: Record<string, unknown>,
    patientId: string,
  ): string | undefined {
    const byId = byIdentifier(identifier);
    if (byId) {
      return `${byId}&subject=Patient/${patientId}&${conditionCategory('problem-list-item')}`;
    }
    return conditionCriteria(patientId, 'problem-list-item', resource);
  }
}
