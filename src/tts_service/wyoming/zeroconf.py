"""Announce the Wyoming server on the local network (mDNS / zeroconf), so Home Assistant
discovers it without anyone typing an address.

The service is `_wyoming._tcp.local.` on the Wyoming port. Bound to a wildcard address
(`0.0.0.0`), the announcement names the machine's real addresses: the one its default route
uses first, then its other non-loopback IPv4 addresses; a wildcard would be useless to
the listener. Bound to one address, that address is announced.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from urllib.parse import urlparse

import ifaddr
from zeroconf import Error as ZeroconfError
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

log = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})
MAX_LABEL_BYTES = 63  # a DNS label; the instance name is one


def _usable(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast)


def primary_address() -> str | None:
    """The address the default route leaves from (a UDP "connect" sends no packet)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never answered, only routed
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return address if _usable(address) else None


def interface_addresses() -> list[str]:
    """Every usable IPv4 address of this machine's interfaces."""
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str) and _usable(ip.ip):
                found.append(ip.ip)
    return found


def announced_addresses(host: str) -> list[str]:
    """What to announce for a server bound to `host`; never a wildcard address."""
    if host.strip("[]") in WILDCARDS:
        addresses = [a for a in [primary_address(), *interface_addresses()] if a is not None]
    else:
        infos = socket.getaddrinfo(host.strip("[]"), None, proto=socket.IPPROTO_TCP)
        addresses = [str(info[4][0]) for info in infos]
    addresses = list(dict.fromkeys(addresses))
    if not addresses:
        raise OSError(f"this machine has no network address to announce for host {host!r}")
    return addresses


def _instance_name(name: str) -> str:
    """The name as one DNS label (at most 63 bytes, no dots)."""
    label = name.replace(".", "-").strip() or "tts-service"
    while len(label.encode("utf-8")) > MAX_LABEL_BYTES:
        label = label[:-1]
    return label


def service_info(
    name: str, host: str, port: int, addresses: list[str] | None = None
) -> ServiceInfo:
    """The registration: `NAME._wyoming._tcp.local.` at this machine's address and `port`."""
    found = addresses if addresses is not None else announced_addresses(host)
    hostname = _instance_name(socket.gethostname().split(".")[0] or "tts-service")
    return ServiceInfo(
        SERVICE_TYPE,
        f"{_instance_name(name)}.{SERVICE_TYPE}",
        addresses=[ipaddress.ip_address(a).packed for a in found],
        port=port,
        server=f"{hostname}.local.",
        properties={},
    )


def wyoming_host_port(uri: str) -> tuple[str, int]:
    parsed = urlparse(uri)
    if parsed.scheme != "tcp" or parsed.port is None:
        raise ValueError(f"zeroconf needs a tcp://HOST:PORT Wyoming address (got {uri!r})")
    return parsed.hostname or "", parsed.port


class ZeroconfAnnouncer:
    """Registers the service at start, withdraws it at stop."""

    def __init__(self, name: str, wyoming_uri: str) -> None:
        host, port = wyoming_host_port(wyoming_uri)
        self.info = service_info(name, host, port)
        self._zeroconf: AsyncZeroconf | None = None

    async def start(self) -> None:
        addresses = self.info.parsed_addresses()
        if not any(_usable(a) for a in addresses):
            log.warning("zeroconf announces only loopback addresses: no other machine can use them")
        v6 = any(":" in a for a in addresses)
        self._zeroconf = AsyncZeroconf(ip_version=IPVersion.All if v6 else IPVersion.V4Only)
        try:
            await self._zeroconf.async_register_service(self.info, allow_name_change=True)
        except BaseException:
            await self._zeroconf.async_close()
            self._zeroconf = None
            raise
        log.info(
            "announced %s on %s port %d",
            self.info.name,
            ", ".join(self.info.parsed_addresses()),
            self.info.port,
        )

    async def stop(self) -> None:
        if self._zeroconf is None:
            return
        try:
            await self._zeroconf.async_unregister_service(self.info)
        finally:
            await self._zeroconf.async_close()
            self._zeroconf = None


async def announce(name: str, wyoming_uri: str) -> ZeroconfAnnouncer | None:
    """Start announcing; a network that refuses it is logged, never fatal (Home Assistant
    can still add the server by its address)."""
    try:
        announcer = ZeroconfAnnouncer(name, wyoming_uri)
        await announcer.start()
    except (OSError, ZeroconfError) as error:
        log.error("zeroconf announcement failed (%s); add the server by its address", error)
        return None
    return announcer
