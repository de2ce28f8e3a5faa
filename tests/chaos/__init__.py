"""The chaos suite: real workers, beats, Redis and PostgreSQL, faults injected at random.

``python -m tests.chaos.run --help``; ``make chaos`` runs it at full size.
"""
