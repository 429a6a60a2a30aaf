"""GNSS sources. Each yields :class:`protocol.messages.Position` fixes as an async iterator."""

from edge.gnss.source import GnssSource

__all__ = ["GnssSource"]
