"""Temporary seat holds in Redis: the Lua script registry, the hold store, placement of
chosen and best-available seats, the cache of events on sale, and the hold routes."""
