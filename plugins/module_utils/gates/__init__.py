"""The stage gates: the live, observed-traffic layer that refuses a move that would break
production, and says why.

One gate per module, registered in ``registry.GATES``. Each is a pure function of plain data
(the move, the cluster facts, what Prometheus observed) to a ``Verdict``; only
``observe.py`` talks to Prometheus, and the action plugin ``meshstage.mesh.stage_gates`` is
the thin Ansible glue. docs/architecture.md ("Stage gates") describes them.
"""
