"""The index and version modules, as Twisted plugins."""

from twistedspy.modules.index import IndexFactory
from twistedspy.modules.version import VersionFactory

index = IndexFactory()
version = VersionFactory()
