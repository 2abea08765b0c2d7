"""Benchmark suites: configuration, running, caching, reporting, and the quickstart job.

``config`` (the suite TOML schema), ``bench`` (task specs × backbones × seeds, cell by cell),
``cellcache`` (verified cached cells), ``report`` / ``report_compute`` (tables and plots),
``compare`` (two runs side by side), ``ngram`` (count-based baselines) and ``quickstart`` (the
default job). Nothing is re-exported here.
"""
