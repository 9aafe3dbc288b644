/**
 * Every package declared in package.json does work in this repository: the code, the tests, the
 * benchmark or the tools the scripts run load it. A package nothing loads is a download, an
 * audit and an upgrade for nothing.
 */
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** Declared with no user yet, each with the reason. */
const WAITING: Record<string, string> = {
  '@aws-sdk/lib-storage': 'the individual-tracks uploads use it',
};

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sources(p);
    return /\.(ts|js|mjs|cjs)$/.test(e.name) ? [p] : [];
  });
}

const code = ['src', 'tests', 'bench', 'compositor']
  .filter((d) => fs.existsSync(path.join(root, d)))
  .flatMap((d) => sources(path.join(root, d)))
  .filter((f) => f !== __filename) // this file names packages without using them
  .concat(fs.readdirSync(root).filter((f) => /^jest\.config\.[cm]?js$/.test(f)).map((f) => path.join(root, f)))
  .map((f) => fs.readFileSync(f, 'utf8'))
  .join('\n');
const scripts = Object.values(pkg.scripts).join('\n');
/** Commands of the scripts, and the package that provides each. */
const COMMANDS: Record<string, string> = { tsc: 'typescript', jest: 'jest', tsx: 'tsx' };

function used(name: string): boolean {
  const esc = name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  // an import, require() or import() of the package or a path inside it, or its name as jest config
  if (new RegExp(`['"\`]${esc}(/[^'"\`]*)?['"\`$]`).test(code)) return true;
  if (Object.entries(COMMANDS).some(([cmd, p]) => p === name && new RegExp(`(^|[\\s&|;])${cmd}\\b`, 'm').test(scripts))) return true;
  // type packages: used by tsc when what they type is used (node and jest are the runtimes)
  const typed = /^@types\/(.+)$/.exec(name)?.[1];
  if (typed) return typed === 'node' || typed === 'jest' || used(typed);
  return false;
}

test('every declared package is loaded by the code, the tests or the scripts', () => {
  const declared = [...Object.keys(pkg.dependencies), ...Object.keys(pkg.devDependencies)];
  expect(declared.length).toBeGreaterThan(10);
  const idle = declared.filter((d) => !WAITING[d] && !used(d));
  expect(idle).toEqual([]);
});

test('the check finds a package that nothing loads', () => {
  expect(used('express')).toBe(true);
  expect(used('typescript')).toBe(true);
  expect(used('jest-util')).toBe(false);
  expect(used('@types/left-pad')).toBe(false);
});
