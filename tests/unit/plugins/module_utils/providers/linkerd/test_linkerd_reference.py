"""Upstream's Linkerd examples, written as intent, rendered by meshstage and compared.

- emojivoto-policy.yml (Servers and ServerAuthorizations): the same (client identity,
  server port) pairs are allowed, by objects at current API versions.
- website-docs traffic-shifting, dynamic request routing and HTTPRoute reference: the same
  route specs after both are defaulted by their CRD schemas; the fields that differ, and why,
  are listed in each test (and in docs/providers.md).
- website-docs per-route policy, restricting access and the authorization-policy reference:
  every sample request is allowed or refused alike, and the routes and authentications
  carry the same matches and identities.

Objects are compared after YAML parsing. meshstage adds a namespace and its ownership
labels everywhere, and names objects after services (``bb`` where upstream says
``bb-route``); those differences are not repeated below.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from linkerd_reference import (
    Caller,
    CrdDefaults,
    Pod,
    PolicyModel,
    allowed_pairs,
    decide,
    documents,
)

from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry

LINKERD = "samples/linkerd"
DOCS = f"{LINKERD}/website-docs"
ID = "{}.{}.serviceaccount.identity.linkerd.cluster.local"


@pytest.fixture(scope="module")
def registry(crd_dir: Path) -> SchemaRegistry:
    return SchemaRegistry.from_crd_dirs([crd_dir])


@pytest.fixture(scope="module")
def defaults(crd_dir: Path) -> CrdDefaults:
    return CrdDefaults(crd_dir)


def rendered_objects(variables: dict[str, Any], registry: SchemaRegistry) -> list[dict]:
    """What meshstage renders for ``variables`` (validated strictly against the CRDs)."""
    stage = render_stage(variables, StageOptions(gitops_dir=Path("/nonexistent")), registry)
    return [o.obj for o in stage.stage_objects if o.path.startswith("envs/")]


def intent(namespace: str, services: list[dict[str, Any]], stage: str = "authorization",
           **extra: Any) -> dict[str, Any]:
    return {"mesh_environment": "ref", "mesh_stage": stage, "mesh_provider": "linkerd",
            "mesh_services": [{"namespace": namespace, **s} for s in services], **extra}


def one(objects: list[dict], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind
             and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def upstream(reference_dir: Path, path: str, kind: str, name: str,
             nth: int = 0) -> dict[str, Any]:
    found = [d for d in documents(reference_dir / path)
             if d["kind"] == kind and d["metadata"]["name"] == name]
    return found[nth]


# --------------------------------------------------------------------------- emojivoto

EMOJIVOTO = intent("emojivoto", [
    {"name": "emoji-svc", "service_account": "emoji",
     "ports": [{"name": "grpc", "port": 8080, "protocol": "GRPC"},
               {"name": "prom", "port": 8801}]},
    {"name": "voting-svc", "service_account": "voting",
     "ports": [{"name": "grpc", "port": 8080, "protocol": "GRPC"},
               {"name": "prom", "port": 8801}]},
    {"name": "web-svc", "service_account": "web",
     "ports": [{"name": "http", "port": 80, "target_port": 8080}],
     "calls": ["emoji-svc", "voting-svc"]},
    {"name": "vote-bot", "service_account": "default", "ports": [], "calls": ["web-svc"]},
], mesh_authorization=[
    # internal-grpc: only the web service reaches the gRPC ports; prom: anyone
    {"service": "emoji-svc", "allow": [{"from": ["web-svc"], "ports": [8080]},
                                       {"ports": [8801]}]},
    {"service": "voting-svc", "allow": [{"from": ["web-svc"], "ports": [8080]},
                                        {"ports": [8801]}]},
    # web-public: anyone, plaintext too
    {"service": "web-svc", "allow": [{"ports": [8080]}]},
])

MESHED = {"linkerd.io/control-plane-ns": "linkerd"}
EMOJIVOTO_PODS = [  # from emojivoto.yml, with the proxy's admin port
    Pod("emoji-svc", "emojivoto", {"app": "emoji-svc", **MESHED},
        {"grpc": 8080, "prom": 8801, "linkerd-admin": 4191}),
    Pod("voting-svc", "emojivoto", {"app": "voting-svc", **MESHED},
        {"grpc": 8080, "prom": 8801, "linkerd-admin": 4191}),
    Pod("web-svc", "emojivoto", {"app": "web-svc", **MESHED},
        {"http": 8080, "linkerd-admin": 4191}),
    Pod("vote-bot", "emojivoto", {"app": "vote-bot", **MESHED}, {"linkerd-admin": 4191}),
]
EMOJIVOTO_CALLERS = [
    Caller("web", ID.format("web", "emojivoto")),
    Caller("emoji", ID.format("emoji", "emojivoto")),
    Caller("voting", ID.format("voting", "emojivoto")),
    Caller("vote-bot", ID.format("default", "emojivoto")),
    Caller("prometheus", ID.format("prometheus", "linkerd-viz")),
    Caller("other-namespace", ID.format("default", "other")),
    Caller("plaintext", None),
]


def test_emojivoto_policy_allows_the_same_pairs(reference_dir, registry):
    theirs = PolicyModel(documents(
        reference_dir / f"{LINKERD}/website/run.linkerd.io/public/emojivoto-policy.yml"))
    ours = PolicyModel(rendered_objects(EMOJIVOTO, registry))
    expected = allowed_pairs(theirs, EMOJIVOTO_PODS, EMOJIVOTO_CALLERS)
    assert allowed_pairs(ours, EMOJIVOTO_PODS, EMOJIVOTO_CALLERS) == expected
    # the pairs are what the example says: gRPC from web only, the rest open
    grpc = {caller for caller, app, port in expected if port == 8080 and app != "web-svc"}
    assert grpc == {"web"}
    assert {c.name for c in EMOJIVOTO_CALLERS} == {
        caller for caller, app, port in expected if app == "web-svc" and port == 8080}


def test_emojivoto_objects_are_current_versions(reference_dir, registry):
    objects = rendered_objects(EMOJIVOTO, registry)
    versions = {(o["kind"], o["apiVersion"]) for o in objects if o["kind"] != "Namespace"}
    assert versions == {
        ("Server", "policy.linkerd.io/v1beta3"),
        ("AuthorizationPolicy", "policy.linkerd.io/v1alpha1"),
        ("MeshTLSAuthentication", "policy.linkerd.io/v1alpha1"),
        ("NetworkAuthentication", "policy.linkerd.io/v1alpha1"),
        ("HTTPRoute", "gateway.networking.k8s.io/v1"),
        ("ConfigMap", "v1"),
    }
    # upstream: Server v1beta1 (deprecated) and ServerAuthorization, which Linkerd
    # documents as replaced by AuthorizationPolicy
    theirs = {(d["kind"], d["apiVersion"]) for d in documents(
        reference_dir / f"{LINKERD}/website/run.linkerd.io/public/emojivoto-policy.yml")}
    assert theirs == {("Server", "policy.linkerd.io/v1beta1"),
                      ("ServerAuthorization", "policy.linkerd.io/v1beta1")}
    grpc = one(objects, "Server", "emoji-svc-grpc")
    assert grpc["spec"] == {"podSelector": {"matchLabels": {"app": "emoji-svc"}},
                            "port": 8080, "proxyProtocol": "gRPC", "accessPolicy": "deny"}
    assert one(objects, "MeshTLSAuthentication", "emoji-svc-grpc")["spec"] == {
        "identities": [ID.format("web", "emojivoto")]}


def test_emojivoto_without_the_ports_field_would_open_grpc(reference_dir, registry):
    """The pair model tells policies apart: a prom rule for every port is not the same."""
    variables = copy.deepcopy(EMOJIVOTO)
    variables["mesh_authorization"][0]["allow"][1] = {}
    theirs = PolicyModel(documents(
        reference_dir / f"{LINKERD}/website/run.linkerd.io/public/emojivoto-policy.yml"))
    ours = PolicyModel(rendered_objects(variables, registry))
    assert allowed_pairs(ours, EMOJIVOTO_PODS, EMOJIVOTO_CALLERS) != allowed_pairs(
        theirs, EMOJIVOTO_PODS, EMOJIVOTO_CALLERS)


# --------------------------------------------------------------------------- routes


def outbound(obj: dict[str, Any], defaults: CrdDefaults) -> dict[str, Any]:
    """A route's spec after CRD defaulting, with the two spellings Linkerd reads alike
    made one: parent group ``core`` is the core group ``""``, and a rule's only backend gets
    every request whatever its weight."""
    spec = copy.deepcopy(defaults.apply(obj)["spec"])
    for parent in spec["parentRefs"]:
        if parent.get("group") == "core":
            parent["group"] = ""
    for rule in spec["rules"]:
        if len(rule.get("backendRefs", [])) == 1:
            rule["backendRefs"][0].pop("weight", None)
    return spec


TRAFFIC_SHIFT = intent("traffic-shift-demo", [
    {"name": "bb", "ports": [{"name": "http", "port": 8080}],
     "versions": [{"name": "v1", "service": "bb"}, {"name": "v2", "service": "bb-v2"}],
     "canary": {"subset": "v2", "weight": 10}}], stage="traffic")


@pytest.mark.parametrize(("nth", "traffic"), [
    (0, {"canary": {"subset": "v2", "weight": 10}}),          # 90/10
    (1, {"canary": None, "traffic": {"split": {"v2": 100}}}),  # everything to v2
], ids=["90-10", "all-to-v2"])
def test_traffic_shifting_is_reproduced(reference_dir, registry, defaults, nth, traffic):
    theirs = upstream(reference_dir, f"{DOCS}/tasks_traffic-shifting.yaml", "HTTPRoute",
                      "bb-route", nth)
    variables = copy.deepcopy(TRAFFIC_SHIFT)
    variables["mesh_services"][0].update(traffic)
    variables["mesh_services"][0] = {k: v for k, v in variables["mesh_services"][0].items()
                                     if v is not None}
    objects = rendered_objects(variables, registry)
    ours = one(objects, "HTTPRoute", "bb")
    assert outbound(ours, defaults) == outbound(theirs, defaults)
    # differences: the API group (docs/decisions.md), and what normalizing made one
    assert (theirs["apiVersion"], ours["apiVersion"]) == (
        "policy.linkerd.io/v1beta2", "gateway.networking.k8s.io/v1")
    assert theirs["spec"]["parentRefs"][0]["group"] == "core"
    assert ours["spec"]["parentRefs"][0]["group"] == ""
    # bb and bb-v2 are the team's Services: meshstage renders none
    assert not [o for o in objects if o["kind"] == "Service"]


@pytest.mark.parametrize(("path", "name", "variables"), [
    (f"{DOCS}/tasks_configuring-dynamic-request-routing.yaml", "backend-router", intent(
        "test", [{"name": "backend-a-podinfo", "ports": [{"name": "http", "port": 9898}],
                  "versions": [{"name": "a", "service": "backend-a-podinfo"},
                               {"name": "b", "service": "backend-b-podinfo"}],
                  "traffic": {"header_routes": [
                      {"headers": {"x-request-id": {"exact": "alternative"}},
                       "subset": "b"}]}}], stage="traffic")),
    (f"{DOCS}/reference_httproute.yaml", "smiley-a-b", intent(
        "faces", [{"name": "smiley", "ports": [{"name": "http", "port": 80}],
                   "versions": [{"name": "a", "service": "smiley"},
                                {"name": "b", "service": "smiley2"}],
                   "traffic": {"header_routes": [
                       {"headers": {"x-faces-user": {"exact": "testuser"}},
                        "subset": "b"}]}}], stage="traffic")),
], ids=["dynamic-request-routing", "httproute-reference"])
def test_header_routing_is_reproduced(reference_dir, registry, defaults, path, name,
                                      variables):
    theirs = upstream(reference_dir, path, "HTTPRoute", name)
    ours = one(rendered_objects(variables, registry), "HTTPRoute")
    assert outbound(ours, defaults) == outbound(theirs, defaults)


# --------------------------------------------------------------------------- policies

BOOKSAPP_PODS = [Pod("authors", "booksapp",
                     {"app": "authors", "project": "booksapp", **MESHED},
                     {"service": 7001, "linkerd-admin": 4191})]
BOOKSAPP_CALLERS = [Caller(name, ID.format(name, "booksapp"))
                    for name in ("books", "webapp", "traffic")] + [Caller("plaintext", None)]
BOOKSAPP_REQUESTS = [
    ("GET", "/authors.json"), ("GET", "/authors/1.json"), ("GET", "/authors/"),
    ("DELETE", "/authors/1.json"), ("PUT", "/authors/1.json"), ("POST", "/authors.json"),
    ("POST", "/authors/1.json"), ("DELETE", "/authors.json"), ("GET", "/ping"),
    ("GET", "/books.json"), ("HEAD", "/authors.json"),
]
PER_ROUTE = intent("booksapp", [
    {"name": "authors", "ports": [{"name": "service", "port": 7001}],
     "probe_paths": ["/ping"]},
    {"name": "books", "ports": [{"name": "service", "port": 7002}], "calls": ["authors"]},
    {"name": "webapp", "ports": [{"name": "service", "port": 7000}],
     "calls": ["authors", "books"]},
], mesh_default_deny=False, mesh_authorization=[{"service": "authors", "allow": [
    {"from": ["books", "webapp"], "methods": ["GET"], "paths": ["/authors.json", "/authors/*"]},
    {"from": ["webapp"], "methods": ["DELETE", "PUT"], "paths": ["/authors/*"]},
    {"from": ["webapp"], "methods": ["POST"], "paths": ["/authors.json"]},
]}])


def decisions(model: PolicyModel, defaults: CrdDefaults) -> dict[tuple[str, str, str], bool]:
    return {(caller.name, method, path): decide(model, defaults, BOOKSAPP_PODS[0], 7001,
                                                caller, method, path)
            for caller in BOOKSAPP_CALLERS for method, path in BOOKSAPP_REQUESTS}


def test_per_route_policy_is_reproduced(reference_dir, registry, defaults):
    theirs = PolicyModel(documents(reference_dir / f"{DOCS}/tasks_configuring-per-route-"
                                   "policy.yaml"), cluster_default="all-authenticated")
    objects = rendered_objects(PER_ROUTE, registry)
    ours = PolicyModel(objects, cluster_default="all-authenticated")
    expected = decisions(theirs, defaults)
    assert decisions(ours, defaults) == expected
    assert expected[("books", "GET", "/authors/1.json")]
    assert not expected[("books", "DELETE", "/authors/1.json")]
    assert expected[("plaintext", "GET", "/ping")]
    # the same routes: matches and the identities that may send them
    def routes(model: PolicyModel, server: str) -> dict[frozenset, frozenset]:
        found = {}
        for route in model.of("HTTPRoute", "booksapp"):
            if route["spec"]["parentRefs"][0]["name"] != server:
                continue
            matches = frozenset((m.get("method"), m["path"]["value"])
                                for m in route["spec"]["rules"][0]["matches"])
            granted: set[str] = set()
            for policy in model.of("AuthorizationPolicy", "booksapp"):
                if policy["spec"]["targetRef"]["name"] != route["metadata"]["name"]:
                    continue
                for ref in policy["spec"]["requiredAuthenticationRefs"]:
                    authn = next(o for o in model.objects if o["kind"] == ref["kind"]
                                 and o["metadata"]["name"] == ref["name"])["spec"]
                    granted.update(authn.get("identities", []))
                    granted.update(n["cidr"] for n in authn.get("networks", []))
            found[matches] = frozenset(granted)
        return found
    assert routes(ours, "authors-service") == routes(theirs, "authors-server")
    # differences: upstream leaves out the path type, which defaults to PathPrefix;
    # meshstage writes Exact for an exact intent path (/authors.json, /ping)
    types = {(m.get("method"), m["path"]["value"]): m["path"].get("type", "PathPrefix")
             for route in ours.of("HTTPRoute", "booksapp")
             for m in route["spec"]["rules"][0]["matches"]}
    assert types[("GET", "/authors.json")] == types[("GET", "/ping")] == "Exact"
    assert types[("GET", "/authors/")] == "PathPrefix"
    server = one(objects, "Server", "authors-service")["spec"]
    assert server == {"podSelector": {"matchLabels": {"app": "authors"}}, "port": 7001,
                      "proxyProtocol": "HTTP/1", "accessPolicy": "deny"}


def test_restricting_access_is_reproduced(reference_dir, registry):
    """voting-grpc: only the web service may call the voting service's gRPC port."""
    theirs = PolicyModel(documents(reference_dir / f"{DOCS}/tasks_restricting-access.yaml"))
    variables = intent("emojivoto", [
        {"name": "voting-svc", "service_account": "voting",
         "ports": [{"name": "grpc", "port": 8080, "protocol": "GRPC"}]},
        {"name": "web-svc", "service_account": "web", "ports": [{"name": "http", "port": 80}],
         "calls": ["voting-svc"]},
    ], mesh_default_deny=False)
    objects = rendered_objects(variables, registry)
    ours = PolicyModel(objects)
    pods = [Pod("voting-svc", "emojivoto", {"app": "voting-svc", **MESHED}, {"grpc": 8080})]
    assert allowed_pairs(ours, pods, EMOJIVOTO_CALLERS) == allowed_pairs(
        theirs, pods, EMOJIVOTO_CALLERS) == {("web", "voting-svc", 8080)}
    server = one(objects, "Server", "voting-svc-grpc")["spec"]
    theirs_server = upstream(reference_dir, f"{DOCS}/tasks_restricting-access.yaml", "Server",
                             "voting-grpc")["spec"]
    # the same pods and protocol; meshstage names the port by number (docs/providers.md)
    assert server["podSelector"] == theirs_server["podSelector"]
    assert server["proxyProtocol"] == theirs_server["proxyProtocol"] == "gRPC"
    assert (theirs_server["port"], server["port"]) == ("grpc", 8080)


