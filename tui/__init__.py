"""The Textual terminal UI behind ``anymodal chat``: the chat transcript with artifacts shown
inline, the plan with live progress, the composer and the commands. It imports ``assistant``;
nothing imports it (assistant/cli.py finds ``tui.app:run_app`` through the
``anymodal.frontends`` entry point)."""
