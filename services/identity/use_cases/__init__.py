"""Identity's use cases, one module per feature; the only place transactions begin."""
