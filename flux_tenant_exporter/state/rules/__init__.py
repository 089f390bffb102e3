"""The rules the View applies across objects: root causes (``rootcause``), drift, tenancy policy, a tenant's roll-up."""
