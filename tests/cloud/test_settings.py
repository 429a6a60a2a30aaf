"""Hub settings: TOML plus environment, and a master secret that cannot be a placeholder."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.settings import HubSettings, Role
from edge.errors import ConfigError
from edge.settings import load_settings
from tests.cloud.helpers import MASTER_SECRET

DIGEST = "a" * 64


def _write(tmp_path: Path, secret: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(
        f'code_master_secret = "{secret}"\n'
        'database_url = "sqlite:///var/x.db"\n'
        "[api_keys]\n"
        f'{DIGEST} = "viewer"\n'
        "[mqtt]\n"
        "port = 1884\n"
    )
    return path


def test_a_toml_file_and_the_environment_make_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LASTMILE_HTTP_PORT", "8123")
    monkeypatch.setenv("LASTMILE_MQTT__HOST", "broker.example")

    settings = load_settings(HubSettings, _write(tmp_path, MASTER_SECRET))

    assert settings.http_port == 8123
    assert settings.mqtt.host == "broker.example"
    assert settings.mqtt.port == 1884
    assert settings.api_keys == {DIGEST: Role.VIEWER}
    assert settings.code_digits == 8
    assert settings.grant_validity_h == 72
    assert MASTER_SECRET not in repr(settings)


@pytest.mark.parametrize(
    "secret",
    ["changeme", "changeme-changeme-changeme-changeme", "x" * 40, "short-but-random-7f3a"],
)
def test_a_weak_master_secret_is_refused(tmp_path: Path, secret: str) -> None:
    with pytest.raises(ConfigError, match="code_master_secret"):
        load_settings(HubSettings, _write(tmp_path, secret))


def test_the_master_secret_is_required() -> None:
    with pytest.raises(ConfigError, match="code_master_secret"):
        load_settings(HubSettings, None)


def test_an_api_key_must_be_configured_by_its_digest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="api_keys"):
        load_settings(
            HubSettings, None, code_master_secret=MASTER_SECRET, api_keys={"plain-key": "ops"}
        )
