/**
 * Jest runs in its native ESM mode (NODE_OPTIONS=--experimental-vm-modules, set by `npm test`)
 * because NestJS 12 ships as ES modules. ts-jest transpiles each file on its own (type checking
 * is `npm run typecheck`'s job) and keeps decorator metadata.
 *
 * Jest 29, not 30: Jest 30's resolver pulls per-platform native packages that the registry
 * here does not carry, and `npm ci` then rejects the lockfile.
 */
const common = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json', diagnostics: false }],
  },
};

export default {
  ...common,
  globalSetup: '<rootDir>/test/support/global-setup.mjs',
  globalTeardown: '<rootDir>/test/support/global-teardown.mjs',
  testTimeout: 60_000,
  projects: [
    { ...common, displayName: 'unit', rootDir: '.', testMatch: ['<rootDir>/src/**/*.spec.ts'] },
    {
      ...common,
      displayName: 'e2e',
      rootDir: '.',
      testMatch: ['<rootDir>/test/e2e/**/*.e2e-spec.ts'],
    },
    // `npm run test:faults`: the built service as a child process, killed and starved of its
    // database. Left out of `npm test`; .ci/run runs it after the suite.
    {
      ...common,
      displayName: 'faults',
      rootDir: '.',
      testMatch: ['<rootDir>/test/faults/**/*.fault-spec.ts'],
    },
  ],
};
