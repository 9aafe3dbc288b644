const os = require('node:os');
const path = require('node:path');
const leaks = require('./leaks');

/**
 * The run's Swift (tests/helpers/swift.ts) lives in this directory, started by the first test file
 * that needs it and owned by this process (it stops by itself if the run is killed).
 */
module.exports = async () => {
  process.env.TESSERA_TEST_SWIFT_DIR = path.join(os.tmpdir(), `tessera-swift-run-${process.pid}`);
  process.env.TESSERA_TEST_SWIFT_OWNER = String(process.pid);
  await leaks.globalSetup();
};
