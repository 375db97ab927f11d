"""Fails on purpose, in Python, as its first argument says: `host-error` leaves a host error
uncaught (it becomes the scenario's error text), `raise` raises a Python exception (its
traceback, with file and line, goes to the scenario's stderr)."""

import nslab
from nslab import Netns, info, step


class WitWorld(nslab.Scenario):
    def describe(self):
        return info("faults-py", "fails on purpose, in Python", [])

    def lab(self, args):
        mode = args[0] if args else ""
        step(f"Fail: {mode}")
        if mode == "host-error":
            Netns.create("sixteen-chars-xx")
        elif mode == "raise":
            ratio = 1 / len([])
            print(ratio)
