"""Tests of the engine client."""
