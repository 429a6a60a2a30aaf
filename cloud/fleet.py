"""What the hub knows of its fleet that no device reports: each van's type and home depot, each
locker's depot, and the CO2 emission factor of each vehicle type (the ``[fleet]`` hub setting).

Depots are a name, nothing more: a van belongs to the depot it starts its rounds from, a locker to
the depot whose vans fill it. A van or locker not listed belongs to ``default_depot`` and a van is
``default_vehicle_type``, so a hub with no ``[fleet]`` section still reports KPIs (one depot).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from protocol.messages import DeviceId

DEPOT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DepotName = Annotated[str, StringConstraints(pattern=DEPOT_NAME_PATTERN)]
VehicleType = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]{0,39}$")]

DEFAULT_EMISSION_G_PER_KM: dict[str, float] = {
    # Well-to-wheel grams of CO2 per km, typical for urban delivery; tune them to your fleet.
    "diesel_van": 250.0,  # 3.5 t diesel van, ~9 l/100 km in stop-and-go (2.7 kg CO2 per litre)
    "petrol_van": 240.0,
    "e_van": 50.0,  # ~0.2 kWh/km at an EU-average grid mix of ~250 g CO2/kWh
    "e_cargo_bike": 5.0,
}


class VehicleProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: VehicleType | None = Field(default=None, description="None: the default vehicle type")
    depot: DepotName | None = Field(default=None, description="None: the default depot")


class FleetSettings(BaseModel):
    """Types, depots and emission factors; see the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_depot: DepotName = "main"
    default_vehicle_type: VehicleType = "diesel_van"
    vehicles: dict[DeviceId, VehicleProfile] = Field(default_factory=dict)
    lockers: dict[DeviceId, DepotName] = Field(
        default_factory=dict, description="locker id -> its depot"
    )
    emission_g_per_km: dict[VehicleType, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: dict(DEFAULT_EMISSION_G_PER_KM),
        description="grams of CO2 per km driven, per vehicle type (well-to-wheel)",
    )

    @model_validator(mode="after")
    def _every_type_has_a_factor(self) -> FleetSettings:
        """A type without a factor would make CO2 per parcel silently zero for its vans."""
        types = {self.default_vehicle_type} | {
            p.type for p in self.vehicles.values() if p.type is not None
        }
        missing = sorted(types - set(self.emission_g_per_km))
        if missing:
            raise ValueError(
                f"no emission factor for vehicle type(s) {', '.join(missing)}: add them to "
                "fleet.emission_g_per_km"
            )
        return self

    def depot_of_vehicle(self, vehicle_id: str) -> str:
        profile = self.vehicles.get(vehicle_id)
        return (profile.depot if profile else None) or self.default_depot

    def type_of_vehicle(self, vehicle_id: str) -> str:
        profile = self.vehicles.get(vehicle_id)
        return (profile.type if profile else None) or self.default_vehicle_type

    def depot_of_locker(self, locker_id: str) -> str:
        return self.lockers.get(locker_id, self.default_depot)

    def emission_g_per_km_of(self, vehicle_id: str) -> float:
        return self.emission_g_per_km[self.type_of_vehicle(vehicle_id)]
