"""nslab: write a network lab the way you would type it into a shell, in Python.

The same vocabulary as the Rust SDK (guests/sdk): ``Netns.create``, ``Link.veth``,
``ns.exec(...)`` / ``ns.spawn(...)``, ``out.success()``, ``out.line_with(...)``, ``step``,
``check``, ``Args``. A scenario subclasses ``Scenario`` as ``WitWorld``::

    import nslab
    from nslab import Netns, Link, step, check, info

    class WitWorld(nslab.Scenario):
        def describe(self):
            return info("seed", "two namespaces and a ping", ["ping"])

        def lab(self, args):
            ns01, ns02 = Netns.create("ns01"), Netns.create("ns02")
            a, b = Link.veth("ns01-veth0", ns01, "ns02-veth0", ns02)
            ...

A host error raises ``NslabError`` (its ``kind`` is denied, invalid, exists, not-found, limit,
os or timeout); one the scenario does not catch becomes its error text. Any other uncaught
exception prints its Python traceback (file and line) on the scenario's stderr.

componentize-py rules: import every module at the top of a file (there is no filesystem when
the scenario runs, so an import inside ``lab`` fails); the contract's ``exec`` interface is
reached through ``ns.exec`` and never shadows Python's own ``exec``.
"""

import time
import traceback
from typing import Dict, List, Optional, Sequence, Tuple

import wit_world
from componentize_py_types import Err
from wit_world.imports import exec as _exec
from wit_world.imports import link as _link
from wit_world.imports import netns as _netns
from wit_world.imports import report as _report
from wit_world.imports import route as _route
from wit_world.imports import types as _types

_KINDS = {
    _types.Error_Denied: "denied",
    _types.Error_Invalid: "invalid",
    _types.Error_Exists: "exists",
    _types.Error_NotFound: "not-found",
    _types.Error_Limit: "limit",
    _types.Error_Os: "os",
    _types.Error_Timeout: "timeout",
}


class NslabError(Exception):
    """A host call failed; ``kind`` says how, ``text`` what to do about it."""

    def __init__(self, kind: str, text: str):
        super().__init__(f"{kind}: {text}")
        self.kind = kind
        self.text = text


def _call(f, *args):
    """Call the host; its error becomes an NslabError with the host's own sentence."""
    try:
        return f(*args)
    except Err as e:
        kind = _KINDS.get(type(e.value))
        if kind is None:
            raise
        raise NslabError(kind, e.value.value) from None


def info(name: str, description: str, programs: Sequence[str]) -> wit_world.Info:
    """The describe() answer: name, one-line description, the programs the scenario runs."""
    return wit_world.Info(name, description, list(programs))


def step(name: str) -> None:
    """Start a named step of the report (`== name`)."""
    _call(_report.step, name)


def check(name: str, passed: bool, detail: str = "") -> None:
    """Record a check: the run passes only if every check does."""
    _call(_report.check, name, bool(passed), detail)


def attach(name: str, data: bytes) -> None:
    """Save a file into the run's report (`runner run --report DIR` writes DIR/files/NAME)."""
    _call(_report.attach, name, bytes(data))


class Out:
    """What a program did: status, stdout and stderr (bytes), whether it timed out."""

    def __init__(self, o: _exec.Output):
        self.status = o.status
        self.stdout = o.stdout
        self.stderr = o.stderr
        self.timed_out = o.timed_out
        self.duration_us = o.duration_us

    def success(self) -> bool:
        """Exited with status 0 within its time limit."""
        return self.status == 0 and not self.timed_out

    def stdout_text(self) -> str:
        return self.stdout.decode(errors="replace")

    def stderr_text(self) -> str:
        return self.stderr.decode(errors="replace")

    def line_with(self, needle: str) -> Optional[str]:
        """The first stdout line containing `needle`, trimmed."""
        return next((l.strip() for l in self.stdout_text().splitlines() if needle in l), None)


