"""Istio: PeerAuthentication, Sidecar, Telemetry, DestinationRule, VirtualService and
AuthorizationPolicy per stage, and the base and istiod charts."""
