"""The throughput and latency benchmark of issue 6; run ``python bench/relay.py``."""
