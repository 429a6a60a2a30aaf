"""Whatever arrives on the grants topic, the handler never raises and never stores nonsense."""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from locker.app import open_locker
from locker.hardware import MockLockerFactory
from locker.keypad import SimKeypad
from protocol.codec import encode
from tests.locker.story import (
    CMD,
    COMMAND_KEY,
    GRANTS,
    command_for,
    grant,
    relay_history,
    settings_for,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
GRANT_FIELDS = json.loads(encode(grant("1234")))


def _corrupted_grants() -> st.SearchStrategy[bytes]:
    """A valid grant with one field replaced by anything JSON can hold."""
    return st.builds(
        lambda name, value: json.dumps({**GRANT_FIELDS, name: value}).encode(),
        st.sampled_from(sorted(set(GRANT_FIELDS) - {"locker_id"})),
        json_values,
    ).filter(lambda b: json.loads(b) != GRANT_FIELDS)


payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    _corrupted_grants(),
)


def test_random_payloads_are_counted_and_dropped(tmp_path, factory: MockLockerFactory) -> None:
    fed = 0
    with (
        open_locker(settings_for(tmp_path), pin_factory=factory, keypad=SimKeypad()) as agent,
        asyncio.Runner() as runner,
    ):

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(payload=payloads)
        def feed(payload: bytes) -> None:
            nonlocal fed
            fed += 1
            before = accounted()
            runner.run(agent.handle_message(GRANTS, payload))  # never raises
            assert accounted() == before + 1

        def accounted() -> int:
            """Every message ends up counted as rejected, or as a grant (a corrupted field can
            happen to hold another valid value, e.g. single_use false)."""
            s = agent.stats
            return sum(s.rejected_messages.values()) + s.grants_stored + s.grants_repeated

        feed()
        assert accounted() == fed
        assert agent.stats.grants_stored <= 1  # corrupted copies share one grant_id
        assert sum(agent.stats.rejected_messages.values()) > fed // 2


def test_messages_on_other_topics_are_refused(tmp_path, factory: MockLockerFactory) -> None:
    with open_locker(settings_for(tmp_path), pin_factory=factory, keypad=SimKeypad()) as agent:
        for other in ("lockers/L2/grants", "lockers/L1/events", "lockers/L1/cmd/ack"):
            asyncio.run(agent.handle_message(other, encode(grant("1234"))))
        assert agent.stats.rejected_messages == {"unexpected_topic": 3}
        assert agent.stats.grants_stored == 0


COMMAND_FIELDS = json.loads(encode(command_for(compartment=1)))


def _corrupted_commands() -> st.SearchStrategy[bytes]:
    """A validly signed command with one field replaced by anything JSON can hold."""
    return st.builds(
        lambda name, value: json.dumps({**COMMAND_FIELDS, name: value}).encode(),
        st.sampled_from(sorted(COMMAND_FIELDS)),
        json_values,
    ).filter(lambda b: json.loads(b) != COMMAND_FIELDS)


def test_random_payloads_on_the_command_topic_never_open_anything(
    tmp_path, factory: MockLockerFactory
) -> None:
    """Garbage is counted as a bad command; a corrupted signed command fails its signature (or its
    shape) and is refused with an ack; nothing ever energizes a relay."""
    fed = 0
    with (
        open_locker(
            settings_for(tmp_path, command_key=COMMAND_KEY.hex()),
            pin_factory=factory,
            keypad=SimKeypad(),
        ) as agent,
        asyncio.Runner() as runner,
    ):

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(payload=st.one_of(payloads, _corrupted_commands()))
        def feed(payload: bytes) -> None:
            nonlocal fed
            fed += 1
            before = accounted()
            runner.run(agent.handle_message(CMD, payload))  # never raises
            assert accounted() == before + 1

        def accounted() -> int:
            s = agent.stats
            return (
                sum(s.rejected_messages.values())
                + sum(s.commands_refused.values())
                + s.commands_executed
            )

        feed()
        assert accounted() == fed
        assert agent.stats.commands_executed == 0
        assert set(agent.stats.commands_refused) <= {"bad_signature", "wrong_device"}
        for n in range(1, 5):
            assert relay_history(factory, n) == [False]
