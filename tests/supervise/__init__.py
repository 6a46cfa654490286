"""Tests of supervision against the Backend seam: the in-memory backend and the engine's."""
