"""Personalization and privacy: profiles, memories, interest vectors, recommendations,
consent, export and forget. ``setup_personalization`` attaches it to an App."""

from core.personalization.feature import Personalization, setup_personalization

__all__ = ["Personalization", "setup_personalization"]
