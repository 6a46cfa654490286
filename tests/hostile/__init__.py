"""Hostile input and security: refusals that make nothing, slow clients, no leaked keys."""
