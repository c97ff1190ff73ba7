import { decodeMessage } from '../message/hl7-header.js';
import { V2Message } from '../message/v2-message.js';
import { eventInstant, isStale, reportInstant } from './event-order.js';
import { visitAfter } from './visits.js';

function message(timeZone: string | undefined, ...segments: string[]): V2Message {
  const { text, header } = decodeMessage(Buffer.from(segments.join('\r')));
  return new V2Message(text, header.delimiters, timeZone);
}

const msh = (time: string) => `MSH|^~\\&|ADT|HOSP|CV|CV|${time}||ADT^A08|1|P|2.5`;

describe('event order', () => {
  it('takes EVN-2, else MSH-7, as an instant', () => {
    const evn = message(undefined, msh('202503011200+0000'), 'EVN|A08|202503011100+0100');
    expect(eventInstant(evn)).toEqual(new Date('2025-03-01T10:00:00Z'));
    expect(eventInstant(message(undefined, msh('202503011200-0500')))).toEqual(
      new Date('2025-03-01T17:00:00Z'),
    );
    // EVN-2 by date alone says less than MSH-7's time.
    const dated = message(undefined, msh('202503011200+0000'), 'EVN|A08|20250301');
    expect(eventInstant(dated)).toEqual(new Date('2025-03-01T12:00:00Z'));
  });

  it('orders nothing by a date alone, nor by a local time no zone places', () => {
    expect(eventInstant(message(undefined, msh('20250301')))).toBeUndefined();
    expect(eventInstant(message(undefined, msh('202503011200')))).toBeUndefined();
    expect(eventInstant(message('America/Chicago', msh('202503011200')))).toEqual(
      new Date('2025-03-01T18:00:00Z'),
    );
  });

  it('orders nothing by a time more than an hour ahead of the clock (a year mistyped)', () => {
    const now = new Date('2025-03-01T12:00:00Z');
    const soon = message(undefined, msh('202503011259+0000'));
    expect(eventInstant(soon, now)).toEqual(new Date('2025-03-01T12:59:00Z'));
    expect(eventInstant(message(undefined, msh('205203011200+0000')), now)).toBeUndefined();
    // A mistyped EVN-2 leaves MSH-7 to say when.
    const evn = message(undefined, msh('202503011100+0000'), 'EVN|A08|205203011100+0000');
    expect(eventInstant(evn, now)).toEqual(new Date('2025-03-01T11:00:00Z'));
    const oru = message(
      undefined,
      msh('202503011100+0000'),
      `OBR|1||F1|2345-7^Glucose^LN|||202503010800+0000${'|'.repeat(15)}205203011000+0000`,
    );
    const messageAt = eventInstant(oru, now);
    expect(reportInstant(oru.first('OBR')!, messageAt, now)).toEqual(messageAt);
  });

  it("takes a report's status change time (OBR-22), else the message's", () => {
    const oru = message(
      undefined,
      msh('202503011200+0000'),
      `OBR|1||F1|2345-7^Glucose^LN|||202503010800+0000${'|'.repeat(15)}202503011000+0000`,
      'OBR|2||F2|2345-7^Glucose^LN|||202503010800+0000',
    );
    const [first, second] = oru.all('OBR');
    const messageAt = eventInstant(oru);
    expect(reportInstant(first!, messageAt)).toEqual(new Date('2025-03-01T10:00:00Z'));
    expect(reportInstant(second!, messageAt)).toEqual(new Date('2025-03-01T12:00:00Z'));
  });

  it('calls an event stale only when a strictly newer one was applied', () => {
    const at = new Date('2025-03-01T12:00:00Z');
    expect(isStale(at, new Date('2025-03-01T12:00:01Z'))).toBe(true);
    expect(isStale(at, at)).toBe(false);
    expect(isStale(at, null)).toBe(false);
    expect(isStale(undefined, at)).toBe(false);
  });
});

describe('a visit after an event', () => {
  const ward = (display: string) => ({ location: { reference: `Location/${display}`, display } });
  const stored = {
    resourceType: 'Encounter',
    meta: { versionId: '3' },
    status: 'in-progress',
    class: { code: 'IMP' },
    period: { start: '2025-03-01T10:00:00+00:00' },
    location: [{ ...ward('6N'), status: 'active' }],
  };

  it('takes a newer event whole, the stay moving to its location', () => {
    const next = visitAfter(
      stored,
      {
        resourceType: 'Encounter',
        status: 'in-progress',
        class: { code: 'EMER' },
        location: [{ ...ward('ICU'), status: 'active' }],
      },
      { status: 'in-progress' },
      false,
    );
    expect(next).toEqual({
      resourceType: 'Encounter',
      status: 'in-progress',
      class: { code: 'EMER' },
      period: { start: '2025-03-01T10:00:00+00:00' },
      location: [
        { ...ward('6N'), status: 'completed' },
        { ...ward('ICU'), status: 'active' },
      ],
    });
  });

  it('takes only the status and times of a discharge older than the last update', () => {
    const next = visitAfter(
      stored,
      {
        resourceType: 'Encounter',
        status: 'finished',
        class: { code: 'EMER' },
        period: { end: '2025-03-01T13:00:00+00:00' },
        location: [ward('5W')],
        serviceType: { text: 'SUR' },
      },
      { status: 'finished', known: 'A discharge' },
      true,
    );
    expect(next).toEqual({
      resourceType: 'Encounter',
      status: 'finished',
      class: { code: 'IMP' },
      period: { start: '2025-03-01T10:00:00+00:00', end: '2025-03-01T13:00:00+00:00' },
      // Where the newer update placed the patient, which the discharge ended.
      location: [{ ...ward('6N'), status: 'completed' }],
      serviceType: { text: 'SUR' },
    });
  });
});
