"""The tool calls of a turn, kept with the user's data: plugin-store namespace ``tools``,
key ``turn:ID`` (ID: the user turn), the user's rows, so they are in /export and gone on
/forget. The tool loop writes them; the web console's transcript reads them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from core.ports import PluginStore
from core.records import StoredMessage

log = logging.getLogger(__name__)

TRACE_NAMESPACE = "tools"


async def keep_trace(store: PluginStore | None, user_id: str, turn_id: int, records: list[dict[str, Any]]) -> None:
    if not records or store is None:
        return
    try:
        await store.plugin_set(TRACE_NAMESPACE, f"turn:{turn_id}", records, user_id=user_id)
    except Exception:
        log.exception("could not store the tool calls of turn %s", turn_id)


async def traces_of(store: object, turns: Sequence[StoredMessage]) -> dict[int, list[dict[str, Any]]]:
    """The stored calls of each user turn among ``turns`` (a page of a transcript), by turn id.
    Records are ``{id, tool, arguments, outcome, result}`` (core/tools/runner.py)."""
    if not isinstance(store, PluginStore):
        return {}
    found: dict[int, list[dict[str, Any]]] = {}
    for turn in turns:
        if turn.role == "user" and turn.user_id:
            records = await store.plugin_get(TRACE_NAMESPACE, f"turn:{turn.id}", user_id=turn.user_id)
            if isinstance(records, list) and records:
                found[turn.id] = [record for record in records if isinstance(record, dict)]
    return found
