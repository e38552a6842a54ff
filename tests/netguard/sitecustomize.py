"""A network guard for test runs: on PYTHONPATH, every Python process (Snakemake and each job it starts)
imports this at start-up and can no longer reach the network.

Connections to anything but this machine (UNIX sockets, loopback) and name lookups of other hosts raise
`NetworkBlocked` (an OSError, as a real network failure would be), and each attempt is appended to the file
named by SIMQNAS_NETGUARD_LOG, so a test also sees attempts that the caller caught and ignored.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import traceback

LOCAL_NAMES = {None, "", "localhost", "localhost.localdomain", "ip6-localhost"}


class NetworkBlocked(OSError):
    """Raised instead of reaching the network."""


def _record(what: str) -> None:
    log = os.environ.get("SIMQNAS_NETGUARD_LOG")
    if log:
        caller = "".join(traceback.format_stack(limit=6)[:-2]).replace("\n", " | ")
        with open(log, "a") as f:
            f.write(f"pid {os.getpid()}: {what} (from {caller})\n")


def _block(what: str) -> None:
    _record(what)
    raise NetworkBlocked(f"network access blocked by tests/netguard: {what}")


def _is_local_host(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_sendto = socket.socket.sendto
_getaddrinfo = socket.getaddrinfo
_gethostbyname = socket.gethostbyname
_gethostbyname_ex = socket.gethostbyname_ex
_gethostbyaddr = socket.gethostbyaddr


def _check_address(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0] if isinstance(address, tuple) else address
        if not _is_local_host(host):
            _block(f"connect to {address!r}")


def connect(self: socket.socket, address: object) -> None:
    _check_address(self, address)
    return _connect(self, address)


def connect_ex(self: socket.socket, address: object) -> int:
    _check_address(self, address)
    return _connect_ex(self, address)


def sendto(self: socket.socket, data: bytes, *args: object) -> int:
    _check_address(self, args[-1])
    return _sendto(self, data, *args)


def _is_address(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        ipaddress.ip_address(str(host).split("%")[0])
        return True
    except ValueError:
        return False


def getaddrinfo(host: object, *args: object, **kwargs: object) -> list:
    # a numeric address needs no lookup (connecting to it is checked in connect)
    if not _is_local_host(host) and not _is_address(host):
        _block(f"name lookup of {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


def gethostbyname(host: str) -> str:
    if not _is_local_host(host):
        _block(f"name lookup of {host!r}")
    return _gethostbyname(host)


def gethostbyname_ex(host: str) -> tuple:
    if not _is_local_host(host):
        _block(f"name lookup of {host!r}")
    return _gethostbyname_ex(host)


def gethostbyaddr(host: str) -> tuple:
    if not _is_local_host(host):
        _block(f"reverse lookup of {host!r}")
    return _gethostbyaddr(host)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.socket.sendto = sendto
socket.getaddrinfo = getaddrinfo
socket.gethostbyname = gethostbyname
socket.gethostbyname_ex = gethostbyname_ex
socket.gethostbyaddr = gethostbyaddr
# libraries that honour these never try (and the guard catches the ones that do)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
