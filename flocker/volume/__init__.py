"""Flocker's volume package."""
