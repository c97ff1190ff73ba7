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
  // Each test file loads the application anew, and what a file leaves behind (the FHIR
  // definitions, Nest's module graph) is not all freed: in one long-lived process the heap
  // reached 2 GB and garbage collection tripled the later suites' time. A worker whose heap
  // passes this after a file is replaced by a fresh one. (Set, it also makes Jest use a
  // worker on a 2-core machine, where it would otherwise run every file in its own process.)
  workerIdleMemoryLimit: '800MB',
  // Two files at a time: one worker left a third of this 2-core machine idle (a file waits on
  // PostgreSQL, on child processes and on timers). Each worker has a database and a data
  // directory of its own (test/support/worker-setup.ts), so files never share rows.
  maxWorkers: 2,
  projects: [
    { ...common, displayName: 'unit', rootDir: '.', testMatch: ['<rootDir>/src/**/*.spec.ts'] },
    {
      ...common,
      displayName: 'e2e',
      rootDir: '.',
      testMatch: ['<rootDir>/test/e2e/**/*.e2e-spec.ts'],
      setupFiles: ['<rootDir>/test/support/worker-setup.ts'],
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
