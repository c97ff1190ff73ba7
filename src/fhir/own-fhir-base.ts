import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/config.js';
import { setOwnFhirBase } from './literal-reference.js';

/**
 * Tells the reading of references this server's base (PUBLIC_URL), before anything is indexed
 * or checked: `https://other.example/fhir/Patient/1` is then another server's patient, kept out
 * of this server's Patient/1 compartment, access checks and searches by that id.
 */
@Injectable()
export class OwnFhirBase {
  constructor(config: AppConfig) {
    setOwnFhirBase(config.publicUrl);
  }
}
