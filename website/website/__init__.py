"""Parley's website: users, sessions, rooms, the chat page and chat tokens."""
