"""Outbound interception at the httpx transport seam."""
