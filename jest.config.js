/**
 * Unit tests are pure and fast; integration tests run real FFmpeg, werift peers, Chromium and an
 * S3 endpoint, serialised (--runInBand) so timing-sensitive pipelines get the cores.
 *
 * The end-to-end meeting tests (e2e-browser: four headless Chromiums; e2e-participants: six
 * `npm run participant` processes) share 2 cores with the server under test: the browsers in a
 * minimum-weight CPU group under SCHED_IDLE, as the load of people on other machines (except
 * e2e-browser-loaded, at normal priority), the six participants in one group weighing as much
 * as the server (docs/testing.md, "Browsers in the tests").
 */
module.exports = {
  // 'node', plus a check that each file stops what it starts (tests/helpers/leaks.js)
  testEnvironment: '<rootDir>/tests/helpers/leaks.js',
  globalSetup: '<rootDir>/tests/helpers/globalSetup.js',
  globalTeardown: '<rootDir>/tests/helpers/globalTeardown.js',
  // Each file is transpiled alone (tsconfig's isolatedModules), without type checks: `npm test`
  // type-checks the whole tree first.
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  testMatch: ['<rootDir>/tests/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  // opus-decoder is an ES module, which Node requires but jest's module system cannot: tests
  // that decode in-process load its CommonJS (UMD) build, the same code.
  moduleNameMapper: { '^opus-decoder$': '<rootDir>/node_modules/opus-decoder/dist/opus-decoder.min.js' },
  testTimeout: 120000,
  maxWorkers: 1,
};
