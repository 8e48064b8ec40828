"""Flocker's node package."""
