#!/usr/bin/env python3
"""Make the project's behaviour-named sample captures from real Linux TCP stacks.

Why this exists: the analyzer's ground truth must come from real kernels, not from
hand-written packets, and it must be reproducible by anyone with root.  This script builds a
private two-host network per scenario, drives real kernel sockets through the scenario, captures
it with tcpdump and records what the kernel itself says happened (socket states from ``ss``,
MIB counters from ``nstat``) next to the expected lifecycle of every connection.

Theory of operation
-------------------
1. Each scenario gets two fresh network namespaces, ``tpys-c`` (client) and ``tpys-s``
   (server), each holding one TAP device (``c0`` / ``s0``) with static neighbour entries
   (no ARP/ND noise).  The two TAP devices are joined by a userspace relay in this process:
   every Ethernet frame one kernel transmits is read from its TAP fd and written to the other.
   The relay can drop or delay chosen TCP segments; that replaces iptables/netem, which are
   not available on every host (this one has neither ``iptables``, ``nft`` nor the netem
   qdisc).  TAP devices have no offloads, so the capture shows wire-sized segments with
   valid checksums.
2. Sockets are ordinary kernel sockets: the creating thread ``setns(2)``-es into the
   namespace, creates the socket and returns; a socket stays in the namespace it was
   created in whatever thread later uses it.
3. tcpdump runs inside the client namespace on ``c0`` (``-s 200 -U --immediate-mode``;
   without immediate mode packets still in the ring at SIGINT are lost), so the vantage
   point is the client host: segments the relay drops on the client->server path ARE in the
   capture (dropped after the capture point); segments dropped on the server->client path
   are NOT.
4. At capture end, before any socket is closed, ``ss -tan`` and ``nstat -asz`` (absolute,
   no history update) are read in both namespaces; states in expected.json are those the
   kernel reported (RFC 9293 names).
5. Every wait is bounded, namespaces are always deleted (try/finally) and leftovers of a
   previous run are removed first, so the script is idempotent.

Run as root:  ``sudo python3 samples/make_samples.py [--out samples/] [--only NAME ...]``
Stdlib only (no dpkt) so that it runs on a bare host.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import heapq
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- constants

NS_CLIENT = "tpys-c"
NS_SERVER = "tpys-s"
IF_CLIENT = "c0"
IF_SERVER = "s0"
MAC_CLIENT = "02:77:00:00:00:01"
MAC_SERVER = "02:77:00:00:00:02"
V4_CLIENT = "10.77.0.1"
V4_SERVER = "10.77.0.2"
V6_CLIENT = "fd77::1"
V6_SERVER = "fd77::2"
SERVER_PORT = 8080
SNAPLEN_BYTES = 200
SOCKET_TIMEOUT_S = 10.0
THREAD_JOIN_TIMEOUT_S = 20.0
TCPDUMP_READY_TIMEOUT_S = 5.0
TCPDUMP_STOP_TIMEOUT_S = 5.0
SUBPROCESS_TIMEOUT_S = 10.0
# Settle time after the last scenario action so the final segments are on the wire and in
# the capture before ss/nstat are read (RTT is ~0 except where the relay adds delay).
SETTLE_S = 0.3

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000

TH_FIN, TH_SYN, TH_RST, TH_PSH, TH_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

OPEN_KINDS = ("three_way_handshake", "simultaneous_open", "not_established")
CLOSE_KINDS = (
    "graceful",
    "rst_by_client",
    "rst_by_server",
    "refused",
    "unanswered",
    "half_closed_at_capture_end",
    "open_at_capture_end",
)
ANOMALY_CODES = (
    "unanswered_syn",
    "connection_refused",
    "synack_retransmission",
    "half_open",
    "rst_storm",
    "lost_final_ack",
    "retransmission_timeout",
    "zero_window_stall",
    "close_wait_stuck",
    "half_close",
    "abortive_close",
    "keepalive_timeout",
    "time_wait_reuse",
    "simultaneous_open",
    "simultaneous_close",
    "self_connect",
    "reset_on_data",
    "rto_backoff",
    "port_scan",
    "syn_flood",
    "data_after_close",
    "icmp_unreachable",
    "pmtu_black_hole",
    "excessive_retransmissions",
)
# ss(8) state names -> RFC 9293 names.  A socket ss does not list is CLOSED.
SS_TO_RFC = {
    "ESTAB": "ESTABLISHED",
    "SYN-SENT": "SYN_SENT",
    "SYN-RECV": "SYN_RECEIVED",
    "FIN-WAIT-1": "FIN_WAIT_1",
    "FIN-WAIT-2": "FIN_WAIT_2",
    "TIME-WAIT": "TIME_WAIT",
    "CLOSE-WAIT": "CLOSE_WAIT",
    "LAST-ACK": "LAST_ACK",
    "CLOSING": "CLOSING",
    "LISTEN": "LISTEN",
    "CLOSE": "CLOSED",
    "UNCONN": "CLOSED",
}
# Counters always recorded (even when zero) because tests and docs refer to them.
KEY_COUNTERS = (
    "TcpActiveOpens",
    "TcpPassiveOpens",
    "TcpAttemptFails",
    "TcpEstabResets",
    "TcpRetransSegs",
    "TcpOutRsts",
    "TcpExtTCPFastRetrans",
    "TcpExtTCPLossProbes",
    "TcpExtTCPTimeouts",
    "TcpExtTCPSynRetrans",
    "TcpExtTCPKeepAlive",
    "TcpExtTCPWinProbe",
    "TcpExtTCPToZeroWindowAdv",
    "TcpExtTCPFromZeroWindowAdv",
    "TcpExtListenOverflows",
    "TcpExtListenDrops",
    "TcpExtTCPAbortOnData",
    "TcpExtTCPAbortOnClose",
    "TcpExtTCPAbortOnTimeout",
    "TcpExtTW",
)

_libc = ctypes.CDLL(None, use_errno=True)


def log(msg: str) -> None:
    """Progress on stderr (this is a script, not a core module)."""
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- namespaces


def run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a short command with a bounded wait."""
    return subprocess.run(
        cmd, check=check, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S
    )


def nsexec(ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["ip", "netns", "exec", ns, *cmd], check=check)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def in_netns(ns: str) -> Iterator[None]:
    """Move the calling thread (only) into ``ns`` for the duration of the block."""
    cur = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    tgt = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        _setns(tgt)
        try:
            yield
        finally:
            _setns(cur)
    finally:
        os.close(cur)
        os.close(tgt)


def open_tap(name: str) -> int:
    """Create TAP ``name`` in the current thread's namespace and return its fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    ifr = struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI)
    fcntl.ioctl(fd, TUNSETIFF, ifr)
    return fd


def delete_namespaces() -> None:
    for ns in (NS_CLIENT, NS_SERVER):
        if Path(f"/run/netns/{ns}").exists():
            run(["ip", "netns", "del", ns], check=False)


def sysctl(ns: str, key: str, value: str | int) -> str:
    """Set a per-namespace sysctl; returns the value read back or FAILED(reason)."""
    res = nsexec(ns, "sysctl", "-q", "-w", f"{key}={value}", check=False)
    if res.returncode != 0:
        return f"FAILED({res.stderr.strip()})"
    return nsexec(ns, "sysctl", "-n", key).stdout.strip()


# --------------------------------------------------------------------------- relay


@dataclass(frozen=True, slots=True)
class Seg:
    """TCP header facts of one relayed frame, as a drop/delay policy needs them."""

    direction: str
    """``c2s`` (client kernel -> server kernel) or ``s2c``."""
    flags: int
    seq: int
    ack: int
    payload_len: int
    sport: int
    dport: int


Policy = Callable[[Seg], "float | None"]
"""Returns the delay in seconds before the frame is delivered, or None to drop it."""


def pass_all(_seg: Seg) -> float | None:
    return 0.0


def parse_tcp(direction: str, frame: bytes) -> Seg | None:
    """Ethernet/IPv4|IPv6/TCP -> Seg; None for anything else (passed unchanged)."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    off = 14
    if ethertype == 0x0800:
        ihl = (frame[off] & 0x0F) * 4
        if frame[off + 9] != 6:
            return None
        total = struct.unpack_from("!H", frame, off + 2)[0]
        tcp = off + ihl
        ip_payload = total - ihl
    elif ethertype == 0x86DD:
        if frame[off + 6] != 6:
            return None
        ip_payload = struct.unpack_from("!H", frame, off + 4)[0]
        tcp = off + 40
    else:
        return None
    sport, dport, seq, ack, doff_byte, flags = struct.unpack_from("!HHIIBB", frame, tcp)
    return Seg(direction, flags, seq, ack, ip_payload - (doff_byte >> 4) * 4, sport, dport)


