"""Names shared by the operator, the CRDs and the chart: API group, kinds, labels, conditions.

Code addresses resources through these constants, never through string literals scattered
over modules, so that a rename is one change here (plus the CRDs in ``crds/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

# --- API group and version -------------------------------------------------------------------

GROUP: Final = "kubearts.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
#: ``kubectl get kubearts`` lists every kind of this operator.
CATEGORY: Final = "kubearts"


@dataclass(frozen=True)
class KindNames:
    """The names one custom resource kind is known by."""

    kind: str
    """CamelCase kind, e.g. ``TrainingJob``."""
    plural: str
    """Lower-case plural used in API paths and kopf registrations, e.g. ``trainingjobs``."""
    singular: str
    """Lower-case singular, e.g. ``trainingjob``."""
    short_name: str
    """``kubectl`` short name, chosen not to collide with core kinds, KServe or OLM."""

    @property
    def label(self) -> str:
        """Label put on children of an object of this kind; its value is the owner's name."""
        return f"{GROUP}/{self.singular}"


DATASET: Final = KindNames("Dataset", "datasets", "dataset", "kads")
SUBSCRIPTION: Final = KindNames("Subscription", "subscriptions", "subscription", "kasub")
TRAINING_JOB: Final = KindNames("TrainingJob", "trainingjobs", "trainingjob", "katj")
MODEL_CONVERSION: Final = KindNames(
    "ModelConversion", "modelconversions", "modelconversion", "kaconv"
)
MODEL: Final = KindNames("Model", "models", "model", "kamodel")
INFERENCE_SERVICE: Final = KindNames(
    "InferenceService", "inferenceservices", "inferenceservice", "kaisvc"
)

#: Every kind, in pipeline order (data → algorithm → training → conversion → model → serving).
ALL_KINDS: Final[tuple[KindNames, ...]] = (
    DATASET,
    SUBSCRIPTION,
    TRAINING_JOB,
    MODEL_CONVERSION,
    MODEL,
    INFERENCE_SERVICE,
)

# Flat aliases for the common case of addressing a kind by plural or kind name.
DATASETS: Final = DATASET.plural
SUBSCRIPTIONS: Final = SUBSCRIPTION.plural
TRAINING_JOBS: Final = TRAINING_JOB.plural
MODEL_CONVERSIONS: Final = MODEL_CONVERSION.plural
MODELS: Final = MODEL.plural
INFERENCE_SERVICES: Final = INFERENCE_SERVICE.plural

# --- Labels, annotations, finalizer ----------------------------------------------------------

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "kubearts"
#: On ConfigMaps that hold algorithm gallery entries.
GALLERY_LABEL: Final = f"{GROUP}/gallery"

DATASET_LABEL: Final = DATASET.label
SUBSCRIPTION_LABEL: Final = SUBSCRIPTION.label
TRAINING_JOB_LABEL: Final = TRAINING_JOB.label
MODEL_CONVERSION_LABEL: Final = MODEL_CONVERSION.label
MODEL_LABEL: Final = MODEL.label
INFERENCE_SERVICE_LABEL: Final = INFERENCE_SERVICE.label

#: On Jobs (and their pods) that work for a parent object: which step they run, e.g. a
#: Dataset's ``ingest``, ``publish`` or ``cleanup``.
STEP_LABEL: Final = f"{GROUP}/step"
#: On a Dataset's ingest Jobs: the digest of what defines the data (source, format, storage),
#: so the operator finds the Job that ingested the data the spec asks for.
DATA_KEY_LABEL: Final = f"{GROUP}/data-key"
#: On a Dataset's publish Jobs: the version they publish.
VERSION_LABEL: Final = f"{GROUP}/version"

#: Our own finalizer, so that kopf's default one never appears on our objects.
FINALIZER: Final = f"{GROUP}/finalizer"
#: Prefix of kopf's progress and diff-base annotations (``kubearts.io/<handler-id>``).
PERSISTENCE_PREFIX: Final = GROUP
#: Annotation key (under the prefix) holding the last handled spec, kopf's diff base.
DIFFBASE_KEY: Final = "last-handled-configuration"

# --- Resource pools --------------------------------------------------------------------------

