"""Use cases. Each runs in one unit of work: its state change, journal postings and (later)
log entry commit together or not at all."""
