"""TLS as the checks see it: client contexts and certificate errors explained (``trust``), and
what a server certificate says (``certificate``)."""
