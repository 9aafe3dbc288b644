import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config';
import type { Logger } from '../logger';
import { metrics } from '../metrics';
import type { RtcOptions } from '../rtc/options';
import { createApp } from './app';
import { Conference } from './Conference';
import { AuditLog, type AuditStore } from './AuditLog';
import type { RecorderApi } from './recorderApi';
import { Signalling } from './Signalling';

export interface ServerLimits {
  jsonLimit: string;
  maxMessageBytes: number;
}

export const SERVER_LIMITS: ServerLimits = {
  jsonLimit: '16kb',
  // an SDP with many m-lines is ~10-20 kB; 256 kB bounds a single socket.io message
  maxMessageBytes: 256 * 1024,
};

/**
 * The process's front: one HTTP server carrying express (REST, pages, health, metrics) and
 * socket.io, the Conference (rooms, SFU) and its link to the recorder.
 */
export class TesseraServer {
  readonly http: http.Server;
  readonly conference: Conference;
  readonly signalling: Signalling;
  readonly #config: Readonly<Config>;
  readonly #log: Logger;
  #closed = false;
  #draining = false;
  #listening = false;

  readonly audit: AuditLog;

  constructor(init: { config: Readonly<Config>; recorder: RecorderApi; logger: Logger; rtc?: Partial<RtcOptions>; limits?: Partial<ServerLimits>; audit?: AuditLog }) {
    this.#config = init.config;
    this.#log = init.logger.child({ component: 'server' });
    const limits = { ...SERVER_LIMITS, ...init.limits };
    // The audit trail goes beside the recordings when the recorder's storage keeps one.
    const storage = (init.recorder as { storage?: Partial<AuditStore> }).storage;
    const store = storage?.appendAudit && storage.readAudit ? (storage as AuditStore) : null;
    this.audit = init.audit ?? new AuditLog({ store, logger: init.logger });
    this.conference = new Conference({ config: init.config, recorder: init.recorder, logger: init.logger, options: init.rtc, audit: this.audit });
    const app = createApp({
      config: init.config,
      conference: this.conference,
      logger: init.logger,
      limits: { jsonLimit: limits.jsonLimit },
      isReady: () => this.#listening && !this.#draining,
    });
    this.http = http.createServer(app);
    this.http.headersTimeout = 20_000;
    // Node's default (5 s) is shorter than the idle timeout of the proxies in front of it (ingress
    // nginx, cloud load balancers: 60 s), so a proxy or client reusing a connection just as Node
    // closes it gets a reset (a 502 at the proxy; ECONNRESET seen here by a client that paused
    // for 5 s between two requests). Idle connections must be closed by the client side first.
    this.http.keepAliveTimeout = 65_000;
    this.http.requestTimeout = 0; // media downloads may take long
    this.signalling = new Signalling({ http: this.http, conference: this.conference, config: init.config, logger: init.logger, limits });
    metrics.recordingsCapacity.set(init.recorder.capacity);
  }

  async listen(port = this.#config.port, host = this.#config.host): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    this.#listening = true;
    const addr = this.http.address() as AddressInfo;
    this.#log.info({ host: addr.address, port: addr.port }, 'listening');
    return addr;
  }

  get url(): string {
    const a = this.http.address() as AddressInfo;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /**
   * SIGTERM: not ready (the load balancer stops sending people here), no new rooms or recordings;
   * the calls and recordings running go on until they end by themselves. Resolves, closed, when
   * none is left — at the latest after `finishDrain()`.
   */
  async drain(): Promise<void> {
    if (!this.#draining) {
      this.#draining = true;
      metrics.recordingsCapacity.set(0);
    }
    try {
      await this.conference.drain();
    } finally {
      await this.close();
    }
  }

  /**
   * The shutdown grace is nearly over: recordings are stopped cleanly (whole fragments, each ends
   * `available`), then everyone is told and disconnected; the meeting page reconnects through the
   * load balancer, which sends it to a server that is ready.
   */
  async finishDrain(): Promise<void> {
    this.#draining = true;
    metrics.recordingsCapacity.set(0);
    await this.conference.finish();
    this.signalling.broadcastNotice('This server is shutting down: reconnecting you to the meeting on another one.', 'REC_ERR_DRAINING');
    await new Promise((r) => setTimeout(r, 200)); // let the notice leave before the sockets close
    await this.close();
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listening = false;
    this.conference.close();
    await this.signalling.close();
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }
}
