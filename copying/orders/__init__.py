"""Orders: what a copy reads and writes of the commerce backend's orders.

``order_states`` (the order's state machine and placing checks), ``order_edits`` (what may
change while, and the line item edits), ``targets`` (the target built from its source:
line items and the one pricer), ``stock``, ``payments`` (around a gateway call), ``wallet``
(the customer's saved payment sources), ``gateways``, and ``placing`` (placing and
cancelling an order, and who owns one).
"""
