"""The zeroconf registration, as it would be sent (no multicast): the Wyoming service type,
the Wyoming port, and real addresses of this machine, never a wildcard."""

from __future__ import annotations

import ipaddress

import ifaddr
import pytest
from pydantic import ValidationError

from tts_service.config import ZEROCONF_DEFAULT_NAME, Settings
from tts_service.wyoming.zeroconf import (
    SERVICE_TYPE,
    ZeroconfAnnouncer,
    announce,
    announced_addresses,
    service_info,
    wyoming_host_port,
)


def machine_addresses() -> set[str]:
    return {
        ip.ip
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if ip.is_IPv4 and isinstance(ip.ip, str)
    }


def test_a_wildcard_bind_announces_this_machines_real_addresses() -> None:
    announcer = ZeroconfAnnouncer("kitchen", "tcp://0.0.0.0:10200")
    info = announcer.info
    assert info.type == SERVICE_TYPE == "_wyoming._tcp.local."
    assert info.name == "kitchen._wyoming._tcp.local."
    assert info.port == 10200
    addresses = info.parsed_addresses()
    assert addresses, "nothing to announce"
    for address in addresses:
        ip = ipaddress.ip_address(address)
        assert not (ip.is_unspecified or ip.is_loopback or ip.is_link_local)
        assert address in machine_addresses()
    assert info.server is not None and info.server.endswith(".local.")


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "[::]"])
def test_no_wildcard_is_ever_announced(host: str) -> None:
    for address in announced_addresses(host):
        assert not ipaddress.ip_address(address).is_unspecified


def test_a_specific_bind_address_is_announced_as_it_is() -> None:
    info = service_info("tts", "192.0.2.10", 10300)
    assert info.parsed_addresses() == ["192.0.2.10"] and info.port == 10300


def test_a_long_or_dotted_name_becomes_one_dns_label() -> None:
    info = service_info("living.room " + "x" * 80, "192.0.2.10", 10200, ["192.0.2.10"])
    label = info.name.removesuffix("." + SERVICE_TYPE)
    assert "." not in label and len(label.encode()) <= 63


def test_the_wyoming_address_must_be_tcp() -> None:
    assert wyoming_host_port("tcp://0.0.0.0:10200") == ("0.0.0.0", 10200)
    with pytest.raises(ValueError, match="tcp://"):
        wyoming_host_port("unix:///run/wyoming.sock")


def test_settings_name_it_and_require_a_tcp_wyoming_server() -> None:
    uri = "tcp://0.0.0.0:10200"
    assert Settings(zeroconf="true", wyoming_uri=uri).zeroconf == ZEROCONF_DEFAULT_NAME
    assert Settings(zeroconf="off", wyoming_uri=uri).zeroconf is None
    assert Settings(zeroconf="Kitchen TTS", wyoming_uri=uri).zeroconf == "Kitchen TTS"
    with pytest.raises(ValidationError, match="wyoming_uri"):
        Settings(zeroconf="tts")
    with pytest.raises(ValidationError, match="wyoming_uri"):
        Settings(zeroconf="tts", wyoming_uri="unix:///tmp/w.sock")


async def test_a_failed_announcement_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    """The server keeps serving: Home Assistant can still add it by address."""
    assert await announce("tts", "tcp://no-such-host.invalid:10200") is None
    assert "zeroconf announcement failed" in caplog.text
