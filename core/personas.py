"""Persona definitions: TOML files validated at load, errors naming file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ConfigError, NotFound
from core.i18n import _, normalize_locale
from core.settings import describe_validation_error, read_toml

BUNDLED_PERSONAS = Path(__file__).resolve().parent.parent / "personas"


class ExampleDialogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    user: str = Field(min_length=1)
    assistant: str = Field(min_length=1)


class PersonaLanguage(BaseModel):
    """A persona's texts in one more language (``[languages.zh]``); what is left out stays as above."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = Field("", max_length=300)
    system_prompt: str = Field("", max_length=8000)
    greeting: str = Field("", max_length=2000)
    style: str = ""


class Persona(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    display_name: str = ""
    description: str = Field(min_length=1, max_length=300)
    system_prompt: str = Field(min_length=1, max_length=8000)
    greeting: str = Field(min_length=1, max_length=2000)
    # Other openings a character card offers (kept from imported cards; the greeting stays the default).
    alternate_greetings: tuple[Annotated[str, Field(min_length=1, max_length=2000)], ...] = ()
    style: str = ""
    language: str = "en"
    example_dialogues: tuple[ExampleDialogue, ...] = ()
    safety_notes: str = ""
    languages: dict[str, PersonaLanguage] = Field(default_factory=dict)  # "zh", "en"…: per-language texts

    @property
    def title(self) -> str:
        return self.display_name or self.name

    def localized(self, locale: str) -> "Persona":
        """This persona as a reader of ``locale`` (a catalog locale, e.g. ``zh_Hans``) sees it."""
        for tag, texts in self.languages.items():
            if normalize_locale(tag) == locale:
                given = {name: value for name, value in texts.model_dump().items() if value}
                return self.model_copy(update=given)
        return self

    def system_text(self, extra: str = "") -> str:
        """The system prompt: persona, then ``extra`` context, then safety notes last.

        Safety notes close the system prompt so that nothing added before them (profile
        or memory text) can be the last word.
        """
        parts = [self.system_prompt.strip()]
        if self.style:
            parts.append(f"Style: {self.style.strip()}")
        if extra:
            parts.append(extra.strip())
        if self.safety_notes:
            parts.append(f"Rules: {self.safety_notes.strip()}")
        return "\n\n".join(parts)


def load_persona_file(path: str | Path) -> Persona:
    path = Path(path)
    data = read_toml(path)
    try:
        return Persona.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(str(path), exc)) from None


class PersonaLibrary:
    """All personas a bot knows, by name. Later folders override earlier ones."""

    def __init__(self, personas: dict[str, Persona]) -> None:
        if not personas:
            raise ConfigError("no personas found")
        self._personas = dict(sorted(personas.items()))

    @classmethod
    def load(cls, folders: list[Path]) -> "PersonaLibrary":
        found: dict[str, Persona] = {}
        for folder in folders:
            if not folder.is_dir():
                raise ConfigError(f"{folder}: persona folder not found")
            for file in sorted(folder.glob("*.toml")):
                persona = load_persona_file(file)
                found[persona.name] = persona
        return cls(found)

    def get(self, name: str) -> Persona:
        try:
            return self._personas[name.lower()]
        except KeyError:
            raise NotFound(
                f"unknown persona {name!r}",
                user_message=_("Unknown persona. Available: {names}", names=", ".join(self.names())),
            ) from None

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._personas

    def names(self) -> list[str]:
        return list(self._personas)

    def all(self) -> list[Persona]:
        return list(self._personas.values())

    def extend(self, personas: list[Persona]) -> None:
        """Add personas that features declare (``seams.personas``); a later one overrides by name."""
        self._personas = dict(sorted((self._personas | {persona.name: persona for persona in personas}).items()))
