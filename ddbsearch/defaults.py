"""Pipeline defaults; they live in ``ddbsearch.core.defaults`` (the Lambda zip carries
them) and are re-exported here for everything outside the core."""

from ddbsearch.core.defaults import *  # noqa: F403
from ddbsearch.core.defaults import __all__  # noqa: F401
