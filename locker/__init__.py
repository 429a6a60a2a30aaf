"""The parcel-locker agent: compartments (relay + door switch), a keypad and grants from the hub.

It runs on the shared edge runtime (durable outbox, MQTT uplink) and never imports the hub's
dependencies, so a locker's Raspberry Pi installs only the ``locker`` extra.
"""

__version__ = "0.1.0"
