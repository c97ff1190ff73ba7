import { Injectable } from '@nestjs/common';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import { locationResource, type LocationLevel } from '../mapping/encounter.js';
import { byIdentifier } from './processing.js';

/** The Locations a feed names (PV1-3, AIL-3), for the message processors, in their transaction. */
@Injectable()
export class Places {
  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
  ) {}

  /**
   * The Location of a level of a PL (by default the most specific), made the first time a feed
   * names it (never rewritten), part of the level above, made first if it is new too. Found
   * from the most specific level up, so a known bed costs one look-up, and locks are taken
   * child before parent by every message (no two wait on each other in opposite orders).
   */
  async of(chain: LocationLevel[], level = chain.length - 1): Promise<string> {
    const { identifier } = locationResource(chain[level]!);
    const match = await this.matches.uniqueMatch(HL7_USER, 'Location', byIdentifier(identifier)!);
    if (match) return match;
    const parent = level > 0 ? `Location/${await this.of(chain, level - 1)}` : undefined;
    const { resource } = locationResource(chain[level]!, parent);
    return (await this.fhir.create(HL7_USER, 'Location', resource)).id;
  }
}
