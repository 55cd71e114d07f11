"""CoreSync Edge: the spa controller daemon (rooms, door, shop, sync)."""
