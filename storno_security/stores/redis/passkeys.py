"""Passkey ceremony challenges in Redis. Needs the ``redis`` extra.

Keys (``prefix`` defaults to ``storno:``): ``{prefix}passkey-challenge:{challenge_hash}``, a
small JSON record whose time-to-live is the challenge's remaining lifetime. Storing is one
``SET NX PX``; consuming is one ``GETDEL``, atomic on the server, so of any number of consumers
in any number of processes exactly one gets the record (PK-2).
"""

from __future__ import annotations

import json
from datetime import datetime

from storno_security.clock import ensure_aware_utc
from storno_security.errors import CorruptRecordError, StoreError
from storno_security.passkeys.storage import ChallengePurpose, PasskeyChallenge
from storno_security.stores.redis._base import _call, _SelfExpiringStore, _ttl_ms

__all__ = ["RedisPasskeyChallengeStore"]


class RedisPasskeyChallengeStore(_SelfExpiringStore):
    """Ceremony challenges in Redis, forgotten by Redis when they expire.

    Args:
        client: a synchronous redis-py client (``decode_responses`` either way).
        prefix: prepended to every key, so several applications can share one database.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    def _challenge_key(self, challenge_hash: str) -> str:
        return self._key("passkey-challenge:", "challenge_hash", challenge_hash)

    def put(self, challenge: PasskeyChallenge, *, now: datetime) -> None:
        """Store the challenge for ``expires_at - now`` with one ``SET NX PX``.

        A challenge that has expired already is not written (it could never be accepted).

        Raises:
            TypeError: ``challenge`` is not a :class:`PasskeyChallenge`.
            ValueError: a time is naive.
            StoreError: a challenge with this hash exists already (``reason="duplicate"``).
            StoreUnavailableError: Redis could not be reached or failed the command.
        """
        if not isinstance(challenge, PasskeyChallenge):
            raise TypeError("challenge must be a PasskeyChallenge")
        key = self._challenge_key(challenge.challenge_hash)
        expires_at = ensure_aware_utc(challenge.expires_at)
        ttl_ms = _ttl_ms(now, expires_at)
        if ttl_ms <= 0:
            return
        value = json.dumps(
            {
                "purpose": ChallengePurpose(challenge.purpose).value,
                "user_id": challenge.user_id,
                "expires_at": expires_at.isoformat(),
            }
        )
        written = _call(lambda: self._client.set(key, value, px=ttl_ms, nx=True))
        if not written:
            raise StoreError("challenge exists already", reason="duplicate")

    def consume(self, challenge_hash: str, *, now: datetime) -> PasskeyChallenge | None:
        """Remove and return the challenge with one ``GETDEL``.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``now`` is naive.
            StoreUnavailableError: Redis could not be reached or failed the command.
            CorruptRecordError: the key holds something this store never writes.
        """
        key = self._challenge_key(challenge_hash)
        ensure_aware_utc(now)
        raw = _call(lambda: self._client.getdel(key))
        if raw is None:
            return None
        return _challenge_of(challenge_hash, raw)


def _challenge_of(challenge_hash: str, raw: object) -> PasskeyChallenge:
    try:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        if not isinstance(raw, str):
            raise TypeError("not text")
        data = json.loads(raw)
        user_id = data["user_id"]
        if user_id is not None and (not isinstance(user_id, str) or not user_id):
            raise TypeError("bad user id")
        expires_at = ensure_aware_utc(datetime.fromisoformat(data["expires_at"]))
        return PasskeyChallenge(
            challenge_hash=challenge_hash,
            purpose=ChallengePurpose(data["purpose"]),
            user_id=user_id,
            expires_at=expires_at,
        )
    except (ValueError, TypeError, KeyError):
        raise CorruptRecordError(reason="bad_value") from None