class Relay:
    """Userspace wire between the two TAP devices, with a per-segment drop/delay policy."""

    def __init__(self, fd_client: int, fd_server: int) -> None:
        self.fd_client = fd_client
        self.fd_server = fd_server
        self.policy: Policy = pass_all
        self.dropped = {"c2s": 0, "s2c": 0}
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(THREAD_JOIN_TIMEOUT_S)
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _loop(self) -> None:
        pending: list[tuple[float, int, int, bytes]] = []
        n = 0
        fds = [self.fd_client, self.fd_server, self._stop_r]
        while True:
            now = time.monotonic()
            wait_s = 0.05 if not pending else max(0.0, min(0.05, pending[0][0] - now))
            readable, _, _ = select.select(fds, [], [], wait_s)
            if self._stop_r in readable:
                return
            for fd in readable:
                try:
                    frame = os.read(fd, 65536)
                except OSError:
                    continue
                direction = "c2s" if fd == self.fd_client else "s2c"
                out = self.fd_server if direction == "c2s" else self.fd_client
                seg = parse_tcp(direction, frame)
                delay_s = self.policy(seg) if seg is not None else 0.0
                if delay_s is None:
                    self.dropped[direction] += 1
                    continue
                n += 1
                heapq.heappush(pending, (time.monotonic() + delay_s, n, out, frame))
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                _, _, out, frame = heapq.heappop(pending)
                with contextlib.suppress(OSError):
                    os.write(out, frame)


# --------------------------------------------------------------------------- expectations


@dataclass
class Conn:
    """Expected lifecycle of one connection (the scenario design's ground truth)."""

    client: tuple[str, int]
    server: tuple[str, int]
    open: str
    close: str
    anomalies: list[str]
    allowed: list[str] = field(default_factory=list)
    note: str = ""
    superseded: bool = False
    """True when a later incarnation reused the 4-tuple: the kernel no longer has this one."""


def endpoint_str(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Scenario:
    name: str
    description: str
    body: Callable[[Env], list[Conn]]
    family: int = socket.AF_INET
    client_sysctls: dict[str, str | int] = field(default_factory=dict)
    server_sysctls: dict[str, str | int] = field(default_factory=dict)
    capture_if: str = IF_CLIENT
    link: str = "two TAP devices joined by a userspace relay in make_samples.py, ~0 RTT"
    loss_location: str = "no induced loss"
    capture_anomalies: list[str] = field(default_factory=list)
    vantage: str = "client"
    """Whose TAP device tcpdump captures on (``--vantage`` overrides it for a whole run)."""
    snaplen: int = SNAPLEN_BYTES
    """tcpdump ``-s``: SNAPLEN_BYTES keeps the samples small (payload cut: a
    ``truncated_frames`` finding); 0 (whole frames) for ``normal``, the README's first
    example, which must raise no finding at all."""


class Env:
    """One scenario's network: namespaces, TAP devices, relay, sockets to clean up."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.v6 = scenario.family == socket.AF_INET6
        self.client_ip = V6_CLIENT if self.v6 else V4_CLIENT
        self.server_ip = V6_SERVER if self.v6 else V4_SERVER
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.sysctls: dict[str, dict[str, str]] = {"client_ns": {}, "server_ns": {}}
        self.relay: Relay | None = None
        self._tap_fds: list[int] = []

    # ---- setup / teardown
    def setup(self) -> None:
        delete_namespaces()
        for ns in (NS_CLIENT, NS_SERVER):
            run(["ip", "netns", "add", ns])
            nsexec(ns, "ip", "link", "set", "dev", "lo", "up")
            if not self.v6:
                # No IPv6 at all in IPv4 scenarios: keeps MLD/RS chatter out of the capture.
                for key in ("all", "default"):
                    sysctl(ns, f"net.ipv6.conf.{key}.disable_ipv6", 1)
            else:
                for key in ("accept_dad", "router_solicitations"):
                    sysctl(ns, f"net.ipv6.conf.default.{key}", 0)
        for ns, ifname in ((NS_CLIENT, IF_CLIENT), (NS_SERVER, IF_SERVER)):
            with in_netns(ns):
                self._tap_fds.append(open_tap(ifname))
        sides = (
            (NS_CLIENT, IF_CLIENT, MAC_CLIENT, MAC_SERVER, V4_CLIENT, V4_SERVER, V6_CLIENT,
             V6_SERVER),
            (NS_SERVER, IF_SERVER, MAC_SERVER, MAC_CLIENT, V4_SERVER, V4_CLIENT, V6_SERVER,
             V6_CLIENT),
        )
        for ns, ifname, mac, peer_mac, v4, pv4, v6, pv6 in sides:
            nsexec(ns, "ip", "link", "set", "dev", ifname, "address", mac)
            nsexec(ns, "ip", "link", "set", "dev", ifname, "up")
            if self.v6:
                nsexec(ns, "ip", "-6", "addr", "add", f"{v6}/64", "dev", ifname, "nodad")
                nsexec(ns, "ip", "-6", "neigh", "replace", pv6, "lladdr", peer_mac, "dev", ifname,
                       "nud", "permanent")
            else:
                nsexec(ns, "ip", "addr", "add", f"{v4}/24", "dev", ifname)
                nsexec(ns, "ip", "neigh", "replace", pv4, "lladdr", peer_mac, "dev", ifname,
                       "nud", "permanent")
        for key, value in self.scenario.client_sysctls.items():
            self.sysctls["client_ns"][key] = sysctl(NS_CLIENT, key, value)
        for key, value in self.scenario.server_sysctls.items():
            self.sysctls["server_ns"][key] = sysctl(NS_SERVER, key, value)
        self.relay = Relay(self._tap_fds[0], self._tap_fds[1])
        self.relay.start()

    def teardown(self) -> None:
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()
        if self.relay is not None:
            self.relay.stop()
        for fd in self._tap_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        delete_namespaces()

    # ---- helpers for scenario bodies
    def sock(self, ns: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
        family = socket.AF_INET6 if self.v6 else socket.AF_INET
        with in_netns(ns):
            s = socket.socket(family, kind)
        s.settimeout(SOCKET_TIMEOUT_S)
        self.sockets.append(s)
        return s

    def listener(self, port: int = SERVER_PORT, backlog: int = 16, reuse: bool = True,
                 rcvbuf: int | None = None) -> socket.socket:
        s = self.sock(NS_SERVER)
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.bind((self.server_ip, port))
        s.listen(backlog)
        return s

    def client(self, port: int = 0, reuse: bool = False) -> tuple[socket.socket, tuple[str, int]]:
        """Client socket bound before connect so its port is known even if connect fails."""
        s = self.sock(NS_CLIENT)
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.client_ip, port))
        return s, (self.client_ip, s.getsockname()[1])

    def server_addr(self, port: int = SERVER_PORT) -> tuple[str, int]:
        return (self.server_ip, port)

    def spawn(self, fn: Callable[[], None], name: str = "worker") -> threading.Thread:
        def wrapped() -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - recorded and reported by the generator
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")

        t = threading.Thread(target=wrapped, name=name, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def relay_policy(self, policy: Policy) -> None:
        assert self.relay is not None
        self.relay.policy = policy

    def wait_server_gone(self, env_conn: tuple[tuple[str, int], tuple[str, int]],
                         limit_s: float) -> None:
        """Poll ss in the server namespace until the connection is gone (bounded)."""
        client, server = (endpoint_str(a) for a in env_conn)
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            socks = read_sockets(NS_SERVER)
            if not any(s["local"] == server and s["peer"] == client for s in socks):
                return
            time.sleep(0.2)
        self.notes.append(f"server socket still present after {limit_s} s")

    def join_all(self) -> None:
        for t in self.threads:
            t.join(THREAD_JOIN_TIMEOUT_S)
            if t.is_alive():
                self.errors.append(f"thread {t.name} did not finish in {THREAD_JOIN_TIMEOUT_S}s")
        self.threads.clear()


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_to_eof(s: socket.socket) -> int:
    total = 0
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return total
        total += len(chunk)


def set_linger0(s: socket.socket) -> None:
    """SO_LINGER {on, 0}: close() sends RST and discards unsent data (abortive close)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def set_keepalive(s: socket.socket, idle_s: int, intvl_s: int, cnt: int) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle_s)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, intvl_s)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cnt)


