"""Connectivity reports the relay keeps: the shared schema, upload validation, result ids and
the SQLite store under the state directory."""
