"""The shipped broker config, running: who may connect, and who may publish and read what."""

from __future__ import annotations

import ssl
from pathlib import Path

from cloud.pki import make_pki
from cloud.provision import DEVICE_PUBLISHES, DEVICE_SUBSCRIBES
from protocol.topics import CHANNELS, Channel, DeviceKind, locker_topic, vehicle_topic

from .conftest import Fleet, ProbeFn
from .rig import Probe, ProductionBroker

NOT_AUTHORIZED = "Not authorized"


def _connected(p: Probe) -> Probe:
    rc = p.connect()
    assert rc is not None and not rc.is_failure, f"refused: {rc} {p.error}"
    return p


def _as(probe: ProbeFn, broker: ProductionBroker, device, **kwargs) -> Probe:
    return _connected(
        probe(broker.ports.tls, username=device.id, password=device.password, **kwargs)
    )


# --- Who may connect --------------------------------------------------------------------------


def test_a_provisioned_device_connects_over_tls(cloud, fleet: Fleet, probe: ProbeFn) -> None:
    _as(probe, cloud, fleet.van_a)


def test_a_wrong_password_is_refused(cloud, fleet: Fleet, probe: ProbeFn) -> None:
    p = probe(cloud.ports.tls, username=fleet.van_a.id, password="not-" + fleet.van_a.password)
    assert p.connect().getName() == NOT_AUTHORIZED


def test_an_unknown_user_is_refused(cloud, probe: ProbeFn) -> None:
    p = probe(cloud.ports.tls, username="van-99", password="whatever-it-says")
    assert p.connect().getName() == NOT_AUTHORIZED


def test_no_credentials_are_refused_on_both_listeners(cloud, probe: ProbeFn) -> None:
    assert probe(cloud.ports.tls, client_id="anon").connect().getName() == NOT_AUTHORIZED
    local = probe(cloud.ports.local, ca=None, client_id="anon-local")
    assert local.connect().getName() == NOT_AUTHORIZED


def test_plain_tcp_to_the_tls_port_gets_no_session(cloud, fleet: Fleet, probe: ProbeFn) -> None:
    p = probe(cloud.ports.tls, ca=None, username=fleet.van_a.id, password=fleet.van_a.password)
    assert p.connect() is None  # the broker waits for a TLS handshake and never sends a CONNACK
    assert not p.connected.is_set()


def test_a_client_trusting_another_ca_refuses_the_broker(
    cloud, fleet: Fleet, probe: ProbeFn, tmp_path: Path
) -> None:
    impostor_ca = make_pki(tmp_path / "other", ca_name="someone-else").ca_cert
    p = probe(
        cloud.ports.tls, ca=impostor_ca, username=fleet.van_a.id, password=fleet.van_a.password
    )
    assert p.connect() is None
    assert isinstance(p.error, ssl.SSLCertVerificationError)


def test_a_device_cannot_knock_another_off_by_taking_its_client_id(
    cloud, fleet: Fleet, probe: ProbeFn
) -> None:
    van_b = _as(probe, cloud, fleet.van_b)
    _as(probe, cloud, fleet.van_a, client_id=fleet.van_b.id)  # becomes "van-17" at the broker
    assert not van_b.disconnected.wait(1.0), "van-18 was disconnected by van-17"


# --- Who may publish what ---------------------------------------------------------------------


def test_a_van_publishes_its_own_channels_and_the_hub_gets_them_through_a_shared_subscription(
    cloud, fleet: Fleet, probe: ProbeFn, hub: Probe
) -> None:
    for channel in DEVICE_PUBLISHES[DeviceKind.VEHICLE]:
        assert hub.subscribe(f"$share/hub/fleet/+/{channel}") == ["Granted QoS 1"]
    van = _as(probe, cloud, fleet.van_a)
    for channel in DEVICE_PUBLISHES[DeviceKind.VEHICLE]:
        topic = vehicle_topic(fleet.van_a.id, channel)
        assert van.publish(topic) == "Success"
        hub.expect(topic)


