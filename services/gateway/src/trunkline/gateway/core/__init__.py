"""The gateway's pure core: endpointing, the turn state machine, playback accounting, clauses.

Nothing here does I/O or reads a clock by itself; the call session feeds it events and times.
"""
