"""Whatever arrives on ``fleet/{id}/route``, the van answers it with exactly one ack, refuses it
unless it is a valid signed route for this van, counts the refusal, keeps the route in force and
never raises (hypothesis: raw bytes, any JSON, and a valid route with one field changed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.agent import VehicleAgent
from edge.app import build_gnss
from edge.config import VehicleSettings
from edge.outbox import Outbox
from edge.routes import MemoryRoutes, RouteKeeper
from edge.settings import MqttSettings, load_settings
from protocol.codec import decode, encode
from protocol.errors import DecodeError
from protocol.messages import CommandAck, Route
from protocol.topics import Channel, vehicle_topic
from tests.edge.test_routes import COMMAND_KEY, NOW, Clock, _route
from tests.van_rig import sim_van_config

IN_FORCE = _route()
VALID = json.loads(encode(IN_FORCE))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def _keeper(acks: list[CommandAck]) -> RouteKeeper:
    keeper = RouteKeeper(
        device_id="van-1",
        store=MemoryRoutes(),
        reply=acks.append,
        key=COMMAND_KEY,
        clock=Clock(NOW + timedelta(minutes=1)),
    )
    keeper.handle(encode(IN_FORCE))
    assert keeper.current == IN_FORCE
    acks.clear()
    return keeper


def _one_refusal(payload: bytes) -> None:
    acks: list[CommandAck] = []
    keeper = _keeper(acks)
    returned = keeper.handle(payload)
    assert acks == [returned], "exactly one ack per payload"
    assert not returned.ok and returned.reason and returned.name == "route"
    assert sum(keeper.refused.values()) == 1 and keeper.refused[returned.reason] == 1
    assert keeper.current == IN_FORCE, "garbage never changes the route in force"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_get_exactly_one_refusal(payload: bytes) -> None:
    _one_refusal(payload)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_gets_exactly_one_refusal(value: Any) -> None:
    _one_refusal(json.dumps(value).encode())


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(VALID)),
    st.one_of(st.just("<delete>"), json_values),
)
def test_a_valid_route_with_one_field_changed_gets_exactly_one_refusal(
    field: str, value: Any
) -> None:
    body = dict(VALID)
    if value == "<delete>":
        del body[field]
    else:
        body[field] = value
    payload = json.dumps(body).encode()
    if _same_route(payload):
        return  # e.g. "v" or "type" left out: their defaults make it the very same route
    _one_refusal(payload)


def _same_route(payload: bytes) -> bool:
    try:
        return decode(payload, Route) == IN_FORCE
    except DecodeError:
        return False


@pytest.fixture(scope="module")
def van(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VehicleAgent]:
    """One whole (not running) van agent for every example: what the uplink hands it on the route
    topic must leave exactly one ack in its outbox and the agent fit for the next payload."""
    state = tmp_path_factory.mktemp("routes-fuzz")
    config = sim_van_config(
        state, MqttSettings(port=1), "van-1", time_scale=1, seed=0, batch_age_s=1
    )
    settings = load_settings(VehicleSettings, config)
    outbox = Outbox(state / "outbox.db", limits=settings.outbox)
    try:
        yield VehicleAgent(settings=settings, gnss=build_gnss(settings), outbox=outbox)
    finally:
        outbox.close()


@settings(max_examples=150, deadline=None)
@given(
    payload=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()))
)
def test_the_agent_answers_any_route_payload_with_one_ack_and_keeps_going(
    van: VehicleAgent, payload: bytes
) -> None:
    outbox = van._outbox
    before = len(outbox)
    asyncio.run(van.handle_message(vehicle_topic("van-1", Channel.ROUTE), payload))
    assert len(outbox) == before + 1
    last = outbox.peek(before + 1)[-1]
    assert last.topic == vehicle_topic("van-1", Channel.CMD_ACK)
    ack = decode(last.payload, CommandAck)
    assert not ack.ok and ack.name == "route" and ack.reason
    assert van.health()["routes_refused"] == str(before + 1)
