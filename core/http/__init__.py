"""Operator endpoints of one bot process: /healthz, /readyz, /metrics (docs/scaling.md).

Submodules import lightly on purpose: ``settings``, ``metrics`` and ``health`` need
no web library, so features can count and report without the server; ``server``
(aiohttp) loads only when ``[http] enabled = true``.
"""
