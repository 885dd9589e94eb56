"""The meshes meshstage renders for, one package each behind one ``Provider`` record
(``registry.py``): what each stage plans, its control plane, sidecar and canary queries."""
