"""skops adapter: the only module that imports ``skops``. A model file is read back only as it was
registered.

At registration driftloop decides what a version's model file may hold: the skops format, the
exact types skops must trust to load it, and the file's hash. That decision (a ``ModelPin``) is
stored in the version's tags, in the tracking store, where whoever can write the artifact store
cannot rewrite it too. At load, the version's ``MLmodel`` and model file are compared with the
pin before a byte is deserialized, and skops is told to trust the pinned types and nothing else:
a switch to pickle, an extra trusted type or a replaced file is refused in one line, and nothing
in the file runs.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from driftloop.errors import RegistryError

SKOPS, MODEL_FILE = "skops", "model.skops"
PIN_TAG = "driftloop.model_pin"  # a model version tag: the ModelPin as JSON


def _skops():
    """``skops.io``, imported so that it trusts no scikit-learn estimator by default: driftloop always
    names the exact types a file may hold, so skops's default list (built by importing every
    estimator scikit-learn has, seconds in a new process) is neither needed nor wanted."""
    if "skops.io" not in sys.modules:
        import sklearn.utils

        everything = sklearn.utils.all_estimators
        sklearn.utils.all_estimators = lambda *args, **kwargs: []
        try:
            import skops.io  # noqa: F401  (its default trust list is built at import)
        finally:
            sklearn.utils.all_estimators = everything
    import skops.io

    return skops.io


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ModelPin:
    """What a version's files were at registration: a report says which of them changed."""

    format: str
    file: str
    sha256: str
    trusted_types: tuple[str, ...]
    profile_sha256: str

    def to_tag(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> "ModelPin | None":
        raw = tags.get(PIN_TAG)
        if raw is None:
            return None
        try:
            found = json.loads(raw)
            return cls(**{**found, "trusted_types": tuple(found["trusted_types"])})
        except (ValueError, KeyError, TypeError):
            return cls("unreadable", "", "", (), "")  # matches no file: the load is refused, naming the tag


def importable(type_name: str) -> bool:
    """Whether a class named in a skops file can be imported back where the model is loaded."""
    module, _, name = type_name.rpartition(".")
    if not module or module == "__main__" or "<" in type_name:  # a script's class, a lambda, a local function
        return False
    try:
        return hasattr(importlib.import_module(module), name)
    except Exception:
        return False


def dump(model) -> tuple[bytes, tuple[str, ...]]:
    """The model as skops bytes, and every type they name that skops does not trust on its own: what
    the pin lists. A type that could not be imported back is a one-line error now, not a failed load."""
    skops = _skops()
    try:
        data = skops.dumps(model)
    except Exception as exc:  # skops stores known types only: an own step holding an object it cannot write
        raise RegistryError(f"the model cannot be saved in the skops format ({type(exc).__name__}: {str(exc)[:200]}); keep a "
                            "fitted step's learned state in numpy arrays, numbers, strings, lists or dicts") from None
    types = untrusted_types(data)
    unloadable = [t for t in types if not importable(t)]
    if unloadable:
        raise RegistryError(f"the model holds {unloadable[0]}, which could not be imported where the model is loaded; "
                            "define it at the top level of an importable module (not in a script, not a lambda)")
    return data, types


def untrusted_types(data: bytes) -> tuple[str, ...]:
    """The types a skops file names beyond skops's own safe list (read from its schema: nothing is built)."""
    return tuple(sorted(_skops().get_untrusted_types(data=data)))


def sklearn_flavor(mlmodel: str) -> dict:
    """The ``sklearn`` flavor of a version's ``MLmodel`` text ({} when it has none, or is not YAML)."""
    try:
        found = yaml.safe_load(mlmodel)
    except yaml.YAMLError:
        return {}
    flavors = found.get("flavors") if isinstance(found, dict) else None
    flavor = flavors.get("sklearn") if isinstance(flavors, dict) else None
    return flavor if isinstance(flavor, dict) else {}


def mlmodel_problem(mlmodel: str, pin: ModelPin) -> str | None:
    """How a version's ``MLmodel`` text departs from its pin, if it does."""
    flavor = sklearn_flavor(mlmodel)
    if flavor.get("serialization_format") != pin.format:
        return f"its MLmodel says serialization_format {flavor.get('serialization_format')!r}, registered as {pin.format!r}"
    if flavor.get("pickled_model") != pin.file:
        return f"its MLmodel names the model file {flavor.get('pickled_model')!r}, registered as {pin.file!r}"
    extra = sorted(set(flavor.get("skops_trusted_types") or ()) - set(pin.trusted_types))
    if extra:
        return f"its MLmodel trusts {len(extra)} type(s) not trusted at registration ({', '.join(extra[:3])})"
    return None


def load(data: bytes, pin: ModelPin):
    """The model in ``data``, once its hash matches the pin; skops trusts exactly the pinned types."""
    if sha256(data) != pin.sha256:
        raise RegistryError(f"{pin.file} is not the file registered (its sha256 is {sha256(data)[:12]}..., registered "
                            f"{pin.sha256[:12]}...)")
    skops = _skops()
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return skops.loads(data, trusted=list(pin.trusted_types))
    except UntrustedTypesFoundException as exc:  # with a matching hash, only a pin written by hand gets here
        raise RegistryError(f"{pin.file} holds types its pin does not trust ({exc})") from None


def code_on_path(folder: Path | None) -> None:
    """Make ``training.estimator_path`` importable in this process, as training did: a model whose class
    lives beside the config loads wherever it is used, not only in the process that trained it."""
    if folder is not None and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def check_loads_in_new_process(data: bytes, types: tuple[str, ...], code_path: Path | None, example) -> None:
    """Load ``data`` and score ``example`` in a new interpreter with only ``code_path`` added to its path,
    as a monitor run in another process will: a class importable only in this process (its module
    imported by hand, a notebook's) is a one-line error before the version is registered."""
    with tempfile.TemporaryDirectory() as folder:
        model_file, example_file = Path(folder) / MODEL_FILE, Path(folder) / "example.parquet"
        model_file.write_bytes(data)
        example.to_parquet(example_file)
        # -P: the working directory is not on the path (a monitor started elsewhere would not have it).
        found = subprocess.run(
            [sys.executable, "-P", "-m", "driftloop.model_files", str(model_file), json.dumps(list(types)), str(example_file),
             str(code_path or "")],
            capture_output=True, text=True, timeout=300)
    if found.returncode != 0:
        last = (found.stderr.strip().splitlines() or ["no output"])[-1]
        raise RegistryError(f"the model does not load in a new process ({last}); put the module that defines its classes in "
                            f"training.estimator_path ({code_path}) or install it, so every worker can import it")


def _check_main(model_file: str, types: str, example_file: str, code_path: str) -> None:
    import pandas as pd

    code_on_path(Path(code_path) if code_path else None)
    data = Path(model_file).read_bytes()
    model = _skops().loads(data, trusted=json.loads(types))
    example = pd.read_parquet(example_file)
    (model.predict_proba if hasattr(model, "predict_proba") else model.predict)(example)


if __name__ == "__main__":
    _check_main(*sys.argv[1:5])
