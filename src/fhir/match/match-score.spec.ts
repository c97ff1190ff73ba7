import { scoreMatch, type PatientFacts } from './match-score.js';

const MRN = 'urn:oid:2.16.840.1.113883.3.1';
const ana: PatientFacts = {
  identifier: [{ system: MRN, value: 'M-100' }],
  name: [{ family: 'Álvarez', given: ['Ana', 'María'] }],
  birthDate: '1980-04-02',
  gender: 'female',
  telecom: [{ system: 'phone', value: '+1 (555) 010-7788' }],
  address: [{ postalCode: '02139' }],
};

describe('$match scoring', () => {
  it('is certain on the same identifier, and only possible when the birth dates differ', () => {
    expect(scoreMatch({ identifier: [{ system: MRN, value: 'M-100' }] }, ana)).toEqual({
      score: 1,
      grade: 'certain',
    });
    const otherBirth = scoreMatch(
      { identifier: [{ system: MRN, value: 'M-100' }], birthDate: '1981-04-02' },
      ana,
    );
    expect(otherBirth).toEqual({ score: 0.5, grade: 'possible' });
  });

  it('adds up agreeing demographics, case and accents aside', () => {
    expect(
      scoreMatch({ name: [{ family: 'ALVAREZ', given: ['ana'] }], birthDate: '1980-04-02' }, ana),
    ).toEqual({ score: 0.8, grade: 'probable' });
    expect(scoreMatch({ name: [{ family: 'Alvarez' }], birthDate: '1980-04-02' }, ana)).toEqual({
      score: 0.6,
      grade: 'possible',
    });
    expect(
      scoreMatch(
        {
          name: [{ given: ['María'] }],
          birthDate: '1980-04-02',
          telecom: [{ system: 'phone', value: '15550107788' }],
          gender: 'female',
        },
        ana,
      ),
    ).toEqual({ score: 0.65, grade: 'possible' });
    // A name alone is not a match.
    expect(scoreMatch({ name: [{ family: 'Alvarez' }] }, ana)).toBeUndefined();
  });

  it('takes away for a different birth date, gender or MRN of the same system', () => {
    const same = { name: [{ family: 'Alvarez', given: ['Ana'] }], birthDate: '1980-04-02' };
    expect(scoreMatch({ ...same, gender: 'male' }, ana)).toEqual({ score: 0.7, grade: 'possible' });
    expect(
      scoreMatch({ ...same, identifier: [{ system: MRN, value: 'M-999' }] }, ana),
    ).toBeUndefined();
    expect(
      scoreMatch(
        { name: same.name, birthDate: '1979-01-01', address: [{ postalCode: '02139' }] },
        ana,
      ),
    ).toBeUndefined();
  });
});
