"""Alerts that reach staff: critical events to e-mail and webhook channels
(docs/operations.md, Alerts)."""
