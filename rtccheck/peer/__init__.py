"""`rtccheck peer`: one party of a two-party call test over the relay's rendezvous (aiortc)."""
