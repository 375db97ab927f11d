// nslab's JavaScript SDK: write a scenario the way you would type the lab into a shell, with
// the vocabulary of the Rust and Python SDKs. A host error is thrown as an NslabError whose
// `kind` is the contract's ("denied", "invalid", "exists", "not-found", "limit", "os",
// "timeout") and whose `text` says what to do.
//
//   import { Netns, Link, scenario, step, check } from "./nslab.js";
//   export const { describe, run } = scenario({
//     name: "seed", description: "two namespaces and a ping", programs: ["ping"],
//     async lab(args) {
//       const ns01 = Netns.create("ns01"), ns02 = Netns.create("ns02");
//       const [a, b] = Link.veth("ns01-veth0", ns01, "ns02-veth0", ns02);
//       ...
//     },
//   });
//
// Host calls return at once (the runner does the work); waits are async (`await
// waitUntil(...)`, `await sleep(ms)`), so the engine's event loop runs timers meanwhile.

import * as netns from "nslab:lab/netns@0.1.0";
import * as link from "nslab:lab/link@0.1.0";
import * as route from "nslab:lab/route@0.1.0";
import * as exec from "nslab:lab/exec@0.1.0";
import * as report from "nslab:lab/report@0.1.0";

/** A host call failed: `kind` says how, `text` what to do about it. */
export class NslabError extends Error {
  constructor(kind, text) {
    super(`${kind}: ${text}`);
    this.name = "NslabError";
    this.kind = kind;
    this.text = text;
  }
}