def test_the_hubs_real_subscriptions_are_all_granted(cloud, hub: Probe) -> None:
    from cloud.ingest import subscriptions

    for topic_filter in subscriptions("hub"):
        assert hub.subscribe(topic_filter) == ["Granted QoS 1"], topic_filter


def test_a_van_cannot_publish_as_another_van_nor_as_a_locker(
    cloud, fleet: Fleet, probe: ProbeFn, hub: Probe
) -> None:
    hub.subscribe("$share/hub/fleet/+/telemetry")
    hub.subscribe("$share/hub/lockers/+/events")
    van = _as(probe, cloud, fleet.van_a)
    assert van.publish(vehicle_topic(fleet.van_b.id, Channel.TELEMETRY)) == NOT_AUTHORIZED
    assert van.publish(locker_topic(fleet.locker.id, Channel.EVENTS)) == NOT_AUTHORIZED
    # nor as the hub, to itself or anyone
    assert van.publish(vehicle_topic(fleet.van_a.id, Channel.CMD)) == NOT_AUTHORIZED
    assert van.publish(locker_topic(fleet.locker.id, Channel.GRANTS)) == NOT_AUTHORIZED
    assert hub.received_nothing()


def test_a_locker_cannot_publish_vehicle_telemetry_even_under_its_own_id(
    cloud, fleet: Fleet, probe: ProbeFn, hub: Probe
) -> None:
    hub.subscribe("$share/hub/fleet/+/telemetry")
    hub.subscribe("$share/hub/lockers/+/events")
    locker = _as(probe, cloud, fleet.locker)
    assert locker.publish(vehicle_topic(fleet.locker.id, Channel.TELEMETRY)) == NOT_AUTHORIZED
    assert locker.publish(vehicle_topic(fleet.van_a.id, Channel.TELEMETRY)) == NOT_AUTHORIZED
    assert hub.received_nothing()
    own = locker_topic(fleet.locker.id, Channel.EVENTS)
    assert locker.publish(own) == "Success"
    hub.expect(own)


def test_a_van_never_receives_another_vans_commands(
    cloud, fleet: Fleet, probe: ProbeFn, hub: Probe
) -> None:
    their_cmd = vehicle_topic(fleet.van_b.id, Channel.CMD)
    van_b = _as(probe, cloud, fleet.van_b)
    assert van_b.subscribe(their_cmd) == ["Granted QoS 1"]
    snoop = _as(probe, cloud, fleet.van_a)
    snoop.subscribe(their_cmd)  # SUBACK may even grant it: the read ACL applies on delivery
    snoop.subscribe("fleet/#")

    assert hub.publish(their_cmd, b'{"cmd": "stop"}') == "Success"
    van_b.expect(their_cmd)  # the control: the command was really sent and delivered
    assert snoop.received_nothing()


def test_devices_receive_what_the_hub_sends_them(
    cloud, fleet: Fleet, probe: ProbeFn, hub: Probe
) -> None:
    cases = [(fleet.van_a, DeviceKind.VEHICLE), (fleet.locker, DeviceKind.LOCKER)]
    for device, kind in cases:
        client = _as(probe, cloud, device)
        for channel in DEVICE_SUBSCRIBES[kind]:
            topic = (vehicle_topic if kind is DeviceKind.VEHICLE else locker_topic)(
                device.id, channel
            )
            assert client.subscribe(topic) == ["Granted QoS 1"]
            assert hub.publish(topic) == "Success"
            client.expect(topic)


def test_every_channel_of_the_contract_is_either_published_or_subscribed_by_its_device() -> None:
    for kind in DeviceKind:
        pub, sub = set(DEVICE_PUBLISHES[kind]), set(DEVICE_SUBSCRIBES[kind])
        assert not pub & sub
        assert pub | sub == CHANNELS[kind]
