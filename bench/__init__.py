"""ddbsearch benchmarks: ``python -m bench [--quick] [--only NAME] [--write-docs]``.

Each benchmark measures ddbsearch next to a reference measured in the same run
(a naive baseline or a raw limit of the local emulators) and reports ratios,
because the machine is shared and absolute numbers drift. Results feed
docs/benchmarks.md. Nothing here runs in the test suite except one smoke test.
"""
