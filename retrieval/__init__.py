"""Retrieval layer: ingest, multi-head embeddings on Qdrant named vectors, voting, fusion, rewriting.

Knows nothing of the UI; the bot package wires it to a generator and a front end.
"""
