/** An outbound MLLP destination; `name` (`host:port` or `tls://host:port`) keys its outbox rows. */
export interface Hl7Destination {
  name: string;
  host: string;
  port: number;
  tls: boolean;
  /** MSH-5 and MSH-6 of the messages it gets, HDs as configured (`LIS`, `LAB^1.2.3^ISO`). */
  receivingApplication: string;
  receivingFacility: string;
}

const ENTRY =
  '(?<name>(?<tls>tls://)?(?<host>[^\\s,:/[\\]]+|\\[[0-9A-Fa-f:]+\\]):(?<port>\\d{1,5}))' +
  '(?:/(?<application>[^\\s,/]*)(?:/(?<facility>[^\\s,/]*))?)?';

/** One HL7_OUTBOUND entry: the address, then optionally `/application/facility`. */
const HL7_DESTINATION = new RegExp(`^${ENTRY}$`);

/** HL7_OUTBOUND as a whole: entries separated by commas (a group name may not repeat). */
const UNNAMED = ENTRY.replace(/\(\?<\w+>/g, '(');
export const HL7_OUTBOUND_LIST = new RegExp(`^\\s*${UNNAMED}(\\s*,\\s*${UNNAMED})*\\s*$`);

/**
 * HL7_OUTBOUND (validated by HL7_OUTBOUND_LIST) as destinations. Many
 * receivers route on, or refuse without, MSH-5 and MSH-6, so each destination may name its
 * receiving application and facility. They are not part of the name: rows queued for a
 * destination stay its own when its receiver is changed. Returns an error message when one
 * destination is given two receivers.
 */
export function hl7Destinations(value: string | undefined): Hl7Destination[] | string {
  const byName = new Map<string, Hl7Destination>();
  const entries = (value ?? '').split(',').map((entry) => entry.trim());
  for (const entry of entries.filter((entry) => entry.length > 0)) {
    const groups = HL7_DESTINATION.exec(entry)?.groups;
    if (!groups) return `"${entry}" is not host:port[/application[/facility]]`;
    const destination: Hl7Destination = {
      name: groups.name!,
      host: groups.host!.replace(/^\[(.*)\]$/, '$1'),
      port: Number(groups.port),
      tls: Boolean(groups.tls),
      receivingApplication: groups.application ?? '',
      receivingFacility: groups.facility ?? '',
    };
    const earlier = byName.get(destination.name);
    if (
      earlier &&
      (earlier.receivingApplication !== destination.receivingApplication ||
        earlier.receivingFacility !== destination.receivingFacility)
    ) {
      return `${destination.name} is named twice with different receivers`;
    }
    byName.set(destination.name, destination);
  }
  return [...byName.values()];
}
