"""Prefect deployments of the ovseg flows."""
