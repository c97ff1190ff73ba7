import { ConfigError, validateEnv } from './env.schema.js';
import { hl7Destinations } from './hl7-destinations.js';

describe('HL7_OUTBOUND destinations', () => {
  it('reads host:port, tls:// and IPv6 addresses, each with an optional receiver', () => {
    expect(
      hl7Destinations(
        '127.0.0.1:2575, tls://lis.example:6661/LIS/LAB^2.16.840.1.113883.19.7^ISO,[::1]:7000//WARD',
      ),
    ).toEqual([
      {
        name: '127.0.0.1:2575',
        host: '127.0.0.1',
        port: 2575,
        tls: false,
        receivingApplication: '',
        receivingFacility: '',
      },
      {
        name: 'tls://lis.example:6661',
        host: 'lis.example',
        port: 6661,
        tls: true,
        receivingApplication: 'LIS',
        receivingFacility: 'LAB^2.16.840.1.113883.19.7^ISO',
      },
      {
        name: '[::1]:7000',
        host: '::1',
        port: 7000,
        tls: false,
        receivingApplication: '',
        receivingFacility: 'WARD',
      },
    ]);
  });

  it('takes a destination named twice once, and refuses it with two receivers', () => {
    expect(hl7Destinations('h:1/A, h:1/A')).toHaveLength(1);
    expect(hl7Destinations('h:1/A,h:1/B')).toBe('h:1 is named twice with different receivers');
    expect(() => validateEnv({ HL7_OUTBOUND: 'h:1/A,h:1' })).toThrow(
      new ConfigError(
        'Invalid configuration: HL7_OUTBOUND: h:1 is named twice with different receivers',
      ),
    );
  });

  it.each(['h:1/A/B/C', 'h', 'h:1,', 'tls:/h:1', 'h:1/A B'])('refuses %j', (value) => {
    expect(() => validateEnv({ HL7_OUTBOUND: value })).toThrow(
      /^Invalid configuration: HL7_OUTBOUND must be a comma-separated list of host:port/,
    );
  });
});
