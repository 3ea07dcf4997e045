"""The model manager: loads, polls and serves the versions of each model, as TF Serving does.

Each model (name, base_path) has numeric version folders under base_path. The manager loads the
versions its version policy wants (the highest one by default), polls the folder every
`poll_wait_seconds` in a background thread, loads new versions as they appear and only then
unloads the ones they replace. A version that fails to load is logged and recorded (state END with
the error) and the versions already loaded keep answering; it is retried when its files change.
What clients see of a failed load names paths relative to the model base path (`client_text`).
"""

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_status_pb2, model_pb2
from tensorflow_serving.config import model_server_config_pb2

from ihas_keras.export.signatures import read_signature_defs
from serving.limits import MAX_VERSION
from serving.tensors import ServingError, grpc_code

log = logging.getLogger(__name__)

State = get_model_status_pb2.ModelVersionStatus.State


@dataclass(frozen=True)
class ServedVersion:
    """One loaded version: the `tf.saved_model.load` object and its SignatureDef protos.

    Attributes:
        name: the model's name.
        version: the version number (its folder's name).
        path: the version folder.
        loaded: what `tf.saved_model.load` returned for PATH.
        signature_defs: the SavedModel's SignatureDef protos, by signature name.
    """

    name: str
    version: int
    path: str
    loaded: object
    signature_defs: dict[str, meta_graph_pb2.SignatureDef]

    @property
    def signatures(self) -> dict:
        """Callable signatures by name (`loaded.signatures`)."""
        return self.loaded.signatures


@dataclass
class _VersionStatus:
    state: int
    code: grpc.StatusCode = grpc.StatusCode.OK
    message: str = ""
    fingerprint: tuple | None = None  # the files' stat when a load failed


def model_config(name: str, base_path: str) -> model_server_config_pb2.ModelConfig:
    """A ModelConfig for one model (platform "tensorflow", latest version).

    Args:
        name: the model's name.
        base_path: the folder of its numeric version folders (made absolute).

    Returns:
        The ModelConfig proto.
    """
    return model_server_config_pb2.ModelConfig(
        name=name, base_path=os.path.abspath(base_path), model_platform="tensorflow"
    )


def read_model_config_file(path: str) -> list[model_server_config_pb2.ModelConfig]:
    """The models of a text-format ModelServerConfig file.

    Args:
        path: the file (TF Serving's `--model_config_file`).

    Returns:
        The ModelConfig protos of its `model_config_list`, their base paths made absolute.

    Raises:
        ValueError: the file is unusable: not a text-format ModelServerConfig, no models, a model
            without a name or a base_path or on a platform other than "tensorflow", or two
            models with the same name.
    """
    with open(path) as f:
        text = f.read()
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ValueError(f"{path}: not a text-format ModelServerConfig: {e}") from e
    models = list(config.model_config_list.config)
    if not models:
        raise ValueError(f"{path}: no model_config_list with models")
    for model in models:
        if not model.name or not model.base_path:
            raise ValueError(f"{path}: every model needs a name and a base_path")
        if model.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{path}: model {model.name}: platform {model.model_platform!r} is "
                             "not supported (only 'tensorflow')")
        model.base_path = os.path.abspath(model.base_path)
    if len({m.name for m in models}) != len(models):
        raise ValueError(f"{path}: model names must be unique")
    return models


def _is_version(name: str) -> bool:
    """A folder name that is a version: ASCII digits of an int64 ('²' is a digit, not one)."""
    return name.isascii() and name.isdigit() and int(name) <= MAX_VERSION


def _fingerprint(path: str) -> tuple | None:
    """(relative path, size, mtime) of every file under a version folder, sorted; None when a
    file vanished while it was read (a folder being written)."""
    stats = []
    try:
        for root, _, files in os.walk(path):
            for name in files:
                full = os.path.join(root, name)
                st = os.stat(full)
                stats.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
    except OSError:
        return None
    return tuple(sorted(stats))


def _wanted(policy, versions) -> set:
    """The versions a ServableVersionPolicy serves out of `versions` (default: the latest)."""
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return set(versions)
    if kind == "specific":
        return set(versions) & set(policy.specific.versions)
    return set(sorted(versions)[-max(policy.latest.num_versions, 1):])


