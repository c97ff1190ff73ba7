import { codingSystemName, codingSystemOf, LOCAL_CODING_SYSTEM } from './datatypes.js';

describe('coding systems of table 0396', () => {
  it('gives the immunization feeds their published systems, and back', () => {
    // A route of RXR-1 (NCI Thesaurus), a funding source or eligibility scope (CDC PHIN VS):
    // the URIs HL7 Terminology (THO) publishes for them, not a local system of their name.
    const published = {
      NCIT: 'http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl',
      CDCPHINVS: 'https://phinvads.cdc.gov/vads/ViewCodeSystem.action?id=2.16.840.1.114222.4.5.274',
    };
    for (const [name, uri] of Object.entries(published)) {
      expect(codingSystemOf(name)).toBe(uri);
      expect(codingSystemOf(name.toLowerCase())).toBe(uri);
      expect(codingSystemName(uri)).toBe(name);
    }
  });

  it('keeps a name of no published system local, and an HL7 table its own', () => {
    expect(codingSystemOf('NIP001')).toBe(`${LOCAL_CODING_SYSTEM}NIP001`);
    expect(codingSystemOf('99ZZZ')).toBe(`${LOCAL_CODING_SYSTEM}99ZZZ`);
    expect(codingSystemName(`${LOCAL_CODING_SYSTEM}NIP001`)).toBe('NIP001');
    expect(codingSystemOf('HL70163')).toBe('http://terminology.hl7.org/CodeSystem/v2-0163');
    expect(codingSystemOf('')).toBeUndefined();
  });
});
