"""`ddbsearch package`: build the Lambda zip."""
