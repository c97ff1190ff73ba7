/** An outbound MLLP destination; `name` (`host:port` or `tls://host:port`) keys its outbox rows. */
export interface Hl7Destination {
  name: string;
  host: string;
  port: number;
  tls: boolean;
  /** MSH-5 and MSH-6 of the messages it gets, HDs as configured (`LIS`, `LAB^1.2.3^ISO`). */
  receivingApplication: string;
  receivingFacility: string;
  /**
   * The inbound senders (MSH-3 and MSH-4) this destination is, as HL7_OUTBOUND_SENDERS names
   * them: a change an HL7 feed made reaches the destination only when it has some, and the
   * feed's sender is not one of them (see Hl7Outbox).
   */
  senders: Hl7Sender[];
}

/** An inbound sender as configured: MSH-3 and MSH-4 as HD components; an empty one is any. */
export interface Hl7Sender {
  application: string[];
  facility: string[];
}

const NAME =
  '(?<name>(?<tls>tls://)?(?<host>[^\\s,:/[\\]]+|\\[[0-9A-Fa-f:]+\\]):(?<port>\\d{1,5}))';
const ENTRY = `${NAME}(?:/(?<application>[^\\s,/]*)(?:/(?<facility>[^\\s,/]*))?)?`;

/** One HL7_OUTBOUND entry: the address, then optionally `/application/facility`. */
const HL7_DESTINATION = new RegExp(`^${ENTRY}$`);

/** HL7_OUTBOUND as a whole: entries separated by commas (a group name may not repeat). */
const UNNAMED = ENTRY.replace(/\(\?<\w+>/g, '(');
export const HL7_OUTBOUND_LIST = new RegExp(`^\\s*${UNNAMED}(\\s*,\\s*${UNNAMED})*\\s*$`);

/** One HL7_OUTBOUND_SENDERS entry: a destination, `=`, its MSH-3, optionally `/` its MSH-4. */
const SENDER = new RegExp(`^${NAME}=(?<application>[^\\s,/=]+)(?:/(?<facility>[^\\s,/=]*))?$`);

/**
 * HL7_OUTBOUND (validated by HL7_OUTBOUND_LIST) as destinations, each with the inbound senders
 * HL7_OUTBOUND_SENDERS says it is. Many
 * receivers route on, or refuse without, MSH-5 and MSH-6, so each destination may name its
 * receiving application and facility. They are not part of the name: rows queued for a
 * destination stay its own when its receiver is changed. Returns an error message when one
 * destination is given two receivers.
 */
export function hl7Destinations(
  value: string | undefined,
  senders?: string,
): Hl7Destination[] | string {
  const byName = new Map<string, Hl7Destination>();
  for (const entry of entriesOf(value)) {
    const groups = HL7_DESTINATION.exec(entry)?.groups;
    if (!groups) return `"${entry}" is not host:port[/application[/facility]]`;
    const destination: Hl7Destination = {
      name: groups.name!,
      host: groups.host!.replace(/^\[(.*)\]$/, '$1'),
      port: Number(groups.port),
      tls: Boolean(groups.tls),
      receivingApplication: groups.application ?? '',
      receivingFacility: groups.facility ?? '',
      senders: [],
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
  for (const entry of entriesOf(senders)) {
    const groups = SENDER.exec(entry)?.groups;
    if (!groups) return `HL7_OUTBOUND_SENDERS: "${entry}" is not host:port=application[/facility]`;
    const destination = byName.get(groups.name!);
    if (!destination) {
      return `HL7_OUTBOUND_SENDERS: ${groups.name!} is not a destination HL7_OUTBOUND names`;
    }
    destination.senders.push({
      application: groups.application!.split('^'),
      facility: (groups.facility ?? '').split('^'),
    });
  }
  return [...byName.values()];
}

function entriesOf(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
}

/**
 * Whether a message's sender (MSH-3 and MSH-4, as HD components) is the configured one: each
 * component configured is the message's (`LIS` is LIS whatever its universal id, and LIS with
 * no facility given is LIS from any facility).
 */
export function isSender(configured: Hl7Sender, sender: Hl7Sender): boolean {
  const same = (mine: string[], theirs: string[]): boolean =>
    mine.every((component, index) => component === '' || component === (theirs[index] ?? ''));
  return (
    same(configured.application, sender.application) && same(configured.facility, sender.facility)
  );
}
