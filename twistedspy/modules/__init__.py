"""The built-in info modules, one file each, named after what they show (as in
Prometheus node_exporter's `collector/`): processes, meminfo, diskfree, network.

Each file holds a pure parser for its kernel file, a source (the seam tests replace
with fixed data), the module that turns samples into a `Report`, and the factory
that `twisted/plugins/spy_modules.py` exposes as a plugin.
"""
