import { AppError } from '../errors/app-error.js';
import { parseJsonBody } from './json-body.js';

function refusal(
  text: string,
  options = { exactNumbers: false },
): { status: number; code: string; expression?: string[] } {
  try {
    parseJsonBody(text, options);
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    const { code, expression } = error.issues[0]!;
    return { status: error.status, code, ...(expression ? { expression } : {}) };
  }
  throw new Error('expected a refusal');
}

describe('parseJsonBody', () => {
  it('refuses every name of Object.prototype as a key, at any depth, naming where', () => {
    for (const name of Object.getOwnPropertyNames(Object.prototype)) {
      expect(refusal(`{"resourceType":"Patient","${name}":{"a":"b"}}`)).toEqual({
        status: 400,
        code: 'security',
        expression: [`Patient.${name}`],
      });
    }
    const cases: [string, string][] = [
      [
        '{"resourceType":"Patient","name":[{"family":"A"},{"valueOf":1}]}',
        'Patient.name[1].valueOf',
      ],
      ['{"resourceType":"Patient","meta":{"toString":"x"}}', 'Patient.meta.toString'],
      [
        '{"resourceType":"Observation","valueQuantity":{"value":1,"hasOwnProperty":true}}',
        'Observation.valueQuantity.hasOwnProperty',
      ],
      [
        '{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST"},' +
          '"resource":{"resourceType":"Patient","active":true,"constructor":{}}}]}',
        'Bundle.entry[0].resource.constructor',
      ],
      // Written with escapes, it is the same key to JSON.parse.
      ['{"resourceType":"Patient","\\u0074oString":1}', 'Patient.toString'],
      ['{"a":[[1,2],{"b":{"__proto__":{"admin":true}}}]}', 'a[1].b.__proto__'],
    ];
    for (const [text, path] of cases) {
      expect(refusal(text)).toEqual({ status: 400, code: 'security', expression: [path] });
    }
    // A key on the way that is not a plain name is not echoed: it could be anything.
    expect(refusal('{"Ann Lee":{"toString":1}}')).toEqual({ status: 400, code: 'security' });
  });

  it('takes those names as values, inside strings and as parts of longer keys', () => {
    const text =
      '{"resourceType":"Patient","text":{"div":"\\"toString\\": {\\"constructor\\": 1}"},' +
      '"name":[{"family":"constructor","given":["valueOf"]}],"toStringX":1,"_valueOf":2,' +
      '"a\\\\":{"b":"\\\\"},"hasOwnPropert":3}';
    expect(parseJsonBody(text)).toEqual(JSON.parse(text));
  });

  it('refuses nesting deeper than 64 levels before parsing, ignoring brackets in strings', () => {
    expect(refusal(`{"a":${'['.repeat(65)}${']'.repeat(65)}}`)).toEqual({
      status: 400,
      code: 'too-long',
    });
    const shallow = `{"a":"${'[{'.repeat(100)}","b":${'['.repeat(62)}${']'.repeat(62)}}`;
    expect(parseJsonBody(shallow)).toEqual(JSON.parse(shallow));
  });

  it('refuses half a surrogate pair escaped in a string, naming the element', () => {
    for (const escape of ['\\ud800', '\\uDBFF x', '\\udc00', '\\ud800\\ud800', '\\ud800\\n']) {
      expect(refusal(`{"resourceType":"Patient","name":[{"family":"A${escape}"}]}`)).toEqual({
        status: 400,
        code: 'structure',
        expression: ['Patient.name[0].family'],
      });
    }
    expect(refusal('{"resourceType":"Patient","\\ud800":1}')).toEqual({
      status: 400,
      code: 'structure',
    });
    // A pair is one character (😀), whichever the case of its hex digits.
    const text = '{"a":"\\ud83d\\ude00 \\uD83D\\uDE00 \\u00fc \\\\ud800"}';
    expect(parseJsonBody(text)).toEqual({ a: '😀 😀 ü \\ud800' });
  });

  it('refuses a NUL character escaped in a string or a key, naming the element', () => {
    for (const escape of ['\\u0000', 'x\\u0000', '\\u0000\\u0041']) {
      expect(refusal(`{"resourceType":"Patient","meta":{"tag":[{"code":"${escape}"}]}}`)).toEqual({
        status: 400,
        code: 'structure',
        expression: ['Patient.meta.tag[0].code'],
      });
    }
    expect(refusal('{"username":"dr.lee\\u0000","password":"x"}')).toEqual({
      status: 400,
      code: 'structure',
      expression: ['username'],
    });
    expect(refusal('{"resourceType":"Patient","na\\u0000me":1}')).toEqual({
      status: 400,
      code: 'structure',
    });
    // Other escapes that merely start with zeros, and a backslash before u0000, are text.
    const text = '{"a":"\\u0001\\u0010\\u00e9\\\\u0000"}';
    expect(parseJsonBody(text)).toEqual(JSON.parse(text));
  });

  it('refuses a key given twice in one object, however written, naming it', () => {
    const cases: [string, string | undefined][] = [
      ['{"resourceType":"Patient","gender":"male","gender":"female"}', 'Patient.gender'],
      // Named by the type JSON.parse kept, the last.
      ['{"resourceType":"Patient","resourceType":"Observation"}', 'Observation.resourceType'],
      [
        '{"resourceType":"Patient","name":[{"family":"A"},{"family":"B","family":"C"}]}',
        'Patient.name[1].family',
      ],
      ['{"resourceType":"Patient","active":true,"\\u0061ctive":false}', 'Patient.active'],
      ['{"username":"nobody","password":"x","username":"dr.lee"}', 'username'],
    ];
    for (const [text, path] of cases) {
      expect(refusal(text)).toEqual({
        status: 400,
        code: 'structure',
        ...(path ? { expression: [path] } : {}),
      });
    }
    // The same key in sibling or nested objects, and a key equal to a value, is no repeat.
    const text =
      '{"resourceType":"Patient","name":[{"family":"A"},{"family":"B"}],' +
      '"contact":[{"name":{"family":"C","name":"x"}}],"family":"family"}';
    expect(parseJsonBody(text)).toEqual(JSON.parse(text));
  });

  it('refuses, in FHIR bodies, a number a double cannot hold as written, naming the element', () => {
    const fhir = { exactNumbers: true };
    const observation = (value: string) =>
      `{"resourceType":"Observation","component":[{"code":{"text":"a"}},` +
      `{"valueQuantity":{"unit":"mg","value":${value}}}]}`;
    for (const value of [
      '9007199254740993',
      '-9007199254740993',
      '0.1000000000000000055511151231257827',
      '1e-400',
      '1E400',
      '123456789012345678901234567890',
    ]) {
      expect(refusal(observation(value), fhir)).toEqual({
        status: 400,
        code: 'value',
        expression: ['Observation.component[1].valueQuantity.value'],
      });
      // Elsewhere numbers are counts and flags, as JSON.parse reads them.
      expect(() => parseJsonBody(observation(value))).not.toThrow();
    }
    for (const value of ['1.10', '5.4', '-0.0', '1e3', '0.30000000000000004', '9007199254740991']) {
      expect(parseJsonBody(observation(value), fhir)).toEqual(JSON.parse(observation(value)));
    }
    // Digits in strings and keys are text.
    const text = '{"a1":"9007199254740993","b":[1,2.5,-3e2],"c":"1e-400"}';
    expect(parseJsonBody(text, fhir)).toEqual(JSON.parse(text));
  });

  it('says a body is empty or not JSON without quoting it', () => {
    expect(refusal('  ')).toEqual({ status: 400, code: 'structure' });
    expect(refusal('{"name":"Ann Lee",}')).toEqual({ status: 400, code: 'structure' });
    expect(refusal('{"toString":"Ann Lee",}')).toEqual({ status: 400, code: 'structure' });
  });
});
