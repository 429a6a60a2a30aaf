"""The webhook guard and secret box of a hub's settings, built in one place for the API, the
sender and the migration (so all three agree on the key and the allowed networks)."""

from __future__ import annotations

from cloud.services.webhook_secrets import SecretBox, box_for
from cloud.services.webhook_targets import Resolver, TargetPolicy, policy_for
from cloud.settings import HubSettings


def secret_box(settings: HubSettings) -> SecretBox:
    key = settings.webhook_secret_key
    return box_for(
        webhook_secret_key=None if key is None else key.get_secret_value(),
        code_master_secret=settings.code_master_secret.get_secret_value(),
    )


def target_policy(settings: HubSettings, *, resolver: Resolver | None = None) -> TargetPolicy:
    return policy_for(allowed_networks=settings.webhook_allow_networks, resolver=resolver)
