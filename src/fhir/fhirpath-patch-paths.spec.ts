import { isPatchPath, MAX_PATCH_PATH_LENGTH } from './fhirpath-patch-paths.js';

describe('isPatchPath', () => {
  it('takes the paths that patches send: elements, indexes, first, last, ofType, where', () => {
    for (const path of [
      'Patient',
      'Patient.birthDate',
      'Patient.name[0].given[1]',
      "Patient.telecom.where(system='email')",
      "Patient.telecom.where(system = 'email' and use = 'home').value",
      "Patient.name.where(family = 'O\\'Brien')",
      "Patient.name.given.where($this = 'Ana')",
      'Patient.extension.where(value = 2)',
      "Patient.identifier.where(type.coding.code = 'MR')[0]",
      'Patient.birthDate.where(false)',
      'Patient.name.first().given.last()',
      "MedicationRequest.contained.where(id = 'med').code.text",
      'MedicationRequest.contained.ofType(Observation).value',
      'Observation.component[0].value.value',
      ' Patient . name [ 0 ] ',
    ]) {
      expect({ path, taken: isPatchPath(path) }).toEqual({ path, taken: true });
    }
  });

  it('refuses operators, other functions, nesting and what does not start at the resource', () => {
    for (const path of [
      '(Patient.extension | Patient.extension).where(false)',
      'Patient.extension | Patient.extension',
      'Patient.extension.repeat(extension)',
      'Patient.descendants()',
      'Patient.children().children()',
      'Patient.name.select(given)',
      'Patient.name.combine(Patient.name)',
      'Patient.name.distinct()',
      "Patient.extension('http://example.org')",
      'Patient.generalPractitioner.resolve()',
      'Patient.name.where(given.exists())',
      "Patient.name.where(family != 'x')",
      "Patient.name.where(family = 'x' or family = 'y')",
      'Patient.name.where(family = given)',
      'Patient.name.where(where(true))',
      'Patient.name[0 + 1]',
      'Patient.name[%index]',
      'Patient.name.given.count()',
      'name.given',
      'Patient.',
      'Patient..name',
      "Patient.name.where(family = 'unterminated)",
      'Patient.`div`',
      'Patient.name // comment',
      '',
      `Patient${'.name'.repeat(MAX_PATCH_PATH_LENGTH / 5)}`,
    ]) {
      expect({ path, taken: isPatchPath(path) }).toEqual({ path, taken: false });
    }
  });
});
