"""`vllm-chatops bench`: the product's speed measured side by side with its limits.

Each section starts what it needs on loopback and reports figures as ratios to a
comparison taken in the same run (the machine is shared and noisy; absolute times from
different runs do not compare). ``report`` renders the table and ``BENCHMARKS.md``.
"""
