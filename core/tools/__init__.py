"""Tools the model may call (docs/tools.md): declarations, the registry seam, the runner,
the tool loop of a chat turn, and MCP servers as a source of tools.

Kept import-light: core.settings imports :mod:`core.tools.settings` through this package.
"""