class Process:
    """A program started in the background; it is stopped when the run ends."""

    def __init__(self, p: _exec.Process):
        self._p = p

    @property
    def id(self) -> int:
        return self._p.id()

    def wait(self, timeout_ms: Optional[int] = None) -> Out:
        return Out(_call(self._p.wait, timeout_ms))

    def kill(self) -> None:
        _call(self._p.kill)

    def output_so_far(self) -> Tuple[bytes, bytes]:
        return self._p.output_so_far()

    def wait_for_line(self, text: str, timeout_ms: int) -> str:
        """The first line it prints that contains `text`, waiting up to timeout_ms."""
        return _call(self._p.wait_for_line, text, timeout_ms)


def _command(program, args, env, stdin, timeout_ms) -> _exec.Command:
    return _exec.Command(
        program,
        [str(a) for a in args],
        list((env or {}).items()),
        stdin,
        timeout_ms,
    )


class Netns:
    """A network namespace, as `ip netns add` makes it."""

    def __init__(self, ns: _netns.Namespace):
        self._ns = ns

    @staticmethod
    def create(name: str) -> "Netns":
        return Netns(_call(_netns.Namespace.create, name))

    @property
    def name(self) -> str:
        return self._ns.name()

    @property
    def inode(self) -> int:
        return self._ns.inode()

    def set_forwarding(self, on: bool) -> None:
        _call(self._ns.set_forwarding, on)

    def exec(self, program: str, *args, env: Optional[Dict[str, str]] = None,
             stdin: Optional[bytes] = None, timeout_ms: Optional[int] = None,
             quiet: bool = False) -> Out:
        """`ip netns exec NS PROGRAM ARGS...`: run it to its end. `quiet`: not echoed to the
        terminal (a poll); its output is still returned and kept in the run's account."""
        run = _exec.run_quiet if quiet else _exec.run
        return Out(_call(run, self._ns, _command(program, args, env, stdin, timeout_ms)))

    def wait_until_ok(self, program: str, *args, timeout_s: float = 10.0) -> float:
        """Run `program ARGS...` quietly until it succeeds (exit status 0), for at most
        timeout_s: the seconds it took. Readiness in one line, e.g. until a daemon answers on
        its control socket: `router.wait_until_ok("vtysh", "-d", "zebra", "-c", "show version")`.
        A timeout says what the command last printed."""
        last = [""]

        def ok() -> bool:
            out = self.exec(program, *args, quiet=True)
            last[0] = (out.stdout_text() + out.stderr_text()).strip()
            return out.success()

        shown = " ".join((program,) + args)
        try:
            return wait_until(shown, timeout_s, ok)
        except NslabError as e:
            if e.kind == "timeout":
                raise NslabError("timeout", f"{e.text}; it last said: {last[0]}") from None
            raise

    def set_hostname(self, name: str) -> None:
        """The host name this namespace's programs see (its own name until set)."""
        _call(self._ns.set_hostname, name)

    def link(self, name: str) -> "Link":
        """A link the run made in this namespace (or "lo"), by its name here."""
        return Link.by_name(self, name)

    def spawn(self, program: str, *args, env: Optional[Dict[str, str]] = None,
              stdin: Optional[bytes] = None) -> Process:
        """`ip netns exec NS PROGRAM ARGS... &`"""
        return Process(_call(_exec.spawn, self._ns, _command(program, args, env, stdin, None)))

    def add_route(self, destination: str, gateway: Optional[str] = None,
                  device: Optional[str] = None) -> None:
        """`ip route add DEST [via GATEWAY] [dev DEVICE]` inside this namespace."""
        _call(_route.add, self._ns, _route.RouteInfo(destination, gateway, device))

    def remove_route(self, destination: str, gateway: Optional[str] = None,
                     device: Optional[str] = None) -> None:
        _call(_route.remove, self._ns, _route.RouteInfo(destination, gateway, device))

    def routes(self) -> List[_route.RouteInfo]:
        return _call(_route.routes, self._ns)

    def route_details(self) -> List[_route.RouteDetail]:
        """`ip route show table all`: protocol, metric, table and every next hop."""
        return _call(_route.route_details, self._ns)

    def links(self) -> List[_link.LinkInfo]:
        return _call(_link.links, self._ns)

    def write_file(self, path: str, contents: bytes, mode: int = 0o644) -> None:
        """Give this namespace's programs a file at `path`."""
        _call(self._ns.write_file, path, contents, mode)

    def read_file(self, path: str) -> bytes:
        return _call(self._ns.read_file, path)


