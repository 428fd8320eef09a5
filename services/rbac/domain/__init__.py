"""Pure authorization rules of rbac: the permission catalogue, role tables, decisions."""
