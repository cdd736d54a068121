"""The index, version and message modules, as Twisted plugins."""

from twistedspy.modules.index import IndexFactory
from twistedspy.modules.message import MessageFactory
from twistedspy.modules.version import VersionFactory

index = IndexFactory()
version = VersionFactory()
message = MessageFactory()
