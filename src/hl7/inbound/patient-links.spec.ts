import { Hl7ProcessingError } from '../message/hl7-header.js';
import { linked, unlinked, writeOrder } from './patient-links.js';

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

describe('linked', () => {
  it('adds a seealso link to the other patient, keeping the rest', () => {
    expect(linked([link('c', 'seealso'), link('b', 'refer')], 'b')).toEqual([
      link('c', 'seealso'),
      link('b', 'refer'),
      link('b', 'seealso'),
    ]);
  });

  it('leaves the links as they are when linked already', () => {
    expect(linked([link('b', 'seealso')], 'b')).toEqual([link('b', 'seealso')]);
  });

  it.each(['replaced-by', 'replaces'])('refuses a %s link to the other: a merge', (type) => {
    expect(() => linked([link('b', type)], 'b')).toThrow(
      expect.objectContaining({ code: '207' }) as Hl7ProcessingError,
    );
  });
});

describe('writeOrder', () => {
  it('writes the pair by id, whichever PID names which', () => {
    const [low, high] = [
      '0b6e1c2a-0000-4000-8000-000000000001',
      'f1d2c3b4-0000-4000-8000-000000000002',
    ];
    expect(writeOrder([low, high])).toEqual([0, 1]);
    expect(writeOrder([high, low])).toEqual([1, 0]);
  });
});
