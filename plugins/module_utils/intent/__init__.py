"""The intent: the inventory's description of the estate, as a typed model.
Its parser checks every field in one pass and names the path and the value of each error."""
