import type { IncomingHttpHeaders } from 'node:http';
import type { Config } from '../config';

/**
 * Development mode (no AUTH_SECRET) trusts whoever reaches the port, which is meant to be only
 * this machine. A browser on this machine is the way around that: any web page the developer
 * visits can POST to http://127.0.0.1:8080 (a form needs no CORS preflight) or open a socket.io
 * WebSocket to it (WebSockets are not subject to CORS), and a page whose own name re-resolves to
 * 127.0.0.1 (DNS rebinding) can read the answers. So in development mode a request must name
 * this server by a loopback name or its HOST (a rebinding page sends its own name as Host), and
 * a browser's Origin, when sent, must be such a name too.
 *
 * Returns why the request is refused, or null. With AUTH_SECRET set every join needs a token and
 * the API its bearer token, which a cross-site page does not have: nothing is checked then.
 */
export function developmentRequestRefusal(headers: IncomingHttpHeaders, config: Pick<Config, 'authSecret' | 'host'>): string | null {
  if (config.authSecret) return null;
  const host = headers.host;
  if (!host || !isLocalName(hostnameOf(host), config.host)) {
    return `development mode answers requests for localhost or ${config.host} only (Host: ${JSON.stringify(host ?? '')})`;
  }
  const origin = headers.origin;
  if (origin !== undefined) {
    let name: string | null = null;
    try {
      name = new URL(origin).hostname;
    } catch {
      name = null;
    }
    if (name === null || !isLocalName(name, config.host)) return `development mode refuses requests from other sites (Origin: ${JSON.stringify(origin)})`;
  }
  return null;
}

/** `name:port`, `[v6]:port` → the name without port or brackets. */
function hostnameOf(hostHeader: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(hostHeader);
  if (m) return m[1];
  return hostHeader.replace(/:\d+$/, '');
}

function isLocalName(name: string, configuredHost: string): boolean {
  const n = name.toLowerCase().replace(/^\[|\]$/g, '');
  return n === 'localhost' || n === '::1' || /^127\.\d+\.\d+\.\d+$/.test(n) || n === configuredHost.toLowerCase();
}
