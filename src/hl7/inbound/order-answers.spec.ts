import { decodeMessage } from '../message/hl7-header.js';
import { V2Message } from '../message/v2-message.js';
import { giveAnswers, giveComponents, giveNotes } from './order-answers.js';

const MSH = 'MSH|^~\\&|PHARM|HOSP|CV|CV|20250301||RDE^O11|1|P|2.5';

/** The message's segments, and each RXE's OBX (set id) with its notes' text. */
function answersOfEachGive(...lines: string[]): [string, string[]][][] {
  const { text, header } = decodeMessage(Buffer.from([MSH, ...lines].join('\r')));
  const segments = new V2Message(text, header.delimiters).segments();
  return segments.flatMap((segment, at) =>
    segment.name === 'RXE'
      ? [
          giveAnswers(segments, at).map(({ obx, notes }): [string, string[]] => [
            obx.value(1) ?? '',
            notes.map((note) => note.value(3) ?? ''),
          ]),
        ]
      : [],
  );
}

describe("a pharmacy give's observations (giveAnswers)", () => {
  it('takes the OBX after the RXE, its TQ1, RXR, RXC and CDO, each with the NTE after it', () => {
    expect(
      answersOfEachGive(
        'ORC|NW|1^CPOE',
        'RXE||11124^Vancomycin^RXNORM|1000||mg',
        'NTE|1||A note of the give, not of an observation',
        'TQ1|1||Q12H',
        'RXR|IV',
        'RXC|B|338^Saline^RXNORM|250|mL',
        'CDO|1|A|100^mg',
        'OBX|1|NM|29463-7^Body weight^LN||72.5|kg',
        'NTE|1||Weighed on admission',
        'NTE|2||Without shoes',
        'PRT||AD',
        'NTE|1||After a PRT: not the OBX note',
        'OBX|2|NM|2160-0^Creatinine^LN||1.1|mg/dL',
        'FT1|1',
      ),
    ).toEqual([
      [
        ['1', ['Weighed on admission', 'Without shoes']],
        ['2', []],
      ],
    ]);
  });

  it("stops at the next order, give or dispense: each RXE has its own, an RXD's are not", () => {
    expect(
      answersOfEachGive(
        'ORC|NW|1^CPOE',
        'RXE||11124^Vancomycin^RXNORM|1000||mg',
        'OBX|1|NM|29463-7^Body weight^LN||72.5|kg',
        'ORC|NW|2^CPOE',
        'RXE||197361^Amlodipine^RXNORM|5||mg',
        'ORC|NW|3^CPOE',
        'RXE||197361^Amlodipine^RXNORM|5||mg',
        'RXD|1|197361^Amlodipine^RXNORM|20250301|30',
        'OBX|1|NM|8480-6^Systolic blood pressure^LN||150|mm[Hg]',
      ),
    ).toEqual([[['1', []]], [], []]);
  });
});

/** Each RXE's or RXD's notes (NTE-3) and components (RXC-2's code), as the message has them. */
function ofEachGive(...lines: string[]): [string[], string[]][] {
  const { text, header } = decodeMessage(Buffer.from([MSH, ...lines].join('\r')));
  const segments = new V2Message(text, header.delimiters).segments();
  return segments.flatMap((segment, at): [string[], string[]][] =>
    segment.name === 'RXE' || segment.name === 'RXD'
      ? [
          [
            giveNotes(segments, at).map((note) => note.value(3) ?? ''),
            giveComponents(segments, at).map((rxc) => rxc.value(2) ?? ''),
          ],
        ]
      : [],
  );
}

describe("a pharmacy give's notes and components (giveNotes, giveComponents)", () => {
  it('takes the NTE right after the RXE (or its PRT), and the RXC after its TQ1 and RXR', () => {
    expect(
      ofEachGive(
        'ORC|NW|1^CPOE',
        'RXO|11124^Vancomycin^RXNORM|1000||mg',
        "NTE|1||The order detail's note, not the give's",
        'RXC|A|999^Of the RXO^RXNORM|1|mg',
        'RXE||11124^Vancomycin^RXNORM|1000||mg',
        'PRT||AD',
        'NTE|1||Infuse over 2 hours',
        'NTE|2||Trough before the fourth dose',
        'TQ1|1||Q12H',
        "NTE|1||After its TQ1: not the give's",
        'RXR|IV',
        'RXC|B|313002^Saline^RXNORM|250|mL',
        'RXC|A|11124^Vancomycin^RXNORM|1000|mg',
        'OBX|1|NM|29463-7^Body weight^LN||72.5|kg',
        'RXC|A|998^After an OBX: not a component^RXNORM|1|mg',
      ),
    ).toEqual([
      [
        ['Infuse over 2 hours', 'Trough before the fourth dose'],
        ['313002', '11124'],
      ],
    ]);
  });

  it("stops at the next order, give or dispense: an RDS's RXE and RXD each have their own", () => {
    expect(
      ofEachGive(
        'ORC|RE|1^CPOE',
        'RXE||11124^Vancomycin^RXNORM|1000||mg',
        'RXC|A|11124^Vancomycin^RXNORM|1000|mg',
        'RXD|1|11124^Vancomycin^RXNORM|20250301|1',
        'NTE|1||Dispensed in a light-proof bag',
        'RXR|IV',
        'RXC|B|313002^Saline^RXNORM|250|mL',
        'ORC|RE|2^CPOE',
        'RXE||197361^Amlodipine^RXNORM|5||mg',
      ),
    ).toEqual([
      [[], ['11124']],
      [['Dispensed in a light-proof bag'], ['313002']],
      [[], []],
    ]);
  });
});
