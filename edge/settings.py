"""Settings from a TOML file plus environment variables, for both agents and the hub.

Precedence, highest first: environment (``LASTMILE_...``, nested with ``__``), then the TOML file, then
defaults. An invalid file is refused with :class:`~edge.errors.ConfigError` naming the file and fields.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from edge.errors import ConfigError

S = TypeVar("S", bound=BaseSettings)


class MqttSettings(BaseModel):
    """How a program reaches the broker."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls_ca_file: Path | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(
        default=7 * 24 * 3600,
        ge=0,
        description="How long the broker keeps our subscriptions and queued QoS 1 messages offline.",
    )
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)


class AgentSettingsBase(BaseSettings):
    """What every agent has: an id, a broker, and a directory for its durable state."""

    model_config = SettingsConfigDict(
        env_prefix="LASTMILE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    device_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    mqtt: MqttSettings = MqttSettings()
    state_dir: Path = Path("/var/lib/lastmile")


def _problems(err: ValidationError) -> list[str]:
    out = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "<root>"
        got = e.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        out.append(f"field '{loc}': {e['msg']}{shown}")
    return out


def load_settings(cls: type[S], path: Path | str | None = None, **overrides: Any) -> S:
    """Build ``cls`` from ``path`` (TOML), the environment and ``overrides`` (highest precedence)."""
    toml_path = Path(path) if path is not None else None
    if toml_path is not None:
        if not toml_path.is_file():
            raise ConfigError(toml_path, ["file not found"])
        try:
            tomllib.loads(toml_path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(toml_path, [f"not valid TOML: {err}"]) from None

    class _FromFile(cls):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls_,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if toml_path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
            return tuple(sources)

    _FromFile.__name__ = cls.__name__
    _FromFile.__qualname__ = cls.__qualname__
    try:
        return _FromFile(**overrides)
    except ValidationError as err:
        raise ConfigError(toml_path, _problems(err)) from None
