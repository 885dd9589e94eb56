"""The inventory written from the estate (``meshstage import``), and the inventory checked
against the estate in every run given ``mesh_check_paths``."""
