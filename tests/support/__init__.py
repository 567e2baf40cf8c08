"""Code the tests (and benchmarks/serving_bench.py) use that is no part of the installed package."""
