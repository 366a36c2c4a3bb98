"""The operator web console (docs/console.md): pages over the Store and the live bot.

``create_console(...)`` (core.web.app) builds it from explicit parts: store, settings,
personas, the admin token and, when it runs inside ``personabot run``, a live figures
source and the plugin manager.
"""
