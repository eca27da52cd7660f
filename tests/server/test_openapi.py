"""``/openapi.json`` is true: schemathesis fuzzes every operation of the live app (SRV-1, SRV-2).

Any 5xx fails, and so does any answer whose status, content type or body is not in the
document. The document is read from the running app, not from a file, so a route added
without its description (or described wrongly) fails here.

The caller is a registered Owner with a live company, so authenticated operations are reached
past authentication; generous limits replace the spec's (which are tested on their own) so
the fuzzer is not answered 429 after five logins.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from reference_server.app import create_app
from reference_server.mail import MemoryEmailSink
from reference_server.wiring import Server, build_server
from storno_security.clock import SystemClock
from storno_security.ratelimit import RateLimiter, SlidingWindowPolicy, TokenBucketPolicy
from storno_security.stores.memory import MemoryRateLimitStorage
from tests.server.api import FalconApi
from tests.server.conftest import make_settings

EXAMPLES = int(os.environ.get("STORNO_FUZZ_EXAMPLES", "15"))


def _generous_limiter(server: Server) -> RateLimiter:
    policies: list[Any] = []
    for name, policy in server.kit.limiter.policies.items():
        if isinstance(policy, SlidingWindowPolicy):
            policies.append(SlidingWindowPolicy(name=name, limit=10_000, window=policy.window))
        else:
            assert isinstance(policy, TokenBucketPolicy)
            policies.append(policy)
    return RateLimiter(MemoryRateLimitStorage(), clock=server.clock, policies=policies)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = Path(tmp_path_factory.mktemp("openapi")) / "data"
    server = build_server(make_settings(data), clock=SystemClock(), email=MemoryEmailSink())
    server.kit.limiter = _generous_limiter(server)
    app = create_app(server=server)
    api = FalconApi(falcon.testing.TestClient(app), clock=None)
    owner = api.register()
    company = owner.post("/api/v1/companies", {"name": "Fuzz SRL", "country": "RO"})
    headers = {"Authorization": f"Bearer {owner.access_token}"}
    if company.status == 201:
        headers["X-Company"] = company.json["id"]
    yield {"app": app, "headers": headers}
    server.close()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.mark.spec("SRV-2")
def test_every_operation_matches_the_document(fuzz_target: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzz_target["app"])
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures: list[str] = []
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            headers = dict(case.headers or {})
            for name, value in fuzz_target["headers"].items():
                headers.setdefault(name, value)
            case.headers = headers
            case.call_and_validate(checks=CHECKS)

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:2000]}")
    assert failures == [], "\n\n".join(failures)


@pytest.mark.spec("SRV-1")
def test_the_document_is_openapi_3_1_and_names_every_route(
    fuzz_target: dict[str, Any],
) -> None:
    client = falcon.testing.TestClient(fuzz_target["app"])
    document = client.simulate_get("/openapi.json").json
    assert document["openapi"] == "3.1.0"
    described = set(document["paths"])
    # the demo page's HTML, script, style and dev mailbox are a page, not the JSON API
    pages = {"/demo", "/demo/demo.js", "/demo/demo.css", "/demo/mail", "/confirm-email"}
    routed = _routes(fuzz_target["app"]) - pages
    assert routed - described == set(), "routes missing from /openapi.json"
    assert described - routed == set(), "documented paths with no route"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], f"{method} {path} has no responses"
            assert "default" in operation["responses"], f"{method} {path}: errors undocumented"


def _routes(app: Any) -> set[str]:
    from falcon import inspect as falcon_inspect

    found: set[str] = set()
    for route in falcon_inspect.inspect_routes(app):
        path = route.path
        found.add(path)
    return found
