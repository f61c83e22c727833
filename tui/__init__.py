"""The Textual terminal UI (to come); until then ``anymodal chat`` is a plain loop."""
