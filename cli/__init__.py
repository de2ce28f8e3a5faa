"""The ``ordercopy`` command."""
