"""Synchronisation between the member registry and the ledgers (issue 8).

Data sets (:mod:`datasets`): member details both ways with a per-field policy, the
ledger's transaction history of linked customers, and their balances. Runs are
incremental (cursors with an overlap window, content hashes), checkpointed per page,
planned (dry run) or applied, started from the portal, the CLI, the API or a schedule.
"""
