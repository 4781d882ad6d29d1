"""ICE agents for the gather and data checks: aioice glue (``agent``) and the data measurement
between two connected agents (``exchange``)."""
