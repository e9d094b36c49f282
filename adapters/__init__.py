"""Delivery adapters: how an envelope reaches a receiving authority's system.

Each adapter is a class behind the small interface in ``adapters.base``, found through the
entry-point group ``caf_relay.adapters``, so a borough can ship its own without changing the
relay.
"""
