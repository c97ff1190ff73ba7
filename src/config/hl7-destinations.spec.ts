import { ConfigError, validateEnv } from './env.schema.js';
import { hl7Destinations, isSender } from './hl7-destinations.js';

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
        senders: [],
      },
      {
        name: 'tls://lis.example:6661',
        host: 'lis.example',
        port: 6661,
        tls: true,
        receivingApplication: 'LIS',
        receivingFacility: 'LAB^2.16.840.1.113883.19.7^ISO',
        senders: [],
      },
      {
        name: '[::1]:7000',
        host: '::1',
        port: 7000,
        tls: false,
        receivingApplication: '',
        receivingFacility: 'WARD',
        senders: [],
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

  it('reads which inbound senders a destination is, and tells them by the components given', () => {
    const [adt, lis] = hl7Destinations(
      'adt:1/ADT, tls://lis:2/LIS',
      'adt:1=ADT/HOSP^2.16.9^ISO, tls://lis:2=LIS, adt:1=REG',
    ) as Exclude<ReturnType<typeof hl7Destinations>, string>;
    expect(adt!.senders).toEqual([
      { application: ['ADT'], facility: ['HOSP', '2.16.9', 'ISO'] },
      { application: ['REG'], facility: [''] },
    ]);
    const [lisSender] = lis!.senders;
    expect(isSender(lisSender!, { application: ['LIS', '1.2', 'ISO'], facility: ['X'] })).toBe(
      true,
    );
    expect(isSender(lisSender!, { application: ['LIS2'], facility: [''] })).toBe(false);
    const hospital = adt!.senders[0]!;
    expect(isSender(hospital, { application: ['ADT'], facility: ['HOSP', '2.16.9', 'ISO'] })).toBe(
      true,
    );
    expect(isSender(hospital, { application: ['ADT'], facility: ['HOSP'] })).toBe(false);
  });

  it.each([
    ['h:1', 'HL7_OUTBOUND_SENDERS: "h:1" is not host:port=application[/facility]'],
    ['h:1=', 'HL7_OUTBOUND_SENDERS: "h:1=" is not host:port=application[/facility]'],
    ['h:2=ADT', 'HL7_OUTBOUND_SENDERS: h:2 is not a destination HL7_OUTBOUND names'],
  ])('refuses HL7_OUTBOUND_SENDERS %j', (value, message) => {
    expect(() => validateEnv({ HL7_OUTBOUND: 'h:1', HL7_OUTBOUND_SENDERS: value })).toThrow(
      new ConfigError(`Invalid configuration: ${message}`),
    );
  });
});