/** Call the host; its error becomes an NslabError with the host's own sentence. */
function call(f) {
  try {
    return f();
  } catch (e) {
    const p = e && e.payload;
    if (p && typeof p.tag === "string") {
      throw new NslabError(p.tag, String(p.val));
    }
    throw e;
  }
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** What a program printed and how it ended. */
export class Output {
  constructor(o) {
    this.status = o.status;
    this.stdout = o.stdout;
    this.stderr = o.stderr;
    this.timedOut = o.timedOut;
    this.durationUs = o.durationUs;
  }
  get success() {
    return this.status === 0 && !this.timedOut;
  }
  get stdoutText() {
    return decoder.decode(this.stdout);
  }
  get stderrText() {
    return decoder.decode(this.stderr);
  }
  /** The first line of its output that contains `needle`, or undefined. */
  lineWith(needle) {
    return (this.stdoutText + "\n" + this.stderrText)
      .split("\n")
      .find((l) => l.includes(needle));
  }
}

/** A program running in the background (`ip netns exec NS PROGRAM &`). */
export class Process {
  constructor(p) {
    this.p = p;
  }
  get id() {
    return this.p.id();
  }
  wait(timeoutMs) {
    return new Output(call(() => this.p.wait(timeoutMs)));
  }
  kill() {
    call(() => this.p.kill());
  }
  outputSoFar() {
    const [out, err] = this.p.outputSoFar();
    return [decoder.decode(out), decoder.decode(err)];
  }
  /** Wait up to `timeoutMs` for a line of its output that contains `text`: that line. */
  waitForLine(text, timeoutMs) {
    return call(() => this.p.waitForLine(text, timeoutMs));
  }
}

function command(program, args, opts = {}) {
  return {
    program,
    args: args.map(String),
    env: Object.entries(opts.env || {}),
    stdin: opts.stdin === undefined ? undefined : encoder.encode(opts.stdin),
    timeoutMs: opts.timeoutMs,
  };
}

/** A network namespace, as `ip netns add` makes it. */
export class Netns {
  constructor(ns) {
    this.ns = ns;
  }
  static create(name) {
    return new Netns(call(() => netns.Namespace.create(name)));
  }
  get name() {
    return this.ns.name();
  }
  get inode() {
    return this.ns.inode();
  }
  setForwarding(on) {
    call(() => this.ns.setForwarding(on));
  }
  setHostname(name) {
    call(() => this.ns.setHostname(name));
  }
  /** `ip netns exec NS PROGRAM ARGS...`; `{ quiet: true }` for a poll (not echoed). */
  exec(program, args = [], opts = {}) {
    const run = opts.quiet ? exec.runQuiet : exec.run;
    return new Output(call(() => run(this.ns, command(program, args, opts))));
  }
  spawn(program, args = [], opts = {}) {
    return new Process(call(() => exec.spawn(this.ns, command(program, args, opts))));
  }
  /** Run a command quietly until it exits 0, for at most `timeoutMs`: the milliseconds it took. */
  async waitUntilOk(program, args = [], timeoutMs = 10000) {
    let last = "";
    const shown = [program, ...args].join(" ");
    try {
      return await waitUntil(shown, timeoutMs, () => {
        const out = this.exec(program, args, { quiet: true });
        last = (out.stdoutText + out.stderrText).trim();
        return out.success;
      });
    } catch (e) {
      if (e instanceof NslabError && e.kind === "timeout") {
        throw new NslabError("timeout", `${e.text}; it last said: ${last}`);
      }
      throw e;
    }
  }
  link(name) {
    return Link.byName(this, name);
  }
  addRoute(destination, gateway, device) {
    call(() => route.add(this.ns, { destination, gateway, device }));
  }
  removeRoute(destination, gateway, device) {
    call(() => route.remove(this.ns, { destination, gateway, device }));
  }
  routes() {
    return call(() => route.routes(this.ns));
  }
  routeDetails() {
    return call(() => route.routeDetails(this.ns));
  }
  links() {
    return call(() => link.links(this.ns));
  }
  writeFile(path, contents, mode = 0o644) {
    const bytes = typeof contents === "string" ? encoder.encode(contents) : contents;
    call(() => this.ns.writeFile(path, bytes, mode));
  }
  readFile(path) {
    return call(() => this.ns.readFile(path));
  }
}

/** An interface inside a namespace. */
export class Link {
  constructor(l) {
    this.l = l;
  }
  static veth(a, aNs, b, bNs) {
    const [x, y] = call(() => link.Link.veth(a, aNs.ns, b, bNs.ns));
    return [new Link(x), new Link(y)];
  }
  static bridge(name, ns) {
    return new Link(call(() => link.Link.bridge(name, ns.ns)));
  }
  static loopback(ns) {
    return new Link(call(() => link.Link.loopback(ns.ns)));
  }
  static byName(ns, name) {
    return new Link(call(() => link.Link.byName(ns.ns, name)));
  }
  get name() {
    return this.l.name();
  }
  info() {
    return call(() => this.l.info());
  }
  setUp() {
    call(() => this.l.setUp());
  }
  setDown() {
    call(() => this.l.setDown());
  }
  setMtu(mtu) {
    call(() => this.l.setMtu(mtu));
  }
  setMac(mac) {
    call(() => this.l.setMac(mac));
  }
  moveTo(ns) {
    call(() => this.l.moveTo(ns.ns));
  }
  addAddress(cidr) {
    call(() => this.l.addAddress(cidr));
  }
  removeAddress(cidr) {
    call(() => this.l.removeAddress(cidr));
  }
  setMaster(bridge) {
    call(() => this.l.setMaster(bridge.l));
  }
}

export function step(name) {
  report.step(name);
}

export function check(name, passed, detail = "") {
  report.check(name, Boolean(passed), String(detail));
}

export function attach(name, data) {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  call(() => report.attach(name, bytes));
}

/** Call `ready()` every 100 ms until it is true, for at most `timeoutMs`: the ms it took. */
export async function waitUntil(what, timeoutMs, ready) {
  const started = Date.now();
  for (;;) {
    if (await ready()) {
      return Date.now() - started;
    }
    if (Date.now() - started >= timeoutMs) {
      throw new NslabError("timeout", `${what}: not ready after ${timeoutMs} ms`);
    }
    await sleep(100);
  }
}

/** Wait `ms` milliseconds. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The scenario's exports: `describe()` from its name, description and programs, and `run(args)`
 * calling `lab(args)`. An uncaught error fails the run with its message, after its stack (file
 * and line) is printed on the scenario's stderr.
 */
export function scenario({ name, description, programs = [], lab }) {
  return {
    describe() {
      return { name, description, programs };
    },
    async run(args) {
      try {
        await lab(args);
      } catch (e) {
        if (e && e.stack) {
          console.error(`${e.name || "Error"}: ${e.message}\n${e.stack}`);
        }
        throw e instanceof Error ? e.message : String(e);
      }
    },
  };
}
