// Typings for cluster-rs: the primary side of Node's `cluster` API (Node 18 surface).
// The package exports Node's own cluster object (with our primary installed on Linux), so
// these types mirror `node:cluster` and add the few things cluster-rs adds.

/// <reference types="node" />

import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { Readable, Writable } from 'node:stream';

declare namespace clusterRs {
  type Serialization = 'json' | 'advanced';
  type StdioEntry =
    | 'pipe'
    | 'overlapped'
    | 'ignore'
    | 'inherit'
    | 'ipc'
    | number
    | null
    | undefined
    | Readable
    | Writable;

  interface ClusterSettings {
    /** Arguments after the script path. Default: `process.argv.slice(2)`. */
    args?: string[];
    /** The worker script. Default: `process.argv[1]`. */
    exec?: string;
    /** Node options for the worker. Default: `process.execArgv`. */
    execArgv?: string[];
    /** Pipe the worker's stdio to `worker.process.stdout/stderr`. Default: `false`. */
    silent?: boolean;
    /** stdio layout; must contain exactly one `'ipc'` when given as an array. */
    stdio?: StdioEntry[] | 'pipe' | 'overlapped' | 'ignore' | 'inherit';
    /** Working directory of the worker. Default: the primary's. */
    cwd?: string;
    /** User and group ids of the worker (int32). */
    uid?: number;
    gid?: number;
    /** Inspector port of the worker, or a function called once per fork. */
    inspectPort?: number | (() => number);
    /** IPC message format. Default: `'json'`. */
    serialization?: Serialization;
    /**
     * cluster-rs: user `send()`s to a worker fail (`ERR_IPC_QUEUE_FULL`, through the callback or
     * an `'error'` on the worker) instead of queueing more than this many bytes for it.
     * Default: unbounded, as the built-in.
     */
    maxQueuedBytes?: number;
    /**
     * cluster-rs: a larger message from a worker closes its channel (`'error'` with
     * `ERR_IPC_FRAME_TOO_LARGE` on the worker). Default: 1 GiB.
     */
    maxFrameBytes?: number;
    /** Windows only; no effect on Linux. */
    windowsHide?: boolean;
    /**
     * cluster-rs: restart workers that exit on their own (not through disconnect()/kill()),
     * with exponential backoff and a crash-loop cutoff (the 'crashloop' event). Default: off.
     */
    respawn?: boolean | RespawnOptions;
  }

  interface RespawnOptions {
    /** Restarts allowed within `windowMs` before the lineage is given up. Default 10. */
    maxRestarts?: number;
    /** The window for `maxRestarts`, ms. Default 60000. */
    windowMs?: number;
    /** Delay before the first restart, ms; doubled for each further restart in the window. Default 100. */
    backoffMs?: number;
    /** The longest delay, ms. Default 30000. */
    maxBackoffMs?: number;
  }

  interface RespawnInfo {
    /** Restarts of this worker's lineage so far (this one included). */
    restarts: number;
    delayMs: number;
    exitCode: number | null;
    signalCode: NodeJS.Signals | null;
  }

  interface CrashLoopInfo {
    restarts: number;
    maxRestarts: number;
    windowMs: number;
    exitCode: number | null;
    signalCode: NodeJS.Signals | null;
  }

  /** What `reload` and `shutdown` both take: how a worker is retired. */
  interface RetireOptions {
    /** How long a worker may take to exit after disconnect() before SIGKILL, ms (Infinity: wait). Default 10000. */
    timeout?: number;
  }

  interface ReloadOptions extends RetireOptions {
    /** How long a replacement may take to listen (or come online), ms. Default 30000. */
    readyTimeout?: number;
  }

  interface ReloadResult {
    /** Worker ids, old and new, in the order they were replaced. */
    replaced: Array<{ old: number; new: number }>;
  }

  interface ShutdownOptions extends RetireOptions {}

  interface ShutdownResult {
    workers: number;
    killed: number;
  }

  interface WorkerStats {
    id: number;
    pid: number | null;
    state: string;
    uptimeMs: number;
    /** Connections the primary handed to the worker (round-robin, least-conn, sticky, reuseport drains). */
    connections: number;
    messagesIn: number;
    messagesOut: number;
    restarts: number;
    /** Resident memory, bytes; null once exited. */
    rss: number | null;
    /** CPU time, microseconds; null once exited. */
    cpu: { user: number; system: number } | null;
  }

