"""Operations for running CoreSync Edge on a real box: data-dir layout and
lock, durability rule, online backup and restore, ``doctor`` checks, and
journald-friendly logging with secret redaction.

Each module is usable on its own; ``edge.cli_ops`` wires them to the
``coresync-edge backup | restore | doctor`` commands.
"""
