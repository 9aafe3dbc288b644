#!/usr/bin/env node
// `npm run build [-- OUT_DIR]`: the production build the image runs. Compiles src/ and compositor/
// to OUT_DIR (default dist/) with tsc and copies the static pages beside the compiled server.
// grid-presets/ is found at OUT_DIR/../grid-presets (the image keeps it at /app/grid-presets).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const out = path.resolve(process.argv[2] ?? path.join(root, 'dist'));
fs.rmSync(out, { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json'), '--outDir', out], { stdio: 'inherit', cwd: root });
fs.cpSync(path.join(root, 'src/server/public'), path.join(out, 'src/server/public'), { recursive: true });
process.stdout.write(`built ${path.relative(process.cwd(), out) || '.'}\n`);
