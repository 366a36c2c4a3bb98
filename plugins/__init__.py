"""Plugins shipped with personabot, one per product use; each is a complete, tested example.

- ``knowledge`` (customer support): answers from a folder of documents, with sources
- ``reminders`` (team assistant): "remind me in 20 minutes to …", surviving restarts
- ``lessons`` (tutor): a lesson catalog, progress per user, quizzes
- ``daily`` (companion): an opt-in daily check-in at the user's chosen time

Enable one by name in a bot file: ``[plugins] enabled = ["reminders"]``.
"""
