"""The van agent, and the edge runtime both agents share (durable outbox, MQTT uplink, settings)."""

__version__ = "0.1.0"
