"""What every settings part shares: read from the environment and an optional ``.env``, nothing else.

Each part (:mod:`.infrastructure`, :mod:`.business`, :mod:`.llm`, :mod:`.servers`) is a
``BaseSettings`` whose field aliases are the environment variables; a process loads only the parts
it uses (:mod:`.processes`), so one process's checks never stop another.
"""

from __future__ import annotations

from pydantic import AliasChoices
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsPart(BaseSettings):
    """A group of settings of one concern. Field aliases are the environment variables."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)

    @classmethod
    def environment_names(cls) -> frozenset[str]:
        """The environment variables this part reads."""
        names: set[str] = set()
        for name, field in cls.model_fields.items():
            if isinstance(field.validation_alias, AliasChoices):
                names.update(str(choice) for choice in field.validation_alias.choices)
            else:
                names.add(field.alias or name)
        return frozenset(names)
