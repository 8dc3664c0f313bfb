"""The indexing core shipped inside the Lambda zip: stdlib, botocore and urllib3 only."""
