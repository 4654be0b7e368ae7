"""Administration use cases: one module per area of the configuration, each owning
its validation (through `schema.py`), its transaction, its audit entry and the
events that bring the change live (router requests, the configuration version).

The same file names are used under web/admin/ for the API and pages of each area.
"""
