"""`ddbsearch deploy` / `ddbsearch destroy` (AWS through Terraform, or --local)."""