class ModelManager:
    """Serves the models of `configs` (ModelConfig protos); thread-safe.

    `warmup(served)` runs on each version after it loads and before it serves; an exception there
    fails the load. A version folder is loaded only once it is stable: every file under it
    unchanged (size and modification time) since the previous poll, so that a folder copied in
    place file by file is not tried half-written; a version that failed is tried again when its
    files change.

    Args:
        configs: the ModelConfig protos, one per model.
        poll_wait_seconds: seconds between two polls of the model folders; 0 polls only in
            `start()`.
        warmup: the function run on each version after it loads; None runs none.
    """

    def __init__(self, configs: Iterable[model_server_config_pb2.ModelConfig],
                 poll_wait_seconds: float = 1.0,
                 warmup: Callable[[ServedVersion], None] | None = None) -> None:
        self._configs = {c.name: c for c in configs}
        self._poll_wait = poll_wait_seconds
        self._warmup = warmup
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._loaded: dict[str, dict[int, ServedVersion]] = {n: {} for n in self._configs}
        self._status: dict[str, dict[int, _VersionStatus]] = {n: {} for n in self._configs}
        self._warned: set[str] = set()
        self._seen: dict[tuple[str, int], tuple | None] = {}  # the previous poll's fingerprints
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "ModelManager":
        """Loads what is on disk now, then polls in the background (unless poll_wait is 0).

        The folders are read twice, up to a second apart, so that only stable versions load.

        Returns:
            The manager itself.
        """
        with self._poll_lock:
            for config in self._configs.values():
                self._fingerprints(config.name, self._version_folders(config))
        self._stop.wait(min(self._poll_wait, 1.0))
        self.poll()
        if self._poll_wait > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="model-poller",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stops the background polling and waits for the polling thread to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_wait):
            try:
                self.poll()
            except Exception:  # keep polling whatever happens to one pass
                log.exception("polling the model folders failed")

    def poll(self) -> None:
        """One pass over every model's base_path: load wanted versions, unload replaced ones."""
        with self._poll_lock:
            for config in self._configs.values():
                self._poll_model(config)

    def _version_folders(self, config) -> dict[int, str] | None:
        """{version: folder} under the model's base path; None when it cannot be listed."""
        try:
            entries = os.listdir(config.base_path)
        except OSError as e:
            log.error("model %s: cannot list base path %s: %s", config.name, config.base_path, e)
            return None
        return {int(e): os.path.join(config.base_path, e) for e in entries
                if _is_version(e) and os.path.isdir(os.path.join(config.base_path, e))}

    def _fingerprints(self, name: str, on_disk: dict[int, str] | None) -> dict[int, tuple]:
        """The stable versions' fingerprints (unchanged since the previous call); remembers all."""
        now = {v: _fingerprint(path) for v, path in (on_disk or {}).items()}
        stable = {v: fp for v, fp in now.items()
                  if fp is not None and self._seen.get((name, v)) == fp}
        self._seen = {key: fp for key, fp in self._seen.items() if key[0] != name}
        self._seen.update({(name, v): fp for v, fp in now.items()})
        for version in sorted(set(now) - set(stable)):
            log.debug("model %s: version %d is being written; waiting for it to settle", name,
                      version)
        return stable

    def _poll_model(self, config) -> None:
        name = config.name
        on_disk = self._version_folders(config)
        if on_disk is None:
            return
        stable = self._fingerprints(name, on_disk)
        with self._lock:
            status = dict(self._status[name])
        candidates = {v for v, fp in stable.items()
                      if not (v in status and status[v].fingerprint == fp)}
        if not on_disk and not self._loaded[name] and name not in self._warned:
            log.warning("model %s: no version folders under %s yet", name, config.base_path)
            self._warned.add(name)
        wanted = _wanted(config.model_version_policy, candidates)
        while to_load := sorted(wanted - set(self._loaded[name]), reverse=True):
            for version in to_load:
                if not self._load(name, version, on_disk[version], stable[version]):
                    candidates.discard(version)
            wanted = _wanted(config.model_version_policy, candidates)
        if not wanted:
            return
        for version in set(self._loaded[name]) - wanted:
            with self._lock:
                del self._loaded[name][version]
                self._status[name][version] = _VersionStatus(State.END)
            log.info("model %s: unloaded version %d", name, version)

    def _load(self, name: str, version: int, path: str, fingerprint: tuple) -> bool:
        with self._lock:
            self._status[name][version] = _VersionStatus(State.LOADING)
        try:
            signature_defs = read_signature_defs(path)
            served = ServedVersion(name, version, path, tf.saved_model.load(path), signature_defs)
            if self._warmup is not None:
                self._warmup(served)
        except Exception as e:
            code = grpc.StatusCode.UNKNOWN
            if isinstance(e, tf.errors.OpError):
                code = grpc_code(e.error_code)
            message = self.client_text(f"{type(e).__name__}: {e}")
            with self._lock:
                self._status[name][version] = _VersionStatus(
                    State.END, code, message, fingerprint)
                serving = sorted(self._loaded[name])
            log.error("model %s: version %d at %s failed to load (still serving version(s) %s): "
                      "%s", name, version, path, serving or "none", message)
            return False
        with self._lock:
            self._loaded[name][version] = served
            self._status[name][version] = _VersionStatus(State.AVAILABLE)
        log.info("model %s: loaded version %d from %s (signatures: %s)", name, version, path,
                 ", ".join(sorted(served.signatures)))
        return True

    def client_text(self, text: str) -> str:
        """TEXT for a client: every model base path in it removed, its paths left relative to
        the base path (`/models/ihas/3/saved_model.pb` -> `3/saved_model.pb`).

        Args:
            text: a message, perhaps naming files of the models.

        Returns:
            The message without the servers' absolute model paths.
        """
        bases = {p for c in self._configs.values()
                 for p in (c.base_path.rstrip(os.sep), os.path.realpath(c.base_path))}
        for base in sorted(bases, key=len, reverse=True):
            if len(base) > 1:  # a base path of "/" names nothing worth hiding
                text = text.replace(base + os.sep, "").replace(base, ".")
        return text

    def loaded_versions(self, name: str) -> list[int]:
        """The versions of a model that are loaded now.

        Args:
            name: the model's name.

        Returns:
            The version numbers in increasing order; empty for an unknown model.
        """
        with self._lock:
            return sorted(self._loaded.get(name, {}))

    def get(self, spec: model_pb2.ModelSpec) -> ServedVersion:
        """The version a ModelSpec asks for (version, version_label or the latest).

        Args:
            spec: the request's model spec.

        Returns:
            The loaded version.

        Raises:
            ServingError: NOT_FOUND when it is not loaded, INVALID_ARGUMENT for an unknown label.
        """
        name = spec.name
        choice = spec.WhichOneof("version_choice")
        version = spec.version.value if choice == "version" else None
        if choice == "version_label":
            labels = self._configs[name].version_labels if name in self._configs else {}
            if spec.version_label not in labels:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Unrecognized servable version label: {spec.version_label}")
            version = labels[spec.version_label]
        with self._lock:
            loaded = self._loaded.get(name, {})
            if version is None and loaded:
                return loaded[max(loaded)]
            if version in loaded:
                return loaded[version]
        request = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
        raise ServingError(grpc.StatusCode.NOT_FOUND,
                           f"Servable not found for request: {request}")

    def model_status(self, name: str, version: int | None = None
                     ) -> list[get_model_status_pb2.ModelVersionStatus]:
        """ModelVersionStatus protos (highest version first), as GetModelStatus answers.

        Args:
            name: the model's name.
            version: the one version to report; None for every version known.

        Returns:
            The statuses: state, and the error code and message of a failed load.

        Raises:
            ServingError: NOT_FOUND when VERSION, or any version of the model, is unknown.
        """
        with self._lock:
            status = dict(self._status.get(name, {}))
        if version is not None:
            if version not in status:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Could not find version {version} of model {name}")
            status = {version: status[version]}
        if not status:
            raise ServingError(grpc.StatusCode.NOT_FOUND,
                               f"Could not find any versions of model {name}")
        result = []
        for v, s in sorted(status.items(), reverse=True):
            item = get_model_status_pb2.ModelVersionStatus(version=v, state=s.state)
            item.status.error_code = s.code.value[0]
            item.status.error_message = s.message
            result.append(item)
        return result
