import { AppError } from '../common/errors/app-error.js';
import { assertMatchesOwnCriteria, byParameter, type CriteriaSearch } from './own-criteria.js';

/** A search that finds the resource when every part of the query is one it satisfies. */
function searchSatisfying(satisfied: string[]): CriteriaSearch {
  return (query) => {
    const [idPart, ...rest] = query.split('&').reverse();
    const id = decodeURIComponent(idPart!.slice('_id='.length));
    return Promise.resolve(rest.every((part) => satisfied.includes(part)) ? [id] : []);
  };
}

describe('assertMatchesOwnCriteria', () => {
  it('passes when the criteria, restricted to the written id, find it', async () => {
    await expect(
      assertMatchesOwnCriteria(
        'Patient',
        'p1',
        'Patient?identifier=s|v',
        searchSatisfying(['identifier=s|v']),
      ),
    ).resolves.toBeUndefined();
  });

  it('names the parameters that do not match, never their values', async () => {
    const error: unknown = await assertMatchesOwnCriteria(
      'Patient',
      'p1',
      'identifier=s|MRN-9&gender=female&name:exact=Smith',
      searchSatisfying(['gender=female']),
    ).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AppError);
    const text = JSON.stringify(error);
    expect((error as AppError).status).toBe(400);
    expect(text).toContain('identifier, name:exact');
    expect(text).not.toContain('gender');
    expect(text).not.toContain('MRN-9');
    expect(text).not.toContain('Smith');
  });
});

describe('byParameter', () => {
  it('groups the parts as sent by decoded parameter name', () => {
    expect([...byParameter('date=ge2020&date=le2021&na%6De=a%2Cb&')]).toEqual([
      ['date', ['date=ge2020', 'date=le2021']],
      ['name', ['na%6De=a%2Cb']],
    ]);
  });
});
