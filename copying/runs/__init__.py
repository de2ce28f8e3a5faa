"""Runs: how a claimed copy gets from its last checkpoint to its end.

``execute`` claims copies and runs them through the one pipeline (``pipeline``), alone or
many at once; ``stages`` holds what each stage does, ``finish`` the only writer of a
copy's end, ``run`` what a run carries between transactions.
"""

from copying.runs.finish import give_up
from copying.runs.pipeline import Ran, claim, execute
from copying.runs.run import Clock, Outcome, Run, RunConfig, place_key

__all__ = [
    "Clock",
    "Outcome",
    "Ran",
    "Run",
    "RunConfig",
    "claim",
    "execute",
    "give_up",
    "place_key",
]
