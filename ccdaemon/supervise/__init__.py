"""Rung 5: what happens after a start: the chaincode table, exits, re-adoption, collection."""
