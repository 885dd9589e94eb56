"""The Gateway API routing both meshes share: HTTPRoutes attached to a Service, and the
per-version Services they split between."""
