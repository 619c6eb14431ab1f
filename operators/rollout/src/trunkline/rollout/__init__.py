"""kopf operator for VoiceAgent and AgentRollout."""