def is_pure_ack(seg: Seg) -> bool:
    return seg.flags & (TH_SYN | TH_FIN | TH_RST) == 0 and seg.payload_len == 0


def is_data(seg: Seg) -> bool:
    return seg.payload_len > 0 and seg.flags & (TH_SYN | TH_RST) == 0


class FirstTransmissions:
    """Numbers new data segments of one direction so a policy can drop the k-th original."""

    def __init__(self) -> None:
        self.high: int | None = None
        self.count = 0

    def index_if_new(self, seg: Seg) -> int | None:
        end = (seg.seq + seg.payload_len) & 0xFFFFFFFF
        if self.high is not None:
            advance = (end - self.high) & 0xFFFFFFFF
            if advance == 0 or advance >= 0x80000000:  # RFC 1982-style: not beyond the high mark
                return None
        self.high = end
        self.count += 1
        return self.count


# --------------------------------------------------------------------------- scenarios


def simple_exchange(env: Env, req: int, resp: int, client_closes_first: bool = True,
                    client_opts: Callable[[socket.socket], None] | None = None,
                    idle_s: float = 0.0) -> list[Conn]:
    """Request/response then a graceful close by one side; used by several scenarios."""
    lst = env.listener()
    srv_done = threading.Event()

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)
        recv_exact(conn, req)
        conn.sendall(b"s" * resp)
        if client_closes_first:
            recv_to_eof(conn)
            conn.close()
        else:
            conn.close()
        srv_done.set()

    env.spawn(server, "server")
    c, caddr = env.client()
    if client_opts is not None:
        client_opts(c)
    c.connect(env.server_addr())
    c.sendall(b"c" * req)
    recv_exact(c, resp)
    if idle_s:
        time.sleep(idle_s)
    if client_closes_first:
        c.close()
    else:
        recv_to_eof(c)
        c.close()
    env.join_all()
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "graceful", [])]


def scn_normal(env: Env) -> list[Conn]:
    return simple_exchange(env, 100, 2000)


def scn_server_closes_first(env: Env) -> list[Conn]:
    return simple_exchange(env, 80, 1500, client_closes_first=False)


def scn_refused(env: Env) -> list[Conn]:
    c, caddr = env.client()
    try:
        c.connect(env.server_addr(9))
        env.errors.append("connect to a closed port succeeded")
    except ConnectionRefusedError:
        pass
    c.close()
    return [Conn(caddr, env.server_addr(9), "not_established", "refused", ["connection_refused"])]


def scn_unanswered_syn(env: Env) -> list[Conn]:
    env.relay_policy(lambda s: None if s.direction == "c2s" and s.flags & TH_SYN else 0.0)
    c, caddr = env.client()
    try:
        c.connect(env.server_addr())
        env.errors.append("connect succeeded although every SYN was dropped")
    except (TimeoutError, OSError) as exc:
        env.notes.append(f"connect() failed with {type(exc).__name__}: {exc}")
    c.close()
    return [Conn(caddr, env.server_addr(), "not_established", "unanswered", ["unanswered_syn"],
                 note="every SYN dropped after the capture point: SYN at 0, 1, 3 s; connect() "
                      "fails with ETIMEDOUT at ~7 s (tcp_syn_retries=2, no linear timeouts)")]


SYN_FLOOD_SOURCES = 60
SYN_FLOOD_PER_SOURCE = 2


def scn_syn_flood(env: Env) -> list[Conn]:
    """120 connect()s from 60 client addresses to a server whose SYNs are all dropped."""
    env.relay_policy(lambda s: None if s.direction == "c2s" and s.flags & TH_SYN else 0.0)
    addrs = [f"10.77.0.{100 + i}" for i in range(SYN_FLOOD_SOURCES)]
    for a in addrs:
        nsexec(NS_CLIENT, "ip", "addr", "add", f"{a}/24", "dev", IF_CLIENT)
    conns: list[Conn] = []
    socks: list[socket.socket] = []
    for _round in range(SYN_FLOOD_PER_SOURCE):
        for a in addrs:
            c = env.sock(NS_CLIENT)
            c.setblocking(False)
            c.bind((a, 0))
            err = c.connect_ex(env.server_addr())
            if err not in (0, errno.EINPROGRESS):
                env.errors.append(f"connect_ex from {a} returned {errno.errorcode.get(err)}")
            socks.append(c)
            conns.append(Conn((a, c.getsockname()[1]), env.server_addr(), "not_established",
                              "unanswered", ["unanswered_syn"],
                              note="SYN dropped after the capture point; retransmitted once "
                                   "before the capture ends"))
    time.sleep(1.6)  # each SYN sent at 0 and retransmitted at ~1 s (initial RTO)
    for c in socks:
        c.close()
    return conns


def scn_synack_retransmission(env: Env) -> list[Conn]:
    dropped = [0]

    def policy(seg: Seg) -> float | None:
        # Drop the client's first pure ACK: the one completing the handshake.
        if seg.direction == "c2s" and is_pure_ack(seg) and dropped[0] == 0:
            dropped[0] += 1
            return None
        return 0.0

    env.relay_policy(policy)
    lst = env.listener()

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)
        recv_exact(conn, 50)
        conn.sendall(b"s" * 500)
        recv_to_eof(conn)
        conn.close()

    env.spawn(server, "server")
    c, caddr = env.client()
    c.connect(env.server_addr())
    # Send nothing for 1.5 s: data would carry the ACK and complete the handshake.
    time.sleep(1.5)
    c.sendall(b"c" * 50)
    recv_exact(c, 500)
    c.close()
    env.join_all()
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "graceful",
                 ["synack_retransmission"],
                 note="handshake ACK dropped after the capture point; the server (SYN_RECEIVED) "
                      "retransmits its SYN-ACK after 1 s and the client re-ACKs")]


def scn_lost_final_ack(env: Env) -> list[Conn]:
    client_fin_sent = [False]

    def policy(seg: Seg) -> float | None:
        if seg.direction == "c2s":
            if seg.flags & TH_FIN:
                client_fin_sent[0] = True
            elif client_fin_sent[0] and is_pure_ack(seg):
                return None
        return 0.0

    env.relay_policy(policy)
    lst = env.listener()

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)
        recv_exact(conn, 60)
        conn.sendall(b"s" * 700)
        recv_to_eof(conn)
        time.sleep(0.05)
        conn.close()

    env.spawn(server, "server")
    c, caddr = env.client()
    c.connect(env.server_addr())
    c.sendall(b"c" * 60)
    recv_exact(c, 700)
    c.close()
    env.join_all()
    # Let the server (LAST_ACK, orphaned) retransmit its FIN until tcp_orphan_retries is spent.
    env.wait_server_gone(env_conn=(caddr, env.server_addr()), limit_s=8.0)
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "graceful", ["lost_final_ack"],
                 allowed=["retransmission_timeout"],
                 note="client's last ACK (and its re-ACKs from TIME_WAIT) dropped after the "
                      "capture point; server retransmits FIN from LAST_ACK, then gives up "
                      "silently (tcp_orphan_retries=2)")]


def scn_retransmission_timeout(env: Env) -> list[Conn]:
    drops = [0]

    def policy(seg: Seg) -> float | None:
        if seg.direction == "c2s" and is_data(seg) and drops[0] < 3:
            drops[0] += 1
            return None
        return 0.0

    env.relay_policy(policy)
    lst = env.listener()

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)
        recv_exact(conn, 1000)
        conn.sendall(b"s" * 300)
        recv_to_eof(conn)
        conn.close()

    env.spawn(server, "server")
    c, caddr = env.client()
    c.connect(env.server_addr())
    c.sendall(b"c" * 1000)
    recv_exact(c, 300)
    c.close()
    env.join_all()
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "graceful",
                 ["retransmission_timeout"], allowed=["rto_backoff"],
                 note="the 1000-byte request is dropped 3 times after the capture point "
                      "(original, tail-loss probe, first RTO retransmission); the next RTO "
                      "retransmission (backed off) gets through")]


