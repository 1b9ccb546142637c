"""Checks from several locations: the server and its agents each check every target,
and a target's health is their vote (quorum.py). The agents' side of it: protocol.py
(what travels), hub.py (the server's end), agent.py (`dynserver agent run`)."""
