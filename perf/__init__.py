"""streamlin's benchmark suite: ``python -m perf.compare --rows 1000000`` (see perf/README.md)."""
