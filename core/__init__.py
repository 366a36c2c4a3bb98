"""personabot core: the platform-neutral engine (no Discord or Telegram imports here)."""
