"""What authorizes a request on the destination's Server and route."""

from __future__ import annotations

from typing import Any

from ....flows.evaluate import FlowRule, Step
from ....flows.model import FORBIDDEN, RESET, Verdict, allowed, refused
from ....flows.outside import exposed_fix
from ....flows.requests import describe
from .authentication import Authz, admitted, route_authz, server_authz
from .routes import DEFAULT, PROBE
from .view import LinkerdView


class Authorizations(FlowRule):
    """A request on a Server is admitted when one authorization of its route or of the
    Server admits the client (they are ORed): AuthorizationPolicies targeting the route,
    the Server or the namespace, ServerAuthorizations selecting the Server, and the
    Server's ``accessPolicy``; the ``probe`` route admits the probe networks. Without one, an
    HTTP request gets 403 and anything else a refused connection.

    Follows https://linkerd.io/2-edge/reference/authorization-policy/#authorizationpolicy
    ("A namespace (kind: Namespace), indicating that the AuthorizationPolicy applies to all
    traffic to all Servers and HTTPRoutes defined in the namespace"),
    https://linkerd.io/2-edge/features/server-policy/ ("Any traffic that is known to be HTTP
    ... that is denied by policy will result in the proxy returning an HTTP 403") and
    linkerd2-proxy ``linkerd/proxy/server-policy/src/http.rs`` (route authorizations
    combined with the server's: ``mk_authorizations(authorizations, server_authorizations)``).
    The authentications each authorization needs are in ``authentication.py``.
    """

    name = "linkerd.Authorizations"

    def apply(self, step: Step) -> Verdict | None:
        view: LinkerdView = step.view
        facts = step.facts
        server = facts.extra.get("server")
        if server is None:
            return None
        address = facts.extra.get("address")
        on_server = server_authz(view, server)
        if facts.server_protocol == "tcp":
            found = admitted(view, on_server, facts.identity, address)
            if found is not None:
                return allowed(f"admitted by {found.by}", found.by)
            return refused(RESET, f"nothing that authorizes {server.display} admits it",
                           server.display, _fix(step, server.display))
        results: list[tuple[Any, Authz | None, Any]] = []
        for request, route in facts.extra.get("routed", []):
            if route is None:
                results.append((request, None, "no route"))
                continue
            authz = list(on_server)
            if route == PROBE:
                authz.append(Authz("the probe route", tuple(view.probe_networks)))
            elif route != DEFAULT:
                authz = route_authz(view, route) + authz
            found = admitted(view, authz, facts.identity, address)
            results.append((request, found, route))
        passed = [(r, found) for r, found, _ in results if found is not None]
        if len(passed) == len(results):
            by = passed[0][1].by if passed else ""
            return allowed(f"admitted by {by}", by)
        refusing = next(route for _, found, route in results if found is None)
        where = refusing.display if hasattr(refusing, "display") else server.display
        if passed:
            return allowed(f"{where} refuses some of its requests", passed[0][1].by,
                           partial=describe(r for r, _ in passed))
        return refused(FORBIDDEN, f"nothing that authorizes {where} admits it", where,
                       _fix(step, where))


def _fix(step: Step, where: str) -> str:
    flow, facts = step.flow, step.facts
    if facts.identity is None and flow.origin == "exposed":
        return exposed_fix(flow)
    if facts.identity is None:
        return (f"{flow.source} reaches it without a mesh identity, which no "
                "MeshTLSAuthentication matches: admit it with an AuthorizationPolicy of a "
                f"NetworkAuthentication of its networks on {where}, or mesh the caller")
    return f"an AuthorizationPolicy on {where} that admits {facts.identity}"
