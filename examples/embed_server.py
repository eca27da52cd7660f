"""The reference server inside your own process: build the app from settings, call it.

Shows what an operator gets from `storno-security serve`, without a socket: registration,
login, the rate limit on logins, a refresh reused, and the JSON errors. Everything goes to a
temporary data directory (keys, SQLite) that is removed at the end.

Run: python examples/embed_server.py   (needs the 'server' extra)
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import falcon.testing

from reference_server.app import create_app
from reference_server.settings import Settings


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="storno-example-") as data:
        # Cost 4 keeps the example fast; it is refused unless the public URL is localhost.
        settings = Settings.from_env(
            {"STORNO_DATA_DIR": str(Path(data) / "data"), "STORNO_PASSWORD_COST": "4"}
        )
        client = falcon.testing.TestClient(create_app(settings))

        def post(path: str, body: dict[str, Any]) -> falcon.testing.Result:
            return client.simulate_post(path, json=body)

        created = post(
            "/api/auth/register", {"email": "Ana@Example.EU", "password": "a long passphrase"}
        )
        print("registered:", created.status_code, created.json["user"]["email"])
        login = post("/api/auth", {"email": "ana@example.eu", "password": "a long passphrase"})
        print("login:", login.status_code, "token type", login.json["token_type"])
        me = client.simulate_get(
            "/api/v1/me", headers={"Authorization": f"Bearer {login.json['access_token']}"}
        )
        print("me: role", me.json["role"], "in", me.json["organization"]["name"])

        refresh = login.json["refresh_token"]
        successor = post("/api/auth/refresh", {"refresh_token": refresh}).json["refresh_token"]
        post("/api/auth/refresh", {"refresh_token": successor})  # the client moved on
        reused = post("/api/auth/refresh", {"refresh_token": refresh})
        print("refresh token reused:", reused.status_code, reused.json["code"])

        wrong = [
            post("/api/auth", {"email": "ana@example.eu", "password": "not it at all"})
            for _ in range(5)
        ]
        # The successful login above was the first of the 5 allowed per minute from this IP.
        print("wrong passwords:", [answer.status_code for answer in wrong])
        print(
            "limit:",
            wrong[-1].headers.get("RateLimit-Limit"),
            "per minute,",
            wrong[-1].json["code"],
            "after that",
        )


if __name__ == "__main__":
    main()
