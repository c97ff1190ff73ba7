import { Hl7ProcessingError } from '../message/hl7-header.js';
import { unlinked } from './patient-links.js';

const link = (id: string, type: string) => ({ other: { reference: `Patient/${id}` }, type });

describe('unlinked', () => {
  it('drops the seealso links to the other patient and keeps the rest', () => {
    expect(unlinked([link('b', 'seealso'), link('c', 'seealso'), link('b', 'refer')], 'b')).toEqual(
      [link('c', 'seealso'), link('b', 'refer')],
    );
  });

  it('leaves links to others alone, and nothing to unlink as it is', () => {
    expect(unlinked([], 'b')).toEqual([]);
    expect(unlinked([link('c', 'replaced-by')], 'b')).toEqual([link('c', 'replaced-by')]);
  });

  it.each(['replaced-by', 'replaces'])('refuses a %s link to the other: a merge', (type) => {
    expect(() => unlinked([link('b', 'seealso'), link('b', type)], 'b')).toThrow(
      expect.objectContaining({ code: '207' }) as Hl7ProcessingError,
    );
  });
});
