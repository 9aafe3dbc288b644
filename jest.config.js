/**
 * Unit tests are pure and fast; integration tests run real FFmpeg, werift peers, Chromium and an
 * S3 endpoint, serialised (--runInBand) so timing-sensitive pipelines get the cores.
 *
 * tests/integration/e2e-participants.test.ts (six `npm run participant` processes + the server +
 * the recording on 2 cores) is not yet reliable here and is opt-in: TESSERA_E2E_SIX=1 npm test
 * (issue 3 stays open until it is).
 */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, diagnostics: false }] },
  testMatch: ['<rootDir>/tests/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', ...(process.env.TESSERA_E2E_SIX ? [] : ['e2e-participants'])],
  testTimeout: 120000,
  maxWorkers: 1,
};
