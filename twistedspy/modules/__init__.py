"""The built-in info modules, one file each, named after what they show (as in
Prometheus node_exporter's `collector/`): processes, meminfo, diskfree, network, cpu,
version, index, message, and metrics, which gathers the others' families.

Each file holds the module that turns readings from twistedspy/procfs/ into a `Report`
(and, through `IMetricsSource`, into Prometheus families), the source it reads through
(the seam tests replace with fixed data), and the factory that
`twisted/plugins/spy_modules.py` exposes as a plugin. No module imports another.
"""
