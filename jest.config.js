/** Unit tests are pure and fast; integration tests run real FFmpeg (and later werift,
 * Chromium, an S3 endpoint) and are serialised so timing-sensitive pipelines get the cores. */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, diagnostics: false }] },
  testMatch: ['<rootDir>/tests/**/*.test.ts'],
  testTimeout: 120000,
  maxWorkers: 1,
};
