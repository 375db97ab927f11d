// The router in TypeScript: two subnets joined by a router namespace with forwarding on; the
// hosts ping across it, and the TTL shows one hop. A host error carries its kind.
import { Link, Netns, NslabError, check, scenario, step } from "../nslab.js";

function ttl(text: string): string {
  return text.split(/\s+/).find((w) => w.startsWith("ttl=")) ?? "ttl=?";
}

export const { describe, run } = scenario({
  name: "router-ts",
  description: "two subnets joined by a router, in TypeScript",
  programs: ["ping"],
  async lab(args: string[]): Promise<void> {
    step("Two hosts and a router");
    const [h1, r, h2] = ["h1", "r", "h2"].map((n) => Netns.create(n));
    const [a1, r1] = Link.veth("h1-eth0", h1, "r-eth1", r);
    const [a2, r2] = Link.veth("h2-eth0", h2, "r-eth2", r);
    const plan: [Link, string][] = [
      [a1, "10.0.1.2/24"],
      [r1, "10.0.1.1/24"],
      [a2, "10.0.2.2/24"],
      [r2, "10.0.2.1/24"],
    ];
    for (const [link, cidr] of plan) {
      link.addAddress(cidr);
      link.setUp();
    }
    h1.addRoute("default", "10.0.1.1");
    h2.addRoute("default", "10.0.2.1");
    let kind = "none";
    try {
      Netns.create("h1");
    } catch (e) {
      kind = e instanceof NslabError ? e.kind : String(e);
    }
    check("a second h1 is refused with the kind exists", kind === "exists", kind);

    step("With forwarding on, the hosts reach each other one hop apart");
    r.setForwarding(true);
    const took = await h1.waitUntilOk("ping", ["-c", "1", "-W", "1", "10.0.2.2"], 5000);
    check("h2 answers once forwarding is on", true, `within ${took} ms`);
    const out = h1.exec("ping", ["-c", "2", "10.0.2.2"]);
    check("h1 pings h2 through the router", out.success && ttl(out.stdoutText) === "ttl=63", ttl(out.stdoutText));
  },
});
