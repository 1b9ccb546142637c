"""Tests of dynserver/propagation, one file per module; helpers in replies.py."""
