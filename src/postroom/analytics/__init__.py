"""Analytics: conversation details and Genesys-named metrics derived from the event log.

Pure: `details.py` turns ordered event records into conversation details
(segments per conversation and participant), `metrics.py` turns details into
metric observations and aggregates them into intervals of a time zone. No I/O,
no clock, no database; the projector and the API in `postroom.services` and
`postroom.web` feed them rows and store or serve what they return.
"""