def scn_data_loss_retrans(env: Env) -> list[Conn]:
    first = FirstTransmissions()
    drop_idx = {8, 20, 21, 33}

    def policy(seg: Seg) -> float | None:
        if seg.direction == "c2s" and is_data(seg):
            idx = first.index_if_new(seg)
            if idx in drop_idx:
                return None
        return 0.010  # 10 ms each way: 20 ms RTT so several segments are in flight

    env.relay_policy(policy)
    size = 60_000
    lst = env.listener()

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)
        recv_exact(conn, size)
        conn.sendall(b"ok")
        recv_to_eof(conn)
        conn.close()

    env.spawn(server, "server")
    c, caddr = env.client()
    c.connect(env.server_addr())
    c.sendall(b"u" * size)
    recv_exact(c, 2)
    c.close()
    env.join_all()
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "graceful", [],
                 allowed=["retransmission_timeout"],
                 note="60000-byte upload over a 20 ms RTT path; the 8th, 20th, 21st and 33rd "
                      "original data segments are dropped after the capture point, so both "
                      "originals and retransmissions are in the capture (SACK-driven fast "
                      "retransmits; see kernel TcpRetransSegs/TCPFastRetrans)")]


def scn_rst_abort(env: Env) -> list[Conn]:
    env.relay_policy(lambda s: 0.010)
    lst = env.listener()
    got = [0]

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    env.errors.append("server saw EOF instead of a reset")
                    return
                got[0] += len(chunk)
        except ConnectionResetError:
            pass

    env.spawn(server, "server")
    c, caddr = env.client()
    c.connect(env.server_addr())
    c.setblocking(False)
    sent = 0
    with contextlib.suppress(BlockingIOError):
        while sent < 64_000:
            sent += c.send(b"d" * (64_000 - sent))
    time.sleep(0.015)
    set_linger0(c)
    c.close()
    env.join_all()
    env.notes.append(f"client queued {sent} B before the abort; server read {got[0]} B then "
                     "got ECONNRESET")
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "rst_by_client",
                 ["abortive_close"],
                 note="SO_LINGER {1,0} close 15 ms after queueing 64 KB on a 20 ms RTT path: "
                      "RST instead of FIN with data in flight; server ACKs that arrive later "
                      "are answered by bare RSTs")]


def abort_connect(c: socket.socket, env: Env) -> None:
    """Connect to a server that aborts right after accept(); expect ECONNRESET.

    The RST can arrive before Python's connect() (non-blocking + poll + SO_ERROR because the
    socket has a timeout) reads the result, so connect() itself may report the reset.
    """
    try:
        c.connect(env.server_addr())
        if c.recv(1):
            env.errors.append("abort connection received data")
    except ConnectionResetError:
        pass
    c.close()


def scn_rst_storm(env: Env) -> list[Conn]:
    lst = env.listener(backlog=64)
    n_refused, n_abort = 100, 40
    stop = threading.Event()

    def server() -> None:
        lst.settimeout(0.2)
        accepted = 0
        while accepted < n_abort and not stop.is_set():
            try:
                conn, _ = lst.accept()
            except TimeoutError:
                continue
            set_linger0(conn)
            conn.close()
            accepted += 1

    env.spawn(server, "server")
    conns: list[Conn] = []
    t0 = time.monotonic()
    for i in range(n_refused + n_abort):
        if i % 7 in (2, 5):  # 40 of 140, spread through the storm
            c, caddr = env.client(41000 + i)
            abort_connect(c, env)
            # Nothing is in flight or unread when the server aborts right after accept(), so
            # abortive_close (a RST with data in flight or unread) may, but need not, be said.
            conns.append(Conn(caddr, env.server_addr(), "three_way_handshake", "rst_by_server",
                              [], allowed=["abortive_close"]))
        else:
            port = 20000 + i
            c, caddr = env.client(40000 + i)
            with contextlib.suppress(ConnectionRefusedError):
                c.connect(env.server_addr(port))
            c.close()
            conns.append(Conn(caddr, env.server_addr(port), "not_established", "refused",
                              ["connection_refused"]))
    env.notes.append(f"{len(conns)} connections in {time.monotonic() - t0:.2f} s")
    stop.set()
    env.join_all()
    return conns


def scn_half_close(env: Env) -> list[Conn]:
    lst = env.listener()

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)
        recv_to_eof(conn)  # the client's request ends with its FIN
        for _ in range(5):
            conn.sendall(b"h" * 1000)
            time.sleep(0.1)
        conn.close()

    env.spawn(server, "server")
    c, caddr = env.client()
    c.connect(env.server_addr())
    c.sendall(b"q" * 40)
    c.shutdown(socket.SHUT_WR)
    got = recv_to_eof(c)
    if got != 5000:
        env.errors.append(f"half_close client got {got} B")
    c.close()
    env.join_all()
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "graceful", ["half_close"],
                 note="client sends 40 B and shutdown(SHUT_WR); the server sends 5 x 1000 B over "
                      "0.5 s after the client's FIN, then closes")]


def scn_syn_backlog_overflow(env: Env) -> list[Conn]:
    lst = env.listener(backlog=1)  # accept queue holds backlog+1 = 2; never accept()ed
    conns: list[Conn] = []
    for i in range(4):
        c, caddr = env.client()
        c.setblocking(False)
        err = c.connect_ex(env.server_addr())
        if err not in (0, errno.EINPROGRESS):
            env.errors.append(f"connect_ex {i}: {os.strerror(err)}")
        time.sleep(0.15)
        if i < 2:
            conns.append(Conn(caddr, env.server_addr(), "three_way_handshake",
                              "open_at_capture_end", [],
                              note="completed, sits in the accept queue, never accepted"))
        else:
            conns.append(Conn(caddr, env.server_addr(), "not_established", "unanswered",
                              ["unanswered_syn"], allowed=["retransmission_timeout"],
                              note="accept queue full: the listener drops every SYN "
                                   "(tcp_abort_on_overflow=0); still retrying at capture end"))
    time.sleep(3.6)  # SYN retransmissions at +1 s and +3 s; give-up would be at +7 s
    _ = lst
    return conns


def scn_zero_window(env: Env) -> list[Conn]:
    lst = env.listener(rcvbuf=4096)
    size = 40_000

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)
        time.sleep(2.0)  # the application stops reading: the window closes
        recv_exact(conn, size)
        conn.sendall(b"ok")
        recv_to_eof(conn)
        conn.close()

    env.spawn(server, "server")
    c, caddr = env.client()
    c.connect(env.server_addr())
    c.sendall(b"z" * size)
    recv_exact(c, 2)
    c.close()
    env.join_all()
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "graceful",
                 ["zero_window_stall"],
                 note="server (SO_RCVBUF=4096) does not read for 2 s while the client sends "
                      "40000 B: zero-window advertisements, zero-window probes with backoff, "
                      "then a window update and the transfer completes")]


def scn_keepalive(env: Env) -> list[Conn]:
    conns = simple_exchange(env, 30, 30,
                            client_opts=lambda s: set_keepalive(s, 1, 1, 3), idle_s=3.6)
    conns[0].note = ("SO_KEEPALIVE with TCP_KEEPIDLE=1 TCP_KEEPINTVL=1 TCP_KEEPCNT=3: keep-alive "
                     "probes during 3.6 s idle, each answered by an ACK; then graceful close")
    return conns


def scn_keepalive_dead_peer(env: Env) -> list[Conn]:
    dead = threading.Event()
    env.relay_policy(lambda s: None if dead.is_set() else 0.0)
    lst = env.listener()

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)  # stays open: the server never learns anything
        recv_exact(conn, 30)
        conn.sendall(b"s" * 30)

    env.spawn(server, "server")
    c, caddr = env.client()
    set_keepalive(c, 1, 1, 3)
    c.connect(env.server_addr())
    c.sendall(b"c" * 30)
    recv_exact(c, 30)
    env.join_all()
    time.sleep(0.1)
    dead.set()  # the peer vanishes: nothing gets through in either direction any more
    try:
        c.recv(1)
        env.errors.append("recv returned although the peer vanished")
    except OSError as exc:
        env.notes.append(f"client recv() failed with {type(exc).__name__}: {exc}")
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "rst_by_client",
                 ["keepalive_timeout"], allowed=["half_open", "abortive_close"],
                 note="after the exchange the path goes dead; 3 unanswered keep-alive probes "
                      "(1 s apart after 1 s idle), then the client kernel sends a RST (lost) and "
                      "fails the socket with ETIMEDOUT; the server stays ESTABLISHED")]


