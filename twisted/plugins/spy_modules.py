"""The built-in info modules, as Twisted plugins: one line per module.

Twisted's plugin scan imports this file and collects every module-level object that
provides the interface asked for (`IModuleFactory` here).
"""

from twistedspy.modules.cpu import CpuFactory
from twistedspy.modules.diskfree import DiskfreeFactory
from twistedspy.modules.diskio import DiskioFactory
from twistedspy.modules.meminfo import MeminfoFactory
from twistedspy.modules.metrics import MetricsFactory
from twistedspy.modules.network import NetworkFactory
from twistedspy.modules.pressure import PressureFactory
from twistedspy.modules.processes import ProcessesFactory
from twistedspy.modules.sockets import SocketsFactory

processes = ProcessesFactory()
meminfo = MeminfoFactory()
diskfree = DiskfreeFactory()
network = NetworkFactory()
cpu = CpuFactory()
diskio = DiskioFactory()
pressure = PressureFactory()
sockets = SocketsFactory()
metrics = MetricsFactory()
