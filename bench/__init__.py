"""`make bench`: throughput, latency and per-lead cost of the pipeline, next to the stack's ceiling.

Run `python -m bench --help`. Everything is measured on this machine in one run, on local stacks
started (and stopped) by the benchmark itself; see `docs/benchmarks.md` for the method and results.
"""
