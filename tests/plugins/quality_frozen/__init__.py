"""The quality monitor as it was at 60fdd8e (before the small-window rework of issue 12,
item 7), frozen: classification.py, cbpe.py and monitor.py are verbatim copies but for their
imports. test_quality_frozen.py runs it beside the live monitor on the same windows and
compares every result, bit for bit and key for key. Not for use outside the tests."""
