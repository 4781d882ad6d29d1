"""Side-by-side benchmarks of turnkit's servers and coturn on loopback (`python -m bench`).

See docs/benchmarks.md for the scenarios, the commands and the figures measured.
"""
