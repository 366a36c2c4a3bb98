"""Platform adapters: convert at the edge, send through each platform's Outbox.

Importing any adapter registers the platforms' bot-file sections (adapters/platforms.py).
"""

import adapters.platforms  # noqa: F401  (registers the [console], [telegram], [discord] sections)
