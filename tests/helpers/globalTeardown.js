const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const leaks = require('./leaks');

module.exports = async () => {
  const dir = process.env.TESSERA_TEST_SWIFT_DIR;
  if (dir && fs.existsSync(dir)) {
    execFileSync('bash', [path.join(__dirname, '../../scripts/swift-s3.sh'), 'stop', dir], { stdio: 'inherit', timeout: 30_000 });
  }
  await leaks.globalTeardown();
};
