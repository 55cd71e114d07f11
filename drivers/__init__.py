"""Device drivers: transport, then codec (no I/O), then typed device model."""
