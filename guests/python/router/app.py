"""The router in Python: two subnets joined by a router namespace with forwarding on; the hosts
ping across it, and the TTL shows one hop. Without forwarding, no reply."""

import nslab
from nslab import Link, Netns, check, info, step


class WitWorld(nslab.Scenario):
    def describe(self):
        return info("router-py", "two subnets joined by a router, in Python", ["ping"])

    def lab(self, args):
        step("Two hosts and a router")
        h1, r, h2 = Netns.create("h1"), Netns.create("r"), Netns.create("h2")
        a1, r1 = Link.veth("h1-eth0", h1, "r-eth1", r)
        a2, r2 = Link.veth("h2-eth0", h2, "r-eth2", r)
        for link, cidr in [(a1, "10.0.1.2/24"), (r1, "10.0.1.1/24"), (a2, "10.0.2.2/24"), (r2, "10.0.2.1/24")]:
            link.add_address(cidr)
            link.set_up()
        h1.add_route("default", "10.0.1.1")
        h2.add_route("default", "10.0.2.1")

        step("Without forwarding, no reply")
        out = h1.exec("ping", "-c", "1", "-W", "1", "10.0.2.2")
        check("no forwarding, no reply", not out.success(), out.line_with("packets transmitted") or "")

        step("With forwarding on, the hosts reach each other one hop apart")
        r.set_forwarding(True)
        took = h1.wait_until_ok("ping", "-c", "1", "-W", "1", "10.0.2.2", timeout_s=5)
        check("h2 answers once forwarding is on", True, f"within {took:.1f} s")
        out = h1.exec("ping", "-c", "2", "10.0.2.2")
        ttl = next((w for w in out.stdout_text().split() if w.startswith("ttl=")), "ttl=?")
        check("h1 pings h2 through the router", out.success() and ttl == "ttl=63", ttl)
