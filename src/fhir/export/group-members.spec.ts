import type { FhirResource } from '../fhir-types.js';
import { groupMembers } from './group-members.js';

const NOW = new Date('2026-06-15T12:00:00Z');
const group = (...member: Record<string, unknown>[]): FhirResource => ({
  resourceType: 'Group',
  member,
});
const patient = (id: string, more: Record<string, unknown> = {}) => ({
  entity: { reference: `Patient/${id}` },
  ...more,
});

describe('groupMembers', () => {
  it('takes the Patient members, not other entities', () => {
    expect(
      groupMembers(group(patient('a'), { entity: { reference: 'Practitioner/b' } }), NOW),
    ).toEqual(['a']);
  });

  it('leaves out members marked inactive (no longer in the group)', () => {
    const members = group(patient('a', { inactive: false }), patient('b', { inactive: true }));
    expect(groupMembers(members, NOW)).toEqual(['a']);
  });

  it('leaves out members whose period ended or has not begun, a partial date covering its span', () => {
    const members = group(
      patient('ended', { period: { end: '2026-06-15T11:59:59Z' } }),
      patient('this-month', { period: { end: '2026-06' } }),
      patient('last-year', { period: { start: '2020', end: '2025' } }),
      patient('today', { period: { end: '2026-06-15' } }),
      patient('future', { period: { start: '2026-06-16' } }),
      patient('current', { period: { start: '2026-06-15', end: '2027-01-01T00:00:00Z' } }),
    );
    expect(groupMembers(members, NOW)).toEqual(['this-month', 'today', 'current']);
  });
});
