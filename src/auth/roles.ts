/** The roles a user can hold. `integration` is for system accounts such as the HL7 feed. */
export const ROLES = ['admin', 'doctor', 'nurse', 'billing', 'auditor', 'integration'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}
