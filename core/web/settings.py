"""The ``[web]`` section of a bot file: the operator console, off by default."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class WebSettings(BaseModel):
    """Where the console listens and how operators sign in (docs/console.md).

    With ``[http] enabled = true`` the console is mounted under ``prefix`` on that one
    server and ``host``/``port`` here are not used; ``personabot web`` always uses them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    token_env: str | None = "PERSONABOT_WEB_TOKEN"  # the admin token's variable; unset: sign-in links only
    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535)  # 0: any free port (tests)
    prefix: str = "/console"
    session_ttl_s: float = Field(8 * 3600.0, gt=0)  # a session ends this long after sign-in
    link_ttl_s: float = Field(600.0, gt=0)  # a sign-in link from `personabot web link` works this long
    max_failures: int = Field(5, ge=1)  # wrong tokens per client address per failure window
    failure_window_s: float = Field(300.0, gt=0)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        stripped = prefix.rstrip("/")
        if not stripped.startswith("/") or any(c in stripped for c in "?#%\\ ") or "//" in stripped:
            raise ValueError("must be a path such as /console")
        return stripped