POOL_CPU: Final = "cpu"
POOL_GPU: Final = "gpu"
POOL_ASCEND910: Final = "ascend910"
POOL_ASCEND310: Final = "ascend310"
ALL_POOLS: Final[tuple[str, ...]] = (POOL_CPU, POOL_GPU, POOL_ASCEND910, POOL_ASCEND310)
#: Pools a TrainingJob may ask for (the CRD's enum for spec.resources.pool).
TRAINING_POOLS: Final[tuple[str, ...]] = (POOL_CPU, POOL_GPU, POOL_ASCEND910)
#: Pools an InferenceService may ask for (the CRD's enum for spec.resources.pool).
INFERENCE_POOLS: Final[tuple[str, ...]] = (POOL_CPU, POOL_GPU, POOL_ASCEND310)

# --- Conditions ------------------------------------------------------------------------------

ConditionStatus = Literal["True", "False", "Unknown"]
TRUE: Final[ConditionStatus] = "True"
FALSE: Final[ConditionStatus] = "False"
UNKNOWN: Final[ConditionStatus] = "Unknown"

# Condition types. Every kind has Ready; TrainingJob (and other run-to-completion kinds)
# also report the lifecycle of their Job in the Kubeflow Trainer vocabulary.
COND_READY: Final = "Ready"
COND_CREATED: Final = "Created"
COND_RUNNING: Final = "Running"
COND_SUCCEEDED: Final = "Succeeded"
COND_FAILED: Final = "Failed"

# Reasons (CamelCase, as Kubernetes conventions require). Grouped by the situation they
# describe; a kind may use any of them with any condition type where it reads naturally.
"""The operator does not reconcile this kind yet: nothing was done, honestly reported."""
REASON_INVALID_SPEC: Final = "InvalidSpec"
REASON_INVALID_CONFIGURATION: Final = "InvalidConfiguration"
"""The spec cannot be acted on; the message names the field and the fix."""
REASON_WAITING_FOR_DEPENDENCY: Final = "WaitingForDependency"
#: An InferenceService waits for its model version to be registered.
REASON_MODEL_NOT_READY: Final = "ModelNotReady"
"""Another object (a Dataset version, a Subscription, a Model, ...) is not ready yet."""
REASON_DEPENDENCY_FAILED: Final = "DependencyFailed"
"""Another object this one needs has failed; retrying will not help until it is fixed."""
REASON_RECONCILING: Final = "Reconciling"
"""Work is under way (children being created or updated)."""
REASON_RECONCILE_ERROR: Final = "ReconcileError"
"""An unexpected error while reconciling; it is retried."""
REASON_JOB_CREATED: Final = "JobCreated"
REASON_JOB_RUNNING: Final = "JobRunning"
REASON_JOB_PENDING: Final = "JobPending"
REASON_COMPLETE: Final = "Complete"
"""Run-to-completion work finished successfully."""
REASON_JOB_FAILED: Final = "JobFailed"
REASON_BACKOFF_LIMIT_EXCEEDED: Final = "BackoffLimitExceeded"
REASON_DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
#: Warning event: a worker placed on an accelerator pool saw no device and ran on the CPU.
REASON_CPU_FALLBACK: Final = "CPUFallback"
REASON_AVAILABLE: Final = "Available"
"""A long-running service has its minimum replicas ready."""
REASON_UNAVAILABLE: Final = "Unavailable"
REASON_SYNCED: Final = "Synced"
"""An object mirrors an external source (e.g. a gallery entry) as of its last sync."""
REASON_NOT_FOUND: Final = "NotFound"