  interface ClusterStats {
    policy: 'rr' | 'none' | 'reuseport' | 'least-conn' | 'sticky' | null;
    uptimeMs: number;
    workers: WorkerStats[];
    totals: {
      workers: number;
      connections: number;
      messagesIn: number;
      messagesOut: number;
      restarts: number;
      rss: number;
    };
  }

  interface Address {
    addressType: 4 | 6 | -1 | 'udp4' | 'udp6' | null;
    address: string | null;
    port: number | null;
    fd: number | undefined;
  }

  type SendHandle = net.Socket | net.Server | dgram.Socket | object;

  interface MessageOptions {
    /** Keep a sent `net.Socket` open in this process. */
    keepOpen?: boolean;
  }

  /** `worker.process`: a ChildProcess-like view of the worker. */
  interface WorkerProcess extends EventEmitter {
    readonly pid: number | undefined;
    readonly exitCode: number | null;
    readonly signalCode: NodeJS.Signals | null;
    readonly killed: boolean;
    readonly connected: boolean;
    readonly spawnfile: string;
    readonly spawnargs: string[];
    readonly stdin: net.Socket | null;
    readonly stdout: net.Socket | null;
    readonly stderr: net.Socket | null;
    readonly stdio: Array<net.Socket | null>;
    /** The IPC channel while connected; ref()/unref() decide whether it keeps the loop alive. */
    readonly channel: { ref(): void; unref(): void } | null;
    kill(signal?: NodeJS.Signals | number): boolean;
    send(message: unknown, callback?: (error: Error | null) => void): boolean;
    send(message: unknown, sendHandle?: SendHandle, callback?: (error: Error | null) => void): boolean;
    send(
      message: unknown,
      sendHandle?: SendHandle,
      options?: MessageOptions,
      callback?: (error: Error | null) => void,
    ): boolean;
    disconnect(): void;
    ref(): void;
    unref(): void;

