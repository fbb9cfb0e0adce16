"""User methods for the tests: importable as `mymethods.<name>` with tests/ on the path (the
test process has it; launcher subprocesses get it through PYTHONPATH)."""
