"""Docs that cannot drift: every HTTP example of docs/server-api.md is sent, in order, to a live
gunicorn server, and its answer checked (status, and each field the example shows).

An example is a ```http block: a request (line, headers, blank line, JSON body) and, from the
line ``HTTP/1.1 <status>`` on, the answer (a JSON body whose fields must all be in the real
one). ``"<name>"`` in an answer takes the server's value; ``<name>`` in a later request sends it.
``<confirmation token>`` is read from the server's mail. The address of the examples is
replaced by a fresh one, so a rerun on the same server registers anew.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.server.api import fresh_email, fresh_ip
from tests.server.conftest import RunningServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "server-api.md"
_BLOCK = re.compile(r"^```http\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_PLACEHOLDER = re.compile(r"^<([a-z ]+)>$")
EXAMPLE_ADDRESS = "ada@example.eu"


def examples() -> list[str]:
    return _BLOCK.findall(DOC.read_text(encoding="utf-8"))


def test_the_page_has_examples_of_each_kind() -> None:
    found = examples()
    assert len(found) >= 10
    assert all("\nHTTP/1.1 " in block for block in found)


def _split(block: str) -> tuple[str, dict[str, str], str, int, str]:
    request, answer = block.split("\nHTTP/1.1 ", 1)
    head, _, body = request.partition("\n\n")
    line, *header_lines = head.strip().splitlines()
    headers = dict(h.split(": ", 1) for h in header_lines)
    status_line, _, answer_body = answer.partition("\n\n")
    return line, headers, body.strip(), int(status_line.split()[0]), answer_body.strip()


def _matches(shown: Any, actual: Any, values: dict[str, Any], where: str) -> None:
    if isinstance(shown, str) and (found := _PLACEHOLDER.match(shown)):
        assert actual is not None, f"{where}: no value for <{found.group(1)}>"
        values[found.group(1)] = actual
    elif isinstance(shown, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        for key, value in shown.items():
            assert key in actual, f"{where}: the answer has no {key!r}: {actual!r}"
            _matches(value, actual[key], values, f"{where}.{key}")
    else:
        assert shown == actual, f"{where}: the docs show {shown!r}, the server says {actual!r}"


def test_every_http_example_of_the_api_page_runs(gunicorn_sqlite: RunningServer) -> None:
    server = gunicorn_sqlite
    address = fresh_email("docs")
    values: dict[str, Any] = {}

    def fill(text: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name == "confirmation token":
                return _mailed_token(server, address)
            assert name in values, f"<{name}> is used before an answer gave it"
            return str(values[name])

        return re.sub(r"<([a-z ]+)>", value, text.replace(EXAMPLE_ADDRESS, address))

    host = urlsplit(server.base_url)
    for number, block in enumerate(examples(), start=1):
        line, headers, body, status, answer = _split(block)
        method, path = line.split()[:2]
        where = f"example {number} ({method} {path})"
        sent_headers = {name: fill(value) for name, value in headers.items()}
        sent_headers["X-Forwarded-For"] = fresh_ip()  # the limits count per example
        connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        try:
            connection.request(
                method, path, body=fill(body).encode() if body else None, headers=sent_headers
            )
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        assert response.status == status, f"{where}: {response.status} {raw[:300]!r}"
        if answer:
            shown = json.loads(answer.replace(EXAMPLE_ADDRESS, address))
            _matches(shown, json.loads(raw), values, where)
        else:
            assert raw == b"", where


def _mailed_token(server: RunningServer, address: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the server mails after answering
        for mail in reversed(server.mail()):
            found = re.search(r"/confirm-email\?token=([A-Za-z0-9_%.-]+)", mail["body"])
            if mail["to"] == address and found:
                return unquote(found.group(1))
        time.sleep(0.05)  # polling a real process's mail directory, not test time
    pytest.fail(f"no confirmation mail to {address}")


# -- the body tables ------------------------------------------------------------------------------

_ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`]*)` \| (.*?) \|", re.MULTILINE)
_PROOF = {"current_password", "step_up_token"}


def _documented_fields(cell: str) -> set[str] | None:
    """The body fields a table cell names (``None``: no body); ``proof`` is the
    re-authentication fields."""
    if cell.startswith("none"):
        return None
    cell = cell.split("`:", 1)[0]  # the API page: what follows describes the answer
    fields: set[str] = set(_PROOF) if re.search(r"\bproof\b", cell) else set()
    for braces in re.findall(r"\{([^}]*)\}", cell):
        for part in re.split(r",| or ", braces):
            name = part.split(":")[0].strip().rstrip("?")
            if name:
                fields.add(name)
    return fields


@pytest.mark.parametrize("page", ["server-api.md", "server-account.md"])
def test_the_body_tables_name_the_fields_the_server_takes(tmp_path: Path, page: str) -> None:
    import falcon.testing

    from reference_server.app import create_app
    from reference_server.wiring import build_server
    from tests.server.conftest import make_settings

    server = build_server(make_settings(tmp_path / "data"))
    try:
        document = falcon.testing.TestClient(create_app(server=server)).simulate_get(
            "/openapi.json"
        )
    finally:
        server.close()
    paths = {re.sub(r"\{[^}]*\}", "{}", p): ops for p, ops in document.json["paths"].items()}
    text = (DOC.parent / page).read_text(encoding="utf-8")
    checked = 0
    for method, shown_path, cell in _ROW.findall(text):
        path = re.sub(r"\{[^}]*\}", "{}", shown_path)
        documented = _documented_fields(cell)
        if documented is None and "{" not in cell:
            operation = paths[path][method.lower()]
            assert "requestBody" not in operation, f"{page}: {method} {path} takes a body"
            checked += 1
            continue
        if not documented:
            continue  # prose only
        schema = paths[path][method.lower()]["requestBody"]["content"]["application/json"]
        taken = set(schema["schema"].get("properties", {}))
        assert documented == taken, f"{page}: {method} {path}: docs {documented}, server {taken}"
        checked += 1
    assert checked >= 8, page
