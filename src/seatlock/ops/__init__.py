"""Ops: metrics, request logs, hold reports, the console and the dashboard."""
