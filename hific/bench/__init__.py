"""Benchmark harness: codecs behind one interface, metrics, datasets and a resumable run (``benchmarks/run.py``)."""
