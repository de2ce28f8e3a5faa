"""Copies: the order copy as a record.

``lifecycle`` creates, retries and aborts one; ``copy_states`` is its state machine (the
only code that assigns its status); ``options`` what a copy asks for; ``history`` its
events; ``dispatch`` the announcement after commit; ``bulk`` retries many; ``sweeper``
rescues the abandoned ones; ``status`` counts them.
"""
