"""Parley chat service: authenticated WebSocket rooms with in-memory broadcast."""
