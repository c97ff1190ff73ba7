import { AppError } from '../common/errors/app-error.js';
import { cascadeOutcome, cascadeRequested, splitCascade } from './cascade-delete.js';

describe('splitCascade', () => {
  it('takes _cascade out and leaves the criteria exactly as they came', () => {
    expect(splitCascade('identifier=urn%3Aoid%3A1%7CMRN-1&_cascade=delete&name=a+b')).toEqual({
      criteria: 'identifier=urn%3Aoid%3A1%7CMRN-1&name=a+b',
      cascade: ['delete'],
    });
    expect(splitCascade('_cascade=delete')).toEqual({ criteria: '', cascade: ['delete'] });
    expect(splitCascade('%5Fcascade=del%65te&_cascade')).toEqual({
      criteria: '',
      cascade: ['delete', ''],
    });
    expect(splitCascade('family=%E0%A4%A')).toEqual({ criteria: 'family=%E0%A4%A', cascade: [] });
  });
});

describe('cascadeRequested', () => {
  it('is true for delete, false when absent, and refuses anything else', () => {
    expect(cascadeRequested([], undefined)).toBe(false);
    expect(cascadeRequested(['delete'], undefined)).toBe(true);
    expect(cascadeRequested([], 'Delete')).toBe(true);
    for (const [values, header] of [[['yes']], [[''], undefined], [[], 'none']] as const) {
      expect(() => cascadeRequested(values, header)).toThrow(AppError);
    }
  });
});

describe('cascadeOutcome', () => {
  it('counts by type, in order, without content', () => {
    const outcome = cascadeOutcome({
      target: 'Patient/1',
      byType: new Map([
        ['Observation', 2],
        ['Encounter', 1],
      ]),
    });
    expect(outcome.issue[0]!.diagnostics).toBe(
      'Patient/1 deleted, with 3 resources that referred to it, directly or through others: ' +
        '1 Encounter, 2 Observation',
    );
  });
});
