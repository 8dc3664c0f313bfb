"""Tooling that is not product: a fault-injecting proxy (``faultproxy``), the
index-versus-table oracle (``oracle``) and demo data (``data``, also behind
``ddbsearch put --generate``). Kept importable for tests and benchmarks.
"""
