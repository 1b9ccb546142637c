"""The fuzz target of the DNS core (answer.py), its zone and its seed corpus of real queries."""
