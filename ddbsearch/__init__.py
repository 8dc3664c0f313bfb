"""ddbsearch: make a DynamoDB table searchable with OpenSearch.

This package is imported inside the Lambda function too (only ``ddbsearch.core``
is shipped there), so it must stay free of CLI-only imports.
"""

__version__ = "0.1.0"
