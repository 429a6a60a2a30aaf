"""The hub's settings: one TOML file plus ``LASTMILE_...`` environment variables.

Load them with :func:`edge.settings.load_settings` (``load_settings(HubSettings, path)``), never at
import time: tests and the composition root build their own instance.
"""

from __future__ import annotations

from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.fleet import FleetSettings
from cloud.services.trips import TripRules
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
UserName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")]


class UserSettings(BaseModel):
    """A person who signs in for bearer tokens (``POST /api/v1/auth/token``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    password_hash: str = Field(
        pattern=r"^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$",
        description="from 'lastmile hub hash-password'; the password itself is never stored",
    )


def secret_problem(raw: str) -> str | None:
    """Why ``raw`` is no good as a signing or derivation secret, or None if it is fine."""
    if len(raw) < MIN_SECRET_CHARS:
        return f"must be at least {MIN_SECRET_CHARS} characters"
    lowered = raw.lower()
    if any(word in lowered for word in _PLACEHOLDER_WORDS) or len(set(raw)) < 8:
        return (
            "looks like a placeholder; generate one with "
            "'python -c \"import secrets; print(secrets.token_urlsafe(48))\"'"
        )
    return None


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
    environment: Literal["production", "development"] = Field(
        default="production",
        description="'development' accepts a placeholder jwt_secret; nothing else changes",
    )
    users: dict[UserName, UserSettings] = Field(
        default_factory=dict, description="who may sign in for bearer tokens, with their roles"
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="Signs bearer tokens (HS256); required when users are configured. Changing it "
        "signs every user out.",
    )
    token_ttl_s: int = Field(
        default=900, ge=60, le=24 * 3600, description="how long a bearer token is valid"
    )
    trips: TripRules = Field(default_factory=TripRules)
    kpi_interval_s: float = Field(
        default=600.0, gt=0, description="How often the hub materialises closed days' KPIs"
    )
    kpi_lookback_days: int = Field(
        default=7,
        ge=1,
        le=366,
        description="Closed days (up to yesterday) the KPI job makes sure are materialised; older "
        "days are rebuilt when late data changes them, or by 'lastmile kpis rebuild'",
    )
    ingested_retention_days: int = Field(
        default=30,
        ge=1,
        description="Forget message ids (the idempotency table) after this many days. A message "
        "redelivered later would be stored twice, so this must exceed every redelivery window: "
        "the hub's broker session (mqtt.session_expiry_s, checked) and the longest a van may stay "
        "offline holding a message whose PUBACK it never saw.",
    )
    courier_validity_h: int = Field(default=12, ge=1, le=24 * 30)
    return_validity_h: int = Field(default=48, ge=1, le=24 * 365)
    command_ttl_s: int = Field(
        default=300, ge=10, le=3600, description="Lifetime of a signed remote command"
    )
    tracking_validity_days: int = Field(default=30, ge=1, le=365)
    eta_speed_kmh: float = Field(
        default=25.0, gt=0, le=130, description="Typical van speed for the provisional ETA"
    )
    flows_poll_s: float = Field(default=0.5, gt=0, le=60)
    late_stop_check_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How often dispatched routes are checked for late stops",
    )
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_backoff_s: float = Field(default=2.0, gt=0, le=3600)
    webhook_backoff_max_s: float = Field(default=600.0, gt=0, le=86_400)
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=120)
    webhook_allow_networks: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description="CIDRs webhooks may be delivered into although they are loopback, private or "
        "otherwise not public (e.g. ['127.0.0.0/8', '::1/128'] for a receiver on this machine). "
        "Empty by default: the hub refuses to call into private networks (SSRF guard).",
    )
    travel_servers: list[str] = Field(
        default_factory=list,
        description="Base URLs of the routing servers (OSRM, Valhalla) a submitted problem may "
        "name as travel.url, e.g. ['http://osrm.internal:5000']. The hub calls no other (SSRF "
        "guard); empty by default, so problems use haversine or euclidean travel.",
    )
    webhook_secret_key: SecretStr | None = Field(
        default=None,
        description="Seals webhook secrets at rest (AES-256-GCM via HKDF). Unset: a key derived "
        "from code_master_secret. Changing it leaves every stored webhook secret unopenable.",
    )
    stream_recheck_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="How often an open /stream re-checks that its key or token is not revoked; "
        "expiry is checked before every event",
    )
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
    fleet: FleetSettings = Field(
        default_factory=FleetSettings,
        description="vehicle types, depots and CO2 emission factors, for the KPIs",
    )

    @field_validator("code_master_secret")
    @classmethod
    def _refuse_weak_secret(cls, value: SecretStr) -> SecretStr:
        """A placeholder secret would make every locker code guessable offline from a grant."""
        problem = secret_problem(value.get_secret_value())
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("webhook_secret_key")
    @classmethod
    def _refuse_weak_webhook_key(cls, value: SecretStr | None) -> SecretStr | None:
        """A guessable key would open every stored webhook secret from a database dump."""
        if value is not None and (problem := secret_problem(value.get_secret_value())):
            raise ValueError(problem)
        return value

    @field_validator("travel_servers")
    @classmethod
    def _http_travel_servers(cls, value: list[str]) -> list[str]:
        """Only http(s) base URLs without credentials or a query: the planner appends paths."""
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"travel server {url!r} is not an http(s) URL with a host")
            if parts.username or parts.password or parts.query or parts.fragment:
                raise ValueError(
                    f"travel server {url!r}: no credentials, query or fragment in a base URL"
                )
        return [url.rstrip("/") for url in value]

    @field_validator("api_keys", mode="before")
    @classmethod
    def _lowercase_digests(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k).lower(): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _tokens_and_retention(self) -> Self:
        """A token secret that is missing or guessable would let anyone mint an ops token; an
        idempotency horizon inside the broker's redelivery window would store messages twice."""
        if self.users and self.jwt_secret is None:
            raise ValueError("users are configured but jwt_secret is not: tokens need a secret")
        if self.jwt_secret is not None and self.environment != "development":
            problem = secret_problem(self.jwt_secret.get_secret_value())
            if problem is not None:
                raise ValueError(f"jwt_secret {problem} (only environment='development' allows)")
        if self.ingested_retention_days * 86_400 <= self.mqtt.session_expiry_s:
            raise ValueError(
                f"ingested_retention_days ({self.ingested_retention_days}) must be longer than the "
                f"hub's broker session (mqtt.session_expiry_s = {self.mqtt.session_expiry_s} s)"
            )
        return self
