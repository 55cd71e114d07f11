"""The door: face access (opt-in, consented), member PINs and staff remote unlock.

Kept import-light on purpose: :mod:`edge.config` imports :mod:`edge.door.config`,
so nothing here may import the core or the vision worker.  Use
:mod:`edge.door.service` for :class:`DoorService`.
"""
