"""The public names, for type checkers and for ``lazy_loader`` (which reads this file)."""

from .app import (
    EmulatorApp as EmulatorApp,
)
from .app import (
    create_app as create_app,
)
from .config import EmulatorConfig as EmulatorConfig
from .server import (
    EmulatorServer as EmulatorServer,
)
from .server import (
    serve as serve,
)
from .stats import (
    EmulatorStats as EmulatorStats,
)
from .stats import (
    InputCharges as InputCharges,
)
