"""Private helper: the ``main`` of a module file that only documents an action plugin.

The action plugin of the same name always runs instead; if the module file is ever run as a
module (on a target), it says so and fails.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


def refuse_to_run(name: str) -> None:
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.fail_json(msg=f"meshstage.mesh.{name} runs on the controller as an action plugin")
