"""`rtccheck signaling URL`: can this machine reach an app's WebSocket or Socket.IO signaling?

Layer by layer (proxy, DNS, TCP, the proxy's CONNECT tunnel, TLS, the HTTP upgrade or the
Socket.IO handshake, a message round trip), each failure explained with a cause id from
`rtccheck.causes`. ``check.run_signaling`` is the entry point.
"""
