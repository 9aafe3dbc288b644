/**
 * Unit tests are pure and fast; integration tests run real FFmpeg, werift peers, Chromium and an
 * S3 endpoint, serialised (--runInBand) so timing-sensitive pipelines get the cores.
 *
 * The end-to-end meeting tests (e2e-browser: four headless Chromiums; e2e-participants: six
 * `npm run participant` processes — each plus the server and the recording on 2 cores) are not yet
 * reliable on a 2-core machine and are opt-in: TESSERA_E2E=1 npm test (issue 3 stays open until
 * they are; README "Limits" has the failure rates). The SFU, signalling and bad-input tests
 * (rtc-sfu) and werift peers through the real pipeline (rtc-recording) always run.
 */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, diagnostics: false }] },
  testMatch: ['<rootDir>/tests/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', ...(process.env.TESSERA_E2E ? [] : ['/tests/integration/e2e-'])],
  testTimeout: 120000,
  maxWorkers: 1,
};
