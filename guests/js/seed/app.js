// The seed scenario in JavaScript: two namespaces joined by a veth pair, and a ping.
import { Link, Netns, check, scenario, step } from "../nslab.js";

export const { describe, run } = scenario({
  name: "seed-js",
  description: "two namespaces and a ping, in JavaScript",
  programs: ["ping"],
  async lab(args) {
    step("Two namespaces joined by a veth pair");
    const ns01 = Netns.create("ns01");
    const ns02 = Netns.create("ns02");
    const [a, b] = Link.veth("ns01-veth0", ns01, "ns02-veth0", ns02);
    a.addAddress("192.168.0.1/24");
    b.addAddress("192.168.0.2/24");
    a.setUp();
    b.setUp();

    step("ns01 pings ns02");
    const out = ns01.exec("ping", ["-c", "3", "-i", "0.2", "192.168.0.2"]);
    check("ping lost nothing", out.success, out.lineWith("packets transmitted") ?? "");
  },
});
