"""Health checks: probes observe, the state machine decides, the policy answers."""
