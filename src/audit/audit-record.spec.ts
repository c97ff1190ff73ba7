import { chain, entryHash, GENESIS_HASH, storableEntry, type AuditEntry } from './audit-record.js';
import { cliAuditEntry } from './cli-audit.js';

function entries(n: number): AuditEntry[] {
  return Array.from({ length: n }, (_, i) => ({
    ...cliAuditEntry(`test-${i}`),
    recordedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
  }));
}

describe('audit hash chain', () => {
  it('links each entry to the one before, from the genesis hash', () => {
    const linked = chain({ seq: 0, hash: GENESIS_HASH }, entries(3));
    expect(linked.map((e) => e.chainSeq)).toEqual([1, 2, 3]);
    expect(linked[0]!.prevHash).toBe(GENESIS_HASH);
    expect(linked[1]!.prevHash).toBe(linked[0]!.hash);
    expect(linked[2]!.prevHash).toBe(linked[1]!.hash);
    for (const entry of linked) expect(entryHash(entry)).toBe(entry.hash);
  });

  it('continues after an existing head', () => {
    const [first] = chain({ seq: 41, hash: 'a'.repeat(64) }, entries(1));
    expect(first).toMatchObject({ chainSeq: 42, prevHash: 'a'.repeat(64) });
  });

  it('changes the hash when any field, the position or the link changes', () => {
    const [entry] = chain({ seq: 0, hash: GENESIS_HASH }, entries(1));
    const base = entry!;
    const variants = [
      { ...base, statusCode: 500 },
      { ...base, patientIds: ['x'] },
      { ...base, chainSeq: 2 },
      { ...base, prevHash: 'b'.repeat(64) },
      { ...base, recordedAt: new Date(base.recordedAt.getTime() + 1) },
      { ...base, actorName: null },
    ];
    for (const variant of variants) expect(entryHash(variant)).not.toBe(base.hash);
  });

  it('changes the hash when any one of the fields an entry says changes', () => {
    // Every field of AuditEntry, each with another value: a field left out of the canonical
    // form could be edited in the table (who, break-glass, the outcome) without the chain
    // noticing. A Record over the interface's keys makes a new field name itself here.
    const [entry] = chain({ seq: 0, hash: GENESIS_HASH }, entries(1));
    const base = entry!;
    const changed: Record<keyof AuditEntry, unknown> = {
      id: '00000000-0000-4000-8000-000000000000',
      recordedAt: new Date(base.recordedAt.getTime() + 1000),
      source: 'http',
      requestId: '11111111-1111-4111-8111-111111111111',
      actorUserId: 'user-2',
      actorName: 'someone-else',
      actorRoles: ['doctor'],
      actorScope: 'patient/*.rs patient=p1',
      breakGlass: true,
      sourceIp: '203.0.113.9',
      userAgent: 'curl/8',
      action: 'read',
      subtype: 'read',
      method: 'GET',
      route: '/fhir/:type/:id',
      resourceType: 'Patient',
      resourceId: 'p1',
      resourceVersion: '2',
      patientIds: ['p1'],
      entities: ['Patient/p1'],
      queryParams: ['name'],
      outcome: 'failure',
      statusCode: 403,
      detail: 'forbidden',
    };
    for (const [field, value] of Object.entries(changed)) {
      expect(base[field as keyof AuditEntry]).not.toEqual(value);
      const variant = { ...base, [field]: value };
      expect({ field, same: entryHash(variant) === base.hash }).toEqual({ field, same: false });
    }
  });

  it('does not depend on key order: the canonical form is a fixed array', () => {
    const [entry] = chain({ seq: 0, hash: GENESIS_HASH }, entries(1));
    const reordered = Object.fromEntries(Object.entries(entry!).reverse()) as typeof entry;
    expect(entryHash(reordered!)).toBe(entry!.hash);
  });

  it('makes entries storable: U+FFFD for NUL and unpaired surrogates, pairs kept', () => {
    const entry = {
      ...cliAuditEntry('test', { queryParams: ['a\u0000b', 'c\uD800', '\uDC00d', '\uD83D\uDE00'] }),
      userAgent: 'x\u0000y',
    };
    const stored = storableEntry(entry);
    expect(stored.queryParams).toEqual(['a\uFFFDb', 'c\uFFFD', '\uFFFDd', '\uD83D\uDE00']);
    expect(stored.userAgent).toBe('x\uFFFDy');
    expect(stored.recordedAt).toBe(entry.recordedAt);
    expect(storableEntry(stored)).toEqual(stored);
  });
});
