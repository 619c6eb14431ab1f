"""Shadow turns (DESIGN.md §5): live turns mirrored to candidate agent versions, answered
headless, compared with what the caller heard.

- :mod:`.core` (pure): which calls are sampled, how a shadow turn pairs with its live turn;
- :mod:`.mirror`: the gateway side, publishing sampled ``TurnCompleted`` events to each
  shadowed candidate (the candidates come from ``trunkline.bus.shadow``);
- :mod:`.runner`: the shadow runner, the gateway's turn pipeline fed mirrored transcripts
  (tools in dry-run, no audio, no caller), publishing ``ShadowTurnResult`` events;
- ``python -m trunkline.gateway.shadow``: the runner process (one per candidate version).
"""
