"""Linkerd: inbound policy annotations, Servers, AuthorizationPolicies, MeshTLS and Network
authentications, HTTPRoutes or TrafficSplits per stage, and the linkerd charts."""