def scn_simultaneous_open(env: Env) -> list[Conn]:
    # Hold every bare SYN for 100 ms so the two SYNs are certainly in flight at once.
    env.relay_policy(lambda s: 0.1 if s.flags & (TH_SYN | TH_ACK) == TH_SYN else 0.0)
    a, aaddr = env.client(45000)
    b = env.sock(NS_SERVER)
    b.bind((env.server_ip, 46000))
    baddr = (env.server_ip, 46000)
    ready = threading.Barrier(2, timeout=5)

    def side_b() -> None:
        ready.wait()
        b.connect(aaddr)
        recv_exact(b, 20)
        b.sendall(b"B" * 20)
        recv_to_eof(b)
        b.close()

    env.spawn(side_b, "side_b")
    ready.wait()
    a.connect(baddr)
    a.sendall(b"A" * 20)
    recv_exact(a, 20)
    a.close()
    env.join_all()
    return [Conn(aaddr, baddr, "simultaneous_open", "graceful", ["simultaneous_open"],
                 note="'client' is the socket in the client namespace (capture side); both "
                      "sockets connect() to each other, SYNs cross (held 100 ms by the relay), "
                      "both answer with SYN-ACK; the client then closes first")]


def scn_simultaneous_close(env: Env) -> list[Conn]:
    env.relay_policy(lambda s: 0.1 if s.flags & TH_FIN else 0.0)
    lst = env.listener()
    ready = threading.Barrier(2, timeout=5)

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)
        recv_exact(conn, 40)
        conn.sendall(b"s" * 400)
        ready.wait()
        conn.shutdown(socket.SHUT_WR)
        recv_to_eof(conn)
        conn.close()

    env.spawn(server, "server")
    c, caddr = env.client()
    c.connect(env.server_addr())
    c.sendall(b"c" * 40)
    recv_exact(c, 400)
    ready.wait()
    c.shutdown(socket.SHUT_WR)
    recv_to_eof(c)
    c.close()
    env.join_all()
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "graceful",
                 ["simultaneous_close"],
                 note="both sides shutdown(SHUT_WR) at the same moment; the FINs cross (held "
                      "100 ms by the relay): FIN_WAIT_1 -> CLOSING -> TIME_WAIT on both sides")]


def scn_self_connect(env: Env) -> list[Conn]:
    s = env.sock(NS_CLIENT)
    addr = ("127.0.0.1", 47000)
    s.bind(addr)
    s.connect(addr)
    s.sendall(b"hello myself")
    recv_exact(s, 12)
    s.close()
    return [Conn(addr, addr, "simultaneous_open", "graceful", ["self_connect"],
                 allowed=["simultaneous_open", "simultaneous_close"],
                 note="one socket bound to 127.0.0.1:47000 connect()s to that same address on "
                      "the client namespace's loopback: its own SYN moves it SYN_SENT -> "
                      "SYN_RECEIVED -> ESTABLISHED; it reads back its own 12 bytes and closes "
                      "(its own FIN: simultaneous close with itself). Captured on lo.")]


def scn_port_reuse_time_wait(env: Env) -> list[Conn]:
    lst = env.listener(backlog=4)
    server_first = [False, True, False]

    def server() -> None:
        for i in range(3):
            conn, _ = lst.accept()
            env.sockets.append(conn)
            recv_exact(conn, 50)
            conn.sendall(b"s" * 200)
            if server_first[i]:
                conn.close()
            else:
                recv_to_eof(conn)
                conn.close()

    env.spawn(server, "server")
    caddr = (env.client_ip, 50000)
    for i in range(3):
        c, caddr = env.client(50000, reuse=True)
        c.connect(env.server_addr())
        c.sendall(b"c" * 50)
        recv_exact(c, 200)
        if server_first[i]:
            recv_to_eof(c)
        c.close()
        time.sleep(0.2)
    env.join_all()
    return [
        Conn(caddr, env.server_addr(), "three_way_handshake", "graceful", [], superseded=True,
             note="#1: client closes first (client TIME_WAIT)"),
        Conn(caddr, env.server_addr(), "three_way_handshake", "graceful", ["time_wait_reuse"],
             superseded=True,
             note="#2: same 4-tuple 0.2 s later; the client's explicit bind + timestamps let "
                  "connect() reuse its own TIME_WAIT (ISN = old SND.NXT + 65537); server closes "
                  "first (server TIME_WAIT)"),
        Conn(caddr, env.server_addr(), "three_way_handshake", "graceful", ["time_wait_reuse"],
             note="#3: same 4-tuple again; the SYN hits the server's TIME_WAIT and is accepted "
                  "as a new connection; client closes first"),
    ]


def scn_close_wait_stuck(env: Env) -> list[Conn]:
    lst = env.listener()

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)  # never closed by the "application"
        recv_exact(conn, 70)
        conn.sendall(b"s" * 900)
        if recv_to_eof(conn) != 0:
            env.errors.append("unexpected data before EOF")

    env.spawn(server, "server")
    c, caddr = env.client()
    c.connect(env.server_addr())
    c.sendall(b"c" * 70)
    recv_exact(c, 900)
    c.close()
    env.join_all()
    time.sleep(3.0)
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "half_closed_at_capture_end",
                 ["close_wait_stuck"], allowed=["half_close"],
                 note="client closes after the response; the server application never "
                      "close()s: CLOSE_WAIT / FIN_WAIT_2 for 3 s until capture end")]


def scn_half_open(env: Env) -> list[Conn]:
    drop_server_rst = threading.Event()
    env.relay_policy(lambda s: None if drop_server_rst.is_set() and s.direction == "s2c"
                     and s.flags & TH_RST else 0.0)
    lst = env.listener()
    srv: list[socket.socket] = []

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)
        recv_exact(conn, 30)
        conn.sendall(b"s" * 300)
        srv.append(conn)

    env.spawn(server, "server")
    c, caddr = env.client()
    c.connect(env.server_addr())
    c.sendall(b"c" * 30)
    recv_exact(c, 300)
    env.join_all()
    # The server forgets the connection (abort whose RST never arrives): half-open.
    drop_server_rst.set()
    set_linger0(srv[0])
    srv[0].close()
    time.sleep(0.8)
    drop_server_rst.clear()
    c.sendall(b"c" * 30)
    try:
        c.recv(1)
        env.errors.append("recv returned data on a half-open connection")
    except ConnectionResetError:
        pass
    c.close()
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "rst_by_server",
                 ["half_open", "reset_on_data"], allowed=["abortive_close"],
                 note="after the exchange the server aborts and its RST is lost on the way to "
                      "the client (before a client-side capture point, after a server-side "
                      "one), so the client still believes it is ESTABLISHED; 0.8 s later "
                      "the client sends 30 B and the server kernel, which has no such "
                      "connection, answers with a RST")]


def scn_close_unread(env: Env) -> list[Conn]:
    lst = env.listener()
    got = threading.Event()

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)
        recv_exact(conn, 10)  # reads only the first 10 of the client's 200 bytes
        time.sleep(0.1)
        conn.close()  # unread data in the receive queue: the kernel sends RST, not FIN
        got.set()

    env.spawn(server, "server")
    c, caddr = env.client()
    c.connect(env.server_addr())
    c.sendall(b"r" * 200)
    got.wait(5)
    try:
        c.recv(1)
        env.errors.append("client read data instead of a reset")
    except ConnectionResetError:
        pass
    c.close()
    env.join_all()
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "rst_by_server",
                 ["abortive_close"],
                 note="the server reads 10 of the client's 200 bytes and close()s: with unread "
                      "data in its receive queue the kernel sends RST instead of FIN (RFC 2525 "
                      "2.17), discarding the 190 bytes")]


