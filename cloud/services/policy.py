"""The code and flow parameters the services take, read from the hub's settings in one place."""

from __future__ import annotations

from datetime import timedelta

from cloud.services.codes import CodeSecrets
from cloud.services.locker_flows import FlowPolicy
from cloud.settings import HubSettings


def code_secrets(settings: HubSettings) -> CodeSecrets:
    return CodeSecrets(
        master_secret=settings.code_master_secret.get_secret_value().encode(),
        digits=settings.code_digits,
    )


def flow_policy(settings: HubSettings) -> FlowPolicy:
    return FlowPolicy(
        secrets=code_secrets(settings),
        pickup_validity=timedelta(hours=settings.grant_validity_h),
        return_validity=timedelta(hours=settings.return_validity_h),
        courier_validity=timedelta(hours=settings.courier_validity_h),
    )
