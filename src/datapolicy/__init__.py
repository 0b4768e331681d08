"""datapolicy: a self-hosted, Microsoft Graph-compatible service for data policy operations."""

__version__ = "0.1.0"