def scn_late_response(env: Env) -> list[Conn]:
    lst = env.listener()

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)
        recv_exact(conn, 50)
        time.sleep(1.0)  # a slow server: the client has given up by the time it answers
        with contextlib.suppress(OSError):
            conn.sendall(b"s" * 500)
        time.sleep(0.3)
        conn.close()

    env.spawn(server, "server")
    c, caddr = env.client()
    c.connect(env.server_addr())
    c.sendall(b"c" * 50)
    c.settimeout(0.5)
    with contextlib.suppress(TimeoutError):
        c.recv(1)
    c.close()  # the client's timeout: close() before the response
    env.join_all()
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "rst_by_client",
                 ["data_after_close"], allowed=["half_close"],
                 note="the client waits 0.5 s for a response and close()s; the server answers "
                      "after 1 s, and the client kernel, which holds the closed connection only "
                      "as a FIN_WAIT_2 mini-socket (TcpExtTW), resets it (client TcpOutRsts 1, "
                      "server TcpEstabResets 1): the response is discarded")]


BLACK_HOLE_PAYLOAD = 1000
"""Client segments with more payload than this vanish in the relay (a smaller-MTU link that
sends no ICMP): the handshake, ACKs and small segments pass."""


def black_hole_exchange(env: Env, probing: bool) -> list[Conn]:
    env.relay_policy(lambda s: None if s.direction == "c2s"
                     and s.payload_len > BLACK_HOLE_PAYLOAD else 0.005)
    lst = env.listener()
    size = 20_000
    got = [0]

    def server() -> None:
        conn, _ = lst.accept()
        env.sockets.append(conn)
        conn.settimeout(12.0 if probing else 2.0)
        with contextlib.suppress(OSError):
            while got[0] < size:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                got[0] += len(chunk)
        if got[0] < size:
            # Still nothing: a small "waiting" message passes where the upload does not.
            with contextlib.suppress(OSError):
                conn.sendall(b"w")
            return
        conn.sendall(b"ok")
        recv_to_eof(conn)
        conn.close()

    env.spawn(server, "server")
    c, caddr = env.client()
    c.connect(env.server_addr())
    c.sendall(b"u" * size)
    if probing:
        recv_exact(c, 2)
        c.close()
    else:
        time.sleep(5.0)  # timeouts at ~0.25, 0.7, 1.6, 3.3 s, all of full-size segments
        set_linger0(c)
        c.close()
    env.join_all()
    env.notes.append(f"server received {got[0]} of {size} bytes")
    if probing:
        return [Conn(caddr, env.server_addr(), "three_way_handshake", "graceful",
                     ["pmtu_black_hole", "excessive_retransmissions"],
                     allowed=["rto_backoff", "simultaneous_close"],
                     note="a 20000-byte upload whose 1448-byte segments vanish (no ICMP); after "
                          "three timeouts Linux MTU probing (tcp_mtu_probing=1) re-sends in "
                          "smaller segments, which get through, and the transfer completes")]
    return [Conn(caddr, env.server_addr(), "three_way_handshake", "rst_by_client",
                 ["pmtu_black_hole"], allowed=["rto_backoff", "abortive_close"],
                 note="a 20000-byte upload whose 1448-byte segments vanish (no ICMP, "
                      "tcp_mtu_probing=0): four timeouts with backoff, while the server's "
                      "1-byte message gets through; the client aborts after 5 s")]


def scn_pmtu_black_hole(env: Env) -> list[Conn]:
    return black_hole_exchange(env, probing=False)


def scn_pmtu_black_hole_probing(env: Env) -> list[Conn]:
    return black_hole_exchange(env, probing=True)


UNROUTED_NET = "10.88.0.0/24"
UNROUTED_HOST = "10.88.0.5"


def scn_net_unreachable(env: Env) -> list[Conn]:
    """The server namespace routes for the client but has no route onward: its kernel answers
    the client's SYN with ICMP network unreachable, and connect() fails at once."""
    nsexec(NS_CLIENT, "ip", "route", "add", UNROUTED_NET, "via", V4_SERVER)
    c, caddr = env.client()
    t0 = time.monotonic()
    try:
        c.connect((UNROUTED_HOST, 80))
        env.errors.append("connect through a router with no route succeeded")
    except OSError as exc:
        env.notes.append(f"connect() failed after {time.monotonic() - t0:.3f} s with "
                         f"{errno.errorcode.get(exc.errno or 0, exc.errno)}")
    c.close()
    time.sleep(0.5)
    return [Conn(caddr, (UNROUTED_HOST, 80), "not_established", "unanswered",
                 ["icmp_unreachable"],
                 note="the SYN is answered by ICMP destination network unreachable from the "
                      "router (10.77.0.2); Linux fails connect() with ENETUNREACH at once, with "
                      "no SYN retransmission")]


def scn_ipv6_normal(env: Env) -> list[Conn]:
    return simple_exchange(env, 100, 2000)


EXP_SYN = {"net.ipv4.tcp_syn_retries": 2, "net.ipv4.tcp_syn_linear_timeouts": 0}

