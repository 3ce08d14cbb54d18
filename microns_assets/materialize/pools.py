"""The `cave` pool's limit, set up in the instance before a command's runs start.

A step in a pool creates the pool's row (at the instance's `default_limit`) the first time it
runs. On Postgres, two steps that do so at the same moment collide (dagster 1.13: the loser's
INSERT fails and its fallback UPDATE runs in the aborted transaction), failing a run. Two
`materialize` commands started together on a new instance hit exactly that; so each command
creates the pool's row first, and treats "another process created it meanwhile" as done.
"""

from __future__ import annotations

import dagster as dg

#: Every pool our assets use (`pool=` on the raw tables and synapse chunks).
POOLS = ("cave",)


def ensure_pools(instance: dg.DagsterInstance) -> None:
    """Create the row of every pool that has none yet, at the instance's default limit."""
    storage = instance.event_log_storage
    if instance.global_op_concurrency_default_limit is None:
        return  # no default limit: pools without a limit set are unlimited, nothing to create
    for pool in POOLS:
        if pool in storage.get_concurrency_keys():
            continue
        try:
            storage.initialize_concurrency_limit_to_default(pool)
        except Exception:
            if pool not in storage.get_concurrency_keys():
                raise  # not the race: a real failure
