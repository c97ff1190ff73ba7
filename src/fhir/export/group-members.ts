import type { FhirResource } from '../fhir-types.js';
import { dateRange } from '../search/date-range.js';

interface GroupMember {
  entity?: { reference?: string };
  period?: { start?: string; end?: string };
  inactive?: boolean;
}

/**
 * The ids of a Group's Patient members at `now`. R4's Group.member.inactive means "no longer in
 * the group", and member.period is when the member was in it: a member marked inactive, whose
 * period ended before now (a partial date covers its whole day, month or year) or starts after
 * it, is not exported. Groups of a registry or a care team keep their past members this way.
 */
export function groupMembers(group: FhirResource, now: Date): string[] {
  const members = ((group as { member?: unknown }).member ?? []) as GroupMember[];
  return members.flatMap((member) => {
    const match = /^Patient\/([A-Za-z0-9.-]{1,64})$/.exec(member.entity?.reference ?? '');
    return match && isMember(member, now) ? [match[1]!] : [];
  });
}

function isMember(member: GroupMember, now: Date): boolean {
  if (member.inactive === true) return false;
  // Stored Groups were validated, so a period's dates parse; one that did not would not narrow.
  const end = member.period?.end === undefined ? undefined : dateRange(member.period.end);
  const start = member.period?.start === undefined ? undefined : dateRange(member.period.start);
  return !(end && end.high <= now) && !(start && start.low > now);
}
