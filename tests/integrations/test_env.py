"""The parsers of environment-variable values (storno_security.integrations.env)."""

from __future__ import annotations

from pathlib import Path

import pytest

from storno_security.integrations import env


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (None, "None"),
        ("postgresql+psycopg://app@db/storno", "'postgresql+psycopg://app@db/storno'"),
        ("postgresql+psycopg://app:s3cret@db/storno", "'postgresql+psycopg://app:***@db/storno'"),
        ("redis://:s3cret@cache:6379/0", "'redis://:***@cache:6379/0'"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str | None, shown: str) -> None:
    assert env.masked_url(url) == shown


def test_blank_optional_values_are_not_set() -> None:
    for parse in (env.text, env.path, env.optional_integer, env.optional_boolean):
        assert parse("  ") is None
    assert env.words(" , ,") == ()
    assert env.networks(" , ") == ()


def test_values_are_parsed_stripped() -> None:
    assert env.text(" a b ") == "a b"
    assert env.required_text(" x ") == "x"
    assert env.path(" /data ") == Path(" /data ")
    assert env.optional_integer(" 8 ") == 8
    assert env.integer("0012") == 12
    assert env.number(" 2.5 ") == 2.5
    assert env.optional_boolean(" Yes ") is True
    assert env.boolean("OFF") is False
    assert env.words("a, b ,,c") == ("a", "b", "c")
    assert [str(n) for n in env.networks("10.0.0.1/8, ::1")] == ["10.0.0.0/8", "::1/128"]


@pytest.mark.parametrize(
    ("parse", "raw", "message"),
    [
        (env.required_text, "  ", "must not be empty"),
        (env.boolean, "maybe", "expected true or false, got 'maybe'"),
        (env.optional_integer, "8.5", "invalid literal"),
        (env.database_url, "not a url", "is not a database URL"),
        (env.database_url, "oracle://u@h/db", "not 'oracle'"),
    ],
)
def test_a_malformed_value_is_a_value_error(parse: object, raw: str, message: str) -> None:
    assert callable(parse)
    with pytest.raises(ValueError, match=message):
        parse(raw)


def test_a_supported_database_url_is_kept_as_given() -> None:
    for url in ("sqlite:///x.db", "postgresql://u@h/db", "mysql+pymysql://u@h/db"):
        assert env.database_url(url) == url


def test_a_missing_module_names_its_extra() -> None:
    message = env.missing_extra(ModuleNotFoundError("no module", name="psycopg.pq"))
    assert message == (
        "the Python module 'psycopg' is missing: install the 'postgres' extra "
        "(pip install 'storno-security[postgres]')"
    )
    assert "'server' extra" in env.missing_extra(ModuleNotFoundError("no module"))
