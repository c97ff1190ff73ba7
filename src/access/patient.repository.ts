import { Injectable } from '@nestjs/common';
import { UnitOfWork } from '../database/unit-of-work.js';
import { ResourceEntity } from '../fhir/resource.entity.js';

/**
 * Whether a Patient is stored, for what keeps a patient id in plaintext (a break-glass grant, a
 * scoped token and the audit rows it makes): it must name a stored Patient, never an MRN typed
 * in its place. In the request's unit of work.
 */
@Injectable()
export class PatientRepository {
  constructor(private readonly unitOfWork: UnitOfWork) {}

  /** Whether a Patient of this id is stored and not deleted. */
  isStoredPatient(id: string): Promise<boolean> {
    return this.unitOfWork.manager.exists(ResourceEntity, {
      where: { resourceType: 'Patient', id, deleted: false },
    });
  }
}
