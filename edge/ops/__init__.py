"""Operations for running CoreSync Edge on a real box: data-dir layout (the
one list of data files) and lock, durability rule, online encrypted backup
and restore, ``doctor`` checks, retention of the growing tables, and
journald-friendly logging with secret redaction.

Each module is usable on its own; ``edge.cli_ops`` wires them to the
``coresync-edge backup | restore | doctor`` commands.
"""