class Link:
    """A network interface of the lab."""

    def __init__(self, link: _link.Link):
        self._link = link

    @staticmethod
    def veth(a: str, a_ns: Netns, b: str, b_ns: Netns) -> Tuple["Link", "Link"]:
        """`ip link add A type veth peer name B`, each end in its namespace."""
        ea, eb = _call(_link.Link.veth, a, a_ns._ns, b, b_ns._ns)
        return Link(ea), Link(eb)

    @staticmethod
    def bridge(name: str, ns: Netns) -> "Link":
        return Link(_call(_link.Link.bridge, name, ns._ns))

    @staticmethod
    def loopback(ns: Netns) -> "Link":
        return Link(_call(_link.Link.loopback, ns._ns))

    @staticmethod
    def by_name(ns: Netns, name: str) -> "Link":
        """A link the run made in `ns` (or "lo"), by its name there."""
        return Link(_call(_link.Link.by_name, ns._ns, name))

    @property
    def name(self) -> str:
        return self._link.name()

    def info(self) -> _link.LinkInfo:
        return _call(self._link.info)

    def set_up(self) -> None:
        _call(self._link.set_up)

    def set_down(self) -> None:
        _call(self._link.set_down)

    def set_mtu(self, mtu: int) -> None:
        _call(self._link.set_mtu, mtu)

    def set_mac(self, mac: str) -> None:
        _call(self._link.set_mac, mac)

    def move_to(self, ns: Netns) -> None:
        _call(self._link.move_to, ns._ns)

    def add_address(self, cidr: str) -> None:
        _call(self._link.add_address, cidr)

    def remove_address(self, cidr: str) -> None:
        _call(self._link.remove_address, cidr)

    def set_master(self, bridge: "Link") -> None:
        _call(self._link.set_master, bridge._link)


class Args:
    """The scenario's own arguments (`runner run lab.wasm -- --hosts 8`)."""

    def __init__(self, args: Sequence[str]):
        self._args = list(args)

    def get(self, flag: str) -> Optional[str]:
        if flag in self._args:
            at = self._args.index(flag)
            if at + 1 < len(self._args):
                return self._args[at + 1]
        return None

    def get_or(self, flag: str, default):
        value = self.get(flag)
        return default if value is None else type(default)(value)


def wait_until(what: str, timeout_s: float, ready) -> float:
    """Call `ready()` every 0.1 s until it is true, for at most timeout_s: the seconds it took."""
    started = time.monotonic()
    while True:
        if ready():
            return time.monotonic() - started
        if time.monotonic() - started >= timeout_s:
            raise NslabError("timeout", f"{what}: not ready after {timeout_s} s")
        time.sleep(0.1)


class Scenario(wit_world.WitWorld):
    """Subclass as `WitWorld`, with describe() and lab(args)."""

    def lab(self, args: List[str]) -> None:
        raise NotImplementedError("a scenario defines lab(self, args)")

    def run(self, args: List[str]) -> None:
        try:
            self.lab(args)
        except NslabError as e:
            raise Err(str(e))
        except Exception as e:
            traceback.print_exc()
            raise Err(f"the scenario raised {type(e).__name__}: {e} (traceback above)")
