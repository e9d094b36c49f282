"""caf-relay: moves a child's CAF record between authorities on a recorded lawful basis.

An event flows through one module per step: ``contracts`` (validate) -> ``domain.basis`` (decide
on what basis it may be shared) -> ``domain.minimise`` (keep only what the basis allows) ->
``domain.envelope`` + ``signing`` (build and sign what the receiver gets) -> ``store`` (persist
outcome and audit) -> ``delivery`` (hand to the receiving authority's adapter). ``relay`` is the
service layer that runs those steps; ``worker``, ``web`` and ``cli`` are thin entrypoints.
"""
