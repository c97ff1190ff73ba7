import { decodeMessage } from '../message/hl7-header.js';
import { V2Message } from '../message/v2-message.js';
import { medicationDispenseOf, medicationOf, medicationRequestOf } from './medication.js';

const MSH = 'MSH|^~\\&|PHARM|HOSP|CV|CV|20250301||RDE^O11|1|P|2.5';

function segments(...lines: string[]) {
  const { text, header } = decodeMessage(Buffer.from([MSH, ...lines].join('\r')));
  return new V2Message(text, header.delimiters).segments().slice(1);
}

const VANCOMYCIN = '11124^Vancomycin 1000 MG Injection^RXNORM';
const SALINE = '313002^Sodium Chloride 9 MG/ML Injectable Solution^RXNORM';

describe("a compound's components (RXC) as a contained Medication (medicationOf)", () => {
  it('gives the code alone as a CodeableConcept when there is no component', () => {
    const [rxe] = segments(`RXE||${VANCOMYCIN}|1000||mg`);
    expect(medicationOf(rxe!.repetitions(2)[0], [])).toEqual({
      medicationCodeableConcept: {
        coding: [
          {
            system: 'http://www.nlm.nih.gov/research/umls/rxnorm',
            code: '11124',
            display: 'Vancomycin 1000 MG Injection',
          },
        ],
        text: 'Vancomycin 1000 MG Injection',
      },
    });
    expect(medicationOf(undefined, [])).toBeUndefined();
  });

  it('names a contained Medication of the code and of each component as an ingredient', () => {
    const [rxe, base, additive] = segments(
      `RXE||${VANCOMYCIN}|1000||mg`,
      `RXC|B|${SALINE}|250|mL^milliliter^UCUM`,
      `RXC|A|${VANCOMYCIN}|1000|mg^milligram^UCUM|||5737Y`,
    );
    const medication = medicationOf(rxe!.repetitions(2)[0], [base!, additive!]);
    expect(medication).toEqual({
      contained: [
        {
          resourceType: 'Medication',
          id: 'compound',
          code: medicationOf(rxe!.repetitions(2)[0], [])!['medicationCodeableConcept'],
          ingredient: [
            {
              itemCodeableConcept: expect.objectContaining({
                coding: [expect.objectContaining({ code: '313002' })],
              }),
              strength: {
                numerator: {
                  value: 250,
                  unit: 'milliliter',
                  system: 'http://unitsofmeasure.org',
                  code: 'mL',
                },
                denominator: { value: 1 },
              },
            },
            {
              itemCodeableConcept: expect.objectContaining({
                coding: [expect.objectContaining({ code: '11124' })],
              }),
              // An additive is active; a base (the saline, or a dextrose) is not said either way.
              isActive: true,
              strength: {
                numerator: {
                  value: 1000,
                  unit: 'milligram',
                  system: 'http://unitsofmeasure.org',
                  code: 'mg',
                },
                denominator: { value: 1 },
              },
            },
          ],
        },
      ],
      medicationReference: { reference: '#compound' },
    });
  });

  it('leaves out a component of no code, an amount not sent, and a Medication of no code', () => {
    const [uncoded, unmeasured] = segments('RXC|A|^^RXNORM|5|mL', `RXC|B|${SALINE}`);
    expect(medicationOf(undefined, [uncoded!, unmeasured!])).toEqual({
      contained: [
        {
          resourceType: 'Medication',
          id: 'compound',
          ingredient: [
            { itemCodeableConcept: expect.objectContaining({ text: expect.any(String) }) },
          ],
        },
      ],
      medicationReference: { reference: '#compound' },
    });
    // Components none of which says what it is: no compound, and so no drug at all.
    expect(medicationOf(undefined, [uncoded!])).toBeUndefined();
  });

  it('is the medication of an RXE, and of an RXD, with their components', () => {
    const [rxe, rxd, rxc] = segments(
      `RXE||${VANCOMYCIN}|1000||mg`,
      `RXD|1|${VANCOMYCIN}|20250301|1|BAG^Bag`,
      `RXC|A|${VANCOMYCIN}|1000|mg`,
    );
    const request = medicationRequestOf(
      undefined,
      rxe!,
      undefined,
      'p1',
      [],
      undefined,
      undefined,
      [rxc!],
    );
    expect(request).toMatchObject({ medicationReference: { reference: '#compound' } });
    expect(request).not.toHaveProperty('medicationCodeableConcept');
    const dispense = medicationDispenseOf(rxd!, undefined, 'p1', undefined, undefined, undefined, [
      rxc!,
    ]);
    expect(dispense).toMatchObject({ medicationReference: { reference: '#compound' } });
    // An RXE of no give code (RXE-2) but of components is the compound they make.
    const [bare] = segments('RXE|||1000||mg');
    expect(
      medicationRequestOf(undefined, bare!, undefined, 'p1', [], undefined, undefined, [rxc!]),
    ).toMatchObject({ contained: [{ ingredient: [expect.anything()] }] });
    expect(medicationRequestOf(undefined, bare!, undefined, 'p1', [])).toBeUndefined();
  });
});
