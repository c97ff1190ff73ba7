import { afterEach, beforeEach, jest } from '@jest/globals';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { AuthorizationCodes } from '../../auth/apps/authorization-codes.js';
import type { SmartApp, SmartAppRepository } from '../../auth/apps/smart-app.repository.js';
import type { AuthService } from '../../auth/auth.service.js';
import type { UserEntity } from '../../auth/user.entity.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { ClientSealer } from '../../crypto/client-sealer.js';
import { KeyRing, keyIdOf } from '../../crypto/key-ring.js';
import type { FhirService } from '../../fhir/fhir.service.js';
import type { StoredResource } from '../../fhir/fhir-types.js';
import type { SearchService } from '../../fhir/search/search.service.js';
import { AuthorizeService, type AuthorizeOutcome } from './authorize.service.js';
import { LaunchContexts } from './launch-contexts.js';

const FHIR_BASE = 'https://ehr.example/fhir';
const REDIRECT = 'https://app.example/callback';
const START = new Date('2026-12-06T10:00:00.000Z').getTime();

type Apps = jest.Mocked<Pick<SmartAppRepository, 'findById'>>;
type Fhir = jest.Mocked<Pick<FhirService, 'read'>>;

/**
 * The sealed values of a sign-in and of an EHR launch expire (ten and five minutes): a sign-in
 * page or a `launch` copied from a browser history or a log must not open later. Sealing alone
 * does not make them expire; only the time inside them does.
 */
describe('AuthorizeService: expiry of the sealed sign-in request and EHR launch', () => {
  const material = randomBytes(32);
  const id = keyIdOf(material);
  const sealer = new ClientSealer(new KeyRing([{ id, material }], id, id));
  const app: SmartApp = {
    id: randomUUID(),
    name: 'Chart viewer',
    redirectUris: [REDIRECT],
    scope: 'launch user/Patient.rs patient/*.rs',
    active: true,
    createdAt: new Date(START),
  };
  const doctor: AuthenticatedUser = {
    id: randomUUID(),
    username: 'doctor',
    roles: ['doctor'],
    amr: ['pwd'],
    authTime: START / 1000,
  };
  let apps: Apps;
  let fhir: Fhir;
  let launches: LaunchContexts;
  let service: AuthorizeService;

  beforeEach(() => {
    jest.useFakeTimers({ now: START, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    apps = { findById: jest.fn<SmartAppRepository['findById']>().mockResolvedValue(app) };
    fhir = {
      read: jest
        .fn<FhirService['read']>()
        .mockResolvedValue({ id: 'p1', resourceType: 'Patient' } as StoredResource),
    };
    launches = new LaunchContexts(
      apps as unknown as SmartAppRepository,
      fhir as unknown as FhirService,
      sealer,
    );
    // Neither a sign-in nor a search is reached on the paths tested here.
    service = new AuthorizeService(
      apps as unknown as SmartAppRepository,
      {} as AuthorizationCodes,
      {} as AuthService,
      fhir as unknown as FhirService,
      {} as SearchService,
      sealer,
      launches,
    );
  });

  afterEach(() => {
    jest.useRealTimers();
  });

  function query(extra: Record<string, string> = {}): Record<string, string> {
    const verifier = randomBytes(32).toString('base64url');
    return {
      response_type: 'code',
      client_id: app.id,
      redirect_uri: REDIRECT,
      scope: 'user/Patient.rs',
      state: 'opaque-state',
      aud: FHIR_BASE,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      ...extra,
    };
  }

  function sealedRequest(outcome: AuthorizeOutcome): string {
    expect(outcome).toMatchObject({ status: 200 });
    const page = (outcome as { page: string }).page;
    return /name="request" value="([^"]+)"/.exec(page)![1]!;
  }

  it('refuses the sign-in form once its ten minutes are over', async () => {
    const request = sealedRequest(await service.begin(query(), FHIR_BASE));
    // Within its time the form is taken: the user's "deny" goes back to the app.
    jest.setSystemTime(START + 10 * 60_000 - 1);
    const inTime = await service.submit({ request, decision: 'deny' });
    expect('redirect' in inTime && new URL(inTime.redirect).searchParams.get('error')).toBe(
      'access_denied',
    );
    jest.setSystemTime(START + 10 * 60_000 + 1);
    const late = await service.submit({ request, decision: 'deny' });
    expect(late).toMatchObject({ status: 400 });
    expect((late as { page: string }).page).toContain('This sign-in page has expired');
  });

  it('refuses an EHR launch value once its five minutes are over', async () => {
    const { launch, expires_in } = await launches.create(doctor, {
      clientId: app.id,
      patient: 'p1',
    });
    expect(expires_in).toBe(300);
    const withLaunch = query({ scope: 'launch patient/*.rs', launch });
    jest.setSystemTime(START + 300_000 - 1);
    expect(await service.begin(withLaunch, FHIR_BASE)).toMatchObject({ status: 200 });
    jest.setSystemTime(START + 300_000 + 1);
    const late = await service.begin(withLaunch, FHIR_BASE);
    expect('redirect' in late).toBe(true);
    const params = new URL((late as { redirect: string }).redirect).searchParams;
    expect([params.get('error'), params.get('error_description')]).toEqual([
      'invalid_request',
      'launch is not valid for this app, or has expired: open the app from the EHR again',
    ]);
  });

  it("refuses an EHR launch opened before the account's sessions ended", async () => {
    // Signed in with the password the account has now: its session epoch is the one it is in.
    const signIn = (sessionEpoch: number) => {
      const auth = {
        authenticate: jest.fn<AuthService['authenticate']>().mockResolvedValue({
          user: {
            id: doctor.id,
            username: 'doctor',
            roles: ['doctor'],
            sessionEpoch,
          } as UserEntity,
          login: { amr: ['pwd'], authTime: new Date(START) },
        }),
      };
      const codes = { issue: jest.fn<AuthorizationCodes['issue']>().mockResolvedValue('ac_x') };
      const signing = new AuthorizeService(
        apps as unknown as SmartAppRepository,
        codes as unknown as AuthorizationCodes,
        auth as unknown as AuthService,
        fhir as unknown as FhirService,
        {} as SearchService,
        sealer,
        launches,
      );
      return { signing, codes };
    };
    // Opened with a token of epoch 2; a new password (or a disable, an MFA reset) moved it on.
    const { launch } = await launches.create(
      { ...doctor, sessionEpoch: 2 },
      { clientId: app.id, patient: 'p1' },
    );
    const withLaunch = query({ scope: 'launch patient/*.rs', launch });
    const form = { username: 'doctor', password: 'the password' };

    const same = signIn(2);
    const request = sealedRequest(await same.signing.begin(withLaunch, FHIR_BASE));
    const granted = await same.signing.submit({ request, ...form });
    expect(new URL((granted as { redirect: string }).redirect).searchParams.get('code')).toBe(
      'ac_x',
    );

    const later = signIn(3);
    const refused = await later.signing.submit({ request, ...form });
    expect(refused).toMatchObject({ status: 403 });
    expect((refused as { page: string }).page).toContain('before the account&#39;s sessions ended');
    expect(later.codes.issue).not.toHaveBeenCalled();
  });
});
