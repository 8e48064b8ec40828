"""Flocker's cli package."""
