"""
The package that ModulesDir's plugin files are loaded into.

It stays empty: at start-up the service appends ModulesDir to this package's
`__path__`, so `twisted.plugin.getPlugins(IInfoModule, twistedspy.plugins)` scans the
directory (Twisted needs a real package with a real `__file__` for that).
"""