    on(event: 'spawn', listener: () => void): this;
    on(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
    on(event: 'close', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
    on(event: 'disconnect', listener: () => void): this;
    on(event: 'error', listener: (error: Error) => void): this;
    on(event: 'message', listener: (message: any, handle: SendHandle | undefined) => void): this;
    on(event: 'internalMessage', listener: (message: any, handle: SendHandle | undefined) => void): this;
    on(event: string | symbol, listener: (...args: any[]) => void): this;
  }

  interface WorkerOptions {
    id?: number;
    state?: string;
    process?: WorkerProcess;
  }

  class Worker extends EventEmitter {
    constructor(options?: WorkerOptions);
    /** The worker's id (1, 2, ...; 0 for a Worker built by hand). */
    id: number;
    /** `'none' | 'online' | 'listening' | 'disconnected' | 'dead'`. */
    state: string;
    process: WorkerProcess;
    /** `undefined` until a disconnect is asked for or the worker disconnects/exits. */
    exitedAfterDisconnect: boolean | undefined;
    send(message: unknown, callback?: (error: Error | null) => void): boolean;
    send(message: unknown, sendHandle?: SendHandle, callback?: (error: Error | null) => void): boolean;
    send(
      message: unknown,
      sendHandle?: SendHandle,
      options?: MessageOptions,
      callback?: (error: Error | null) => void,
    ): boolean;
    /** Sends a signal only (default `'SIGTERM'`); does not set `exitedAfterDisconnect`. */
    kill(signal?: NodeJS.Signals | number): void;
    destroy(signal?: NodeJS.Signals | number): void;
    /** Asks the worker to close its servers and disconnect; returns the worker. */
    disconnect(): this;
    isConnected(): boolean;
    isDead(): boolean;
    /** cluster-rs: this worker's figures (primary only). */
    stats(): WorkerStats;

    on(event: 'disconnect', listener: () => void): this;
    on(event: 'error', listener: (error: Error) => void): this;
    on(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
    on(event: 'listening', listener: (address: Address) => void): this;
    on(event: 'message', listener: (message: any, handle: SendHandle | undefined) => void): this;
    on(event: 'online', listener: () => void): this;
    on(event: string | symbol, listener: (...args: any[]) => void): this;
  }

  interface Cluster extends EventEmitter {
    readonly isPrimary: boolean;
    /** @deprecated use isPrimary */
    readonly isMaster: boolean;
    readonly isWorker: boolean;
    /** The current worker, in a worker process. */
    readonly worker?: Worker;
    /** Live workers by id (primary only). */
    readonly workers: Record<number, Worker | undefined>;
    /** `{}` until the first setupPrimary()/fork(). */
    settings: ClusterSettings;
    /** A SCHED_* constant; assignable until the first setupPrimary()/fork(). */
    schedulingPolicy: number;
    readonly SCHED_NONE: 1;
    readonly SCHED_RR: 2;
    /** cluster-rs: one SO_REUSEPORT socket per worker (TCP and UDP); the kernel balances. */
    readonly SCHED_REUSEPORT: 101;
    /** cluster-rs: the idle worker with the fewest open connections. */
    readonly SCHED_LEAST_CONN: 102;
    /** cluster-rs: a client IP always reaches the same worker while it lives. */
    readonly SCHED_STICKY: 103;
    Worker: typeof Worker;
    fork(env?: NodeJS.Dict<unknown>): Worker;
    setupPrimary(settings?: ClusterSettings): void;
    /** @deprecated use setupPrimary */
    setupMaster(settings?: ClusterSettings): void;
    /**
     * Disconnects every worker. `callback` runs once all of them have disconnected and
     * exited (as documented; the built-in calls it when the first one finishes).
     */
    disconnect(callback?: () => void): void;
    /** cluster-rs: replaces the workers one at a time; rejects with ERR_CLUSTER_RELOAD_FAILED. */
    reload(options?: ReloadOptions): Promise<ReloadResult>;
    /** cluster-rs: disconnects every worker, kills what is left at `timeout`, resolves when all exited. */
    shutdown(options?: ShutdownOptions): Promise<ShutdownResult>;
    /** cluster-rs: per-worker and total figures. */
    stats(): ClusterStats;
    /** Present when cluster-rs's primary is installed (Linux primaries). */
    readonly clusterRs?: { readonly version: string };

    on(event: 'disconnect', listener: (worker: Worker) => void): this;
    on(event: 'exit', listener: (worker: Worker, code: number | null, signal: NodeJS.Signals | null) => void): this;
    on(event: 'fork', listener: (worker: Worker) => void): this;
    on(event: 'listening', listener: (worker: Worker, address: Address) => void): this;
    on(event: 'message', listener: (worker: Worker, message: any, handle: SendHandle | undefined) => void): this;
    on(event: 'online', listener: (worker: Worker) => void): this;
    on(event: 'setup', listener: (settings: ClusterSettings) => void): this;
    /** cluster-rs: a crashed worker was restarted (after 'fork' of the new one). */
    on(event: 'respawn', listener: (worker: Worker, previous: Worker, info: RespawnInfo) => void): this;
    /** cluster-rs: a worker crashed too often within the window and is not restarted. */
    on(event: 'crashloop', listener: (worker: Worker, info: CrashLoopInfo) => void): this;
    on(event: string | symbol, listener: (...args: any[]) => void): this;
    once(event: 'disconnect', listener: (worker: Worker) => void): this;
    once(event: 'exit', listener: (worker: Worker, code: number | null, signal: NodeJS.Signals | null) => void): this;
    once(event: 'fork', listener: (worker: Worker) => void): this;
    once(event: 'listening', listener: (worker: Worker, address: Address) => void): this;
    once(event: 'message', listener: (worker: Worker, message: any, handle: SendHandle | undefined) => void): this;
    once(event: 'online', listener: (worker: Worker) => void): this;
    once(event: 'setup', listener: (settings: ClusterSettings) => void): this;
    once(event: 'respawn', listener: (worker: Worker, previous: Worker, info: RespawnInfo) => void): this;
    once(event: 'crashloop', listener: (worker: Worker, info: CrashLoopInfo) => void): this;
    once(event: string | symbol, listener: (...args: any[]) => void): this;
  }
}

declare const cluster: clusterRs.Cluster;
export = cluster;
