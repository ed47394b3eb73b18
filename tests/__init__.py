"""The test suite; its sub-packages mirror ``src/groove_sc/`` (see CONTRIBUTING.md)."""
