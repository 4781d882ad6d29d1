"""Why something failed, in plain words with a stable cause id (a `rtccheck.diagnosis.Diagnosis`).

- ``transport``: a probe that got no usable answer (timeouts, refused connections, TLS errors);
- ``turn_errors``: a TURN server's error answer, and a 401 to signed requests explained;
- ``turn_diagnosis``: why an ICE agent (aioice) got no relay candidate or no data through it;
- ``username_shape`` and ``password_diagnosis``: TURN REST usernames and passwords, taken apart.
"""
