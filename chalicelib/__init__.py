"""Aloft: WebODM's REST API as AWS Chalice functions (everything deployed lives here)."""
