"""`ddbsearch demo` and the hidden commands that run the local stack."""