@pytest.mark.parametrize(("rule", "identities"), [
    # authors-policy: the webapp ServiceAccount may reach the Server
    ({"from": ["webapp"]}, [ID.format("webapp", "booksapp")]),
    # authors-get-authn, written with identityRefs or identities: books and webapp
    ({"from": ["books", "webapp"]}, [ID.format("books", "booksapp"),
                                     ID.format("webapp", "booksapp")]),
    # identities: ["*"]: every mesh identity
    ({"principals": ["*"]}, ["*"]),
    # the same, as an Istio principal of one service account
    ({"principals": ["cluster.local/ns/booksapp/sa/webapp"]},
     [ID.format("webapp", "booksapp")]),
    # a whole namespace
    ({"namespaces": ["booksapp"]}, ["*.booksapp.serviceaccount.identity.linkerd."
                                    "cluster.local"]),
], ids=["service-account", "two-accounts", "any-identity", "principal", "namespace"])
def test_authorization_policy_reference_identities(reference_dir, registry, rule,
                                                   identities):
    variables = copy.deepcopy(PER_ROUTE)
    variables["mesh_authorization"] = [{"service": "authors", "allow": [rule]}]
    # a rule that leaves out a declared caller would stop its calls (the flow proof refuses)
    for service in variables["mesh_services"]:
        service["calls"] = [c for c in service.get("calls", []) if c != "authors"
                            or service["name"] == "webapp"]
    objects = rendered_objects(variables, registry)
    policy = one(objects, "AuthorizationPolicy", "authors-service-mesh")
    assert policy["spec"]["targetRef"] == {"group": "policy.linkerd.io", "kind": "Server",
                                           "name": "authors-service"}
    assert one(objects, "MeshTLSAuthentication", "authors-service")["spec"] == {
        "identities": identities}
    # upstream's first authors-policy targets the Server the same way (its second targets
    # the Namespace, which meshstage does not do: it names each Server)
    authors = upstream(reference_dir, f"{DOCS}/reference_authorization-policy.yaml",
                       "AuthorizationPolicy", "authors-policy")
    assert authors["spec"]["targetRef"] == {"group": "policy.linkerd.io", "kind": "Server",
                                            "name": "authors"}


def test_unauthenticated_clients_are_a_network_authentication(reference_dir, registry):
    """web-public: ``unauthenticated: true`` from 0.0.0.0/0 and ::/0."""
    theirs = upstream(reference_dir, f"{DOCS}/reference_authorization-policy.yaml",
                      "ServerAuthorization", "web-public")
    objects = rendered_objects(EMOJIVOTO, registry)
    network = one(objects, "NetworkAuthentication", "meshstage-all-networks")
    assert network["spec"]["networks"] == theirs["spec"]["client"]["networks"]
    assert one(objects, "AuthorizationPolicy", "web-svc-http-network")["spec"][
        "requiredAuthenticationRefs"] == [{"group": "policy.linkerd.io",
                                           "kind": "NetworkAuthentication",
                                           "name": "meshstage-all-networks"}]