SCENARIOS: list[Scenario] = [
    Scenario("normal", "Request (100 B) / response (2000 B) over IPv4, client closes first: "
             "client TIME_WAIT, server CLOSED.", scn_normal, snaplen=0),
    Scenario("server_closes_first", "Request (80 B) / response (1500 B); the server closes "
             "first, the client reads EOF and closes: server TIME_WAIT, client CLOSED.",
             scn_server_closes_first),
    Scenario("refused", "connect() to a port with no listener: SYN answered by RST/ACK "
             "(ECONNREFUSED).", scn_refused),
    Scenario("unanswered_syn", "Every SYN is dropped on the way to the server: SYN "
             "retransmissions with exponential backoff, connect() times out.",
             scn_unanswered_syn, client_sysctls=dict(EXP_SYN),
             loss_location="c2s SYNs dropped by the relay after the capture point (all in the "
             "capture)"),
    Scenario("syn_flood", f"{SYN_FLOOD_SOURCES * SYN_FLOOD_PER_SOURCE} connect()s from "
             f"{SYN_FLOOD_SOURCES} client addresses to one server whose SYNs are all dropped: "
             "every client retries (a server or firewall dropping SYNs, as opposed to a "
             "spoofed flood's single SYNs).", scn_syn_flood, client_sysctls=dict(EXP_SYN),
             loss_location="c2s SYNs dropped by the relay after the capture point (all in the "
             "capture)", capture_anomalies=["syn_flood"]),
    Scenario("synack_retransmission", "The handshake's final ACK is lost: the server "
             "retransmits its SYN-ACK after 1 s.", scn_synack_retransmission,
             loss_location="client's first pure ACK dropped by the relay after the capture "
             "point"),
    Scenario("lost_final_ack", "Client closes first; its last ACK never reaches the server, "
             "which retransmits its FIN from LAST_ACK until tcp_orphan_retries runs out.",
             scn_lost_final_ack, server_sysctls={"net.ipv4.tcp_orphan_retries": 2},
             loss_location="client's pure ACKs after its FIN dropped by the relay after the "
             "capture point"),
    Scenario("retransmission_timeout", "A 1000-byte request is lost three times: tail-loss "
             "probe and RTO retransmissions with exponential backoff.",
             scn_retransmission_timeout,
             loss_location="first 3 transmissions of the client's data dropped by the relay "
             "after the capture point"),
    Scenario("data_loss_retrans", "60 KB upload on a 20 ms RTT path with 4 original data "
             "segments lost: SACK, duplicate ACKs, fast retransmissions.",
             scn_data_loss_retrans,
             link="two TAP devices joined by a userspace relay, 10 ms one-way delay",
             loss_location="client data segments #8, #20, #21, #33 (first transmissions) "
             "dropped by the relay after the capture point"),
    Scenario("rst_abort", "Client queues 64 KB and aborts with SO_LINGER 0 15 ms later, "
             "with data in flight: RST instead of FIN.", scn_rst_abort,
             link="two TAP devices joined by a userspace relay, 10 ms one-way delay"),
    Scenario("rst_storm", "140 connections well within one second: 100 connect()s to closed ports "
             "(refused) interleaved with 40 connections the server accepts and aborts "
             "(SO_LINGER 0).", scn_rst_storm, capture_anomalies=["rst_storm", "port_scan"]),
    Scenario("half_close", "Client sends a request and shutdown(SHUT_WR); the server keeps "
             "sending for 0.5 s after the client's FIN, then closes.", scn_half_close),
    Scenario("syn_backlog_overflow", "listen(backlog=1), never accept(): two connections "
             "complete and wait in the accept queue, the SYNs of two more are dropped "
             "(queue full) and retransmitted until capture end.", scn_syn_backlog_overflow,
             client_sysctls=dict(EXP_SYN),
             server_sysctls={"net.ipv4.tcp_abort_on_overflow": 0}),
    Scenario("zero_window", "The receiver stops reading for 2 s: zero window, zero-window "
             "probes, window update, transfer completes.", scn_zero_window),
    Scenario("keepalive", "Idle connection with keep-alive probes (1 s idle, 1 s interval) "
             "answered by ACKs, then a graceful close.", scn_keepalive),
    Scenario("keepalive_dead_peer", "The path to the server dies on an idle connection: "
             "keep-alive probes go unanswered and the client kernel gives up with a RST and "
             "ETIMEDOUT.", scn_keepalive_dead_peer,
             loss_location="after the exchange the relay drops everything in both directions "
             "(client segments are in the capture, nothing from the server)"),
    Scenario("simultaneous_open", "Two sockets connect() to each other at the same time: "
             "crossing SYNs, both send SYN-ACK.", scn_simultaneous_open,
             link="two TAP devices joined by a userspace relay; bare SYNs held 100 ms"),
    Scenario("simultaneous_close", "Both sides send FIN at the same time: both pass through "
             "CLOSING and end in TIME_WAIT.", scn_simultaneous_close,
             link="two TAP devices joined by a userspace relay; FINs held 100 ms"),
    Scenario("self_connect", "A socket connects to its own address and port on loopback.",
             scn_self_connect, capture_if="lo",
             link="loopback of the client namespace"),
    Scenario("port_reuse_time_wait", "Three connections on the same 4-tuple (client port "
             "50000, SO_REUSEADDR) 0.2 s apart, each reusing a TIME_WAIT.",
             scn_port_reuse_time_wait),
    Scenario("close_wait_stuck", "The server application never closes after the client's "
             "FIN: server CLOSE_WAIT, client FIN_WAIT_2 at capture end.", scn_close_wait_stuck),
    Scenario("half_open", "The server forgets an established connection (its RST is lost); "
             "the client's next segment is answered by a RST.", scn_half_open,
             loss_location="the server's abortive RST dropped by the relay before the capture "
             "point (not in the capture)"),
    Scenario("ipv6_normal", "Scenario 'normal' over IPv6 (fd77::1 -> fd77::2).", scn_ipv6_normal,
             family=socket.AF_INET6),
    Scenario("close_unread", "The server closes with 190 bytes of the client's request "
             "unread: its kernel resets the connection instead of closing it (abortive close).",
             scn_close_unread),
    Scenario("late_response", "The client times out after 0.5 s and closes; the server's "
             "response 1 s after the request is answered by a RST and discarded.",
             scn_late_response),
    Scenario("net_unreachable", "connect() through a router (the server namespace, "
             "forwarding on) that has no route to the destination: ICMP network unreachable "
             "answers the SYN.", scn_net_unreachable,
             server_sysctls={"net.ipv4.ip_forward": 1}),
    Scenario("pmtu_black_hole", "A path-MTU black hole: the client's full-size segments "
             "vanish without ICMP while small packets pass; no MTU probing, the upload never "
             "gets through.", scn_pmtu_black_hole,
             client_sysctls={"net.ipv4.tcp_mtu_probing": 0},
             link="two TAP devices joined by a userspace relay, 5 ms one-way delay",
             loss_location="client segments with more than 1000 payload bytes dropped by the "
             "relay after the capture point"),
    Scenario("pmtu_black_hole_probing", "The same black hole with Linux MTU probing on: "
             "after timeouts the client re-sends in smaller segments and the upload "
             "completes.", scn_pmtu_black_hole_probing,
             client_sysctls={"net.ipv4.tcp_mtu_probing": 1},
             link="two TAP devices joined by a userspace relay, 5 ms one-way delay",
             loss_location="client segments with more than 1000 payload bytes dropped by the "
             "relay after the capture point"),
    Scenario("half_open_server_vantage", "Scenario 'half_open' captured at the server: the "
             "server's abortive RST is in the capture but lost after it, so the client, still "
             "ESTABLISHED, sends again 0.8 s later and the server kernel answers with a bare "
             "RST.", scn_half_open, vantage="server",
             loss_location="the server's abortive RST dropped by the relay after the capture "
             "point (in the capture)"),
]


# --------------------------------------------------------------------------- observation


def read_sockets(ns: str) -> list[dict[str, str]]:
    """``ss -tan`` in ``ns`` -> [{state (RFC name), local, peer}]."""
    out = nsexec(ns, "ss", "-tanH").stdout
    socks = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        socks.append({"state": SS_TO_RFC.get(parts[0], parts[0]), "local": parts[3],
                      "peer": parts[4]})
    return socks


def read_counters(ns: str) -> dict[str, int]:
    """``nstat -asz`` (absolute, no history update, zeros) -> nonzero TCP + key counters."""
    out = nsexec(ns, "nstat", "-asz").stdout
    counters: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            counters[parts[0]] = int(parts[1])
    keep = {k: v for k, v in counters.items() if v and k.startswith(("Tcp", "TcpExt"))}
    for k in KEY_COUNTERS:
        keep.setdefault(k, counters.get(k, 0))
    return dict(sorted(keep.items()))


class Tcpdump:
    """tcpdump in a namespace: started before traffic, stopped with SIGINT, bounded waits."""

    def __init__(self, ns: str, ifname: str, path: Path, snaplen: int = SNAPLEN_BYTES) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "tcpdump", "-i", ifname, "-w", str(path), "-s",
             str(snaplen), "-U", "--immediate-mode", "-n", "-Z", "root"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.stderr = b""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + TCPDUMP_READY_TIMEOUT_S
        while b"listening on" not in self.stderr:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"tcpdump did not start: {self.stderr.decode()}")
            r, _, _ = select.select([self.proc.stderr], [], [], left)
            if r:
                self.stderr += os.read(self.proc.stderr.fileno(), 4096)

    def stop(self) -> dict[str, int]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=TCPDUMP_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=TCPDUMP_STOP_TIMEOUT_S)
        self.stderr += err or b""
        text = self.stderr.decode(errors="replace")
        stats = {}
        for key, pat in (("packets_captured", r"(\d+) packets? captured"),
                         ("packets_dropped_by_kernel", r"(\d+) packets? dropped by kernel")):
            m = re.search(pat, text)
            if m:
                stats[key] = int(m.group(1))
        return stats


