/**
 * Test hosts in Linux network namespaces (iproute2 + iptables, run as root; .ci/run installs
 * both): a namespace has its own network stack, addresses and routes, so a process in it is, as
 * far as ICE and UDP go, another machine on the far side of a link.
 */
import { execFileSync } from 'node:child_process';

export function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/** Run and ignore failure (teardown of something that may not exist). */
export function shQuiet(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
}

/**
 * A namespace `ns` joined to the host by a veth pair on `subnet` (a /24 given as "a.b.c"): the host
 * side is a.b.c.1, the namespace side a.b.c.2 with its default route via the host.
 */
export function addHost(ns: string, link: string, subnet: string): { hostIp: string; nsIp: string } {
  const hostIp = `${subnet}.1`, nsIp = `${subnet}.2`;
  sh('ip', ['netns', 'add', ns]);
  sh('ip', ['link', 'add', `${link}h`, 'type', 'veth', 'peer', 'name', `${link}n`]);
  sh('ip', ['link', 'set', `${link}n`, 'netns', ns]);
  sh('ip', ['addr', 'add', `${hostIp}/24`, 'dev', `${link}h`]);
  sh('ip', ['link', 'set', `${link}h`, 'up']);
  sh('ip', ['-n', ns, 'addr', 'add', `${nsIp}/24`, 'dev', `${link}n`]);
  sh('ip', ['-n', ns, 'link', 'set', `${link}n`, 'up']);
  sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', hostIp]);
  return { hostIp, nsIp };
}

export function removeHost(ns: string, link: string): void {
  shQuiet('ip', ['link', 'del', `${link}h`]);
  shQuiet('ip', ['netns', 'del', ns]);
}

/** Packets counted by the iptables rules carrying `comment` in `table`/`chain`. */
export function ruleCounter(table: string, chain: string, comment: string): number {
  const out = sh('iptables', ['-t', table, '-L', chain, '-v', '-x', '-n']);
  return out
    .split('\n')
    .filter((l) => l.includes(`/* ${comment} */`))
    .reduce((n, l) => n + Number(l.trim().split(/\s+/)[0]), 0);
}

/** Delete every rule carrying `comment` from `table`/`chain` (by listing them as -S and negating). */
export function removeRules(table: string, chain: string, comment: string): void {
  let rules: string[] = [];
  try {
    rules = sh('iptables', ['-t', table, '-S', chain]).split('\n').filter((l) => l.includes(comment));
  } catch {
    return;
  }
  for (const r of rules) {
    // "-A OUTPUT -d ... -m comment --comment x -j DROP" → "-D OUTPUT ..."; the comment has no spaces
    shQuiet('iptables', ['-t', table, ...r.replace(/^-A /, '-D ').split(' ').map((a) => a.replace(/^"(.*)"$/, '$1'))]);
  }
}
