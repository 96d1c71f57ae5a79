"""The pure core: billing decisions as functions of (terms, state, event, time).

Nothing in this package performs I/O, reads a clock or draws random numbers.
"""
