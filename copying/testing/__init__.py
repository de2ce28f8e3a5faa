"""Testing: named places where a test can make a run crash on purpose (``failpoints``)."""
