"""Benchmarks (``python -m bench``): every figure is a ratio against a same-run baseline,
or a count, because the machine is shared. See README "Performance"."""
