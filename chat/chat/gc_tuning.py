"""Cyclic garbage collector settings for a process whose heap grows by a few hundred
objects per connection (docs/design.md §11, "Garbage collector").

A connect storm only allocates: every new socket's objects survive, so with CPython's
defaults (2000, 10, 10) the young collections keep re-scanning survivors and each full
collection walks the whole heap (the imported modules included), every time it has grown
by a quarter. Measured on a storm of 4000 authenticated handshakes: about a fifth of the
chat's CPU. Freezing what startup built takes it out of every later collection; a larger
first generation and a rarer second one cut the re-scans. The third generation keeps its
default, so cycles left by closed connections are still collected."""

from __future__ import annotations

import gc

THRESHOLDS = (20_000, 50, 10)


def tune() -> None:
    """Call once, after startup's imports and configuration, before serving."""
    gc.collect()  # what startup left as garbage is not frozen forever
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
