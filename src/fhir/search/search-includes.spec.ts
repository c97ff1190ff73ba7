import { jest } from '@jest/globals';
import type { ResourceAccess } from '../../access/resource-access.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import type { ResourceEntity } from '../resource.entity.js';
import type { ResourceRepository } from '../resource.repository.js';
import type { SearchConditions } from './search-conditions.js';
import type { SearchDefinitions } from './search-definitions.js';
import { MAX_INCLUDED, SearchIncludes } from './search-includes.js';
import type { IncludeSpec, SearchRequest } from './search-request.js';
import type { SearchRepository } from './search.repository.js';

const doctor: AuthenticatedUser = {
  id: '7f1c2a9e-4a53-4c1e-9a57-3c1f0e2b8d11',
  username: 'doc',
  roles: ['doctor'],
  amr: ['pwd'],
  authTime: 0,
};

/** Stored rows of `n` Observations, `o<from>` on. */
function observations(n: number, from = 0): ResourceEntity[] {
  return Array.from(
    { length: n },
    (_, i) =>
      ({
        content: JSON.stringify({ resourceType: 'Observation', id: `o${from + i}` }),
      }) as ResourceEntity,
  );
}

describe('SearchIncludes', () => {
  let repository: jest.Mocked<Pick<SearchRepository, 'loadTargets' | 'loadSources'>>;
  let access: jest.Mocked<Pick<ResourceAccess, 'isListable'>>;
  const includes = () =>
    new SearchIncludes(
      repository as unknown as SearchRepository,
      access as unknown as ResourceAccess,
      {} as SearchDefinitions,
      {} as SearchConditions,
      {} as ResourceRepository,
    );
  const revinclude = (param: string): IncludeSpec => ({
    sourceType: 'Observation',
    param,
    iterate: false,
  });
  const request = (revincludes: IncludeSpec[]): SearchRequest => ({
    criteria: [],
    count: 20,
    sort: [],
    include: [],
    revinclude: revincludes,
    total: 'none',
    summaryCount: false,
  });

  beforeEach(() => {
    repository = { loadTargets: jest.fn(), loadSources: jest.fn() };
    access = { isListable: jest.fn(() => true) };
  });

  it('loads nothing more once the page holds 1,000: each load read up to 1,000 resources, decrypted, however many the ones before had added', async () => {
    repository.loadSources.mockResolvedValueOnce(observations(1000));
    const patient = { resourceType: 'Patient', id: 'p1' };
    const specs = ['subject', 'patient', 'performer'].map(revinclude);
    const warnings = new Set<string>();
    const included = await includes().include(
      doctor,
      'Patient',
      request(specs),
      [patient],
      warnings,
    );
    expect(included).toHaveLength(MAX_INCLUDED);
    expect(repository.loadSources).toHaveBeenCalledTimes(1);
    // The cut is said: until 2026-12-07 the Bundle looked whole.
    expect([...warnings]).toEqual([expect.stringContaining('includes at most 1000 resources')]);
  });

  it('finds what a load adds to the ones before it, and says nothing of a cut when there is none', async () => {
    repository.loadSources
      .mockResolvedValueOnce(observations(600))
      .mockResolvedValueOnce(observations(900));
    const warnings = new Set<string>();
    const included = await includes().include(
      doctor,
      'Patient',
      request(['subject', 'performer'].map(revinclude)),
      [{ resourceType: 'Patient', id: 'p1' }],
      warnings,
    );
    expect(included).toHaveLength(900);
    expect(repository.loadSources.mock.calls.map((call) => call[4])).toEqual([1000, 1000]);
    expect(warnings.size).toBe(0);
  });

  it('loads a repeated _include or _revinclude once', async () => {
    repository.loadSources.mockResolvedValue(observations(3));
    const patient = { resourceType: 'Patient', id: 'p1' };
    const specs = [revinclude('subject'), revinclude('subject'), revinclude('patient')];
    const warnings = new Set<string>();
    const included = await includes().include(
      doctor,
      'Patient',
      request(specs),
      [patient],
      warnings,
    );
    expect(included).toHaveLength(3);
    expect(warnings.size).toBe(0);
    expect(repository.loadSources.mock.calls.map((call) => call[1])).toEqual([
      'subject',
      'patient',
    ]);
  });
});
