"""The load generator and the scenarios of the performance issue (`python -m
benchmarks.run`); results go to benchmarks/RESULTS.md with the floor of the same run."""
