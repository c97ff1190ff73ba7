import type { AppConfig } from '../../config/config.js';
import type { Hl7Destination } from '../../config/hl7-destinations.js';
import { ResourceWrites } from '../../fhir/resource-writes.js';
import type { ResourceRepository } from '../../fhir/resource.repository.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { HL7_USER } from '../hl7-user.js';
import { InboundSender } from '../inbound/inbound-sender.js';
import type { Hl7OutboxEntity } from './hl7-outbox.entity.js';
import type { Hl7OutboxRepository, NewOutboxMessage } from './hl7-outbox.repository.js';
import { Hl7Outbox } from './hl7-outbox.service.js';

const USER: AuthenticatedUser = {
  id: 'u1',
  username: 'doctor',
  roles: ['doctor'],
  amr: [],
  authTime: 0,
};

/** The outbox's rows as added, and one stored row for the resend tests. */
function outboxWith(rows: NewOutboxMessage[], stored?: Partial<Hl7OutboxEntity>) {
  const requeued: string[] = [];
  const repository: Pick<Hl7OutboxRepository, 'add' | 'findById' | 'requeue'> = {
    add: (messages) => {
      rows.push(...messages);
      return Promise.resolve();
    },
    findById: () => Promise.resolve((stored as Hl7OutboxEntity | undefined) ?? null),
    requeue: (id) => {
      requeued.push(id);
      return Promise.resolve(true);
    },
  };
  const writes = new ResourceWrites();
  const config = {
    hl7Outbound: {
      destinations: [
        {
          name: 'ris:2575',
          host: 'ris',
          port: 2575,
          tls: false,
          receivingApplication: 'RIS',
          receivingFacility: '',
          senders: [] as Hl7Destination['senders'],
        },
      ],
      facility: 'CAREVAULT',
      processingId: 'T',
    },
  } as AppConfig;
  const outbox = new Hl7Outbox(
    config,
    writes,
    repository as unknown as Hl7OutboxRepository,
    new InboundSender(),
    // Read only for a merge (a Patient newly replaced-by another), which these tests do not make.
    {} as ResourceRepository,
  );
  outbox.onModuleInit();
  return { outbox, writes, requeued };
}

describe('Hl7Outbox', () => {
  it('sends the configured processing id in MSH-11, so that a training instance is not taken for production', async () => {
    const rows: NewOutboxMessage[] = [];
    const { writes } = outboxWith(rows);
    const resource = { resourceType: 'Patient', id: 'p1', meta: { versionId: '1' } };
    await writes.written({ user: USER, resource, created: true });
    expect(rows[0]!.message.split('\r')[0]!.split('|')[10]).toBe('T');
  });

  it('queues an ADT^A04 for a created Patient, in the write', async () => {
    const rows: NewOutboxMessage[] = [];
    const { writes } = outboxWith(rows);
    const resource = { resourceType: 'Patient', id: 'p1', meta: { versionId: '1' } };
    await writes.written({ user: USER, resource, created: true });
    expect(rows).toEqual([
      expect.objectContaining({ messageType: 'ADT^A04', resourceId: 'p1', versionId: 1 }),
    ]);
    expect(rows[0]!.message).toContain('ADT^A04^ADT_A01');
    expect(rows[0]!.failure).toBeUndefined();
  });

  it('stores a message it cannot build as dead with the reason, and lets the write go on', async () => {
    const rows: NewOutboxMessage[] = [];
    const { writes } = outboxWith(rows);
    // Not what the API stores, but whatever breaks the builder must not break the write.
    const resource = { resourceType: 'Patient', id: 'p2', meta: { versionId: '3' }, name: 7 };
    await expect(writes.written({ user: USER, resource, created: false })).resolves.toBeUndefined();
    expect(rows).toEqual([
      expect.objectContaining({
        messageType: 'ADT^A08',
        resourceId: 'p2',
        versionId: 3,
        message: '',
        failure: 'Not built: TypeError',
      }),
    ]);
  });

  it('refuses to resend a message that was never built', async () => {
    const { outbox, requeued } = outboxWith([], { id: 'o1', status: 'dead', message: '' });
    await expect(outbox.resend('o1')).rejects.toMatchObject({ status: 409 });
    expect(requeued).toEqual([]);
  });

  it('queues an ADT^A29 for a deleted Patient, at the version of the deletion', async () => {
    const rows: NewOutboxMessage[] = [];
    const { writes } = outboxWith(rows);
    const resource = { resourceType: 'Patient', id: 'p3', meta: { versionId: '2' } };
    await writes.deleted({ user: USER, resource, versionId: 3 });
    // A deletion an HL7 feed made came from a v2 system: not sent to a destination that
    // HL7_OUTBOUND_SENDERS does not tell from its sender.
    await writes.deleted({ user: HL7_USER, resource, versionId: 3 });
    expect(rows).toEqual([
      expect.objectContaining({ messageType: 'ADT^A29', resourceId: 'p3', versionId: 3 }),
    ]);
    expect(rows[0]!.message).toContain('ADT^A29^ADT_A21');
  });
});
