"""Tests of the Textual app (tui/)."""
