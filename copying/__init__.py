"""The domain: order copies and the orders, stock and payments they touch.

Knows nothing of Celery or HTTP: functions take a ``Session`` (or a session
factory, for multi-transaction runs) and ids, and say what to announce after
commit through :mod:`copying.copies.dispatch`.
"""
