import { generateSecret, generateURI, verify } from 'otplib';

const ISSUER = 'CareVault';

export function newTotpSecret(): string {
  return generateSecret();
}

export function totpUri(username: string, secret: string): string {
  return generateURI({ issuer: ISSUER, label: username, secret });
}

/**
 * Checks a 6-digit code, allowing one 30-second step of clock drift either way. Returns the
 * matched time step, which must be stored: a code for a step at or before the last accepted one
 * is refused, so each code works once.
 */
export async function verifyTotp(
  secret: string,
  code: string,
  lastStep: number | null,
): Promise<number | undefined> {
  // otplib throws on anything but six digits: a typo is a wrong code, not a server error.
  if (!/^\d{6}$/.test(code)) return undefined;
  const result = await verify({
    secret,
    token: code,
    epochTolerance: 30,
    ...(lastStep !== null ? { afterTimeStep: lastStep } : {}),
  });
  // TOTP results carry the matched time step (the functional API types it for HOTP too).
  return result.valid && 'timeStep' in result && typeof result.timeStep === 'number'
    ? result.timeStep
    : undefined;
}
