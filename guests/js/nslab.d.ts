// Types of nslab's JavaScript SDK (nslab.js), for TypeScript scenarios and editors. The shapes
// are those of the contract in wit/ (package nslab:lab@0.1.0), in JavaScript's case.

export type ErrorKind =
  | "denied"
  | "invalid"
  | "exists"
  | "not-found"
  | "limit"
  | "os"
  | "timeout";

/** A host call failed: `kind` says how, `text` what to do about it. */
export class NslabError extends Error {
  readonly kind: ErrorKind;
  readonly text: string;
}

export interface ExecOptions {
  env?: Record<string, string>;
  stdin?: string;
  timeoutMs?: number;
  /** A poll: not echoed to the terminal, still kept in the run's account. */
  quiet?: boolean;
}

export class Output {
  readonly status: number;
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
  readonly timedOut: boolean;
  readonly durationUs: bigint;
  readonly success: boolean;
  readonly stdoutText: string;
  readonly stderrText: string;
  lineWith(needle: string): string | undefined;
}

export class Process {
  readonly id: number;
  wait(timeoutMs?: number): Output;
  kill(): void;
  outputSoFar(): [string, string];
  waitForLine(text: string, timeoutMs: number): string;
}

export interface LinkInfo {
  name: string;
  index: number;
  kind: string;
  up: boolean;
  mtu: number;
  mac: string;
  addresses: string[];
}

export interface RouteInfo {
  destination: string;
  gateway?: string;
  device?: string;
}

export interface NextHop {
  gateway?: string;
  device?: string;
  weight: number;
}

export interface RouteDetail {
  destination: string;
  protocol: string;
  metric?: number;
  table: number;
  nextHops: NextHop[];
}

export class Netns {
  static create(name: string): Netns;
  readonly name: string;
  readonly inode: bigint;
  setForwarding(on: boolean): void;
  setHostname(name: string): void;
  exec(program: string, args?: string[], opts?: ExecOptions): Output;
  spawn(program: string, args?: string[], opts?: ExecOptions): Process;
  waitUntilOk(program: string, args?: string[], timeoutMs?: number): Promise<number>;
  link(name: string): Link;
  addRoute(destination: string, gateway?: string, device?: string): void;
  removeRoute(destination: string, gateway?: string, device?: string): void;
  routes(): RouteInfo[];
  routeDetails(): RouteDetail[];
  links(): LinkInfo[];
  writeFile(path: string, contents: string | Uint8Array, mode?: number): void;
  readFile(path: string): Uint8Array;
}

export class Link {
  static veth(a: string, aNs: Netns, b: string, bNs: Netns): [Link, Link];
  static bridge(name: string, ns: Netns): Link;
  static loopback(ns: Netns): Link;
  static byName(ns: Netns, name: string): Link;
  readonly name: string;
  info(): LinkInfo;
  setUp(): void;
  setDown(): void;
  setMtu(mtu: number): void;
  setMac(mac: string): void;
  moveTo(ns: Netns): void;
  addAddress(cidr: string): void;
  removeAddress(cidr: string): void;
  setMaster(bridge: Link): void;
}

export function step(name: string): void;
export function check(name: string, passed: boolean, detail?: string): void;
export function attach(name: string, data: string | Uint8Array): void;
export function waitUntil(
  what: string,
  timeoutMs: number,
  ready: () => boolean | Promise<boolean>,
): Promise<number>;
export function sleep(ms: number): Promise<void>;

export interface Info {
  name: string;
  description: string;
  programs: string[];
}

export function scenario(s: {
  name: string;
  description: string;
  programs?: string[];
  lab(args: string[]): void | Promise<void>;
}): { describe(): Info; run(args: string[]): Promise<void> };