# Dataset conditions and reasons. Failure reasons are the dataset worker's (images/dataset,
# README "Results and exit codes"), copied into conditions unchanged.
COND_DOWNLOADED: Final = "Downloaded"
COND_VERIFIED: Final = "Verified"
COND_VERSIONS_VALID: Final = "VersionsValid"
"""False when the spec asks for something that would change a published version."""
REASON_DOWNLOADING: Final = "Downloading"
REASON_VERIFYING: Final = "Verifying"
REASON_PUBLISHING: Final = "Publishing"
REASON_DOWNLOADED: Final = "Downloaded"
REASON_VERIFIED: Final = "Verified"
REASON_PUBLISHED: Final = "Published"
REASON_INGESTED: Final = "Ingested"
"""Ready without versions: the data is stored and verified, nothing to publish yet."""
REASON_VERSIONS_VALID: Final = "VersionsValid"
REASON_VERSION_IMMUTABLE: Final = "VersionImmutable"
"""A published version's split was edited; the edit is refused (make a new version)."""
REASON_DATA_IMMUTABLE: Final = "DataImmutable"
"""The data's definition (source, format, storage) was edited after versions were published."""
REASON_DOWNLOAD_FAILED: Final = "DownloadFailed"
REASON_CHECKSUM_MISMATCH: Final = "ChecksumMismatch"
REASON_UNSAFE_ARCHIVE: Final = "UnsafeArchive"
REASON_NO_IMAGES_FOUND: Final = "NoImagesFound"
REASON_LIMIT_EXCEEDED: Final = "LimitExceeded"
REASON_INVALID_SOURCE: Final = "InvalidSource"
REASON_INVALID_FORMAT: Final = "InvalidFormat"
REASON_NOT_VERIFIED: Final = "NotVerified"
"""Verified=False because the data never reached verification (the download failed)."""
REASON_CLEANUP_FAILED: Final = "CleanupFailed"
"""Warning event: a deleted Dataset's files could not be removed; they stay where they are."""
REASON_STORAGE_IN_USE: Final = "StorageInUse"
"""Ready=False: another Dataset already stores its data in the folder (or one overlapping)."""

# Short status.phase values, derived from conditions by conditions.phase().
PHASE_PENDING: Final = "Pending"
PHASE_RUNNING: Final = "Running"
PHASE_READY: Final = "Ready"
PHASE_NOT_READY: Final = "NotReady"
PHASE_SUCCEEDED: Final = "Succeeded"
PHASE_FAILED: Final = "Failed"
# Dataset phases (status.phase of the Dataset CRD).
PHASE_DOWNLOADING: Final = "Downloading"
PHASE_VERIFYING: Final = "Verifying"
PHASE_PUBLISHING: Final = "Publishing"

# --- Galleries and Subscriptions -------------------------------------------------------------

#: The gallery a Subscription (or a ``gallery://`` data source) uses when it names none.
DEFAULT_GALLERY: Final = "default"
#: ``spec.version`` meaning "the newest version without a pre-release tag".
LATEST_VERSION: Final = "latest"
#: Data set formats, as Dataset ``spec.format`` and gallery contracts spell them.
DATASET_FORMATS: Final[tuple[str, ...]] = ("ImageFolder", "Manifest")
#: On Subscriptions: the revision of the gallery they were last woken for. The operator sets
#: it when a gallery changes, which makes kopf run the Subscription's update handler (kept
#: out of the ``kubearts.io/`` prefix, whose annotations kopf leaves out of its diffs).
GALLERY_REVISION_ANNOTATION: Final = f"gallery.{GROUP}/revision"
COND_SYNCED: Final = "Synced"
"""Subscription: the pin matches the gallery as it is now."""
COND_UPDATE_AVAILABLE: Final = "UpdateAvailable"
"""Subscription: the gallery offers a version newer than the pin."""
REASON_RESOLVED: Final = "Resolved"
"""Synced/Ready: the pin matches the gallery."""
REASON_PINNED: Final = "Pinned"
"""Ready: usable from the pinned data although the gallery no longer matches it."""
REASON_GALLERY_UNAVAILABLE: Final = "GalleryUnavailable"
REASON_ALGORITHM_NOT_FOUND: Final = "AlgorithmNotFound"
REASON_ALGORITHM_INVALID: Final = "AlgorithmInvalid"
REASON_VERSION_NOT_FOUND: Final = "VersionNotFound"
REASON_VERSION_INVALID: Final = "VersionInvalid"
REASON_ALGORITHM_REMOVED: Final = "AlgorithmRemoved"
REASON_VERSION_REMOVED: Final = "VersionRemoved"
REASON_VERSION_CHANGED: Final = "VersionChanged"
REASON_UPDATE_AVAILABLE: Final = "UpdateAvailable"
REASON_UP_TO_DATE: Final = "UpToDate"
REASON_NOT_RESOLVED: Final = "NotResolved"
