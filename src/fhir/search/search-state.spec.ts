import { randomBytes } from 'node:crypto';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { AppError } from '../../common/errors/app-error.js';
import { ClientSealer } from '../../crypto/client-sealer.js';
import { FieldCipher } from '../../crypto/field-cipher.js';
import { KeyRing, keyIdOf } from '../../crypto/key-ring.js';
import { PageCursors } from '../cursor.js';
import { SEARCH_STATE_TTL_MS, SearchState } from './search-state.js';

describe('SearchState', () => {
  const material = randomBytes(32);
  const id = keyIdOf(material);
  const ring = new KeyRing([{ id, material }], id, id);
  const sealer = new ClientSealer(ring);
  const state = new SearchState(sealer);
  const user = { id: 'u1', username: 'u', roles: [], amr: ['pwd'], authTime: 0 };
  const stateOf = (url: string): string => new URL(url).searchParams.get('_state')!;

  it('seals the criteria into _state, not under the PHI key, and reads them back', () => {
    const [self] = state.links(
      user,
      'https://ehr',
      'Patient',
      'Patient',
      { family: 'Doe' },
      undefined,
      undefined,
      new PageCursors(sealer).for(user, 'search'),
    );
    const sealed = stateOf(self!.url);
    expect(sealed).not.toContain(id);
    expect(() =>
      new FieldCipher(ring).decrypt(sealed, {
        table: 'search',
        column: 'state',
        row: ['Patient', 'u1'],
      }),
    ).toThrow();
    expect(state.unseal(user, 'Patient', sealed)).toEqual({ query: { family: 'Doe' } });
    const other: AuthenticatedUser = { ...user, id: 'u2' };
    expect(() => state.unseal(other, 'Patient', sealed)).toThrow(AppError);
  });

  it('opens a _state only in the sign-in session it was sealed in', () => {
    const signedIn: AuthenticatedUser = { ...user, sessionId: 's1' };
    const [self] = state.links(
      signedIn,
      'https://ehr',
      'Patient',
      'Patient',
      { family: 'Doe' },
      undefined,
      undefined,
      new PageCursors(sealer).for(signedIn, 'search'),
    );
    const sealed = stateOf(self!.url);
    expect(state.unseal(signedIn, 'Patient', sealed)).toEqual({ query: { family: 'Doe' } });
    expect(() => state.unseal({ ...user, sessionId: 's2' }, 'Patient', sealed)).toThrow(AppError);
    expect(() => state.unseal(user, 'Patient', sealed)).toThrow(AppError);
  });

  it('answers an expired _state with a 410, as an expired _cursor is, and a bad one a 400', () => {
    const expired = sealer.seal(JSON.stringify({ query: { family: 'Doe' }, exp: Date.now() - 1 }), [
      'search-state',
      'Patient',
      'u1',
    ]);
    const refusal = (sealed: string): AppError => {
      try {
        state.unseal(user, 'Patient', sealed);
      } catch (error) {
        return error as AppError;
      }
      throw new Error('accepted');
    };
    expect(refusal(expired).status).toBe(410);
    expect(refusal(expired).message).toContain('search again');
    expect(refusal('cvs1.x.y.z').status).toBe(400);
    expect(refusal(expired).message).not.toBe(refusal('cvs1.x.y.z').message);
    // Without an expiry (as sealed before links had one) it is as old as an expired one.
    const timeless = sealer.seal(JSON.stringify({ query: {} }), ['search-state', 'Patient', 'u1']);
    expect(refusal(timeless).status).toBe(410);
    const fresh = sealer.seal(
      JSON.stringify({ query: {}, exp: Date.now() + SEARCH_STATE_TTL_MS }),
      ['search-state', 'Patient', 'u1'],
    );
    expect(state.unseal(user, 'Patient', fresh)).toEqual({ query: {} });
  });
});
