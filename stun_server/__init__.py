"""turnkit STUN server: RFC 8489 Binding responder with RFC 5780 NAT behaviour discovery."""