def pcap_tcp_summary(path: Path) -> dict[str, Any]:
    """Stdlib pcap reader for the self-check: TCP 4-tuples seen and packet counts."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data, 0)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    off = 24
    tuples: set[tuple[str, str]] = set()
    packets = tcp_packets = 0
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack_from(endian + "IIII", data, off)
        frame = data[off + 16: off + 16 + incl]
        off += 16 + incl
        packets += 1
        if linktype != 1 or len(frame) < 14:
            continue
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        if ethertype == 0x0800 and frame[23] == 6:
            ihl = (frame[14] & 0x0F) * 4
            src, dst = socket.inet_ntop(socket.AF_INET, frame[26:30]), socket.inet_ntop(
                socket.AF_INET, frame[30:34])
            tcp = 14 + ihl
        elif ethertype == 0x86DD and frame[20] == 6:
            src = "[" + socket.inet_ntop(socket.AF_INET6, frame[22:38]) + "]"
            dst = "[" + socket.inet_ntop(socket.AF_INET6, frame[38:54]) + "]"
            tcp = 54
        else:
            continue
        sport, dport = struct.unpack_from("!HH", frame, tcp)
        a, b = f"{src}:{sport}", f"{dst}:{dport}"
        tuples.add((min(a, b), max(a, b)))
        tcp_packets += 1
    return {"linktype": linktype, "packets": packets, "tcp_packets": tcp_packets,
            "tuples": tuples}


# --------------------------------------------------------------------------- driver


def state_of(socks: list[dict[str, str]], local: str, peer: str) -> str:
    for s in socks:
        if s["local"] == local and s["peer"] == peer:
            return s["state"]
    return "CLOSED"


def run_scenario(sc: Scenario, out_dir: Path, tmp_dir: Path,
                 vantage: str | None = None) -> dict[str, Any]:
    vantage = vantage or sc.vantage
    env = Env(sc)
    pcap_tmp = tmp_dir / f"{sc.name}.pcap"
    t0 = time.monotonic()
    dump: Tcpdump | None = None
    try:
        env.setup()
        if vantage == "server" and sc.capture_if == IF_CLIENT:
            dump = Tcpdump(NS_SERVER, IF_SERVER, pcap_tmp, sc.snaplen)
        else:
            dump = Tcpdump(NS_CLIENT, sc.capture_if, pcap_tmp, sc.snaplen)
        conns = sc.body(env)
        env.join_all()
        time.sleep(SETTLE_S)
        socks = {"client_ns": read_sockets(NS_CLIENT), "server_ns": read_sockets(NS_SERVER)}
        counters = {"client_ns": read_counters(NS_CLIENT), "server_ns": read_counters(NS_SERVER)}
        stats = dump.stop()
        dump = None
    finally:
        if dump is not None:
            dump.stop()
        env.teardown()
    wall_s = time.monotonic() - t0
    shutil.copyfile(pcap_tmp, out_dir / f"{sc.name}.pcap")

    ns_of = {"client": "client_ns", "server": "server_ns"}
    if sc.capture_if == "lo":
        ns_of["server"] = "client_ns"
    # A passive observer cannot tell a tail-loss probe from an RTO retransmission, so when the
    # kernel retransmitted anything in a one-connection capture, retransmission_timeout is an
    # acceptable (not required) finding there.
    retrans = sum(c.get("TcpRetransSegs", 0) for c in counters.values())
    if retrans and len(conns) == 1:
        for conn in conns:
            if "retransmission_timeout" not in conn.anomalies + conn.allowed:
                conn.allowed.append("retransmission_timeout")
    records = []
    for conn in conns:
        client_s, server_s = endpoint_str(conn.client), endpoint_str(conn.server)
        rec: dict[str, Any] = {
            "client": client_s,
            "server": server_s,
            "open": conn.open,
            "close": conn.close,
            "client_state": "CLOSED" if conn.superseded else state_of(
                socks[ns_of["client"]], client_s, server_s),
            "server_state": "CLOSED" if conn.superseded else state_of(
                socks[ns_of["server"]], server_s, client_s),
            "anomalies": conn.anomalies,
            "anomalies_allowed": conn.allowed,
        }
        if conn.superseded:
            rec["state_note"] = "superseded: a later connection reused this 4-tuple"
        if conn.note:
            rec["note"] = conn.note
        records.append(rec)

    # Self-check: the capture holds exactly the expected 4-tuples.
    summary = pcap_tcp_summary(out_dir / f"{sc.name}.pcap")
    expected_tuples = {tuple(sorted((r["client"], r["server"]))) for r in records}
    problems = list(env.errors)
    if summary["tuples"] != expected_tuples:
        problems.append(f"4-tuples in capture {sorted(summary['tuples'])} != expected "
                        f"{sorted(expected_tuples)}")
    for r in records:
        for key in ("open", "close"):
            if r[key] not in (OPEN_KINDS if key == "open" else CLOSE_KINDS):
                problems.append(f"bad {key} {r[key]}")
        for code in r["anomalies"] + r["anomalies_allowed"]:
            if code not in ANOMALY_CODES:
                problems.append(f"unknown anomaly code {code}")
    entry = {
        "pcap": f"{sc.name}.pcap",
        "description": sc.description,
        "tcp_connections": len(records),
        "connections": records,
        "capture_anomalies": sc.capture_anomalies,
        "capture": {
            "interface": IF_SERVER if vantage == "server" and sc.capture_if == IF_CLIENT
            else sc.capture_if,
            "namespace": vantage if sc.capture_if == IF_CLIENT else "client",
            "link_type": "EN10MB" if summary["linktype"] == 1 else str(summary["linktype"]),
            "snaplen": sc.snaplen,
            "packets": summary["packets"],
            "tcp_packets": summary["tcp_packets"],
            "tcpdump_stats": stats,
            "link": sc.link,
            "loss_location": sc.loss_location,
            "relay_dropped": env.relay.dropped if env.relay else {},
            "wall_time_s": round(wall_s, 2),
        },
        "kernel": {
            "sysctls": env.sysctls,
            "sockets_at_capture_end": socks,
            "counters": counters,
        },
        "notes": env.notes,
        "self_check": {"ok": not problems, "problems": problems},
    }
    return entry


SCHEMA_DOC = {
    "samples.NAME.pcap": "file name of the capture, relative to this directory",
    "samples.NAME.tcp_connections": "number of TCP connections (4-tuple incarnations) in it",
    "samples.NAME.connections[]": "one per connection in order of first SYN: client/server "
    "as 'ip:port' or '[ipv6]:port' ('client' = the endpoint in the client namespace, which "
    "holds the capture point); open in " + "|".join(OPEN_KINDS) + "; close in "
    + "|".join(CLOSE_KINDS) + "; client_state/server_state = RFC 9293 state the kernel "
    "reported (ss -tan) at capture end, CLOSED when it listed no socket; anomalies = codes "
    "an analyzer must report for this connection; anomalies_allowed = further codes that are "
    "consistent with the traffic and not errors if reported",
    "samples.NAME.capture_anomalies": "capture-wide codes (not tied to one connection)",
    "samples.NAME.kernel": "sysctls set, ss sockets and nstat counters (absolute, fresh "
    "namespaces, so per scenario) of client_ns and server_ns at capture end",
    "anomaly_codes": "|".join(ANOMALY_CODES),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--only", nargs="*", help="scenario names (default: all)")
    ap.add_argument("--vantage", choices=("client", "server"), default=None,
                    help="capture every scenario on the client's or the server's interface "
                    "(default: each scenario's own, the client's for most): the relay's drops "
                    "then fall on the other side of the capture point, and expected anomalies "
                    "are not adjusted for what it cannot see")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        log("must run as root (network namespaces, TAP devices, tcpdump)")
        return 2
    for tool in ("ip", "tcpdump", "ss", "nstat", "sysctl"):
        if shutil.which(tool) is None:
            log(f"missing tool: {tool}")
            return 2
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    expected_path = out_dir / "expected.json"
    samples: dict[str, Any] = {}
    if args.only and expected_path.exists():
        samples = json.loads(expected_path.read_text())["samples"]
    failed = 0
    delete_namespaces()
    with tempfile.TemporaryDirectory(prefix="tpys-") as tmp:
        for sc in chosen:
            log(f"[{sc.name}] ...")
            try:
                entry = run_scenario(sc, out_dir, Path(tmp), args.vantage)
            except Exception as exc:  # noqa: BLE001 - one broken scenario must not stop the rest
                log(f"[{sc.name}] FAILED: {type(exc).__name__}: {exc}")
                log(traceback.format_exc())
                failed += 1
                continue
            samples[sc.name] = entry
            ok = entry["self_check"]["ok"]
            failed += not ok
            log(f"[{sc.name}] {'ok' if ok else 'PROBLEMS ' + str(entry['self_check']['problems'])}"
                f" packets={entry['capture']['packets']} conns={entry['tcp_connections']} "
                f"wall={entry['capture']['wall_time_s']}s")
    doc = {
        "generator": {
            "script": "samples/make_samples.py",
            "command": "sudo python3 samples/make_samples.py --out samples/",
            "kernel": f"Linux {platform.release()}",
            "python": platform.python_version(),
            "tcpdump": run(["tcpdump", "--version"]).stdout.splitlines()[0],
            "vantage": f"tcpdump on the {args.vantage}'s interface inside the {args.vantage} "
                       "namespace" if args.vantage else "tcpdump on the client's interface "
                       "inside the client namespace, unless a sample's capture.namespace says "
                       "server",
            "schema": SCHEMA_DOC,
        },
        "samples": dict(sorted(samples.items())),
    }
    expected_path.write_text(json.dumps(doc, indent=1) + "\n")
    log(f"wrote {expected_path} ({len(samples)} samples, {failed} with problems)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
