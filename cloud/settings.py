"""The hub's settings: one TOML file plus ``LASTMILE_...`` environment variables.

Load them with :func:`edge.settings.load_settings` (``load_settings(HubSettings, path)``), never at
import time: tests and the composition root build their own instance.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, SecretStr, StringConstraints, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.settings import MqttSettings
from protocol.messages import DeviceId

MIN_SECRET_CHARS = 32
_PLACEHOLDER_WORDS = ("changeme", "change-me", "change_me", "secret", "password", "example", "xxxx")


class Role(StrEnum):
    """What an API key may do; :mod:`cloud.api.auth` holds the matrix (``ops`` may do anything)."""

    OPS = "ops"
    INTEGRATION = "integration"
    VIEWER = "viewer"


KeyDigest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class HubSettings(BaseSettings):
    """Everything the hub needs to start: storage, broker, HTTP listener, secrets and API keys."""

    model_config = SettingsConfigDict(
        env_prefix="LASTMILE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    database_url: str = Field(
        default="sqlite:///./var/lastmile.db",
        description="Any SQLAlchemy URL: SQLite by default, 'postgresql+psycopg://...' in production",
    )
    mqtt: MqttSettings = MqttSettings()
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    code_master_secret: SecretStr = Field(
        description="Derives every locker's code key. Losing it invalidates every code in flight.",
    )
    api_keys: dict[KeyDigest, Role] = Field(
        default_factory=dict,
        description="SHA-256 hex digest of an API key -> its role; the keys are never stored",
    )
    ingest_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="None: this hub is the one ingest worker, on plain persistent subscriptions "
        "(they survive a Mosquitto restart, and retained status arrives at once). A name: ingest "
        "through MQTT 5 shared subscriptions of that group, with more workers started by "
        "'lastmile hub ingest'; Mosquitto 2.0 does not restore shared subscriptions after a broker "
        "restart, so messages published before the workers re-subscribe are lost there.",
    )
    client_id: str = Field(default="hub", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")
    ingest_batch_max: int = Field(
        default=500, ge=1, le=10_000, description="Messages written per ingest transaction, at most"
    )
    ingest_receive_maximum: int = Field(
        default=1000,
        ge=1,
        le=65_535,
        description=(
            "MQTT 5 Receive Maximum of each ingest worker: the broker sends it at most this many "
            "unacknowledged QoS 1 messages, so a worker that falls behind acknowledges slower "
            "instead of buffering without bound. Twice ingest_batch_max keeps the next batch "
            "arriving while one is written."
        ),
    )
    retention_days: int | None = Field(
        default=None,
        ge=1,
        description="Delete positions older than this many days; None keeps them for ever",
    )
    prune_interval_s: float = Field(default=3600.0, gt=0)
    prune_chunk: int = Field(
        default=10_000, ge=1, description="Rows deleted per transaction while pruning"
    )
    grant_validity_h: int = Field(default=72, ge=1, le=24 * 365)
    code_digits: int = Field(default=8, ge=6, le=12)
    map_tile_url: str | None = Field(
        default=None,
        pattern=r"^(https?://|/)\S*\{z\}\S*\{x\}\S*\{y\}",
        description="Dashboard map tiles, e.g. 'https://tiles.example/{z}/{x}/{y}.png'; None draws "
        "vans, lockers and routes on a plain background (no internet needed)",
    )
    map_tile_attribution: str = Field(default="", max_length=300)
    map_locker_sites: dict[DeviceId, tuple[Latitude, Longitude]] = Field(
        default_factory=dict,
        description="Where each locker stands (id -> [lat, lon]), for the dashboard's map; "
        "lockers do not report a position",
    )

    @field_validator("code_master_secret")
    @classmethod
    def _refuse_weak_secret(cls, value: SecretStr) -> SecretStr:
        """A placeholder secret would make every locker code guessable offline from a grant."""
        raw = value.get_secret_value()
        if len(raw) < MIN_SECRET_CHARS:
            raise ValueError(f"must be at least {MIN_SECRET_CHARS} characters")
        lowered = raw.lower()
        if any(word in lowered for word in _PLACEHOLDER_WORDS) or len(set(raw)) < 8:
            raise ValueError(
                "looks like a placeholder; generate one with "
                "'python -c \"import secrets; print(secrets.token_urlsafe(48))\"'"
            )
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _lowercase_digests(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k).lower(): v for k, v in value.items()}
        return value
