"""The local console: a terminal chat through the same Dispatcher as every platform."""
