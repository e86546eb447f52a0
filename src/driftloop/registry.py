"""MLflow adapter: the only module that imports ``mlflow``.

Models move between roles by alias only (``champion``, ``challenger``); stages are not
used. A version is registered after its run has logged everything, so a crash halfway
through a retrain leaves a finished or failed run but never a half-made version.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Nothing in a driftloop process deserializes a model through MLflow: what MLflow would load is read
# from the artifact store's own MLmodel file. driftloop loads through its pin (driftloop.model_files).
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
import sqlalchemy  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from driftloop import model_files  # noqa: E402
from driftloop.config import RegistryConfig  # noqa: E402
from driftloop.drift import ReferenceProfile  # noqa: E402
from driftloop.errors import RegistryError, RegistryUnavailable  # noqa: E402
from driftloop.redaction import without_credentials  # noqa: E402
from driftloop.promotion import CHALLENGER, CHAMPION, TAG, AuditEntry, UnauditedAlias, check_promotion, unaudited_aliases  # noqa: E402

PROFILE_ARTIFACT = "drift_reference.npz"
AUDIT = TAG + "audit."  # registered-model tags, one per alias move, readable in the MLflow UI
COMPLETE = TAG + "registration"  # set last: a version without it was cut off mid-registration
NOT_OFFERED = "-"  # the audit entry's alias for a version registered without one (gate failed, or no better than the one awaiting review)


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...]
    tags: dict[str, str]
    description: str


@dataclass(frozen=True)
class LoadedModel:
    ref: ModelRef
    model: object
    profile: ReferenceProfile
    reference_metrics: dict[str, float]  # the metrics the version earned on its own holdout


# Loaded versions of this process, oldest first: (tracking URI, model, version, run) -> LoadedModel.
_LOADED: dict[tuple[str, str, str, str], LoadedModel] = {}
_KEEP_LOADED = 3


def _pip_requirements() -> list[str]:
    # Listing them is instant; letting MLflow infer them re-imports the model in a subprocess.
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("scikit-learn", "skops", "pandas", "numpy", "scipy", "pyarrow")]


class Registry:
    def __init__(self, cfg: RegistryConfig):
        self.cfg = cfg
        self.name = cfg.model_name
        if cfg.tracking_uri.startswith("sqlite:///"):
            Path(cfg.tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        # MLflow reads its HTTP retry budget from the environment on every request.
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(cfg.http_retries)
        os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(cfg.http_timeout_seconds)
        mlflow.set_tracking_uri(cfg.tracking_uri)
        with self._errors(f"opening the MLflow store {cfg.tracking_uri}"):
            self.client = MlflowClient(cfg.tracking_uri)

    # -- errors -------------------------------------------------------------------------

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn MLflow and network failures into one line that says what to do."""
        try:
            yield
        except RegistryError:
            raise
        except sqlalchemy.exc.DatabaseError as exc:  # the local store's file is damaged or not a database
            reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
            if isinstance(exc, sqlalchemy.exc.OperationalError) and "connect" in reason.lower():  # a database server that is down
                raise RegistryUnavailable(f"{doing}: the MLflow store {self.cfg.tracking_uri} is unreachable ({reason}); start it "
                                          "or fix registry.tracking_uri") from None
            raise RegistryError(f"{doing}: the MLflow store {self.cfg.tracking_uri} cannot be read ({reason}); restore it from "
                                "a backup, or point registry.tracking_uri at a new file") from None
        except MlflowException as exc:
            first = str(exc.message).splitlines()[0][:200]
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise RegistryError(f"{doing}: {first}; check registry.model_name or run the bootstrap flow") from None
            if "connect" in first.lower() or "max retries" in first.lower():
                raise RegistryUnavailable(f"{doing}: MLflow at {self.cfg.tracking_uri} is unreachable; start it (make up) or fix registry.tracking_uri") from None
            raise RegistryError(f"{doing}: {first}") from None
        except OSError as exc:  # requests' connection errors are OSErrors too
            if self.is_local:  # no network involved: the store on disk is the problem
                raise RegistryError(
                    f"{doing}: the local MLflow store failed ({type(exc).__name__}: {exc}); check that "
                    f"{self.cfg.artifact_root} and {self.cfg.tracking_uri} are writable and the disk has space"
                ) from None
            raise RegistryUnavailable(
                f"{doing}: MLflow at {self.cfg.tracking_uri} is unreachable ({type(exc).__name__}); start it (make up) or fix registry.tracking_uri"
            ) from None

    @contextmanager
    def _missing_files(self, ref, alias: str) -> Iterator[None]:
        """A version whose files were deleted from the artifact store is named, with what is gone and the fix
        (MLflow says only "No such artifact: ''")."""
        try:
            yield
        except (MlflowException, OSError) as exc:
            message = str(getattr(exc, "message", exc))
            if "No such artifact" not in message and "No such file" not in message and not isinstance(exc, FileNotFoundError):
                raise
            where = self.client.get_model_version_download_uri(self.name, ref.version)
            raise RegistryError(
                f"{self.name} v{ref.version} ({alias}) is registered but its files are missing from {where}; restore them, "
                f"or promote another version (driftloop status lists them) or retrain"
            ) from None

    def experiment_id(self, name: str) -> str:
        with self._errors(f"opening experiment {name}"):
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return found.experiment_id
            if not self.is_local:
                return self.client.create_experiment(name)  # the server decides where artifacts go
            location = (self.cfg.artifact_root / name).resolve().as_uri()
            return self.client.create_experiment(name, artifact_location=location)

    @property
    def is_local(self) -> bool:
        return not self.cfg.tracking_uri.startswith(("http://", "https://"))

    def ui_url(self, run_id: str | None = None, version: str | None = None, artifact: str | None = None) -> str | None:
        """Where a person sees a run (or one of its artifacts) or a model version in the MLflow UI (None for a local store)."""
        if self.is_local:
            return None
        base = without_credentials(self.cfg.tracking_uri).rstrip("/")
        if version is not None:
            return f"{base}/#/models/{self.name}/versions/{version}"
        if run_id is not None:
            with self._errors(f"reading run {run_id}"):
                experiment = self.client.get_run(run_id).info.experiment_id
            run = f"{base}/#/experiments/{experiment}/runs/{run_id}"
            return f"{run}/artifactPath/{artifact}" if artifact else run
        return base

    # -- reading ------------------------------------------------------------------------

    def _ref(self, mv) -> ModelRef:
        return ModelRef(self.name, str(mv.version), mv.run_id, tuple(mv.aliases or ()), dict(mv.tags or {}), mv.description or "")

    def by_alias(self, alias: str) -> ModelRef | None:
        with self._errors(f"reading alias {alias!r} of {self.name}"):
            try:
                return self._ref(self.client.get_model_version_by_alias(self.name, alias))
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    return None
                raise

    def version(self, version: str) -> ModelRef:
        with self._errors(f"reading version {version} of {self.name}"):
            try:
                return self._ref(self.client.get_model_version(self.name, str(version)))
            except MlflowException as exc:
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    raise RegistryError(f"{self.name} has no version {version}; `driftloop status` lists the versions") from None
                raise

    def versions(self) -> list[ModelRef]:
        with self._errors(f"listing versions of {self.name}"):
            found = self.client.search_model_versions(f"name = '{self.name}'")
            if not found:
                return []
            # Search results leave aliases out; the registered model has them.
            aliases: dict[str, list[str]] = {}
            for alias, version in self.client.get_registered_model(self.name).aliases.items():
                aliases.setdefault(str(version), []).append(alias)
        refs = (self._ref(mv) for mv in found)
        return sorted((replace(r, aliases=tuple(sorted(aliases.get(r.version, [])))) for r in refs), key=lambda r: int(r.version))

    def find_by_tag(self, key: str, value: str) -> ModelRef | None:
        matches = [r for r in self.versions() if r.tags.get(TAG + key) == value]
        return matches[-1] if matches else None

    def load(self, alias: str = CHAMPION, code_path: Path | None = None) -> LoadedModel:
        """The model under ``alias`` with the drift profile and metrics saved beside it, read only as the
        version's pin says (``model_files``); ``code_path`` is ``training.estimator_path`` for a model
        whose classes live beside the config."""
        ref = self.by_alias(alias)
        if ref is None:
            raise RegistryError(
                f"model {self.name!r} has no {alias!r} alias at {self.cfg.tracking_uri}; run the bootstrap flow first (make demo does)"
            )
        key = (self.cfg.tracking_uri, self.name, ref.version, ref.run_id)
        if key in _LOADED:  # checked when it was loaded; its pin lives in the tracking store, beyond the artifacts' reach
            return replace(_LOADED[key], ref=ref)  # with the aliases and tags as they are now
        model_files.code_on_path(code_path)
        pin = self._pin_of(ref, alias)
        with self._errors(f"loading {self.name}@{alias} (version {ref.version})"), self._missing_files(ref, alias):
            mlmodel, data = self._model_files(ref.version, pin.file)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(mlflow.artifacts.download_artifacts(run_id=ref.run_id, artifact_path=PROFILE_ARTIFACT, dst_path=tmp))
                try:
                    problem = model_files.mlmodel_problem(mlmodel, pin)
                    if not problem and model_files.sha256(path.read_bytes()) != pin.profile_sha256:
                        problem = f"its {PROFILE_ARTIFACT} is not the file registered"
                    if problem:
                        raise RegistryError(problem)
                    model = model_files.load(data, pin)  # nothing in the file is built before its hash matches
                except RegistryError as exc:
                    raise RegistryError(f"refusing to load {self.name} v{ref.version} ({alias}): {exc}; its files changed after "
                                        "registration: restore them from a backup, or promote another version") from None
                profile = ReferenceProfile.load(path)
            run_metrics = self.client.get_run(ref.run_id).data.metrics
        reference = {k.removeprefix("holdout_"): v for k, v in run_metrics.items() if k.startswith("holdout_")}
        loaded = _LOADED[key] = LoadedModel(ref, model, profile, reference)
        while len(_LOADED) > _KEEP_LOADED:  # the champion, a challenger under review and the one before
            _LOADED.pop(next(iter(_LOADED)))
        return loaded

    def _pin_of(self, ref: ModelRef, alias: str) -> model_files.ModelPin:
        pin = model_files.ModelPin.from_tags(ref.tags)
        if pin is None:
            raise RegistryError(f"{self.name} v{ref.version} ({alias}) has no {model_files.PIN_TAG} tag, so nothing says what its "
                                f"files may hold; check them, then `driftloop pin {ref.version} --reason '...'` records them as trusted")
        return pin

    def _model_files(self, version: str, model_file: str) -> tuple[str, bytes]:
        """A version's ``MLmodel`` text and model file bytes, as the artifact store holds them now."""
        where = self.client.get_model_version_download_uri(self.name, version).rstrip("/")
        with tempfile.TemporaryDirectory() as tmp:
            mlmodel = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{where}/MLmodel", dst_path=tmp)).read_text(encoding="utf-8")
            data = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{where}/{model_file}", dst_path=tmp)).read_bytes()
        return mlmodel, data

    # -- writing ------------------------------------------------------------------------

    def register(
        self,
        *,
        model,
        input_example: pd.DataFrame,
        profile: ReferenceProfile,
        params: dict,
        metrics: dict[str, float],
        artifacts: dict[str, list[Path]],
        run_name: str,
        tags: dict[str, str],
        description: str,
        alias: str | None,
        why: str,
        code_path: Path | None = None,
    ) -> ModelRef:
        """Log a run with everything a reviewer needs, then register its model under ``alias`` (None: no alias),
        pinned (``model_files``): its format, the exact types it may hold, its files' hashes. ``code_path``
        (``training.estimator_path`` of an own estimator): the model must load and score in a new process
        with only that folder added, as a monitor run elsewhere will, before anything is logged."""
        data, trusted = model_files.dump(model)
        if code_path is not None:
            model_files.check_loads_in_new_process(data, trusted, code_path, input_example)
        experiment = self.experiment_id(self.cfg.experiment)
        # Holdout metrics are tags too, so the registry's version list shows them at a glance.
        shown = {k: f"{v:.4f}" for k, v in metrics.items() if k.startswith("holdout_") and "." not in k}
        prefixed = {TAG + k: str(v) for k, v in (tags | shown).items()}
        with self._errors(f"logging the {alias or 'candidate'} training run"), tempfile.TemporaryDirectory() as tmp:
            with mlflow.start_run(experiment_id=experiment, run_name=run_name, tags=prefixed) as run:
                mlflow.log_params(params)
                mlflow.log_metrics(metrics)
                saved_profile = profile.save(Path(tmp) / PROFILE_ARTIFACT)
                mlflow.log_artifact(str(saved_profile))
                for folder, paths in artifacts.items():
                    for path in paths:
                        mlflow.log_artifact(str(path), artifact_path=folder)
                with warnings.catch_warnings():
                    # Its hint about integer columns concerns the predicted class, which is never missing.
                    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
                    # A signature, not an input example: MLflow would check an example by loading the model
                    # through its own loader, which this process refuses (MLFLOW_ALLOW_PICKLE_DESERIALIZATION).
                    info = mlflow.sklearn.log_model(
                        model,
                        name="model",
                        signature=mlflow.models.infer_signature(input_example, model.predict(input_example)),
                        pip_requirements=_pip_requirements(),
                        skops_trusted_types=list(trusted),
                    )
            pin = self._pin_logged(self.client.get_logged_model(info.model_id).artifact_location, trusted,
                                   model_files.sha256(saved_profile.read_bytes()))
        with self._errors(f"registering {self.name}"):
            try:
                self.client.get_registered_model(self.name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                self.client.create_registered_model(self.name)
            # Tags and description in the same write as the version: it never exists without its lineage.
            mv = self.client.create_model_version(
                self.name, source=info.model_uri, run_id=run.info.run_id, tags=prefixed | {model_files.PIN_TAG: pin.to_tag()},
                description=description, model_id=info.model_id,
            )
        return self.complete_registration(str(mv.version), alias, who=run_name, why=why)

    def _pin_logged(self, location: str, trusted: tuple[str, ...], profile_sha256: str) -> model_files.ModelPin:
        """The pin of the model file as the artifact store now holds it, once it names no type beyond ``trusted``."""
        where = mlflow.artifacts.download_artifacts
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(where(artifact_uri=f"{location.rstrip('/')}/{model_files.MODEL_FILE}", dst_path=tmp)).read_bytes()
        extra = sorted(set(model_files.untrusted_types(data)) - set(trusted))
        if extra:
            raise RegistryError(f"the model file in the artifact store names {', '.join(extra[:3])}, which the model logged does "
                                "not: the store was written to while the version was registered; nothing was registered")
        return model_files.ModelPin(model_files.SKOPS, model_files.MODEL_FILE, model_files.sha256(data), trusted, profile_sha256)

    def complete_registration(self, version: str, alias: str | None, who: str, why: str) -> ModelRef:
        """Give a registered version its alias (if any) and mark it complete; safe to repeat after a crash."""
        previous = self.by_alias(alias) if alias else None
        with self._errors(f"completing the registration of version {version} of {self.name}"):
            if alias:
                self.client.set_registered_model_alias(self.name, alias, version)
            self._audit("register", alias or NOT_OFFERED, previous.version if previous else None, version if alias else None,
                        who, why if alias else f"v{version}: {why}")
            self.client.set_model_version_tag(self.name, version, COMPLETE, "complete")
        return self.version(version)

    def log_monitor_run(self, batch_id: str, metrics: dict[str, float], params: dict, artifacts: list[Path], tags: dict[str, str]) -> str:
        """One MLflow run per monitored batch, so the monitoring history charts in the MLflow UI."""
        experiment = self.experiment_id(f"{self.cfg.experiment}-monitoring")
        with self._errors(f"logging the monitor run of {batch_id}"):
            with mlflow.start_run(experiment_id=experiment, run_name=f"monitor {batch_id}",
                                  tags={TAG + k: str(v) for k, v in tags.items()}) as run:
                mlflow.log_params(params)
                mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})  # NaN means "not measured"
                for path in artifacts:
                    mlflow.log_artifact(str(path))
            return run.info.run_id

    def log_charts(self, run_id: str, paths: list[Path]) -> None:
        """Charts beside a run's other artifacts, under ``charts/`` (the MLflow UI previews PNGs)."""
        with self._errors(f"logging the charts of run {run_id}"):
            for path in paths:
                self.client.log_artifact(run_id, str(path), artifact_path="charts")

    # -- people moving aliases -------------------------------------------------------

    def _audit(self, action: str, alias: str, from_version: str | None, to_version: str | None, who: str, why: str) -> None:
        now = datetime.now(timezone.utc)
        entry = AuditEntry(now.isoformat(timespec="seconds"), action, alias, from_version, to_version, who, why)
        # Time-ordered key with a random suffix: two writers never overwrite each other.
        key = f"{AUDIT}{now:%Y%m%dT%H%M%S%f}.{secrets.token_hex(2)}"
        self.client.set_registered_model_tag(self.name, key, json.dumps(entry.__dict__))

    def _audit_and_aliases(self) -> tuple[list[AuditEntry], dict[str, str]]:
        """The audit trail (registered-model tags) and where the aliases point, in one read."""
        with self._errors(f"reading the history of {self.name}"):
            try:
                model = self.client.get_registered_model(self.name)
            except MlflowException as exc:
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    return [], {}
                raise
        tags = model.tags
        entries = [AuditEntry(**json.loads(tags[k])) for k in sorted(tags) if k.startswith(AUDIT)]
        return entries, {alias: str(v) for alias, v in model.aliases.items()}

    def history(self) -> list[AuditEntry]:
        return self._audit_and_aliases()[0]

    def unaudited_aliases(self) -> tuple[UnauditedAlias, ...]:
        """Aliases moved outside driftloop (MLflow's own alias editor): no reviewer, no reason on record."""
        return unaudited_aliases(*self._audit_and_aliases())

    def _tag(self, version: str, values: dict[str, str]) -> None:
        for key, value in values.items():
            self.client.set_model_version_tag(self.name, version, TAG + key, value)

    def promote(self, version: str, reviewer: str, comment: str = "", override_reason: str | None = None) -> tuple[str | None, str]:
        """Move ``champion`` to ``version``; returns (previous champion, new champion).

        ``promotion.check_promotion`` decides: the current challenger, gate passed, trained on newer
        data than the champion. Anything else moves only with ``override_reason``, which is recorded.
        """
        if not reviewer.strip():
            raise RegistryError("a promotion needs a reviewer: pass --reviewer NAME")
        target = self.version(version)
        previous = self.by_alias(CHAMPION)
        check = check_promotion(target, previous, self.by_alias(CHALLENGER))
        if check.refused:
            raise RegistryError(check.refused)
        if check.needs_override and not (override_reason or "").strip():
            raise RegistryError(f"{'; '.join(check.needs_override)}; to promote it anyway pass --override with a written --reason")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        overridden = "; ".join(check.needs_override)
        why = f"OVERRIDE of: {overridden}; reason: {override_reason}" + (f"; {comment}" if comment else "") if overridden else comment
        with self._errors(f"promoting version {version} of {self.name}"):
            self.client.set_registered_model_alias(self.name, CHAMPION, target.version)
            if CHALLENGER in target.aliases:
                self.client.delete_registered_model_alias(self.name, CHALLENGER)
            self._tag(target.version, {
                "promoted_by": reviewer, "promoted_at": now, "promotion_comment": comment,
                "previous_champion": previous.version if previous else "",
                **({"override_by": reviewer, "override_reason": override_reason, "overridden": overridden} if overridden else {}),
            })
            self._audit("promote", CHAMPION, previous.version if previous else None, target.version, reviewer, why)
        return (previous.version if previous else None), target.version

    def reject(self, version: str, reviewer: str, reason: str) -> None:
        if not reason.strip():
            raise RegistryError("a rejection needs a reason: pass --reason '...'")
        target = self.version(version)
        if CHAMPION in target.aliases:
            raise RegistryError(f"version {version} is the champion of {self.name}; roll back before rejecting it")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._errors(f"rejecting version {version} of {self.name}"):
            self._tag(target.version, {"rejected_by": reviewer, "rejected_at": now, "rejection_reason": reason})
            held = CHALLENGER in target.aliases
            if held:
                self.client.delete_registered_model_alias(self.name, CHALLENGER)
            self._audit("reject", CHALLENGER if held else "-", target.version if held else None, None, reviewer,
                        reason if held else f"v{target.version}: {reason}")

    def pin(self, version: str, reviewer: str, reason: str) -> model_files.ModelPin:
        """Record a version's files as they are now as the ones it may be loaded from (a version registered
        before driftloop pinned its files): a person's decision, kept in the audit trail. Only a skops file
        is accepted, and it is trusted with exactly the types its schema names (nothing is built)."""
        if not reason.strip():
            raise RegistryError("pinning a version needs a reason: pass --reason '...' (what you checked)")
        target = self.version(version)
        with self._errors(f"pinning version {version} of {self.name}"), self._missing_files(target, "pinned"):
            mlmodel, data = self._model_files(target.version, model_files.MODEL_FILE)
            flavor = model_files.sklearn_flavor(mlmodel)
            if flavor.get("serialization_format") != model_files.SKOPS or flavor.get("pickled_model") != model_files.MODEL_FILE:
                raise RegistryError(f"{self.name} v{version} is not a skops file ({flavor.get('serialization_format')!r}, "
                                    f"{flavor.get('pickled_model')!r}); only skops files are pinned: retrain it")
            with tempfile.TemporaryDirectory() as tmp:
                profile = Path(mlflow.artifacts.download_artifacts(run_id=target.run_id, artifact_path=PROFILE_ARTIFACT, dst_path=tmp))
                pin = model_files.ModelPin(model_files.SKOPS, model_files.MODEL_FILE, model_files.sha256(data),
                                           model_files.untrusted_types(data), model_files.sha256(profile.read_bytes()))
            self.client.set_model_version_tag(self.name, target.version, model_files.PIN_TAG, pin.to_tag())
            self._audit("pin", "-", None, target.version, reviewer,
                        f"v{target.version}: {reason} (trusts {', '.join(pin.trusted_types) or 'no extra type'})")
        return pin

    def rollback(self, reviewer: str, reason: str) -> tuple[str, str]:
        """Champion back to the version it replaced; returns (from, to)."""
        if not reason.strip():
            raise RegistryError("a rollback needs a reason: pass --reason '...'")
        current = self.by_alias(CHAMPION)
        if current is None:
            raise RegistryError(f"{self.name} has no champion to roll back")
        previous = current.tags.get(TAG + "previous_champion")
        if not previous:
            raise RegistryError(f"champion v{current.version} of {self.name} replaced no earlier champion; nothing to roll back to")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._errors(f"rolling back {self.name} to version {previous}"):
            self.client.set_registered_model_alias(self.name, CHAMPION, previous)
            self._tag(current.version, {"rolled_back_by": reviewer, "rolled_back_at": now, "rollback_reason": reason})
            self._audit("rollback", CHAMPION, current.version, previous, reviewer, reason)
        return current.version, previous
