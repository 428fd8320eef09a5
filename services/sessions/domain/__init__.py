"""Pure rules of the sessions service: lifetimes, devices, refresh rotation, signing keys, tokens."""
