"""The seed in Python: the ip-netns tutorial (two namespaces, a veth pair, 192.168.0.1/24 and
.2/24, ping), line for line as the shell session and the Rust seed."""

import nslab
from nslab import Link, Netns, check, info, step


class WitWorld(nslab.Scenario):
    def describe(self):
        return info("seed-py", "the ip-netns tutorial in Python: two namespaces and a ping", ["ping"])

    def lab(self, args):
        step("Create two namespaces (ip netns add ns01; ip netns add ns02)")
        ns01 = Netns.create("ns01")
        ns02 = Netns.create("ns02")

        step("Connect them with a veth pair")
        a, b = Link.veth("ns01-veth0", ns01, "ns02-veth0", ns02)

        step("Address each end and bring the links up")
        a.add_address("192.168.0.1/24")
        b.add_address("192.168.0.2/24")
        a.set_up()
        b.set_up()

        step("Ping ns02 from ns01 (ip netns exec ns01 ping -c 3 192.168.0.2)")
        out = ns01.exec("ping", "-c", "3", "192.168.0.2")
        check("ping lost nothing", out.success(), out.line_with("packets transmitted") or out.stderr_text())
