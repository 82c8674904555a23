"""Prefect tasks: thin wrappers that add retries, names and artifacts around numerflow's logic."""
