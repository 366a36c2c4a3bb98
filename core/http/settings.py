"""The ``[http]`` section of a bot file: the operator endpoints, off by default."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HttpSettings(BaseModel):
    """One HTTP server per process; the Telegram webhook and the web console share it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    host: str = "127.0.0.1"  # 0.0.0.0 in a container, behind the orchestrator's network
    port: int = Field(8080, ge=0, le=65535)  # 0: any free port (tests; the log line names it)
    readiness_timeout_s: float = Field(2.0, gt=0, le=60)  # each /readyz check gets this long
