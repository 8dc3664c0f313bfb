"""The verbs, one module each: deploy/destroy (``deploy.py``), ``put``, ``backfill``,
``search``, ``status`` and ``redrive``. No printing here: each returns a report, takes
callbacks for progress, and raises :class:`ddbsearch.errors.DdbsearchError` subclasses.
``ddbsearch`` (the package) exports them; the CLI renders them. ``dashboards`` is the
one that serves instead of reporting: a local signing proxy the CLI starts and stops.
"""
