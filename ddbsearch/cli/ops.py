"""Everyday operator commands: put, backfill, search, status."""
