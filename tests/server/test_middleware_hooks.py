"""The Falcon middleware's hook points (issue 18): ``on_request`` runs first and may answer at
once (load shedding), ``on_response`` runs last on every answer (access logs, metrics, CORS);
generated request ids are distinct; probes do no rate-limit work."""

from __future__ import annotations

import functools
import json
from typing import Any

import falcon
import falcon.testing

from reference_server.resources import MODULES
from reference_server.wiring import Server
from storno_security.integrations.falcon.app import build_app
from storno_security.integrations.falcon.routing import Api, ApiOptions


def _client(server: Server, **hooks: Any) -> falcon.testing.TestClient:
    options = ApiOptions(
        public_url=server.settings.public_url,
        cookie_secure=server.settings.cookie_secure,
        max_body_bytes=server.settings.max_body_bytes,
        trusted_proxies=server.settings.trusted_proxies,
        title="hooks",
    )
    api = Api(kit=server.kit, options=options, state=server)
    return falcon.testing.TestClient(build_app(api, MODULES, **hooks))


def test_hooks_run_first_and_last_on_every_answer(server: Server) -> None:
    seen: list[tuple[str, str, str | None]] = []

    def shed(req: falcon.Request, resp: falcon.Response) -> None:
        if req.path == "/ready":
            raise falcon.HTTPServiceUnavailable(headers={"Retry-After": "1"})

    def record(req: falcon.Request, resp: falcon.Response, succeeded: bool) -> None:
        seen.append((req.path, resp.status, resp.get_header("X-Request-Id")))

    client = _client(server, on_request=[shed], on_response=[record])
    shed_answer = client.simulate_get("/ready")
    assert shed_answer.status_code == 503
    assert shed_answer.json["request_id"] == shed_answer.headers["X-Request-Id"]
    assert shed_answer.headers["X-Content-Type-Options"] == "nosniff"
    assert client.simulate_get("/health").status_code == 200
    assert client.simulate_get("/nowhere").status_code == 404
    assert [(path, status[:3]) for path, status, _ in seen] == [
        ("/ready", "503"),
        ("/health", "200"),
        ("/nowhere", "404"),
    ]
    assert all(request_id for _, _, request_id in seen)


def test_generated_request_ids_are_distinct_and_a_valid_one_is_kept(server: Server) -> None:
    client = _client(server)
    ids = {client.simulate_get("/health").headers["X-Request-Id"] for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 32 for i in ids)
    kept = client.simulate_get("/health", headers={"X-Request-Id": "trace.42_a-b"})
    assert kept.headers["X-Request-Id"] == "trace.42_a-b"


def test_probes_do_no_rate_limit_work(server: Server) -> None:
    calls: list[str] = []

    class Counting:
        def hit(self, policy: str, identifier: str) -> Any:
            calls.append(policy)
            return server.kit.limiter.hit(policy, identifier)

    client = _client(server)
    (middleware,) = client.app._unprepared_middleware
    middleware._limiter = Counting()
    answer = client.simulate_get("/health")
    assert answer.status_code == 200
    assert "RateLimit-Limit" not in answer.headers
    assert calls == []
    assert client.simulate_get("/api/v1/me").status_code == 401
    assert calls == ["api_unauthenticated"]


def test_a_constant_answer_is_rendered_once_per_application_by_its_own_handler(
    server: Server,
) -> None:
    # Ctx.json_once (issue 18): /health's answer is rendered once per application, with that
    # application's JSON handler, and is what Ctx.json would have sent.
    rendered: list[Any] = []

    def dumps(media: Any) -> str:
        rendered.append(media)
        return json.dumps(media, ensure_ascii=False)

    client = _client(server)
    client.app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(
        dumps=dumps
    )
    rendered.clear()  # the handler tries its dumps once when made
    answers = [client.simulate_get("/health") for _ in range(5)]
    assert all(a.status_code == 200 for a in answers)
    assert all(a.json == {"status": "ok", "checks": {}} for a in answers)
    assert all(a.headers["Content-Type"] == "application/json" for a in answers)
    assert rendered == [{"status": "ok", "checks": {}}]

    other = _client(server)  # another application: its own rendering, by its own handler
    compact = falcon.media.JSONHandler(dumps=functools.partial(json.dumps, separators=(",", ":")))
    other.app.resp_options.media_handlers[falcon.MEDIA_JSON] = compact
    assert other.simulate_get("/health").text == '{"status":"ok","checks":{}}'
    assert client.simulate_get("/health").text == '{"status": "ok", "checks": {}}'
