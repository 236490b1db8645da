"""Which proxy a request goes through, from the environment, as curl and wget
read it: ``http_proxy``, ``https_proxy``, ``all_proxy`` (lower case first),
and ``no_proxy`` entries that are a host (``example.com``, ``.example.com``:
the domain and every host under it), a ``host:port``, an address or a CIDR
block (``10.0.0.0/8``, ``::1``), or ``*``.

Decided here, for every hop of a redirect chain, rather than by libcurl: its
own no_proxy knows no ports, and it would keep the first hop's proxy for the
next hosts. A proxy URL may be ``https://`` (libcurl speaks TLS to the proxy
itself, so credentials in it never cross the wire in clear) and may carry
``user:password@``."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class _Rule:
    host: str = ""              # a name, matched as the domain or any host under it
    port: int | None = None     # only this port, when given
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None


def proxy_for(scheme: str, host: str, port: int) -> str:
    """The proxy URL for a request, or "" to go straight to the host."""
    proxies, rules = _environment()
    chosen = proxies.get(scheme) or proxies.get("all") or ""
    if chosen and any(_matches(rule, host, port) for rule in rules):
        return ""
    return chosen


@lru_cache(maxsize=1)
def _environment() -> tuple[dict[str, str], tuple[_Rule, ...]]:
    """Read once per process (a worker's environment does not change)."""
    def var(name: str) -> str:
        return os.environ.get(name) or os.environ.get(name.upper()) or ""

    proxies = {k: var(f"{k}_proxy").strip() for k in ("http", "https", "all")}
    rules = tuple(rule for entry in var("no_proxy").split(",") if (rule := _rule(entry.strip().lower())))
    return proxies, rules


def _rule(entry: str) -> _Rule | None:
    if not entry:
        return None
    if entry == "*":
        return _Rule(host="*")
    try:
        return _Rule(network=ipaddress.ip_network(entry.strip("[]"), strict=False))
    except ValueError:
        pass
    host, port = entry, None
    if entry.startswith("["):                     # [v6]:port
        inside, _, rest = entry[1:].partition("]")
        host, port = inside, _port(rest.lstrip(":"))
    elif entry.count(":") == 1:                   # name:port or v4:port
        host, _, text = entry.partition(":")
        port = _port(text)
    try:
        return _Rule(network=ipaddress.ip_network(host, strict=False), port=port)
    except ValueError:
        return _Rule(host=host.lstrip("."), port=port)


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _matches(rule: _Rule, host: str, port: int) -> bool:
    if rule.host == "*":
        return True
    if rule.port is not None and rule.port != port:
        return False
    host = host.strip("[]").lower()
    if rule.network is not None:
        try:
            return ipaddress.ip_address(host) in rule.network
        except ValueError:
            return False
    return host == rule.host or host.endswith("." + rule.host)
