"""Opening a python-can bus from :class:`CanSettings`: the one place that knows python-can's arguments.

python-can imports a backend's module only when ``interface=`` names it, so a Pi without an SLCAN
adapter (or a laptop without SocketCAN) never loads that driver. The factory is injected into
:class:`edge.can.source.CanSource`, so tests can hand it a failing or instrumented bus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import can

from edge.can.decoder import CanFilter
from edge.can.errors import CanOpenError
from edge.can.settings import CanSettings

BusFactory = Callable[[CanSettings, Sequence[CanFilter]], can.BusABC]


def open_bus(settings: CanSettings, filters: Sequence[CanFilter]) -> can.BusABC:
    """Open the configured bus with receive filters; raise :class:`CanOpenError` if it cannot be.

    On SocketCAN the filters are installed in the kernel; python-can applies them in software on
    ``virtual`` and ``slcan``, which is why the decoder still checks every id it is given.
    """
    kwargs: dict[str, Any] = {}
    if settings.interface == "slcan":
        # python-can sleeps 2 s after opening the tty by default, for adapters that reset on open;
        # 0.1 s was enough for ours (rigs README section 4) and keeps reconnects snappy.
        kwargs["sleep_after_open"] = 0.1
    try:
        return can.Bus(
            interface=settings.interface,
            channel=settings.channel,
            bitrate=settings.bitrate,
            can_filters=[f.as_python_can() for f in filters],
            **kwargs,
        )
    except (can.CanError, OSError, ValueError, ImportError) as err:
        raise CanOpenError(
            settings.interface, settings.channel, str(err) or type(err).__name__
        ) from err
