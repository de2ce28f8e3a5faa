"""Conflicting requests sent at once to a real web process and worker, then the money
promises (tests/money.py) checked from the database and the gateway's ledger."""
