/**
 * The roles a user can hold. `integration` is for system accounts such as the HL7 feed,
 * `exporter` for those that take population exports (a data warehouse, a registry).
 */
export const ROLES = [
  'admin',
  'doctor',
  'nurse',
  'billing',
  'auditor',
  'integration',
  'exporter',
] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}
