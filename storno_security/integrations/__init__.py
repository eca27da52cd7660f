"""Thin adapters of the kit to web frameworks, and the one error map they share
(:mod:`storno_security.integrations.http`). Each framework's adapter is imported on its own
(``storno_security.integrations.fastapi``, ``.flask``) and needs its extra."""
