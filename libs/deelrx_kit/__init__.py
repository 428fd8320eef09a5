"""Shared runtime of the DeelRx services: settings, logging, ids, clock, errors, gRPC, db, events."""
