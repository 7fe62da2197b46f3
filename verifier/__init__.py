"""Signed permits: format, keys, trust lists, revocation and offline verification.

Pure: nothing here reads the clock or touches files or the network. Time is a
parameter (``verify_at(raw, now, ...)``).
"""
