"""turnkit TURN relay: RFC 8656 relay with time-limited (TURN REST) credentials."""
