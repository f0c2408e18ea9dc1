"""How a URI becomes a Wyoming server."""

from __future__ import annotations

import pytest

from tts_service.wyoming.server import _server_for


@pytest.mark.parametrize("uri", ["stdio://", "http://127.0.0.1:10200", "tcp://127.0.0.1"])
def test_only_tcp_and_unix_uris_with_a_port_are_served(uri: str) -> None:
    with pytest.raises(ValueError):
        _server_for(uri)


def test_tcp_and_unix_uris_are_served() -> None:
    assert _server_for("tcp://127.0.0.1:10200") is not None
    assert _server_for("unix:///tmp/wyoming.sock") is not None
