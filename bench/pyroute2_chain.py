#!/usr/bin/env python3
"""The chain of guests/chain with pyroute2, for bench/run.sh: its netns API and one IPRoute per
namespace (named nslab-bench-N), then their removal.

usage: pyroute2_chain.py N
"""
import sys

from pyroute2 import IPRoute, netns


def main():
    n = int(sys.argv[1])
    names = [f"nslab-bench-{i}" for i in range(n)]
    for name in names:
        netns.create(name)
    iprs = [IPRoute(netns=name) for name in names]
    for i in range(1, n):
        iprs[i - 1].link(
            "add", ifname="right", kind="veth", peer={"ifname": "left", "net_ns_fd": names[i]}
        )
        hi, lo = (i >> 6) & 255, (i & 63) << 2
        for ipr, ifname, host in ((iprs[i - 1], "right", 1), (iprs[i], "left", 2)):
            idx = ipr.link_lookup(ifname=ifname)[0]
            ipr.addr("add", index=idx, address=f"10.{hi}.{lo}.{host}", prefixlen=30)
            ipr.link("set", index=idx, state="up")
    for ipr, name in zip(iprs, names):
        ipr.close()
        netns.remove(name)


if __name__ == "__main__":
    main()
