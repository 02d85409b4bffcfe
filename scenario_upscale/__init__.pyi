"""The public names, for type checkers and for ``lazy_loader`` (which reads this file)."""

from .api import ScenarioClient as ScenarioClient
from .batch import run_batch as run_batch
from .errors import (
    BudgetExceeded as BudgetExceeded,
)
from .errors import (
    DownloadFailed as DownloadFailed,
)
from .errors import (
    InvalidInput as InvalidInput,
)
from .errors import (
    InvalidOption as InvalidOption,
)
from .errors import (
    InvalidTarget as InvalidTarget,
)
from .errors import (
    InvalidUpscaleParameters as InvalidUpscaleParameters,
)
from .errors import (
    JobFailed as JobFailed,
)
from .errors import (
    JobTimedOut as JobTimedOut,
)
from .errors import (
    ScenarioAPIError as ScenarioAPIError,
)
from .errors import (
    ScenarioAuthError as ScenarioAuthError,
)
from .errors import (
    ScenarioBadRequest as ScenarioBadRequest,
)
from .errors import (
    ScenarioConnectionError as ScenarioConnectionError,
)
from .errors import (
    ScenarioError as ScenarioError,
)
from .errors import (
    ScenarioNotFound as ScenarioNotFound,
)
from .errors import (
    ScenarioProjectRefused as ScenarioProjectRefused,
)
from .errors import (
    ScenarioRateLimited as ScenarioRateLimited,
)
from .errors import (
    ScenarioServerError as ScenarioServerError,
)
from .errors import (
    SubmitFailed as SubmitFailed,
)
from .items import (
    BatchReport as BatchReport,
)
from .items import (
    ItemResult as ItemResult,
)
from .items import (
    ItemStatus as ItemStatus,
)
from .items import (
    UpscaleSpec as UpscaleSpec,
)
from .pipeline import (
    BatchOptions as BatchOptions,
)
from .pipeline import (
    PlainSteps as PlainSteps,
)
from .pipeline import (
    StepRunner as StepRunner,
)
from .pipeline import (
    run_pipeline as run_pipeline,
)
from .polling import (
    JobWatcher as JobWatcher,
)
from .polling import (
    PollPolicy as PollPolicy,
)
from .progress import Progress as Progress
from .retry import (
    CeilingWait as CeilingWait,
)
from .retry import (
    DownloadRetry as DownloadRetry,
)
from .retry import (
    ImportWait as ImportWait,
)
from .retry import (
    LostSubmitRetry as LostSubmitRetry,
)
from .retry import (
    RetryPolicy as RetryPolicy,
)
from .session import BatchSession as BatchSession
