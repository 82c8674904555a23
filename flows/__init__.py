"""Prefect flows: readable recipes of numerflow's tasks."""
